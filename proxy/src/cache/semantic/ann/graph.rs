//! The HNSW graph's data and its searches (Malkov & Yashunin, algorithms
//! 1, 2 and 4), laid out for a search to touch little memory: the vectors
//! side by side in one buffer, a byte per dimension ([`Code`]), layer-0
//! links as a fixed number of node numbers per node, and a visited set
//! that is an array of stamps reused by each thread instead of a hash set.
//!
//! Nodes are numbered in insertion order; the index's ids ride alongside.
//! Changes come as a [`Plan`], worked out under a read lock (the costly
//! part) and applied under a short write lock; writers are serialized by
//! the caller, so nothing changes between the two.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::code::{encode, Code, Coded};

/// A node and its distance (`1 - cosine`) to whatever is being placed or
/// looked up; ordered by distance.
#[derive(Debug, Clone, Copy)]
pub(super) struct Near {
    pub dist: f32,
    pub node: u32,
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.node.cmp(&other.node))
    }
}

/// Links to add for one inserted vector: its own per layer (0 first), and
/// the new link lists of the nodes that link back to it.
pub(super) struct Plan {
    level: usize,
    own: Vec<Vec<u32>>,
    back: Vec<(u32, usize, Vec<u32>)>,
}

pub(super) struct Graph {
    /// Length of every vector; set by the first insert.
    dims: usize,
    /// Links per node on layers above 0; layer 0 has twice as many.
    m: usize,
    /// `dims` bytes per node, and their scales.
    codes: Vec<i8>,
    scales: Vec<f32>,
    ids: Vec<u64>,
    /// Layer-0 links, `2m` slots per node, the first `len0` used.
    links0: Vec<u32>,
    len0: Vec<u8>,
    /// Links on layers 1..=level (empty for the many nodes on layer 0 only).
    upper: Vec<Vec<Vec<u32>>>,
    /// The entry point and its level.
    entry: Option<(u32, usize)>,
}

impl Graph {
    pub(super) fn new(m: usize) -> Graph {
        assert!((2..=127).contains(&m), "2m links must fit a u8 count");
        Graph {
            dims: 0,
            m,
            codes: Vec::new(),
            scales: Vec::new(),
            ids: Vec::new(),
            links0: Vec::new(),
            len0: Vec::new(),
            upper: Vec::new(),
            entry: None,
        }
    }

    /// The code, its scale, the id, the layer-0 links and the (mostly
    /// empty) upper ones.
    pub(super) fn bytes_per_point(dims: usize, m: usize) -> usize {
        dims + 4 + 8 + 2 * m * 4 + 1 + std::mem::size_of::<Vec<Vec<u32>>>()
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether `v` can join: all vectors must have one length (one model),
    /// and nodes are numbered in a `u32`.
    pub(super) fn fits(&self, v: &[f32]) -> bool {
        !v.is_empty() && (self.dims == 0 || self.dims == v.len()) && self.len() < u32::MAX as usize
    }

    fn code(&self, node: u32) -> Code<'_> {
        let at = node as usize * self.dims;
        Code::new(&self.codes[at..at + self.dims], self.scales[node as usize])
    }

    fn dist(&self, q: Code<'_>, node: u32) -> f32 {
        1.0 - q.dot(self.code(node))
    }

