//! The machinery of the response pipeline: the [`Phase`] trait every phase
//! implements, the [`Tally`] they share, and the [`Chain`] that runs them in
//! order — the `Filter` a streamed body drives, and the runner of a whole
//! body.

use std::time::Instant;

use bytes::Bytes;

use crate::api::usage::Usage;
use crate::api::{Event, Family};
use crate::body::{End, Filter};
use crate::pipeline::budget::OutputText;

/// One phase of the response pipeline. Every method has a default that
/// does nothing (events pass on untouched), so a phase writes only its job.
pub(crate) trait Phase: Send {
    /// Its name, for the listing.
    fn name(&self) -> &'static str;

    /// The response header filter.
    fn head(&mut self, _head: &mut http::response::Parts) {}

    /// One event of a stream, or the whole body; what goes on is pushed
    /// to `out` (the same event, others, or none).
    fn event(&mut self, ev: Event, _tally: &mut Tally, out: &mut Vec<Event>) {
        out.push(ev);
    }

    /// The upstream ended normally: what the phase still holds.
    fn finish(&mut self, _tally: &mut Tally, _out: &mut Vec<Event>) {}

    /// Bytes from the provider went out to the app.
    fn sent(&mut self, _data: &Bytes) {}

    /// The response ended (once).
    fn end(&mut self, _end: End, _tally: &mut Tally) {}
}

/// What the phases of one response tell each other.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Usage the provider reported, and whether it is the final figure.
    pub usage: Option<Usage>,
    pub usage_complete: bool,
    /// The text sent, when budgets may need an estimate from it.
    pub text: Option<OutputText>,
    /// When the first bytes from the provider went to the app.
    pub first_sent: Option<Instant>,
    /// A whole answer the usage phase checked without parsing it into a
    /// tree, for the cache tee (which keeps only JSON).
    pub checked: Option<Checked>,
}

/// What the usage phase found reading a whole answer without a tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checked {
    /// The API the answer was read in.
    pub family: Family,
    /// It is JSON, as a parse into a tree would find.
    pub json: bool,
    /// Its usage, as [`Usage::of_response`] reads it.
    pub usage: Option<Usage>,
}

/// The phases of one response, run in order.
pub(crate) struct Chain {
    app: Family,
    phases: Vec<Box<dyn Phase>>,
    tally: Tally,
    /// Events between two phases (kept to reuse their allocations).
    here: Vec<Event>,
    next: Vec<Event>,
}

impl Chain {
    pub(crate) fn new(app: Family, phases: Vec<Box<dyn Phase>>) -> Chain {
        Chain {
            app,
            phases,
            tally: Tally::default(),
            here: Vec::new(),
            next: Vec::new(),
        }
    }

    /// The phases' names, in order.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.phases.iter().map(|p| p.name()).collect()
    }

    /// The response header filter.
    pub(crate) fn head(&mut self, head: &mut http::response::Parts) {
        for p in &mut self.phases {
            p.head(head);
        }
    }

    /// A whole body through every phase, once.
    pub(crate) fn whole(&mut self, body: Bytes) -> Bytes {
        let mut out = Vec::new();
        self.event(Event::body(body), &mut out);
        self.finish(&mut out);
        match out.pop() {
            Some(mut ev) => ev.to_bytes(),
            None => Bytes::new(),
        }
    }
}

impl Filter for Chain {
    fn event(&mut self, ev: Event, out: &mut Vec<Event>) {
        self.here.push(ev);
        for p in &mut self.phases {
            for ev in self.here.drain(..) {
                p.event(ev, &mut self.tally, &mut self.next);
            }
            std::mem::swap(&mut self.here, &mut self.next);
        }
        out.append(&mut self.here);
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        // What a phase still holds goes through the phases after it.
        for i in 0..self.phases.len() {
            for ev in self.here.drain(..) {
                self.phases[i].event(ev, &mut self.tally, &mut self.next);
            }
            self.phases[i].finish(&mut self.tally, &mut self.next);
            std::mem::swap(&mut self.here, &mut self.next);
        }
        out.append(&mut self.here);
    }

    fn sent(&mut self, data: &Bytes) {
        self.tally.first_sent.get_or_insert_with(Instant::now);
        for p in &mut self.phases {
            p.sent(data);
        }
    }

    fn end(&mut self, end: End) {
        for p in &mut self.phases {
            p.end(end, &mut self.tally);
        }
    }

    fn error_event(&self, message: &str) -> Bytes {
        crate::error::stream_error_event(self.app, message)
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
