//! `tollgate-load`: the load driver behind `tests/load/run.sh`.
//!
//! Four modes, each printing JSON lines on stdout:
//!
//! - `rate`: an open-loop, constant-rate stream of small chat completions
//!   (whole, or streamed with `--stream`, then with time to first event). Requests leave on schedule whether or not earlier ones have
//!   answered, and latency is taken from the *scheduled* send time, so a
//!   stall is charged to every request it delayed (no coordinated omission).
//!   Several targets are run in alternating rounds (A B, B A, …) from one
//!   process with warm connection pools, so drift on a shared machine hits
//!   both sides alike. One line per round and target.
//! - `saturate`: closed loop, `--concurrency` requests always in flight per
//!   target, for the most a target serves (see [`saturate`]).
//! - `ttft`: sequential streaming requests, alternating targets request by
//!   request; time from send to the first SSE `data:` bytes. One line per
//!   target.
//! - `streams`: opens K streaming requests that stay open (the mock is told
//!   to send many chunks far apart), prints `{"event":"open",…}` once all
//!   have their first event, holds them until stdin closes or `--hold-s`
//!   passes, then prints `{"event":"done",…}`.
//!
//! The driver runs on a single-threaded runtime so it takes at most one of
//! the machine's cores (`--threads` raises that); a separate pacer thread
//! keeps the send schedule.
//!
//! `--pid NAME=PID[,PID…]` adds the CPU seconds those processes used during
//! each phase of target NAME (from `/proc/PID/stat`), so the harness gets a
//! CPU cost per request without having to know the phase boundaries, and
//! the seconds their threads waited on a run queue (`runq_wait_s`).
//! `--unique-seed NAME` gives every request to target NAME its own `seed`,
//! so a response cache misses every time.

#![forbid(unsafe_code)]

#[path = "tollgate-load/cpu.rs"]
mod cpu;
#[path = "tollgate-load/saturate.rs"]
mod saturate;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use cpu::CpuWatch;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Parser, Debug)]
#[command(about = "Load driver for the Tollgate load test (tests/load/run.sh)")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Args, Debug)]
struct Common {
    /// Sent as `Authorization: Bearer`; the proxy replaces it with its own.
    #[arg(long, global = true, default_value = "placeholder")]
    key: String,
    #[arg(long, global = true, default_value = "gpt-4o-mini")]
    model: String,
    /// Extra request header `NAME: VALUE` (repeatable), e.g. `x-mock-ttft-ms: 0`.
    #[arg(long = "header", global = true, value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The user message of every request.
    #[arg(long, global = true, default_value = "Say hi")]
    prompt: String,
    /// `temperature` in every request (left out when not set).
    #[arg(long, global = true)]
    temperature: Option<f64>,
    /// Runtime worker threads (1: a current-thread runtime).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Open-loop constant-rate non-streaming requests; latency percentiles.
    Rate(RateArgs),
    /// Sequential streaming requests; time to the first SSE event.
    Ttft(TtftArgs),
    /// Hold many streaming requests open (for memory figures).
    Streams(StreamsArgs),
    /// Closed loop at a fixed concurrency; the most a target serves.
    Saturate(saturate::SaturateArgs),
}

#[derive(Args, Debug)]
struct RateArgs {
    /// `NAME=URL` of a chat-completions endpoint (repeatable).
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    #[arg(long, default_value_t = 1000.0)]
    rps: f64,
    /// Length of one measured phase (one target, one round).
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Unrecorded traffic per target before the first round.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Stream the answers; adds time to first event per request.
    #[arg(long)]
    stream: bool,
    #[command(flatten)]
    per_target: PerTarget,
}

/// Options that name a target.
#[derive(Args, Debug, Default)]
struct PerTarget {
    /// `NAME=PID[,PID…]`: report the CPU these processes use during NAME's phases.
    #[arg(long = "pid", value_name = "NAME=PIDS")]
    pids: Vec<String>,
    /// A unique `seed` in every request to NAME (a response cache always misses).
    #[arg(long = "unique-seed", value_name = "NAME")]
    unique_seed: Vec<String>,
}

#[derive(Args, Debug)]
struct TtftArgs {
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Measured requests per target.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Unrecorded requests per target first.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
}

