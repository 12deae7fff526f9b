//! What the soak sends: a weighted mix of request kinds over both APIs and
//! both translations, streamed or not, each with the mock's fault switches
//! it needs, at a steady rate.
//!
//! Each kind belongs to a budget class ([`Class`]): `exact` kinds end with
//! the provider's usage or with an error (settled to the usage, or
//! released), `cut` kinds end early by design (the app leaves, or the
//! provider resets mid-stream) and are settled on the proxy's estimate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::config::CLASS_HEADER;
use super::exchange::{self, Cut, Planned};
use super::tally::Tally;

/// Which API the app speaks and which the target does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Api {
    OpenAi,
    Anthropic,
    /// An OpenAI app answered by an Anthropic target (route `soak-o2a`).
    OpenAiToAnthropic,
    /// An Anthropic app answered by an OpenAI target (route `soak-a2o`).
    AnthropicToOpenAi,
}

impl Api {
    pub(crate) const ALL: [Api; 4] = [
        Api::OpenAi,
        Api::Anthropic,
        Api::OpenAiToAnthropic,
        Api::AnthropicToOpenAi,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
            Api::OpenAiToAnthropic => "openai→anthropic",
            Api::AnthropicToOpenAi => "anthropic→openai",
        }
    }

    /// The app speaks the OpenAI API.
    pub(crate) fn openai_app(self) -> bool {
        matches!(self, Api::OpenAi | Api::OpenAiToAnthropic)
    }

    fn model(self) -> &'static str {
        match self {
            Api::OpenAi => "gpt-4o-mini",
            Api::Anthropic => "claude-sonnet-4-5",
            Api::OpenAiToAnthropic => "soak-o2a",
            Api::AnthropicToOpenAi => "soak-a2o",
        }
    }
}

/// The budget counter a request's spend goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    Exact,
    Cut,
}

impl Class {
    /// The value of [`CLASS_HEADER`].
    pub(crate) fn value(self) -> &'static str {
        match self {
            Class::Exact => "exact",
            Class::Cut => "cut",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    /// A unique prompt: a cache miss that is stored, evicting another.
    Fresh,
    /// A prompt from a small pool: mostly cache hits.
    Repeat,
    /// 429 on the first attempt, then success.
    Retry429,
    /// 500/502/503 on the first attempt, then success.
    Retry5xx,
    /// 500/502/503 on every attempt: the app gets the provider's error.
    Error5xx,
    /// 429 on every attempt.
    Error429,
    /// The connection drops before the headers on every attempt (502).
    ResetEarly,
    /// 0.2–1.5 s before the first event (or the headers).
    SlowTtft,
    /// A stream the app reads a few events of, then leaves.
    CutByClient,
    /// A stream the provider resets after a few events.
    CutByUpstream,
    /// The app gives up while the provider is still thinking.
    GiveUp,
}

impl Kind {
    pub(crate) const ALL: [Kind; 11] = [
        Kind::Fresh,
        Kind::Repeat,
        Kind::Retry429,
        Kind::Retry5xx,
        Kind::Error5xx,
        Kind::Error429,
        Kind::ResetEarly,
        Kind::SlowTtft,
        Kind::CutByClient,
        Kind::CutByUpstream,
        Kind::GiveUp,
    ];

    /// Relative frequency in the mix.
    fn weight(self) -> u32 {
        match self {
            Kind::Fresh => 20,
            Kind::Repeat => 20,
            Kind::Retry429 | Kind::Retry5xx => 6,
            Kind::Error5xx => 3,
            Kind::Error429 | Kind::ResetEarly => 2,
            Kind::SlowTtft => 5,
            Kind::CutByClient => 6,
            Kind::CutByUpstream => 5,
            Kind::GiveUp => 3,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Fresh => "fresh",
            Kind::Repeat => "repeat",
            Kind::Retry429 => "retry-429",
            Kind::Retry5xx => "retry-5xx",
            Kind::Error5xx => "error-5xx",
            Kind::Error429 => "error-429",
            Kind::ResetEarly => "reset-early",
            Kind::SlowTtft => "slow-ttft",
            Kind::CutByClient => "cut-by-client",
            Kind::CutByUpstream => "cut-by-upstream",
            Kind::GiveUp => "give-up",
        }
    }

    pub(crate) fn class(self) -> Class {
        match self {
            Kind::CutByClient | Kind::CutByUpstream | Kind::GiveUp => Class::Cut,
            _ => Class::Exact,
        }
    }

