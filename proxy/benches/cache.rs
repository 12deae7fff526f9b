//! Semantic cache costs: a lookup in a 100,000-entry partition (HNSW graph,
//! 384 dimensions as MiniLM makes; the exact similarity and the guard
//! included, the embedding not), and — with `--features local-embeddings`
//! and `TOLLGATE_MINILM_DIR` — embedding a 200-token prompt with the local
//! model on one core (`RAYON_NUM_THREADS=1`, set by this bench) and on all.
//!
//! `cargo bench -p tollgate-proxy --bench cache [--features local-embeddings] [-- semantic]`.
//!
//! The lookups run on vectors shaped like real prompt embeddings, which
//! lie near a low-dimensional subspace around a common mean (see
//! `cache/data.rs`):
//! - `embedded`, with `local-embeddings` and `TOLLGATE_MINILM_DIR`: the
//!   labelled set's prompts (tests/semantic/pairs.jsonl, both sides) are
//!   embedded and 100,000 vectors drawn from a Gaussian with their mean
//!   and covariance;
//! - `latent`, always: a 64-dimensional Gaussian through a fixed random
//!   384×64 map plus isotropic noise carrying a third of the variance,
//!   which spreads along about as many directions as the embedded prompts
//!   (participation ratio about 90 against their 97; both printed);
//! - `uniform`, always, labelled the worst case: uniform on the sphere,
//!   which no embedder makes and on which a graph search degrades most.
//!
//! For each it prints the time to build the partition (one insert at a
//! time, as the proxy does), the lookup p50/p99 over 20,000 lookups (half
//! near a stored vector, which should be found, half fresh draws from the
//! same distribution), how many near ones found their entry, and a full
//! scan of the same 100,000 vectors as a baseline; criterion's means follow.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate_config::Guard;
use tollgate_proxy::cache::semantic::index::{Index, Query, Slot};
use tollgate_proxy::cache::semantic::vector::similarity;
use tollgate_proxy::cache::semantic::Profile;
use tollgate_proxy::cache::Key;

#[path = "cache/data.rs"]
mod data;

use data::{near, Rng, Source};

const ENTRIES: usize = 100_000;
const DIMS: usize = 384;
/// Lookups of each kind (near, fresh) timed for the percentiles.
const LOOKUPS: usize = 10_000;
const THRESHOLD: f32 = 0.95;

struct Filled {
    index: Arc<Index>,
    part: Key,
    profile: Profile,
    vectors: Vec<Vec<f32>>,
    /// The index's id of each of `vectors`.
    ids: Vec<u64>,
}

fn fill(source: &Source, rng: &mut Rng) -> Filled {
    let part = Key([7; 32]);
    let index = Index::new(ENTRIES, 2048);
    let profile = Profile::of(["How do I reverse a list in Python 3?"]);
    let vectors: Vec<Vec<f32>> = (0..ENTRIES).map(|_| source.draw(rng)).collect();
    let started = Instant::now();
    let ids = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            index.insert(Slot {
                text: None,
                part,
                key: Key([(i % 251) as u8; 32]),
                query: v.clone().into_boxed_slice(),
                context: None,
                profile: profile.clone(),
                expires: Instant::now() + Duration::from_secs(86_400),
            })
        })
        .collect();
    eprintln!(
        "  built the {ENTRIES}-entry partition in {:.1?} (graph: {:?} points)",
        started.elapsed(),
        index.graph_points(&part)
    );
    Filled {
        index,
        part,
        profile,
        vectors,
        ids,
    }
}

/// Ids of the entries a lookup would serve: above the threshold and
/// passing the guard.
fn lookup(f: &Filled, q: &[f32]) -> Vec<u64> {
    f.index
        .search(&Query {
            part: &f.part,
            query: q,
            threshold: THRESHOLD,
            limit: 8,
        })
        .into_iter()
        .filter(|c| f.profile.compare(&c.slot.profile, &Guard::ALL).is_ok())
        .map(|c| c.id)
        .collect()
}

/// The best similarity by comparing with every vector.
fn scan(f: &Filled, q: &[f32]) -> f32 {
    f.vectors
        .iter()
        .map(|v| similarity(q, v))
        .fold(f32::MIN, f32::max)
}

