//! The in-memory semantic index: prompts' vectors, partitioned by scope.
//!
//! Each entry points at an answer in the exact cache (by its key) and keeps
//! what a lookup compares: the query vector, the whole-prompt vector when
//! the prompt has several texts, and the guard's [`Profile`]. A lookup only
//! searches its own partition (one scope hash with one embedder), exactly
//! while the partition is small and through an HNSW graph ([`Ann`]) once it
//! has `exact_scan_below` entries; the graph is built in the background and
//! rebuilt when most of its points have gone. While a warm-up fills the
//! index from the shared streams ([`Index::warming`]) no graph is started:
//! building one takes far longer than the warm-up, and would share its
//! core; the partitions that need one get it when the warm-up ends.
//!
//! Entries sit in one insertion-ordered slab: the oldest go first when the
//! index is over `max_entries`, expired ones are dropped from the front and
//! skipped wherever they are, and a removed entry leaves a hole that the
//! front eventually passes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::ann::Ann;
use super::guard::Profile;
use super::vector::similarity;
use crate::cache::Key;

/// One indexed prompt.
#[derive(Debug)]
pub struct Slot {
    /// The partition: scope hash and embedder.
    pub part: Key,
    /// The exact-cache key of the stored answer.
    pub key: Key,
    pub query: Box<[f32]>,
    pub context: Option<Box<[f32]>>,
    pub profile: Profile,
    pub expires: Instant,
    /// The query's text, kept only for a route with a judge (memory).
    pub text: Option<Arc<str>>,
}

/// Entries by id.
type Points = Vec<(u64, Arc<Slot>)>;

/// A candidate and its query similarity.
pub struct Candidate {
    pub id: u64,
    pub slot: Arc<Slot>,
    pub similarity: f32,
}

#[derive(Default)]
struct Partition {
    /// Ids in insertion order; some may have gone.
    ids: Vec<u64>,
    live: usize,
    ann: Option<Arc<Ann>>,
    /// Points of `ann` that have gone.
    ann_dead: usize,
    building: bool,
}

struct Inner {
    slab: VecDeque<Option<Arc<Slot>>>,
    /// Id of `slab[0]`.
    base: u64,
    live: usize,
    parts: HashMap<Key, Partition>,
}

impl Inner {
    fn get(&self, id: u64) -> Option<&Arc<Slot>> {
        let i = id.checked_sub(self.base)?;
        self.slab.get(i as usize)?.as_ref()
    }

    /// Takes an entry out.
    fn take(&mut self, id: u64) -> Option<Arc<Slot>> {
        let i = id.checked_sub(self.base)? as usize;
        let slot = self.slab.get_mut(i)?.take()?;
        self.forget(&slot);
        Some(slot)
    }

    fn pop_front(&mut self) {
        if let Some(Some(slot)) = self.slab.pop_front() {
            self.forget(&slot);
        }
        self.base += 1;
    }

    fn forget(&mut self, slot: &Slot) {
        self.live -= 1;
        let Some(p) = self.parts.get_mut(&slot.part) else {
            return;
        };
        p.live -= 1;
        if p.ann.is_some() {
            p.ann_dead += 1;
        }
        if p.live == 0 && !p.building {
            self.parts.remove(&slot.part);
        } else if p.ids.len() > 64 && p.live < p.ids.len() / 2 {
            let (base, slab) = (self.base, &self.slab);
            p.ids.retain(|id| {
                id.checked_sub(base)
                    .and_then(|i| slab.get(i as usize))
                    .is_some_and(Option::is_some)
            });
        }
    }
}

/// What a lookup asks for.
pub struct Query<'a> {
    pub part: &'a Key,
    pub query: &'a [f32],
    pub threshold: f32,
    /// Most candidates returned.
    pub limit: usize,
}

pub struct Index {
    inner: RwLock<Inner>,
    max_entries: usize,
    exact_scan_below: usize,
    /// Warm-ups under way: no graph is started meanwhile.
    warming: AtomicUsize,
}

/// A warm-up under way ([`Index::warming`]); its end starts the graphs
/// it held back.
pub struct Warming(Arc<Index>);

impl Drop for Warming {
    fn drop(&mut self) {
        if self.0.warming.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.build_held_back();
        }
    }
}

impl Index {
    pub fn new(max_entries: usize, exact_scan_below: usize) -> Arc<Index> {
        Arc::new(Index {
            inner: RwLock::new(Inner {
                slab: VecDeque::new(),
                base: 0,
                live: 0,
                parts: HashMap::new(),
            }),
            max_entries: max_entries.max(1),
            exact_scan_below,
            warming: AtomicUsize::new(0),
        })
    }

    /// Holds graph builds back until the returned guard (and any other)
    /// is dropped.
    pub fn warming(self: &Arc<Self>) -> Warming {
        self.warming.fetch_add(1, Ordering::AcqRel);
        Warming(self.clone())
    }

