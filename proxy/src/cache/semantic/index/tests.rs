use std::time::Duration;

use super::*;
use crate::cache::semantic::vector::normalized;

fn part(n: u8) -> Key {
    Key([n; 32])
}

/// A deterministic pseudo-random unit vector.
fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    let raw = (0..dims)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        })
        .collect();
    normalized(raw).unwrap()
}

/// `v` moved a little: similarity about `1 - noise²/2`.
fn near(v: &[f32], seed: u64, noise: f32) -> Vec<f32> {
    let n = vector(seed, v.len());
    normalized(v.iter().zip(&n).map(|(a, b)| a + noise * b).collect()).unwrap()
}

fn slot(p: Key, key: u8, v: Vec<f32>, ttl: Duration) -> Slot {
    Slot {
        text: None,
        part: p,
        key: Key([key; 32]),
        query: v.into_boxed_slice(),
        context: None,
        profile: Profile::default(),
        expires: Instant::now() + ttl,
    }
}

fn search(ix: &Index, p: &Key, q: &[f32], threshold: f32) -> Vec<(u8, f32)> {
    ix.search(&Query {
        part: p,
        query: q,
        threshold,
        limit: 8,
    })
    .into_iter()
    .map(|c| (c.slot.key.0[0], c.similarity))
    .collect()
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn finds_similar_entries_best_first_above_the_threshold() {
    let ix = Index::new(100, 1000);
    let v = vector(1, 64);
    ix.insert(slot(part(1), 1, near(&v, 2, 0.05), HOUR));
    ix.insert(slot(part(1), 2, near(&v, 3, 0.3), HOUR));
    ix.insert(slot(part(1), 3, vector(4, 64), HOUR));
    let found = search(&ix, &part(1), &v, 0.9);
    assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
    assert!(found[0].1 > found[1].1 && found[1].1 >= 0.9);
    assert_eq!(search(&ix, &part(1), &v, 0.999), []);
}

#[test]
fn partitions_never_mix() {
    let ix = Index::new(100, 1000);
    let v = vector(1, 32);
    ix.insert(slot(part(1), 1, v.clone(), HOUR));
    assert_eq!(search(&ix, &part(2), &v, 0.5), []);
    assert_eq!(search(&ix, &part(1), &v, 0.5).len(), 1);
    // A vector of another size (another model) is never similar.
    assert_eq!(search(&ix, &part(1), &vector(1, 16), -0.5), []);
}

#[test]
fn expired_entries_are_skipped_and_dropped() {
    let ix = Index::new(100, 1000);
    let v = vector(1, 32);
    ix.insert(slot(part(1), 1, v.clone(), Duration::ZERO));
    assert_eq!(search(&ix, &part(1), &v, 0.5), []);
    ix.insert(slot(part(1), 2, v.clone(), HOUR));
    // The expired front entry went with that insert.
    assert_eq!(ix.len(), 1);
    assert_eq!(search(&ix, &part(1), &v, 0.5).len(), 1);
}

#[test]
fn the_oldest_go_when_full() {
    let ix = Index::new(3, 1000);
    let v = vector(1, 32);
    for k in 1..=5 {
        ix.insert(slot(part(k % 2), k, near(&v, k as u64, 0.01), HOUR));
    }
    assert_eq!(ix.len(), 3);
    let mut keys: Vec<u8> = [0, 1]
        .iter()
        .flat_map(|p| search(&ix, &part(*p), &v, 0.5))
        .map(|f| f.0)
        .collect();
    keys.sort();
    assert_eq!(keys, [3, 4, 5]);
}

#[test]
fn removed_entries_are_gone() {
    let ix = Index::new(10, 1000);
    let v = vector(1, 32);
    let id = ix.insert(slot(part(1), 1, v.clone(), HOUR));
    ix.insert(slot(part(1), 2, near(&v, 9, 0.2), HOUR));
    ix.remove(id);
    assert_eq!(ix.len(), 1);
    assert_eq!(
        search(&ix, &part(1), &v, 0.5)
            .iter()
            .map(|f| f.0)
            .collect::<Vec<_>>(),
        [2]
    );
    // Removing twice, or an unknown id, is harmless.
    ix.remove(id);
    ix.remove(12345);
    assert_eq!(ix.len(), 1);
}

#[test]
fn large_partitions_use_the_graph_and_find_the_same_neighbours() {
    // No runtime here: the graph is built inline when the partition
    // reaches 128 entries.
    let ix = Index::new(10_000, 128);
    let dims = 32;
    let n = 600u64;
    for i in 0..n {
        let key = (i % 250) as u8;
        ix.insert(slot(part(1), key, vector(i, dims), HOUR));
    }
    assert_eq!(ix.graph_points(&part(1)), Some(n as usize));
    // Every probe near a stored vector finds it through the graph.
    let mut found = 0;
    for i in (0..n).step_by(20) {
        let q = near(&vector(i, dims), 10_000 + i, 0.1);
        let hits = search(&ix, &part(1), &q, 0.9);
        if hits.first().is_some_and(|h| h.0 == (i % 250) as u8) {
            found += 1;
        }
    }
    assert_eq!(found, 30, "recall");
    // Far from everything: nothing.
    assert_eq!(search(&ix, &part(1), &vector(999_999, dims), 0.9), []);
}

#[test]
fn the_graph_is_rebuilt_when_most_of_it_has_gone() {
    let ix = Index::new(150, 50);
    let dims = 32;
    for i in 0..150u64 {
        ix.insert(slot(part(1), 1, vector(i, dims), HOUR));
    }
    assert_eq!(ix.graph_points(&part(1)), Some(150));
    // 200 more push out everything older: the graph is rebuilt from the
    // live ones, which stay findable.
    for i in 150..350u64 {
        ix.insert(slot(part(1), 2, vector(i, dims), HOUR));
    }
    assert_eq!(ix.len(), 150);
    let points = ix.graph_points(&part(1)).unwrap();
    assert!(points < 350, "rebuilt without the gone ones: {points}");
    for i in (200..350u64).step_by(15) {
        let hits = search(&ix, &part(1), &vector(i, dims), 0.99);
        assert_eq!(hits.first().map(|h| h.0), Some(2), "entry {i}");
    }
    assert_eq!(search(&ix, &part(1), &vector(5, dims), 0.99), []);
}

#[test]
fn gone_entries_are_never_offered_by_the_graph() {
    let ix = Index::new(10_000, 64);
    let dims = 32;
    let v = vector(1, dims);
    let gone = ix.insert(slot(part(1), 1, v.clone(), HOUR));
    ix.insert(slot(part(1), 2, near(&v, 2, 0.1), HOUR));
    for i in 10..300u64 {
        ix.insert(slot(part(1), 3, vector(i, dims), HOUR));
    }
    assert_eq!(ix.graph_points(&part(1)), Some(300 - 8));
    assert_eq!(search(&ix, &part(1), &v, 0.9).first().map(|h| h.0), Some(1));
    // The graph still holds the removed one and walks through it, but
    // only its live neighbour comes back.
    ix.remove(gone);
    assert_eq!(ix.graph_points(&part(1)), Some(300 - 8));
    let keys: Vec<u8> = search(&ix, &part(1), &v, 0.9).iter().map(|h| h.0).collect();
    assert_eq!(keys, [2]);
}

#[test]
fn a_warm_up_holds_graphs_back_until_it_ends() {
    // No runtime: a graph is built inline once allowed.
    let ix = Index::new(10_000, 64);
    let dims = 32;
    let warming = ix.warming();
    for i in 0..300u64 {
        ix.insert(slot(part(1), 1, vector(i, dims), HOUR));
    }
    assert_eq!(
        ix.graph_points(&part(1)),
        None,
        "searched exactly meanwhile"
    );
    assert_eq!(search(&ix, &part(1), &vector(7, dims), 0.99).len(), 1);
    drop(warming);
    assert_eq!(ix.graph_points(&part(1)), Some(300));
    assert_eq!(search(&ix, &part(1), &vector(7, dims), 0.99).len(), 1);
}