fn measure(c: &mut Criterion, name: &str, source: &Source) {
    eprintln!("semantic lookup, {name} vectors:");
    let mut rng = Rng::new(42);
    let f = fill(source, &mut rng);
    // (query, the entry it was made near), alternating near and fresh.
    let queries: Vec<(Vec<f32>, Option<u64>)> = (0..2 * LOOKUPS)
        .map(|i| {
            if i % 2 == 0 {
                let at = (i * 7919) % ENTRIES;
                (near(&f.vectors[at], &mut rng), Some(f.ids[at]))
            } else {
                (source.draw(&mut rng), None)
            }
        })
        .collect();
    let mut times = Vec::with_capacity(queries.len());
    let (mut found, mut fresh_hits) = (0, 0);
    for (q, target) in &queries {
        let t = Instant::now();
        let ids = black_box(lookup(&f, q));
        times.push(t.elapsed());
        match target {
            Some(id) => found += usize::from(ids.contains(id)),
            None => fresh_hits += usize::from(!ids.is_empty()),
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    eprintln!(
        "  lookup p50 {:?}, p99 {:?}, max {:?} over {} lookups; {found}/{LOOKUPS} near queries found their entry; {fresh_hits}/{LOOKUPS} fresh ones hit something",
        pct(0.50),
        pct(0.99),
        times[times.len() - 1],
        times.len(),
    );
    let scans = 100;
    let t = Instant::now();
    for (q, _) in queries.iter().take(scans) {
        black_box(scan(&f, q));
    }
    eprintln!(
        "  full scan of the {ENTRIES} vectors (baseline): {:?} per query",
        t.elapsed() / scans as u32
    );
    let mut g = c.benchmark_group("semantic_lookup");
    for (kind, first) in [("near", 0), ("fresh", 1)] {
        let mut i = first;
        g.bench_function(format!("{name}_100k_{kind}"), |b| {
            b.iter(|| {
                i = (i + 2) % queries.len();
                black_box(lookup(&f, &queries[i].0))
            })
        });
    }
    g.finish();
}

fn semantic_lookup(c: &mut Criterion) {
    if let Some(source) = embedded_prompts() {
        measure(c, "embedded", &source);
    }
    let latent = Source::latent(DIMS, 64, 0.7, &mut Rng::new(7));
    report_spread("latent", &latent);
    measure(c, "latent", &latent);
    measure(c, "uniform", &Source::Uniform { dims: DIMS });
}

/// How many directions a source's vectors spread along.
fn report_spread(name: &str, source: &Source) {
    let mut rng = Rng::new(1);
    let sample: Vec<Vec<f32>> = (0..600).map(|_| source.draw(&mut rng)).collect();
    eprintln!(
        "{name} vectors: participation ratio {:.1}",
        data::participation_ratio(&sample)
    );
}

/// The labelled set's prompts, embedded by the local model.
#[cfg(feature = "local-embeddings")]
fn embedded_prompts() -> Option<Source> {
    use tollgate_proxy::cache::semantic::local::LocalEmbedder;
    let Ok(dir) = std::env::var("TOLLGATE_MINILM_DIR") else {
        eprintln!("TOLLGATE_MINILM_DIR not set: no lookups on embedded prompts");
        return None;
    };
    let m = LocalEmbedder::load(std::path::Path::new(&dir), 256).expect("model loads");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/semantic/pairs.jsonl");
    let mut prompts: Vec<String> = std::fs::read_to_string(path)
        .expect("the labelled set")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| {
            let pair: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            ["a", "b"].map(|k| pair[k].as_str().expect("a prompt").to_string())
        })
        .collect();
    prompts.sort();
    prompts.dedup();
    let vectors = m.embed(&prompts).expect("embeds");
    eprintln!(
        "embedded vectors: from {} prompts, participation ratio {:.1}",
        vectors.len(),
        data::participation_ratio(&vectors)
    );
    Some(Source::embedded(&vectors))
}

#[cfg(not(feature = "local-embeddings"))]
fn embedded_prompts() -> Option<Source> {
    eprintln!("built without local-embeddings: no lookups on embedded prompts");
    None
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
