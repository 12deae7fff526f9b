//! The phases that change an answer: the usage chunk the proxy asked for
//! goes, the other API's answer becomes the app's, and PII is restored or
//! masked in what the model wrote.

use std::sync::Arc;

use crate::api::translate::{self, StreamTranslator};
use crate::api::{Event, Family};
use crate::metrics::Metrics;
use crate::pii::stream::StreamFilter;
use crate::pipeline::respond::{Phase, Tally};

// === StripUsageChunk ===

/// Drops OpenAI's usage-only chunk, which the proxy asked for on the app's
/// behalf (the usage phase before it marks the chunk, from its JSON,
/// whatever its formatting).
pub(crate) struct StripUsageChunk;

impl StripUsageChunk {
    pub(crate) fn phase(applies: bool) -> Option<Box<dyn Phase>> {
        applies.then(|| Box::new(StripUsageChunk) as Box<dyn Phase>)
    }
}

impl Phase for StripUsageChunk {
    fn name(&self) -> &'static str {
        "strip usage chunk"
    }

    fn event(&mut self, ev: Event, _tally: &mut Tally, out: &mut Vec<Event>) {
        if !ev.is_usage_only() {
            out.push(ev);
        }
    }
}

// === Translate ===

/// The answer of the other API in the app's: a stream event by event, a
/// whole answer at once.
pub(crate) enum Translate {
    Stream(Box<dyn StreamTranslator>),
    Whole { app: Family, model: String },
}

impl Translate {
    pub(crate) fn phase(
        app: Family,
        api: Family,
        stream: bool,
        model: &str,
        include_usage: bool,
    ) -> Option<Box<dyn Phase>> {
        if app == api {
            return None;
        }
        let t = if stream {
            Translate::Stream(translate::stream_translator(
                app,
                api,
                model,
                include_usage,
            )?)
        } else {
            Translate::Whole {
                app,
                model: model.to_string(),
            }
        };
        Some(Box::new(t))
    }
}

impl Phase for Translate {
    fn name(&self) -> &'static str {
        "translate"
    }

    fn event(&mut self, ev: Event, _tally: &mut Tally, out: &mut Vec<Event>) {
        match self {
            Translate::Stream(t) => t.push(&ev, out),
            Translate::Whole { app, model } => match ev.json() {
                Some(v) => out.push(Event::built_body(translate::response(*app, v, model))),
                None => out.push(ev),
            },
        }
    }

    fn finish(&mut self, _tally: &mut Tally, out: &mut Vec<Event>) {
        if let Translate::Stream(t) = self {
            t.finish(out);
        }
    }
}

// === PiiFilter ===

/// Restores pseudonyms and masks what the model wrote, in the app's API.
pub(crate) enum PiiFilter {
    Stream(Box<StreamFilter>),
    Whole {
        answers: crate::pii::Answers,
        metrics: Arc<Metrics>,
        app: Family,
    },
}

impl PiiFilter {
    pub(crate) fn phase(
        answers: crate::pii::Answers,
        metrics: &Arc<Metrics>,
        app: Family,
        stream: bool,
    ) -> Box<dyn Phase> {
        Box::new(if stream {
            PiiFilter::Stream(Box::new(answers.stream(metrics, app)))
        } else {
            PiiFilter::Whole {
                answers,
                metrics: metrics.clone(),
                app,
            }
        })
    }
}

impl Phase for PiiFilter {
    fn name(&self) -> &'static str {
        "pii"
    }

    fn event(&mut self, mut ev: Event, _tally: &mut Tally, out: &mut Vec<Event>) {
        match self {
            PiiFilter::Stream(f) => f.push(ev, out),
            PiiFilter::Whole {
                answers,
                metrics,
                app,
            } => {
                ev.edit(|_, v| answers.whole(metrics, *app, v));
                out.push(ev);
            }
        }
    }

    fn finish(&mut self, _tally: &mut Tally, out: &mut Vec<Event>) {
        if let PiiFilter::Stream(f) = self {
            f.finish(out);
        }
    }
}
