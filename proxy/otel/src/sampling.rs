//! The sampler, taken out of the SDK's hands so a caller can decide
//! before it builds a span.
//!
//! The SDK decides inside `start`: by then a request has paid for a span
//! builder, its attribute vector, a span and a context, all thrown away
//! when the trace is sampled out. A caller that holds the [`Sampling`]
//! asks first ([`Sampling::decide`]); sampled out, it keeps only the ids
//! to propagate. Sampled in, it builds the span with the trace id it
//! decided on ([`Sampling::start`]), so the SDK, which asks the same
//! sampler again, gets the same answer: the standard samplers depend on
//! the parent and the trace id only.

use std::cell::Cell;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, Tracer as _,
};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, SdkTracer, ShouldSample, Span,
};

use crate::{Env, Error, Settings};

/// The sampler a process's provider uses, and its ids.
#[derive(Clone, Debug)]
pub struct Sampling {
    sampler: Sampler,
    ids: Ids,
}

/// What [`Sampling::decide`] found for a new span.
#[derive(Debug)]
pub enum Decision {
    /// Record it: build it with [`Sampling::start`] and this trace id.
    Record(TraceId),
    /// Sampled out: the context to propagate (sampled flag clear).
    Drop(SpanContext),
}

impl Sampling {
    pub fn new(sampler: Sampler) -> Sampling {
        Sampling {
            sampler,
            ids: Ids::default(),
        }
    }

    /// The sampler these settings ask for: `sample_ratio` (parent-based),
    /// else `OTEL_TRACES_SAMPLER[_ARG]` as the specification names them,
    /// else parent-based always-on. A sampler this SDK does not have
    /// (`jaeger_remote`, `xray`) or a ratio that is not a number in 0..=1
    /// is an error, as an unknown protocol is.
    pub fn from_settings(settings: &Settings, env: Env<'_>) -> Result<Sampling, Error> {
        let ratio = |r: f64| {
            if (0.0..=1.0).contains(&r) {
                Ok(Sampler::TraceIdRatioBased(r))
            } else {
                Err(Error::SampleRatio(r))
            }
        };
        if let Some(r) = settings.sample_ratio {
            return Ok(Sampling::new(parent_based(ratio(r)?)));
        }
        let arg = || {
            let a = env("OTEL_TRACES_SAMPLER_ARG").unwrap_or_else(|| "1.0".into());
            a.trim()
                .parse::<f64>()
                .map_err(|_| {
                    Error::Sampler(format!("OTEL_TRACES_SAMPLER_ARG `{a}` is not a ratio"))
                })
                .and_then(ratio)
        };
        let sampler = match env("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
            None | Some("parentbased_always_on") => parent_based(Sampler::AlwaysOn),
            Some("always_on") => Sampler::AlwaysOn,
            Some("always_off") => Sampler::AlwaysOff,
            Some("traceidratio") => arg()?,
            Some("parentbased_always_off") => parent_based(Sampler::AlwaysOff),
            Some("parentbased_traceidratio") => parent_based(arg()?),
            Some(other) => {
                return Err(Error::Sampler(format!(
                    "OTEL_TRACES_SAMPLER `{other}` is not supported (always_on, always_off, \
                     traceidratio, parentbased_always_on, parentbased_always_off, \
                     parentbased_traceidratio)"
                )))
            }
        };
        Ok(Sampling::new(sampler))
    }

    /// The sampler, for the provider.
    pub fn sampler(&self) -> Sampler {
        self.sampler.clone()
    }

    /// The ids, for the provider (see [`Ids`]).
    pub fn ids(&self) -> Ids {
        self.ids.clone()
    }

    /// Decides a span under `parent` (an empty context for a root) as the
    /// SDK would, without building anything.
    pub fn decide(&self, parent: &Context, name: &str, kind: SpanKind) -> Decision {
        let span = parent.span();
        let psc = span.span_context();
        let trace_id = if psc.is_valid() {
            psc.trace_id()
        } else {
            self.ids.new_trace_id()
        };
        let r = self
            .sampler
            .should_sample(Some(parent), trace_id, name, &kind, &[], &[]);
        match r.decision {
            SamplingDecision::Drop => Decision::Drop(SpanContext::new(
                trace_id,
                self.ids.new_span_id(),
                TraceFlags::default(),
                false,
                r.trace_state,
            )),
            _ => Decision::Record(trace_id),
        }
    }