#[derive(Args, Debug)]
struct StreamsArgs {
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Streams being opened at once (the rest wait their turn).
    #[arg(long, default_value_t = 100)]
    open_concurrency: usize,
    /// Time between the mock's stream events while held open.
    #[arg(long, default_value_t = 1000)]
    chunk_interval_ms: u64,
    /// Events per stream; with the interval this sets how long a stream
    /// lasts (the mock pads its reply to this many words, so keep it modest).
    #[arg(long, default_value_t = 300)]
    chunks: u32,
    /// Give up waiting for all streams to open after this long.
    #[arg(long, default_value_t = 60.0)]
    open_timeout_s: f64,
    /// Hold the streams at most this long (closing stdin ends it sooner).
    #[arg(long, default_value_t = 120.0)]
    hold_s: f64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = if cli.common.threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.common.threads)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .context("starting the runtime")?;
    let headers = parse_headers(&cli.common.headers)?;
    let req = RequestSpec {
        key: cli.common.key,
        model: cli.common.model,
        prompt: cli.common.prompt,
        temperature: cli.common.temperature,
        headers,
    };
    rt.block_on(async move {
        match cli.mode {
            Mode::Rate(a) => rate(&req, a).await,
            Mode::Ttft(a) => ttft(&req, a).await,
            Mode::Streams(a) => streams(&req, a).await,
            Mode::Saturate(a) => saturate::run(&req, a).await,
        }
    })
}

/// What every request carries.
struct RequestSpec {
    key: String,
    model: String,
    prompt: String,
    temperature: Option<f64>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl RequestSpec {
    /// A small chat completion, built once and cloned per send so that
    /// building costs nothing on the timed path.
    fn template(
        &self,
        uri: &Uri,
        stream: bool,
        extra: &[(&'static str, String)],
    ) -> anyhow::Result<Template> {
        let mut body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt}],
            "stream": stream,
        });
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("authorization", format!("Bearer {}", self.key).parse()?);
        for (k, v) in &self.headers {
            headers.insert(k, v.clone());
        }
        for (k, v) in extra {
            headers.insert(*k, v.parse()?);
        }
        Ok(Template {
            uri: uri.clone(),
            headers,
            body: Bytes::from(body.to_string()),
            unique: None,
        })
    }
}

struct Template {
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    /// With a unique seed: the body without its closing `}` and the next seed.
    unique: Option<(Bytes, AtomicU64)>,
}

impl Template {
    /// Every request from now on carries its own `"seed": N`. Seeds start
    /// at the microseconds since the epoch (below 2^53, so exact in any
    /// JSON parser), so later runs against the same cache do not repeat them.
    fn with_unique_seed(mut self) -> Template {
        let open = self.body.slice(..self.body.len() - 1);
        let first = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        self.unique = Some((open, AtomicU64::new(first)));
        self
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let body = match &self.unique {
            None => self.body.clone(),
            Some((open, next)) => {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                let mut b = Vec::with_capacity(open.len() + 24);
                b.extend_from_slice(open);
                b.extend_from_slice(format!(",\"seed\":{seed}}}").as_bytes());
                Bytes::from(b)
            }
        };
        let mut r = Request::post(self.uri.clone())
            .body(Full::new(body))
            .expect("a parsed URI is valid");
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// One template per target: streamed or not, with a unique seed where asked.
fn templates(
    req: &RequestSpec,
    targets: &[(String, Uri)],
    stream: bool,
    per: &PerTarget,
) -> anyhow::Result<Vec<Template>> {
    targets
        .iter()
        .map(|(name, uri)| {
            let t = req.template(uri, stream, &[])?;
            Ok(if per.unique_seed.contains(name) {
                t.with_unique_seed()
            } else {
                t
            })
        })
        .collect()
}

fn parse_headers(raw: &[String]) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    raw.iter()
        .map(|h| {
            let (k, v) = h
                .split_once(':')
                .with_context(|| format!("header {h:?}: no ':'"))?;
            Ok((k.trim().parse()?, v.trim().parse()?))
        })
        .collect()
}

fn parse_targets(raw: &[String]) -> anyhow::Result<Vec<(String, Uri)>> {
    raw.iter()
        .map(|t| {
            let (name, url) = t
                .split_once('=')
                .with_context(|| format!("target {t:?}: want NAME=URL"))?;
            Ok((
                name.to_owned(),
                url.parse().with_context(|| format!("target {t:?}"))?,
            ))
        })
        .collect()
}

fn client(max_idle: usize) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(max_idle)
        .build(http)
}

// === rate ===

/// One request's outcome, times in nanoseconds.
struct Sample {
    /// Scheduled send → whole body read.
    latency: u64,
    /// Actual send → whole body read.
    service: u64,
    /// Scheduled → actual send (pacer and runtime wake-up lag).
    lag: u64,
    /// Actual send → first SSE `data:` bytes (streams only, else 0).
    ttft: u64,
    ok: bool,
}

