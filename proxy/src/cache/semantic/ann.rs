//! The approximate-nearest-neighbour graph (HNSW, from `hnsw_rs`) used for
//! index partitions too large to scan.
//!
//! The graph only proposes candidates; the index checks each one's exact
//! similarity, so approximation can cost a hit, never serve a wrong one.

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;

use super::vector::dot;

/// Neighbours per node (per layer).
const M: usize = 16;
/// Candidate list while building.
const EF_CONSTRUCTION: usize = 100;
/// Candidate list while searching.
const EF_SEARCH: usize = 64;

/// `1 - cosine` for unit vectors.
#[derive(Debug, Clone, Copy, Default)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

pub struct Ann {
    graph: Hnsw<'static, f32, CosineDistance>,
}

impl Ann {
    /// A graph over `points` (id, unit vector), built on all cores.
    pub fn build(points: &[(u64, &[f32])], capacity: usize) -> Ann {
        let graph = Hnsw::new(
            M,
            capacity.max(points.len()).max(1024),
            16,
            EF_CONSTRUCTION,
            CosineDistance,
        );
        let data: Vec<(&[f32], usize)> = points.iter().map(|(id, v)| (*v, *id as usize)).collect();
        graph.parallel_insert_slice(&data);
        Ann { graph }
    }

    pub fn insert(&self, id: u64, v: &[f32]) {
        self.graph.insert_slice((v, id as usize));
    }

    /// Up to `k` ids nearest to `query` among those `keep` accepts.
    pub fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(u64) -> bool) -> Vec<u64> {
        let filter = |id: &usize| keep(*id as u64);
        self.graph
            .search_filter(query, k, EF_SEARCH.max(k), Some(&filter))
            .into_iter()
            .map(|n| n.d_id as u64)
            .collect()
    }

    /// Points in the graph, including those the index has let go.
    pub fn points(&self) -> usize {
        self.graph.get_nb_point()
    }
}