    /// Kinds that only make sense as a stream.
    fn stream_only(self) -> bool {
        matches!(self, Kind::CutByClient | Kind::CutByUpstream)
    }
}

/// How the traffic runs.
pub(crate) struct Pace {
    pub rps: f64,
    pub max_in_flight: usize,
    /// Prompts `Repeat` requests draw from.
    pub pool: u64,
    pub seed: u64,
}

/// The two clients an app might be: HTTP/1.1 with a connection pool, and
/// h2c (prior knowledge).
#[derive(Clone)]
pub(crate) struct Clients {
    pub http1: reqwest::Client,
    pub h2c: reqwest::Client,
}

impl Clients {
    pub(crate) fn new() -> anyhow::Result<Clients> {
        let base = || {
            reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(64)
        };
        Ok(Clients {
            http1: base().http1_only().build()?,
            h2c: base().http2_prior_knowledge().build()?,
        })
    }
}

/// Sends the mix to `base_url` until `until`, then waits for every request
/// to end. Every request is counted in `tally` when it is sent and again
/// when its one outcome is known.
pub(crate) async fn run(
    clients: Clients,
    base_url: &str,
    tally: &Arc<Tally>,
    pace: &Pace,
    until: Instant,
) {
    let mut rng = StdRng::seed_from_u64(pace.seed);
    let total: u32 = Kind::ALL.iter().map(|k| k.weight()).sum();
    let gate = Arc::new(Semaphore::new(pace.max_in_flight));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / pace.rps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut set = JoinSet::new();
    let mut seq = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        seq += 1;
        let kind = pick(&mut rng, total);
        let api = Api::ALL[rng.random_range(0..Api::ALL.len())];
        let stream = kind.stream_only() || rng.random_bool(0.5);
        let planned = plan(&mut rng, kind, api, stream, seq, pace.pool, base_url);
        let client = if rng.random_bool(0.25) {
            clients.h2c.clone()
        } else {
            clients.http1.clone()
        };
        tally.sent(kind, api, stream);
        let tally = tally.clone();
        set.spawn(async move {
            let got = exchange::run(&client, &planned).await;
            tally.record(kind, &got);
            drop(permit);
        });
        // Reap finished tasks as we go, so the set stays small.
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
}

fn pick(rng: &mut StdRng, total: u32) -> Kind {
    let mut n = rng.random_range(0..total);
    for k in Kind::ALL {
        if n < k.weight() {
            return k;
        }
        n -= k.weight();
    }
    unreachable!("the weights sum to `total`")
}

/// One request of `kind`.
fn plan(
    rng: &mut StdRng,
    kind: Kind,
    api: Api,
    stream: bool,
    seq: u64,
    pool: u64,
    base_url: &str,
) -> Planned {
    let prompt = match kind {
        Kind::Repeat => {
            let i = rng.random_range(0..pool);
            format!("soak pool prompt {i} asks about topic {i} once more")
        }
        _ => format!("soak request {seq} asks about item {seq} in some detail"),
    };
    let mut headers: Vec<(&'static str, String)> =
        vec![(CLASS_HEADER, kind.class().value().to_string())];
    let mut cut = None;
    let status_5xx = || [500u16, 502, 503][(seq % 3) as usize].to_string();
    match kind {
        Kind::Fresh | Kind::Repeat => {}
        Kind::Retry429 | Kind::Retry5xx => {
            let status = if kind == Kind::Retry429 {
                "429".to_string()
            } else {
                status_5xx()
            };
            headers.push(("x-mock-fail-first", "1".into()));
            headers.push(("x-mock-status", status));
            headers.push(("x-mock-scenario", format!("soak-{seq}")));
        }
        Kind::Error5xx => headers.push(("x-mock-status", status_5xx())),
        Kind::Error429 => headers.push(("x-mock-status", "429".into())),
        Kind::ResetEarly => headers.push(("x-mock-reset-after-chunks", "0".into())),
        Kind::SlowTtft => headers.push(("x-mock-ttft-ms", rng.random_range(200..1500).to_string())),
        Kind::CutByClient => {
            headers.push(("x-mock-chunks", "12".into()));
            headers.push(("x-mock-chunk-interval-ms", "50".into()));
            cut = Some(Cut::AfterEvents(rng.random_range(2..5)));
        }
        Kind::CutByUpstream => {
            headers.push(("x-mock-chunks", "8".into()));
            headers.push((
                "x-mock-reset-after-chunks",
                rng.random_range(2..6u32).to_string(),
            ));
        }
        Kind::GiveUp => {
            // A stream waits for its first event, a whole answer for its headers.
            let switch = if stream {
                "x-mock-ttft-ms"
            } else {
                "x-mock-latency-ms"
            };
            headers.push((switch, "3000".into()));
            cut = Some(Cut::GiveUpAfter(Duration::from_millis(
                rng.random_range(300..700),
            )));
        }
    }
    // Python-style spacing from an OpenAI-compatible server, now and then.
    if kind.class() == Class::Exact && rng.random_bool(0.25) {
        headers.push(("x-mock-json-style", "spaced".into()));
    }
    let (path, body) = if api.openai_app() {
        let mut body = json!({
            "model": api.model(),
            "messages": [{"role": "user", "content": prompt}],
            "stream": stream,
            "temperature": 0,
            "max_tokens": 48,
        });
        if stream {
            // The app reads the billed usage from the final chunk.
            body["stream_options"] = json!({"include_usage": true});
        }
        ("/v1/chat/completions", body)
    } else {
        headers.push(("anthropic-version", "2023-06-01".into()));
        let body: Value = json!({
            "model": api.model(),
            "max_tokens": 48,
            "messages": [{"role": "user", "content": prompt}],
            "stream": stream,
            "temperature": 0,
        });
        ("/v1/messages", body)
    };
    Planned {
        url: format!("{base_url}{path}"),
        body,
        headers,
        openai: api.openai_app(),
        stream,
        cut,
    }
}
