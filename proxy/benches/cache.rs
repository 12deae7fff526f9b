//! Semantic cache costs: a lookup in a 100,000-entry partition (HNSW graph,
//! 384 dimensions as MiniLM makes; the exact similarity and the guard
//! included, the embedding not), and — with `--features local-embeddings`
//! and `TOLLGATE_MINILM_DIR` — embedding a 200-token prompt with the local
//! model on one core (`RAYON_NUM_THREADS=1`, set by this bench) and on all.
//!
//! `cargo bench -p tollgate-proxy --bench cache [--features local-embeddings]`.
//! Besides criterion's means it prints the lookup p50/p99 over 20,000
//! lookups (half near a stored prompt, half far from all).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate_config::Guard;
use tollgate_proxy::cache::semantic::index::{Index, Query, Slot};
use tollgate_proxy::cache::semantic::Profile;
use tollgate_proxy::cache::Key;

const ENTRIES: u64 = 100_000;
const DIMS: usize = 384;

/// A deterministic pseudo-random unit vector.
fn vector(seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    let v: Vec<f32> = (0..DIMS)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn near(seed: u64) -> Vec<f32> {
    let (v, noise) = (vector(seed), vector(seed ^ 0xdead_beef));
    let w: Vec<f32> = v.iter().zip(&noise).map(|(a, b)| a + 0.15 * b).collect();
    let n = w.iter().map(|x| x * x).sum::<f32>().sqrt();
    w.into_iter().map(|x| x / n).collect()
}

fn full_index() -> (std::sync::Arc<Index>, Key, Profile) {
    let part = Key([7; 32]);
    let ix = Index::new(ENTRIES as usize, 2048);
    let profile = Profile::of(["How do I reverse a list in Python 3?"]);
    let started = Instant::now();
    for i in 0..ENTRIES {
        ix.insert(Slot {
            part,
            key: Key([(i % 251) as u8; 32]),
            query: vector(i).into_boxed_slice(),
            context: None,
            profile: profile.clone(),
            expires: Instant::now() + Duration::from_secs(86_400),
        });
    }
    eprintln!(
        "built a {ENTRIES}-entry partition in {:.1?} (graph: {:?} points)",
        started.elapsed(),
        ix.graph_points(&part)
    );
    (ix, part, profile)
}

fn lookup(ix: &Index, part: &Key, q: &[f32], profile: &Profile) -> usize {
    let found = ix.search(&Query {
        part,
        query: q,
        threshold: 0.95,
        limit: 8,
    });
    found
        .iter()
        .filter(|c| profile.compare(&c.slot.profile, &Guard::ALL).is_ok())
        .count()
}

fn semantic_lookup(c: &mut Criterion) {
    let (ix, part, profile) = full_index();
    // Percentiles: criterion reports means, the target is a p99.
    let mut times = Vec::with_capacity(20_000);
    let mut hits = 0;
    for i in 0..20_000u64 {
        let q = if i % 2 == 0 {
            near(i * 5 % ENTRIES)
        } else {
            vector(ENTRIES + i)
        };
        let t = Instant::now();
        hits += usize::from(lookup(&ix, &part, &q, &profile) > 0);
        times.push(t.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    eprintln!(
        "semantic lookup at {ENTRIES} entries: p50 {:?}, p99 {:?}, max {:?}; {hits}/10000 near queries found their entry",
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
    let mut g = c.benchmark_group("semantic_lookup");
    let hit = near(12_345);
    let miss = vector(ENTRIES + 1);
    g.bench_function("100k_near", |b| {
        b.iter(|| black_box(lookup(&ix, &part, &hit, &profile)))
    });
    g.bench_function("100k_far", |b| {
        b.iter(|| black_box(lookup(&ix, &part, &miss, &profile)))
    });
    g.finish();
}

#[cfg(feature = "local-embeddings")]
fn local_embedding(c: &mut Criterion) {
    use tollgate_proxy::cache::semantic::local::LocalEmbedder;
    let Ok(dir) = std::env::var("TOLLGATE_MINILM_DIR") else {
        eprintln!("TOLLGATE_MINILM_DIR not set: local embedding bench skipped");
        return;
    };
    let m = LocalEmbedder::load(std::path::Path::new(&dir), 256).expect("model loads");
    // A prompt of exactly 200 tokens ([CLS] and [SEP] included).
    let words = "the proxy routes each request to a provider and records how many tokens it used while the cache answers repeated questions";
    let mut text = String::new();
    for w in words.split(' ').cycle() {
        let longer = format!("{text} {w}");
        if m.token_ids(&longer).unwrap().len() > 200 {
            break;
        }
        text = longer;
    }
    let n = m.token_ids(&text).unwrap().len();
    let prompt = vec![text];
    let mut g = c.benchmark_group("local_embedding");
    g.sample_size(30);
    for threads in ["1", "2"] {
        // candle and gemm read it on every call.
        std::env::set_var("RAYON_NUM_THREADS", threads);
        g.bench_function(format!("{n}_tokens_{threads}_threads"), |b| {
            b.iter(|| black_box(m.embed(&prompt).unwrap()))
        });
    }
    g.finish();
}

#[cfg(not(feature = "local-embeddings"))]
fn local_embedding(_: &mut Criterion) {
    eprintln!("built without local-embeddings: local embedding bench skipped");
}

criterion_group!(benches, semantic_lookup, local_embedding);
criterion_main!(benches);