    /// Starts the graphs of the partitions that reached the size for one
    /// during a warm-up.
    fn build_held_back(self: &Arc<Self>) {
        let due: Vec<Key> = {
            let mut inner = self.inner.write().expect("index lock");
            let least = self.exact_scan_below.max(1);
            inner
                .parts
                .iter_mut()
                .filter(|(_, p)| p.ann.is_none() && !p.building && p.live >= least)
                .map(|(k, p)| {
                    p.building = true;
                    *k
                })
                .collect()
        };
        for part in due {
            self.build(part);
        }
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn exact_scan_below(&self) -> usize {
        self.exact_scan_below
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.inner.read().expect("index lock").live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries of `part` at least `threshold` similar to the query, best
    /// first.
    pub fn search(&self, q: &Query<'_>) -> Vec<Candidate> {
        let now = Instant::now();
        let inner = self.inner.read().expect("index lock");
        let Some(part) = inner.parts.get(q.part) else {
            return Vec::new();
        };
        let usable = |id: u64| inner.get(id).filter(|s| s.expires > now);
        let mut found: Vec<Candidate> = Vec::new();
        let mut consider = |id: u64| {
            if let Some(slot) = usable(id) {
                let s = similarity(q.query, &slot.query);
                if s >= q.threshold {
                    found.push(Candidate {
                        id,
                        slot: slot.clone(),
                        similarity: s,
                    });
                }
            }
        };
        match &part.ann {
            Some(ann) => {
                for id in ann.search(q.query, q.limit.max(8), &|id| usable(id).is_some()) {
                    consider(id);
                }
            }
            None => {
                for &id in &part.ids {
                    consider(id);
                }
            }
        }
        found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        found.truncate(q.limit);
        found
    }

    /// Adds an entry; the oldest go when the index is full.
    pub fn insert(self: &Arc<Self>, slot: Slot) -> u64 {
        let now = Instant::now();
        let mut inner = self.inner.write().expect("index lock");
        // Drop holes and expired entries from the front, then make room.
        while let Some(front) = inner.slab.front() {
            match front {
                Some(s) if s.expires > now => break,
                _ => inner.pop_front(),
            }
        }
        while inner.live >= self.max_entries || inner.slab.len() >= 2 * self.max_entries {
            inner.pop_front();
        }
        let id = inner.base + inner.slab.len() as u64;
        let part_key = slot.part;
        let slot = Arc::new(slot);
        inner.slab.push_back(Some(slot.clone()));
        inner.live += 1;
        let part = inner.parts.entry(part_key).or_default();
        part.ids.push(id);
        part.live += 1;
        let ann = part.ann.clone();
        let build = self.warming.load(Ordering::Acquire) == 0
            && match &part.ann {
                None => part.live >= self.exact_scan_below.max(1) && !part.building,
                Some(_) => part.ann_dead > part.live && part.live > 0 && !part.building,
            };
        if build {
            part.building = true;
        }
        drop(inner);
        if let Some(ann) = ann {
            ann.insert(id, &slot.query);
        }
        if build {
            self.build(part_key);
        }
        id
    }

    /// Removes an entry (its answer is gone from the exact cache).
    pub fn remove(&self, id: u64) {
        self.inner.write().expect("index lock").take(id);
    }

    /// Builds (or rebuilds) a partition's graph from its live entries, in
    /// the background when a runtime is there; entries added meanwhile are
    /// inserted before it is swapped in (all but the last few without the
    /// index's lock, so that lookups go on).
    fn build(self: &Arc<Self>, part: Key) {
        let me = self.clone();
        let work = move || me.build_now(part);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(work);
            }
            Err(_) => work(),
        }
    }

    fn build_now(&self, part: Key) {
        // The partition's live entries after `upto`, and its last id.
        let after = |inner: &Inner, upto: Option<u64>| -> Option<(Points, u64)> {
            let p = inner.parts.get(&part)?;
            let points = p
                .ids
                .iter()
                .filter(|&&id| upto.is_none_or(|u| id > u))
                .filter_map(|&id| inner.get(id).map(|s| (id, s.clone())))
                .collect();
            Some((points, p.ids.last().copied().unwrap_or(0)))
        };
        let Some((points, mut upto)) = after(&self.inner.read().expect("index lock"), None) else {
            return;
        };
        let refs: Vec<(u64, &[f32])> = points.iter().map(|(id, s)| (*id, &*s.query)).collect();
        let ann = Arc::new(Ann::build(&refs));
        let mut built = points.len();
        // Catch up with what arrived meanwhile while it is a lot.
        loop {
            let Some((later, last)) = after(&self.inner.read().expect("index lock"), Some(upto))
            else {
                return;
            };
            if later.len() <= 64 {
                break;
            }
            for (id, s) in &later {
                ann.insert(*id, &s.query);
            }
            built += later.len();
            upto = last;
        }
        let mut inner = self.inner.write().expect("index lock");
        let Some((later, _)) = after(&inner, Some(upto)) else {
            return;
        };
        for (id, s) in &later {
            ann.insert(*id, &s.query);
        }
        let live = inner.parts.get(&part).map_or(0, |p| p.live);
        let p = inner.parts.get_mut(&part).expect("checked");
        // Every live entry is in the graph; the rest of its points have gone.
        p.ann_dead = (built + later.len()).saturating_sub(live);
        p.ann = Some(ann);
        p.building = false;
        if p.live == 0 {
            inner.parts.remove(&part);
        }
    }

    /// Points in `part`'s graph (live or gone), when it is searched
    /// through one.
    pub fn graph_points(&self, part: &Key) -> Option<usize> {
        let inner = self.inner.read().expect("index lock");
        inner.parts.get(part)?.ann.as_ref().map(|a| a.points())
    }

    /// Bytes held by the entries' vectors and profiles, and by the graphs
    /// (a byte per dimension of each query vector, and links).
    pub fn approx_bytes(&self) -> usize {
        let inner = self.inner.read().expect("index lock");
        inner
            .slab
            .iter()
            .flatten()
            .map(|s| {
                let graph = if inner.parts.get(&s.part).is_some_and(|p| p.ann.is_some()) {
                    Ann::bytes_per_point(s.query.len())
                } else {
                    0
                };
                std::mem::size_of::<Slot>()
                    + s.query.len() * 4
                    + s.context.as_ref().map_or(0, |c| c.len() * 4)
                    + s.profile.heap_bytes()
                    + graph
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