    fn capacity(&self, layer: usize) -> usize {
        if layer == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    fn links(&self, node: u32, layer: usize) -> &[u32] {
        let n = node as usize;
        if layer == 0 {
            let at = n * 2 * self.m;
            &self.links0[at..at + self.len0[n] as usize]
        } else {
            &self.upper[n][layer - 1]
        }
    }

    /// The `k` nearest to `q` among nodes whose id `keep` accepts, nearest
    /// first: of the `ef` nearest found on layer 0, those it accepts.
    /// Rejected nodes are walked through like any other, so the work does
    /// not grow when many are rejected: only the answer shrinks. (`keep`
    /// is asked only at the end because asking costs the index a read of
    /// the entry, a cache miss, and most nodes met on the way are not
    /// among the nearest.)
    pub(super) fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        let Some((entry, top)) = self.entry else {
            return Vec::new();
        };
        if q.len() != self.dims {
            return Vec::new();
        }
        let q = Coded::of(q);
        let q = q.code();
        let mut cur = Near {
            dist: self.dist(q, entry),
            node: entry,
        };
        for layer in (1..=top).rev() {
            cur = self.greedy(q, cur, layer);
        }
        self.search_layer(q, &[cur], ef.max(k), 0)
            .into_iter()
            .map(|n| (self.ids[n.node as usize], n.dist))
            .filter(|&(id, _)| keep(id))
            .take(k)
            .collect()
    }

    /// Descends one layer by always moving to the nearest neighbour.
    fn greedy(&self, q: Code<'_>, mut cur: Near, layer: usize) -> Near {
        loop {
            let mut moved = false;
            for &n in self.links(cur.node, layer) {
                let dist = self.dist(q, n);
                if dist < cur.dist {
                    cur = Near { dist, node: n };
                    moved = true;
                }
            }
            if !moved {
                return cur;
            }
        }
    }