    /// Starts the span `builder` describes under `parent`, in the trace
    /// [`Sampling::decide`] chose (the provider must use [`Sampling::ids`]).
    pub fn start(
        &self,
        tracer: &SdkTracer,
        builder: opentelemetry::trace::SpanBuilder,
        parent: &Context,
        trace_id: TraceId,
    ) -> Span {
        NEXT_TRACE_ID.with(|n| n.set(Some(trace_id)));
        let span = tracer.build_with_context(builder, parent);
        NEXT_TRACE_ID.with(|n| n.set(None));
        span
    }
}

fn parent_based(root: Sampler) -> Sampler {
    Sampler::ParentBased(Box::new(root))
}

thread_local! {
    /// The trace id [`Sampling::start`] decided on, for the SDK's next
    /// root span on this thread.
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Random ids, except that a root span started by [`Sampling::start`]
/// gets the trace id its sampling was decided on.
#[derive(Clone, Debug, Default)]
pub struct Ids(RandomIdGenerator);

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, TraceState, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use crate::tests::env_of as env;

    fn from_env(vars: &'static [(&'static str, &'static str)]) -> Result<Sampling, Error> {
        Sampling::from_settings(&Settings::default(), &env(vars))
    }

    #[test]
    fn the_sampler_comes_from_the_settings_then_the_variables() {
        let s = Sampling::from_settings(
            &Settings {
                sample_ratio: Some(0.25),
                ..Default::default()
            },
            &env(&[("OTEL_TRACES_SAMPLER", "always_off")]),
        )
        .unwrap();
        assert!(format!("{:?}", s.sampler).contains("0.25"));
        let off = from_env(&[("OTEL_TRACES_SAMPLER", "always_off")]).unwrap();
        assert!(matches!(off.sampler, Sampler::AlwaysOff));
        let ratio = from_env(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", " 0.5 "),
        ])
        .unwrap();
        assert!(format!("{:?}", ratio.sampler).contains("0.5"));
        assert!(matches!(
            from_env(&[]).unwrap().sampler,
            Sampler::ParentBased(_)
        ));
    }

    #[test]
    fn a_sampler_that_cannot_be_honoured_is_an_error() {
        for (name, arg) in [
            ("xray", "1"),
            ("jaeger_remote", "1"),
            ("traceidratio", "half"),
            ("parentbased_traceidratio", "1.5"),
        ] {
            let vars: &'static [(&'static str, &'static str)] = Box::leak(Box::new([
                ("OTEL_TRACES_SAMPLER", name),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ]));
            let e = from_env(vars).unwrap_err().to_string();
            assert!(e.contains(name) || e.contains(arg), "{e}");
        }
    }

    /// The decision made before building agrees with the SDK's own, for
    /// root spans at a ratio (which depend on the trace id) and under
    /// sampled and unsampled remote parents.
    #[test]
    fn the_decision_is_the_one_the_sdk_makes() {
        let sampling = Sampling::new(parent_based(Sampler::TraceIdRatioBased(0.5)));
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampling.sampler())
            .with_id_generator(sampling.ids())
            .build();
        let tracer = provider.tracer("t");
        let remote = |flags| {
            Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(7),
                SpanId::from(9),
                flags,
                true,
                TraceState::NONE,
            ))
        };
        let mut recorded = 0;
        for i in 0..400 {
            let parent = match i % 4 {
                0 => remote(TraceFlags::SAMPLED),
                1 => remote(TraceFlags::default()),
                _ => Context::new(),
            };
            match sampling.decide(&parent, "request", SpanKind::Server) {
                Decision::Record(id) => {
                    let mut span =
                        sampling.start(&tracer, tracer.span_builder("request"), &parent, id);
                    assert!(span.is_recording(), "{i}");
                    assert_eq!(span.span_context().trace_id(), id);
                    span.end();
                    recorded += 1;
                    assert_ne!(i % 4, 1, "an unsampled parent is followed");
                }
                Decision::Drop(sc) => {
                    assert!(sc.is_valid() && !sc.is_sampled(), "{i}");
                    assert_ne!(i % 4, 0, "a sampled parent is followed");
                    // The SDK, given the same trace id, drops it too.
                    let again = sampling.start(
                        &tracer,
                        tracer.span_builder("request"),
                        &parent,
                        sc.trace_id(),
                    );
                    assert!(!again.is_recording(), "{i}");
                }
            }
        }
        // Half of the 200 roots, and the 100 sampled parents.
        assert!((150..=250).contains(&recorded), "{recorded}");
    }
}
