//! Metric series kept once resolved.
//!
//! prometheus's `with_label_values` hashes the label strings a byte at a
//! time (FNV), hashes that hash again (SipHash) for its map and clones the
//! series out under a lock, on every call: a few hundred instructions,
//! several times per request. The per-request series are looked up here
//! instead, by a word-at-a-time hash of the labels into a map that does
//! not hash again, and resolved through prometheus only the first time a
//! label set is seen, so a series appears in `/metrics` exactly when it
//! did before. Like prometheus's own map, this one trusts its 64-bit hash
//! (labels are bounded by the config; no label compare per call). The
//! proxy never removes series from these vectors, so a kept handle is the
//! one prometheus exports.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Deref;
use std::sync::Mutex;

use prometheus::core::{MetricVec, MetricVecBuilder};
use rustc_hash::FxHasher;

/// A prometheus metric vector: series by label values.
pub trait Vector {
    type Series: Clone;
    fn resolve(&self, labels: &[&str]) -> Self::Series;
}

impl<T: MetricVecBuilder> Vector for MetricVec<T> {
    type Series = T::M;

    fn resolve(&self, labels: &[&str]) -> T::M {
        self.with_label_values(labels)
    }
}

/// Label sets kept per vector at most; past it the memo starts over.
/// Labels are bounded by the config, so this only guards memory.
const MAX_KEPT: usize = 1024;

/// A metric vector and the series resolved from it so far. Derefs to the
/// vector, so the rarely used series are still read the usual way.
pub struct Memoized<V: Vector> {
    vec: V,
    kept: Memo<V::Series>,
}

/// Values kept by label set, made on first use.
pub struct Memo<S> {
    kept: Mutex<HashMap<u64, S, BuildHasherDefault<Prehashed>>>,
}

impl<S: Clone> Memo<S> {
    /// The value kept for `labels`, or `make`'s, kept from now on.
    pub fn get(&self, labels: &[&str], make: impl FnOnce() -> S) -> S {
        let hash = hash(labels);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = kept.get(&hash) {
            return v.clone();
        }
        let v = make();
        if kept.len() >= MAX_KEPT {
            kept.clear();
        }
        kept.insert(hash, v.clone());
        v
    }
}

impl<S> Default for Memo<S> {
    fn default() -> Memo<S> {
        Memo {
            kept: Mutex::default(),
        }
    }
}

impl<V: Vector> Memoized<V> {
    pub(crate) fn new(vec: V) -> Memoized<V> {
        Memoized {
            vec,
            kept: Memo::default(),
        }
    }

    /// The series of `labels` (in the vector's label order), as
    /// `with_label_values` would return it.
    pub fn series(&self, labels: &[&str]) -> V::Series {
        self.kept.get(labels, || self.vec.resolve(labels))
    }
}

impl<V: Vector> Deref for Memoized<V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.vec
    }
}

fn hash(labels: &[&str]) -> u64 {
    let mut h = FxHasher::default();
    for l in labels {
        // The length keeps ["ab", "c"] apart from ["a", "bc"].
        h.write_usize(l.len());
        h.write(l.as_bytes());
    }
    h.finish()
}

/// The map's hasher: its keys are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{IntCounterVec, Opts};

    use super::*;

    fn vec() -> Memoized<IntCounterVec> {
        Memoized::new(IntCounterVec::new(Opts::new("t", "t"), &["a", "b"]).unwrap())
    }

    #[test]
    fn a_kept_series_is_the_one_prometheus_exports() {
        let m = vec();
        m.series(&["x", "y"]).inc();
        m.series(&["x", "y"]).inc_by(2);
        m.series(&["y", "x"]).inc();
        assert_eq!(m.with_label_values(&["x", "y"]).get(), 3);
        assert_eq!(m.with_label_values(&["y", "x"]).get(), 1);
        // Series made the usual way are found too.
        m.with_label_values(&["p", "q"]).inc();
        assert_eq!(m.series(&["p", "q"]).get(), 1);
    }

    #[test]
    fn a_full_memo_starts_over_and_counts_stay() {
        let m = vec();
        for i in 0..MAX_KEPT + 10 {
            m.series(&[&i.to_string(), "z"]).inc();
        }
        m.series(&["0", "z"]).inc();
        assert_eq!(m.with_label_values(&["0", "z"]).get(), 2);
        assert!(m.kept.kept.lock().unwrap().len() <= MAX_KEPT);
    }
}