async fn rate(req: &RequestSpec, a: RateArgs) -> anyhow::Result<()> {
    let targets = parse_targets(&a.targets)?;
    let clients: Vec<_> = targets.iter().map(|_| client(1024)).collect();
    let timeout = Duration::from_millis(a.timeout_ms);
    let templates = templates(req, &targets, a.stream, &a.per_target)?;
    let cpu = CpuWatch::new(&a.per_target.pids, &targets)?;
    for (client, template) in clients.iter().zip(&templates) {
        phase(client, template, a.rps, a.warmup_s, timeout, a.stream).await;
    }
    let mut all: Vec<Vec<Sample>> = targets.iter().map(|_| Vec::new()).collect();
    for round in 0..a.rounds {
        // A B, then B A: a linear drift cancels over each pair of rounds.
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let name = &targets[i].0;
            let (before, waited) = (cpu.read(i), cpu.read_wait(i));
            let samples = phase(
                &clients[i],
                &templates[i],
                a.rps,
                a.duration_s,
                timeout,
                a.stream,
            )
            .await;
            let mut line = summarize(&samples, a.duration_s);
            line["cpu_s"] = json!(cpu.since(i, before));
            line["runq_wait_s"] = json!(cpu.wait_since(i, waited));
            println!(
                "{}",
                json!({"mode": "rate", "round": round, "target": name, "rps": a.rps, "stats": line})
            );
            all[i].extend(samples);
        }
    }
    // Every round pooled, per target.
    let secs = a.duration_s * a.rounds as f64;
    for ((name, _), samples) in targets.iter().zip(&all) {
        let line = summarize(samples, secs);
        println!(
            "{}",
            json!({"mode": "rate", "round": "all", "target": name, "rps": a.rps, "stats": line})
        );
    }
    Ok(())
}

/// Sends `rps` requests a second for `secs` seconds and returns one sample each.
async fn phase(
    client: &HttpClient,
    template: &Template,
    rps: f64,
    secs: f64,
    timeout: Duration,
    stream: bool,
) -> Vec<Sample> {
    let n = (rps * secs).round() as u64;
    let period = Duration::from_secs_f64(1.0 / rps);
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let start = Instant::now() + Duration::from_millis(2);
    // A thread, not a tokio timer: tokio's timer has 1 ms granularity, the
    // same as the gap between sends.
    let pacer = std::thread::spawn(move || {
        for i in 0..n {
            let at = start + period.mul_f64(i as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send(at).is_err() {
                break;
            }
        }
    });
    let mut set = JoinSet::new();
    while let Some(at) = rx.recv().await {
        let client = client.clone();
        let r = template.request();
        set.spawn(async move {
            let sent = Instant::now();
            let first = tokio::time::timeout(timeout, exchange(&client, r, stream))
                .await
                .ok()
                .flatten();
            let done = Instant::now();
            Sample {
                latency: nanos(done - at),
                service: nanos(done - sent),
                lag: nanos(sent.saturating_duration_since(at)),
                ttft: first.map_or(0, nanos),
                ok: first.is_some(),
            }
        });
    }
    let _ = pacer.join();
    let mut out = Vec::with_capacity(n as usize);
    while let Some(s) = set.join_next().await {
        out.extend(s.ok());
    }
    out
}

/// One request, its whole answer read. Returns the time to the first SSE
/// `data:` bytes for a stream (zero for a whole answer), or `None` when the
/// request failed or the status was not 2xx.
async fn exchange(client: &HttpClient, r: Request<Full<Bytes>>, stream: bool) -> Option<Duration> {
    let t0 = Instant::now();
    let resp = client.request(r).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let mut body = resp.into_body();
    if !stream {
        body.collect().await.ok()?;
        return Some(Duration::ZERO);
    }
    let mut first = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if first.is_none() && frame.data_ref().is_some_and(|d| memmem(d, b"data:")) {
            first = Some(t0.elapsed());
        }
    }
    first
}

fn summarize(samples: &[Sample], secs: f64) -> serde_json::Value {
    let errors = samples.iter().filter(|s| !s.ok).count();
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok).collect();
    let pick = |f: fn(&Sample) -> u64| pcts(ok.iter().map(|s| f(s)).collect());
    let mut out = json!({
        "sent": samples.len(),
        "errors": errors,
        "achieved_rps": samples.len() as f64 / secs,
        "latency_us": pick(|s| s.latency),
        "service_us": pick(|s| s.service),
        "send_lag_us": pick(|s| s.lag),
    });
    if ok.iter().any(|s| s.ttft > 0) {
        out["ttft_us"] = pick(|s| s.ttft);
    }
    out
}

