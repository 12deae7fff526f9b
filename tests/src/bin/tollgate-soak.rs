//! `tollgate-soak`: the soak test of issue 17 (`tests/soak/run.sh`,
//! `make soak`; `make test` runs two minutes of it).
//!
//! For `--minutes` (default 30) it drives mixed traffic through a real
//! `tollgate-proxy` process, with the real mock provider (`tollgate-mock`)
//! and a real `redis-server` (Debian's, on a free loopback port in a
//! temporary directory, AOF on) holding the budgets:
//!
//! - **traffic** ([`traffic`]): at `--rps`, chat completions and messages,
//!   whole and streamed, over HTTP/1.1 and h2c, direct and translated both
//!   ways; the mock is told per request to answer 429 or 5xx once (retried)
//!   or always, to drop the connection before the headers, to be slow to
//!   its first event, or to reset a stream mid-way; apps leave streams after
//!   a few events or give up waiting; unique prompts overflow a small exact
//!   cache while a pool of repeated prompts hits it;
//! - **chaos** ([`chaos`]): the config file is rewritten every
//!   `--reload-every-s` (10), valid (a real change) and invalid (a YAML
//!   error, an unknown field) in turn, and each write is checked against
//!   the proxy's reload counters, `tollgate_config_last_reload_successful`
//!   and its config hash; `redis-server` is killed every
//!   `--redis-restart-every-s` (180; shortened so a short run restarts it at
//!   least once) and started again on its data after `--redis-down-ms`;
//!   `--redis-stall-every-s` (off by default) also stalls Redis past the
//!   proxy's call timeout (see `config::REDIS_TIMEOUT`).
//!
//! # Pass criteria
//! Checked at the end ([`verdict`]), each reported with its figures:
//!
//! - no panic: the proxy still runs and its log has no `panicked`;
//! - every request answered exactly once: requests sent == outcomes the
//!   client recorded (one per request) == `tollgate_requests_total`, and no
//!   request ended without a proper answer (transport error, a stream cut
//!   without an error event);
//! - RSS flat after warm-up (the first `--warmup-fraction`, 0.3): the
//!   least-squares slope of the samples after it is at most
//!   `--max-rss-slope-mib` (4 MiB per 10 minutes), or the rise it fits over
//!   that window is at most `--rss-noise-mib` (1 MiB: the allocator's steps,
//!   which decide the slope of a short run; over the 21 minutes a 30-minute
//!   run fits, the slope bound is the stricter one);
//! - open descriptors back to baseline: once traffic has stopped and idle
//!   connections have closed (the upstream pool after 2 s), at most
//!   `--fd-extra` (4: the Redis connection and slack) more than before any
//!   traffic (their slope under traffic is reported: it follows the
//!   connections open at the moment, too noisy to bound);
//! - budget spend in Redis == the usage the mock billed: every request
//!   carries `x-soak-class`, the scope of the one budget limit. Requests
//!   that end normally or with an error are `exact`: their Redis counter
//!   equals, token for token and nano-dollar for nano-dollar, the usage the
//!   app received (the body's `usage`, a stream's final usage) priced at the
//!   configured prices as the proxy prices it; cache hits cost nothing.
//!   Requests cut short on purpose are `cut`: the README charges them the
//!   proxy's estimate (prompt tokens plus the text sent), so their counter
//!   must equal the estimated tokens the proxy reports settling, with at
//!   least one estimated settlement per cut request that had received an
//!   event;
//! - every admission ended (settled, released or dropped), no reservation
//!   in flight or left in Redis, `tollgate_budget_pending_settlements` 0,
//!   none lost;
//! - every valid config write applied and every invalid one refused;
//!   Redis restarted at least once; the cache stored more answers than it
//!   holds, stayed within its bounds and served hits.
//!
//! Exit status: 0 passed, 1 a criterion failed, 2 the run could not be
//! made. Without `redis-server` on PATH the run is skipped (exit 0) unless
//! `TOLLGATE_REQUIRE_REDIS` is set, as for the other Redis suites.

#![forbid(unsafe_code)]

