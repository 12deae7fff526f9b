//! The client's books: requests sent, their outcomes, and what the
//! provider billed for the answers of the `exact` class.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::config::cost_nano;
use super::exchange::{Exchanged, Outcome};
use super::traffic::{Api, Class, Kind};

/// Usage billed to one budget class, as the app saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bill {
    /// Answers that carried usage.
    pub answers: u64,
    /// Input plus output tokens.
    pub tokens: u64,
    pub nano_usd: u64,
}

#[derive(Default)]
pub(crate) struct Tally {
    books: Mutex<Books>,
}

/// Everything counted so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Books {
    pub sent: BTreeMap<Kind, u64>,
    pub sent_by_api: BTreeMap<(Api, bool), u64>,
    pub outcomes: BTreeMap<(Kind, Outcome), u64>,
    /// Usage of complete, uncached answers of the `exact` class.
    pub billed: Bill,
    /// Complete uncached answers without usage, or from a model without a
    /// price: the billed sum cannot count them.
    pub unpriced: u64,
    /// `cut` requests that received at least one event before they ended,
    /// so the proxy had a 2xx answer under way when they did.
    pub cut_after_events: u64,
}

impl Books {
    pub(crate) fn total_sent(&self) -> u64 {
        self.sent.values().sum()
    }

    pub(crate) fn total_outcomes(&self) -> u64 {
        self.outcomes.values().sum()
    }

    pub(crate) fn sent_of(&self, class: Class) -> u64 {
        self.sent
            .iter()
            .filter(|(k, _)| k.class() == class)
            .map(|(_, n)| n)
            .sum()
    }

    /// Outcomes matching `f`, all kinds.
    pub(crate) fn count(&self, f: impl Fn(&Outcome) -> bool) -> u64 {
        self.outcomes
            .iter()
            .filter(|((_, o), _)| f(o))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Tally {
    /// Counts a request as it leaves.
    pub(crate) fn sent(&self, kind: Kind, api: Api, stream: bool) {
        let mut b = self.lock();
        *b.sent.entry(kind).or_default() += 1;
        *b.sent_by_api.entry((api, stream)).or_default() += 1;
    }

    /// Counts the one outcome of a request of `kind`.
    pub(crate) fn record(&self, kind: Kind, x: &Exchanged) {
        let mut b = self.lock();
        *b.outcomes.entry((kind, x.outcome)).or_default() += 1;
        match kind.class() {
            Class::Exact if x.outcome == Outcome::Complete => {
                match x
                    .billed
                    .as_ref()
                    .and_then(|u| Some((u, cost_nano(&u.model, u.input, u.output)?)))
                {
                    Some((u, nano)) => {
                        b.billed.answers += 1;
                        b.billed.tokens += u.input + u.output;
                        b.billed.nano_usd += nano;
                    }
                    None => b.unpriced += 1,
                }
            }
            Class::Cut if x.events > 0 => b.cut_after_events += 1,
            _ => {}
        }
    }

    pub(crate) fn books(&self) -> Books {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }
}