/// p50/p90/p99/max of nanosecond values, in microseconds.
fn pcts(mut v: Vec<u64>) -> serde_json::Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1e3;
    json!({"n": v.len(), "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0)})
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

// === ttft ===

async fn ttft(req: &RequestSpec, a: TtftArgs) -> anyhow::Result<()> {
    let targets = parse_targets(&a.targets)?;
    let clients: Vec<_> = targets.iter().map(|_| client(8)).collect();
    let templates = targets
        .iter()
        .map(|(_, uri)| req.template(uri, true, &[]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut firsts = vec![Vec::new(); targets.len()];
    let mut totals = vec![Vec::new(); targets.len()];
    let mut errors = vec![0usize; targets.len()];
    for i in 0..a.warmup + a.requests {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if i % 2 == 1 {
            order.reverse();
        }
        for t in order {
            match first_event(&clients[t], templates[t].request()).await {
                Ok((first, total)) if i >= a.warmup => {
                    firsts[t].push(nanos(first));
                    totals[t].push(nanos(total));
                }
                Ok(_) => {}
                Err(_) => errors[t] += 1,
            }
        }
    }
    for (t, (name, _)) in targets.iter().enumerate() {
        let first = pcts(std::mem::take(&mut firsts[t]));
        let total = pcts(std::mem::take(&mut totals[t]));
        println!(
            "{}",
            json!({"mode": "ttft", "target": name, "errors": errors[t], "ttft_us": first, "total_us": total})
        );
    }
    Ok(())
}

/// Sends a streaming request, waits for the first bytes of an SSE `data:`
/// line, then reads the rest. Returns (time to first event, time to end).
async fn first_event(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(Duration, Duration)> {
    let t0 = Instant::now();
    let resp = client.request(req).await?;
    if !resp.status().is_success() {
        bail!("status {}", resp.status());
    }
    let mut body = resp.into_body();
    let first = loop {
        let Some(frame) = body.frame().await else {
            bail!("stream ended before its first event");
        };
        if frame?.data_ref().is_some_and(|d| memmem(d, b"data:")) {
            break t0.elapsed();
        }
    };
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok((first, t0.elapsed()))
}

fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// === streams ===

async fn streams(req: &RequestSpec, a: StreamsArgs) -> anyhow::Result<()> {
    let uri: Uri = a.url.parse().context("--url")?;
    let client = client(a.streams);
    let counts = Arc::new(StreamCounts::default());
    let gate = Arc::new(Semaphore::new(a.open_concurrency.max(1)));
    let extra = [
        ("x-mock-chunks", a.chunks.to_string()),
        ("x-mock-chunk-interval-ms", a.chunk_interval_ms.to_string()),
    ];
    let template = req.template(&uri, true, &extra)?;
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..a.streams {
        let (client, counts, gate) = (client.clone(), counts.clone(), gate.clone());
        let r = template.request();
        set.spawn(async move {
            let permit = gate
                .acquire_owned()
                .await
                .expect("the gate is never closed");
            let Ok(resp) = client.request(r).await else {
                return counts.failed.fetch_add(1, Ordering::Relaxed);
            };
            if !resp.status().is_success() {
                return counts.failed.fetch_add(1, Ordering::Relaxed);
            }
            let mut body = resp.into_body();
            loop {
                match body.frame().await {
                    Some(Ok(f)) if f.data_ref().is_some_and(|d| memmem(d, b"data:")) => break,
                    Some(Ok(_)) => {}
                    _ => return counts.failed.fetch_add(1, Ordering::Relaxed),
                }
            }
            counts.open.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            // Keep reading, as a live app would, until the stream ends.
            while let Some(Ok(_)) = body.frame().await {}
            counts.open.fetch_sub(1, Ordering::Relaxed);
            counts.ended.fetch_add(1, Ordering::Relaxed)
        });
    }
    let deadline = t0 + Duration::from_secs_f64(a.open_timeout_s);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while counts.open() + counts.failed() < a.streams && Instant::now() < deadline {
        tick.tick().await;
    }
    let opened = counts.open();
    println!(
        "{}",
        json!({"event": "open", "open": opened, "wanted": a.streams,
               "failed": counts.failed(), "secs": t0.elapsed().as_secs_f64()})
    );

    let (stdin_tx, stdin_rx) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        // Blocks until the harness closes our stdin (or EOF at once if none).
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = stdin_tx.send(());
    });
    let held = Instant::now();
    tokio::select! {
        _ = stdin_rx => {}
        _ = tokio::time::sleep(Duration::from_secs_f64(a.hold_s)) => {}
    }
    println!(
        "{}",
        json!({"event": "done", "open_at_end": counts.open(), "opened": opened, "failed": counts.failed(),
               "ended_early": counts.ended.load(Ordering::Relaxed), "held_secs": held.elapsed().as_secs_f64()})
    );
    set.abort_all();
    Ok(())
}

#[derive(Default)]
struct StreamCounts {
    /// Streams that have had their first event and are still open.
    open: AtomicUsize,
    /// Streams refused, cut or without a first event.
    failed: AtomicUsize,
    /// Streams that opened and then ended while held.
    ended: AtomicUsize,
}

impl StreamCounts {
    fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }
}