    /// The `ef` nearest to `q` found on `layer` from `entries`, nearest
    /// first.
    fn search_layer(&self, q: Code<'_>, entries: &[Near], ef: usize, layer: usize) -> Vec<Near> {
        VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.start(self.len());
            let mut todo: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(4 * ef);
            let mut near: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
            for &e in entries {
                if visited.insert(e.node) {
                    todo.push(Reverse(e));
                    near.push(e);
                }
            }
            let mut fresh: Vec<u32> = Vec::with_capacity(2 * self.m);
            while let Some(Reverse(c)) = todo.pop() {
                let worst = near.peek().map_or(f32::INFINITY, |w| w.dist);
                if near.len() >= ef && c.dist > worst {
                    break;
                }
                fresh.clear();
                fresh.extend(
                    self.links(c.node, layer)
                        .iter()
                        .filter(|&&n| visited.insert(n)),
                );
                self.fetch(&fresh);
                for &n in &fresh {
                    let dist = self.dist(q, n);
                    let worst = near.peek().map_or(f32::INFINITY, |w| w.dist);
                    if near.len() < ef || dist < worst {
                        let n = Near { dist, node: n };
                        todo.push(Reverse(n));
                        near.push(n);
                        if near.len() > ef {
                            near.pop();
                        }
                    }
                }
            }
            near.into_sorted_vec()
        })
    }

    /// Reads every 64th byte (one per cache line) of the nodes' codes, all
    /// before any is used, so that the reads from memory overlap rather
    /// than wait one after another inside each similarity (what a prefetch
    /// instruction would do, without `unsafe`); about 40% off a search once
    /// the codes no longer fit the cache.
    fn fetch(&self, nodes: &[u32]) {
        let mut any = 0u8;
        for &n in nodes {
            let at = n as usize * self.dims;
            for line in self.codes[at..at + self.dims].iter().step_by(64) {
                any ^= *line as u8;
            }
        }
        std::hint::black_box(any);
    }

    /// The code of `node`, or `new`'s for the node being inserted
    /// (numbered `self.len()`).
    fn code_or<'a>(&'a self, node: u32, new: Code<'a>) -> Code<'a> {
        if node as usize == self.len() {
            new
        } else {
            self.code(node)
        }
    }

    /// Up to `m` of `candidates` (nearest to `base` first) to link `base`
    /// to, skipping any nearer to an already chosen one than to `base`,
    /// so that links point in different directions (algorithm 4).
    fn select(&self, candidates: &[Near], m: usize, new: Code<'_>) -> Vec<u32> {
        let mut chosen: Vec<u32> = Vec::with_capacity(m);
        for c in candidates {
            if chosen.len() == m {
                break;
            }
            let v = self.code_or(c.node, new);
            if chosen
                .iter()
                .all(|&s| 1.0 - v.dot(self.code_or(s, new)) > c.dist)
            {
                chosen.push(c.node);
            }
        }
        chosen
    }

    /// Works out where `v` goes, on layers 0..=`level`, looking at `ef`
    /// candidates per layer.
    pub(super) fn plan(&self, v: &[f32], level: usize, ef: usize) -> Plan {
        let mut plan = Plan {
            level,
            own: vec![Vec::new(); level + 1],
            back: Vec::new(),
        };
        let Some((entry, top)) = self.entry else {
            return plan;
        };
        let v = Coded::of(v);
        let v = v.code();
        let new = self.len() as u32;
        let mut cur = Near {
            dist: self.dist(v, entry),
            node: entry,
        };
        for layer in (level + 1..=top).rev() {
            cur = self.greedy(v, cur, layer);
        }
        let mut entries = vec![cur];
        for layer in (0..=level.min(top)).rev() {
            let found = self.search_layer(v, &entries, ef, layer);
            let own = self.select(&found, self.m, v);
            for &n in &own {
                let links = self.links(n, layer);
                let base = self.code(n);
                let mut linked: Vec<u32> = links.to_vec();
                linked.push(new);
                if linked.len() > self.capacity(layer) {
                    let mut by_dist: Vec<Near> = linked
                        .iter()
                        .map(|&o| Near {
                            dist: 1.0 - base.dot(self.code_or(o, v)),
                            node: o,
                        })
                        .collect();
                    by_dist.sort_unstable();
                    linked = self.select(&by_dist, self.capacity(layer), v);
                }
                plan.back.push((n, layer, linked));
            }
            plan.own[layer] = own;
            entries = found;
        }
        plan
    }

    /// Adds `v` (with the index's `id`) as `plan` says.
    pub(super) fn apply(&mut self, plan: Plan, id: u64, v: &[f32]) {
        let node = self.len() as u32;
        if self.dims == 0 {
            self.dims = v.len();
        }
        let scale = encode(v, &mut self.codes);
        self.scales.push(scale);
        self.ids.push(id);
        let width = 2 * self.m;
        self.links0.resize(self.links0.len() + width, 0);
        self.len0.push(0);
        let mut own = plan.own.into_iter();
        let own0 = own.next().unwrap_or_default();
        self.set_links(node, 0, &own0);
        self.upper.push(own.collect());
        for (n, layer, links) in plan.back {
            self.set_links(n, layer, &links);
        }
        if self.entry.is_none_or(|(_, top)| plan.level > top) {
            self.entry = Some((node, plan.level));
        }
    }

    fn set_links(&mut self, node: u32, layer: usize, links: &[u32]) {
        let n = node as usize;
        if layer == 0 {
            let at = n * 2 * self.m;
            self.links0[at..at + links.len()].copy_from_slice(links);
            self.len0[n] = links.len() as u8;
        } else {
            self.upper[n][layer - 1] = links.to_vec();
        }
    }
}

/// Nodes seen by the current search: a stamp per node, so starting a
/// search is one increment rather than clearing a set.
struct Visited {
    stamps: Vec<u32>,
    now: u32,
}

impl Visited {
    fn start(&mut self, nodes: usize) {
        if self.stamps.len() < nodes {
            self.stamps.resize(nodes, 0);
        }
        self.now = self.now.wrapping_add(1);
        if self.now == 0 {
            self.stamps.fill(0);
            self.now = 1;
        }
    }

    /// False when `node` was seen already.
    fn insert(&mut self, node: u32) -> bool {
        let s = &mut self.stamps[node as usize];
        if *s == self.now {
            return false;
        }
        *s = self.now;
        true
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = const {
        RefCell::new(Visited {
            stamps: Vec::new(),
            now: 0,
        })
    };
}
