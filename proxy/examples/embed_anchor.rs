//! The local embedder's side of the embedding anchor
//! (tests/semantic/anchor.py): reads JSON lines `{"text": "..."}` on stdin
//! and answers each with one line
//! `{"tokens": n, "ms": t, "cpu_ms": c, "vector": [...]}`, where `ms` is the
//! wall time of one `LocalEmbedder::embed` call for that text (tokenising,
//! the model, pooling and normalising) and `cpu_ms` the CPU time all the
//! process's threads spent meanwhile. One text at a time, so the driver can
//! interleave it with the contender it compares.
//!
//! ```sh
//! cargo build --release -p tollgate-proxy --features local-embeddings --example embed_anchor
//! RAYON_NUM_THREADS=1 target/release/examples/embed_anchor MODEL_DIR < texts.jsonl
//! ```
//!
//! `RAYON_NUM_THREADS=1` keeps candle (and its matrix kernels) on one core.
//! The allocator is the proxy binary's (jemalloc; the driver passes the
//! binary's options in `_RJEM_MALLOC_CONF`), since candle allocates every
//! intermediate tensor.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use tollgate_proxy::cache::semantic::local::LocalEmbedder;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(serde::Deserialize)]
struct Request {
    text: String,
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TOLLGATE_MINILM_DIR").ok())
        .expect("usage: embed_anchor MODEL_DIR (or TOLLGATE_MINILM_DIR)");
    let model = LocalEmbedder::load(Path::new(&dir), 256).expect("model loads");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        if line.trim().is_empty() {
            continue;
        }
        let req: Request = serde_json::from_str(&line).expect("a {\"text\": ...} line");
        let tokens = model.token_ids(&req.text).expect("tokenizes").len();
        let texts = [req.text];
        let cpu = cpu_ns();
        let start = Instant::now();
        let vector = model.embed(&texts).expect("embeds").remove(0);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let cpu_ms = cpu_ns().saturating_sub(cpu) as f64 / 1e6;
        let reply =
            serde_json::json!({ "tokens": tokens, "ms": ms, "cpu_ms": cpu_ms, "vector": vector });
        writeln!(out, "{reply}").expect("stdout");
        out.flush().expect("stdout");
    }
}

/// CPU time of all the process's threads so far, in nanoseconds.
/// (`/proc/*/schedstat` would do without `unsafe`, but it lags by up to a
/// scheduler tick for a running thread.)
#[allow(unsafe_code)]
fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
