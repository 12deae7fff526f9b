//! The approximate-nearest-neighbour graph (HNSW) used for index
//! partitions too large to scan.
//!
//! The graph only proposes candidates; the index checks each one's exact
//! similarity, so approximation can cost a hit, never serve a wrong one.
//!
//! Our own rather than `hnsw_rs`, which this replaced: there every link was
//! an `Arc` to a separately allocated point behind its own lock, so a
//! search paid a cache miss per neighbour looked at (even ones already
//! seen) plus a hash-map visited set, about 1 µs per node against the
//! 60–90 ns of the similarity itself; and its filtered search, which we
//! used to skip gone entries, never stops early, so it looked at three
//! times the nodes. A lookup in 100,000 entries took 11 ms at the median;
//! here it takes about 0.4 ms (`cargo bench -p tollgate-proxy --bench
//! cache`); how is in `ann/graph.rs`.
//!
//! Searches share a read lock. An insert works out its links under the
//! read lock and takes the write lock only to store them; inserts queue on
//! a mutex (which also holds the level generator), so that nothing moves
//! in between.

use std::sync::{Mutex, RwLock};

use self::graph::Graph;

mod code;
mod graph;

/// Links per node on the upper layers (twice as many on layer 0).
const M: usize = 16;
/// Candidates looked at per layer when placing a vector.
const EF_CONSTRUCTION: usize = 100;
/// Candidates kept on layer 0 by a lookup. In the cache bench (100,000
/// vectors shaped like MiniLM's) 64 found 99.2% of near-duplicates and 128
/// found 99.8% in under 0.8 ms at p99; a missed one costs a call upstream.
const EF_SEARCH: usize = 128;
/// No node goes above this layer (16 links per node reach 16^16 nodes).
const MAX_LEVEL: usize = 15;

pub(crate) struct Ann {
    graph: RwLock<Graph>,
    /// Held by an insert throughout; the state of its level generator.
    writer: Mutex<u64>,
}

impl Ann {
    /// A graph over `points` (id, unit vector).
    pub(crate) fn build(points: &[(u64, &[f32])]) -> Ann {
        let ann = Ann {
            graph: RwLock::new(Graph::new(M)),
            writer: Mutex::new(0x2545_f491_4f6c_dd1d),
        };
        for (id, v) in points {
            ann.insert(*id, v);
        }
        ann
    }

    /// Adds a unit vector; one of another length than the first (another
    /// model) is left out, as it could never be similar.
    pub(crate) fn insert(&self, id: u64, v: &[f32]) {
        let mut rng = self.writer.lock().expect("ann writer");
        let level = draw_level(&mut rng);
        let plan = {
            let g = self.graph.read().expect("ann lock");
            if !g.fits(v) {
                return;
            }
            g.plan(v, level, EF_CONSTRUCTION)
        };
        self.graph.write().expect("ann lock").apply(plan, id, v);
    }

    /// Up to `k` ids nearest to `query` among those `keep` accepts, nearest
    /// first as far as the coded vectors tell (to a few thousandths).
    pub(crate) fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(u64) -> bool) -> Vec<u64> {
        let g = self.graph.read().expect("ann lock");
        g.search(query, k, EF_SEARCH, keep)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// About the memory a point of `dims` dimensions takes in a graph.
    pub(crate) fn bytes_per_point(dims: usize) -> usize {
        Graph::bytes_per_point(dims, M)
    }

    /// Points in the graph, including those the index has let go.
    pub(crate) fn points(&self) -> usize {
        self.graph.read().expect("ann lock").len()
    }
}

/// A node's top layer: `floor(-ln(u) / ln(M))` for a uniform `u`, so each
/// layer holds about `1/M` of the one below (xorshift64*).
fn draw_level(state: &mut u64) -> usize {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
    // In (0, 1]: never ln(0).
    let u = ((r >> 11) + 1) as f64 / (1u64 << 53) as f64;
    ((-u.ln() / (M as f64).ln()) as usize).min(MAX_LEVEL)
}

#[cfg(test)]
mod tests;