// The black-box suites' proxy harness and budget helpers, shared, not copied.
#[path = "../../tests/budgets/mod.rs"]
mod budgets;
#[path = "../../tests/harness/mod.rs"]
mod harness;

// The soak's own parts (they reach each other as `super::…`).
#[path = "../soak/chaos.rs"]
mod chaos;
#[path = "../soak/config.rs"]
mod config;
#[path = "../soak/exchange.rs"]
mod exchange;
#[path = "../soak/footprint.rs"]
mod footprint;
#[path = "../soak/ledger.rs"]
mod ledger;
#[path = "../soak/procs.rs"]
mod procs;
#[path = "../soak/store.rs"]
mod store;
#[path = "../soak/tally.rs"]
mod tally;
#[path = "../soak/traffic.rs"]
mod traffic;
#[path = "../soak/verdict.rs"]
mod verdict;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use budgets::StoreBlock as _;
use tollgate_tests::redis::Redis;

#[derive(Parser, Debug)]
#[command(about = "Soak test: mixed traffic and chaos through a real tollgate-proxy (issue 17)")]
struct Args {
    /// Length of the run.
    #[arg(long, env = "TOLLGATE_SOAK_MINUTES", default_value_t = 30.0)]
    minutes: f64,
    /// Requests started per second.
    #[arg(long, default_value_t = 20.0)]
    rps: f64,
    /// Requests open at once at most (the pacer waits beyond it).
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Share of the run before the footprint slopes are fitted.
    #[arg(long, default_value_t = 0.3)]
    warmup_fraction: f64,
    #[arg(long, default_value_t = 10.0)]
    reload_every_s: f64,
    /// Shortened to a third of the run when the run is shorter than two.
    #[arg(long, default_value_t = 180.0)]
    redis_restart_every_s: f64,
    #[arg(long, default_value_t = 1500)]
    redis_down_ms: u64,
    /// Also stall Redis this often (0: never): longer than the proxy's
    /// call timeout, it times out calls Redis then runs anyway.
    #[arg(long, default_value_t = 0.0)]
    redis_stall_every_s: f64,
    #[arg(long, default_value_t = 1500)]
    redis_stall_ms: u64,
    #[arg(long, default_value_t = 1000)]
    sample_every_ms: u64,
    #[arg(long, default_value_t = 4.0)]
    max_rss_slope_mib: f64,
    /// A fitted RSS rise up to this passes whatever its slope (short runs).
    #[arg(long, default_value_t = 1.0)]
    rss_noise_mib: f64,
    #[arg(long, default_value_t = 4)]
    fd_extra: u64,
    /// Distinct prompts of the repeated (cache-hitting) requests.
    #[arg(long, default_value_t = 48)]
    pool: u64,
    /// Seed of the traffic mix (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Directory holding `tollgate-proxy` and `tollgate-mock` (default: the
    /// proxy from `TOLLGATE_PROXY_BIN` or `target/{debug,release}`, the mock
    /// next to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Also write the summary to this file (and the proxy's log next to
    /// it, as PATH.proxy.log, when the run fails).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the footprint samples here as CSV (`secs,rss_kib,fds`).
    #[arg(long)]
    samples: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    if let Some(dir) = &args.bin_dir {
        // Read by the harness when it starts the proxy; set before any thread.
        std::env::set_var("TOLLGATE_PROXY_BIN", dir.join("tollgate-proxy"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let code = match rt.block_on(run(args)) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("tollgate-soak: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// Runs the soak; `Ok(passed)`.
async fn run(args: Args) -> anyhow::Result<bool> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let restart_every = {
        let every = Duration::from_secs_f64(args.redis_restart_every_s);
        if duration < every * 2 {
            duration / 3
        } else {
            every
        }
    };
    let mock_bin = match &args.bin_dir {
        Some(d) => d.join("tollgate-mock"),
        None => std::env::current_exe()?.with_file_name("tollgate-mock"),
    };

    let Some(mut redis) = Redis::start().await else {
        return Ok(true);
    };
    let mock = procs::MockProc::start(&mock_bin).await?;
    let prefix = format!("soak{}", std::process::id());
    let configs = config::Configs::new(
        &mock.url,
        redis.store(&prefix, "open", config::REDIS_TIMEOUT),
    );
    let proxy = harness::ProxyProc::start(&configs.initial());
    let pid = proxy.pid();
    let start = procs::sample(pid, 0.0).context("the proxy exited at once")?;
    eprintln!(
        "tollgate-soak: {:.1} min, seed {seed}; proxy pid {pid} at {}, mock {}, redis :{}",
        args.minutes, proxy.url, mock.url, redis.port
    );

    let began = Instant::now();
    let until = began + duration;
    let clients = traffic::Clients::new()?;
    let tally = Arc::new(tally::Tally::default());
    let pace = traffic::Pace {
        rps: args.rps,
        max_in_flight: args.max_in_flight,
        pool: args.pool,
        seed,
    };
    let redis_url = redis.url();
    let ((), samples, reloads, redis_restarts, redis_stalls) = tokio::join!(
        traffic::run(clients, &proxy.url, &tally, &pace, until),
        footprint::watch(
            pid,
            began,
            Duration::from_millis(args.sample_every_ms),
            until
        ),
        chaos::reloads(
            &proxy,
            &configs,
            Duration::from_secs_f64(args.reload_every_s),
            until
        ),
        chaos::redis_restarts(
            &mut redis,
            restart_every,
            Duration::from_millis(args.redis_down_ms),
            until
        ),
        chaos::redis_stalls(
            &redis_url,
            Duration::from_secs_f64(args.redis_stall_every_s),
            Duration::from_millis(args.redis_stall_ms),
            until
        ),
    );
    let books = tally.books();

    let alive = procs::alive(pid);
    let (ledger, quiet) = if alive {
        ledger::quiesce(&proxy, books.total_sent(), Duration::from_secs(60)).await
    } else {
        (ledger::Ledger::default(), false)
    };
    // Before traffic the proxy had not connected to Redis yet: one more.
    let quiesced = settle_fds(pid, start.fds + 1, began).await;
    let (classes, others) = store::read(
        &redis.url(),
        &prefix,
        &[traffic::Class::Exact.value(), traffic::Class::Cut.value()],
    )
    .await?;
    let log = proxy.log();
    let warmup_s = duration.as_secs_f64() * args.warmup_fraction;
    let figures = verdict::Figures {
        minutes: args.minutes,
        wall_s: began.elapsed().as_secs_f64(),
        seed,
        rps: args.rps,
        warmup_s,
        bounds: verdict::Bounds {
            rss_slope_mib: args.max_rss_slope_mib,
            rss_noise_mib: args.rss_noise_mib,
            fd_extra: args.fd_extra,
        },
        books,
        ledger,
        quiet,
        exact: classes[0],
        cut: classes[1],
        others,
        footprint: footprint::Footprint::of(start, &samples, warmup_s, quiesced),
        reloads,
        redis_restarts,
        redis_stalls,
        alive,
        panics: log
            .lines()
            .filter(|l| l.contains("panicked"))
            .map(str::to_string)
            .collect(),
    };
    if let Some(path) = &args.samples {
        let csv: String = std::iter::once("secs,rss_kib,fds\n".to_string())
            .chain(
                samples
                    .iter()
                    .map(|s| format!("{:.1},{},{}\n", s.at, s.rss_kib, s.fds)),
            )
            .collect();
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let checks = figures.checks();
    let passed = checks.iter().all(|c| c.pass);
    let text = figures.render(&checks);
    println!("{text}");
    if let Some(path) = &args.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
        if !passed {
            let mut log_path = path.clone().into_os_string();
            log_path.push(".proxy.log");
            std::fs::write(&log_path, &log)?;
        }
    }
    Ok(passed)
}

/// Waits (at most 20 s) for the proxy's open descriptors to fall to
/// `target` once the clients and the upstream pool have closed their idle
/// connections; returns the last sample.
async fn settle_fds(pid: u32, target: u64, began: Instant) -> Option<procs::Sample> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = procs::sample(pid, began.elapsed().as_secs_f64())?;
        if s.fds <= target || Instant::now() > deadline {
            return Some(s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
