//! Chaos on a schedule: the config file rewritten every few seconds,
//! valid and invalid in turn, each write checked against what the proxy
//! reports; and `redis-server` killed and started again every few minutes.

use std::time::{Duration, Instant};

use tollgate_tests::redis::Redis;

use super::config::{Configs, Write};
use super::procs;
use crate::budgets::metric_sum;
use crate::harness::{metric, ProxyProc};

/// How long the proxy may take to act on a config write.
const RELOAD_WITHIN: Duration = Duration::from_secs(10);

/// The reload writes and how the proxy took them.
#[derive(Debug, Default)]
pub(crate) struct Reloads {
    pub valid: u64,
    pub invalid: u64,
    /// Valid writes the proxy applied: a new config hash, the success
    /// counter up by one, `tollgate_config_last_reload_successful` 1.
    pub applied: u64,
    /// Invalid writes it refused: the same hash, the failure counter up by
    /// one, the gauge 0.
    pub refused: u64,
    /// What went wrong with the others.
    pub problems: Vec<String>,
}

/// Rewrites the config every `every` until `until`.
pub(crate) async fn reloads(
    proxy: &ProxyProc,
    configs: &Configs,
    every: Duration,
    until: Instant,
) -> Reloads {
    let mut out = Reloads::default();
    let mut next = Instant::now() + every;
    let mut n = 0u64;
    while next + RELOAD_WITHIN < until {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        if !procs::alive(proxy.pid()) {
            break;
        }
        let before = ReloadState::read(proxy).await;
        let (kind, text) = configs.reload(n);
        n += 1;
        proxy.write_config(&text);
        let deadline = Instant::now() + RELOAD_WITHIN;
        let after = loop {
            let now = ReloadState::read(proxy).await;
            if now.took(&before, kind) || Instant::now() > deadline {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let ok = after.took(&before, kind);
        match kind {
            Write::Valid => {
                out.valid += 1;
                out.applied += u64::from(ok);
            }
            Write::Invalid => {
                out.invalid += 1;
                out.refused += u64::from(ok);
            }
        }
        if !ok {
            out.problems.push(format!(
                "write {n} ({kind:?}): before {before:?}, {} s later {after:?}",
                RELOAD_WITHIN.as_secs()
            ));
        }
    }
    out
}

/// What the proxy says about its config.
#[derive(Debug, Clone, PartialEq)]
struct ReloadState {
    hash: String,
    successes: f64,
    failures: f64,
    last_ok: Option<f64>,
}

impl ReloadState {
    async fn read(proxy: &ProxyProc) -> ReloadState {
        let m = proxy.metrics().await;
        let reloads =
            |result| metric_sum(&m, "tollgate_config_reloads_total", &[("result", result)]);
        ReloadState {
            hash: proxy.config_hash().await,
            successes: reloads("success"),
            failures: reloads("failure"),
            last_ok: metric(&m, "tollgate_config_last_reload_successful", &[]),
        }
    }

    /// True once the proxy has taken a write of `kind` made in `before`.
    fn took(&self, before: &ReloadState, kind: Write) -> bool {
        match kind {
            Write::Valid => {
                self.hash != before.hash
                    && self.successes == before.successes + 1.0
                    && self.failures == before.failures
                    && self.last_ok == Some(1.0)
            }
            Write::Invalid => {
                self.hash == before.hash
                    && self.successes == before.successes
                    && self.failures == before.failures + 1.0
                    && self.last_ok == Some(0.0)
            }
        }
    }
}

/// Kills `redis` every `every` until `until`, keeps it down for `down`,
/// then starts it again on the same port and data; returns the number of
/// restarts. Redis runs when this returns.
pub(crate) async fn redis_restarts(
    redis: &mut Redis,
    every: Duration,
    down: Duration,
    until: Instant,
) -> u64 {
    let mut restarts = 0;
    let mut next = Instant::now() + every;
    while next + down < until {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        redis.stop();
        tokio::time::sleep(down).await;
        redis.restart().await;
        restarts += 1;
    }
    restarts
}

/// A Lua script that keeps Redis busy (it runs scripts one at a time) for
/// ARGV[1] microseconds.
const STALL: &str = "local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] \
    repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - start >= tonumber(ARGV[1]) \
    return 1";

/// Stalls Redis for `stall` every `every` until `until` (a slow disk or a
/// busy server, as the proxy's call timeout sees it); returns the number
/// of stalls. `every` zero: none.
pub(crate) async fn redis_stalls(
    url: &str,
    every: Duration,
    stall: Duration,
    until: Instant,
) -> u64 {
    if every.is_zero() {
        return 0;
    }
    let Ok(client) = redis::Client::open(url) else {
        return 0;
    };
    let mut stalls = 0;
    // Half a period out of step with the restarts, which share `every`'s scale.
    let mut next = Instant::now() + every / 2;
    while next + stall < until {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        // Redis may be down for a restart: that stall is skipped.
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        // The client may stop waiting before the script ends; Redis does not.
        let _: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(STALL)
            .arg(0)
            .arg(stall.as_micros() as u64)
            .query_async(&mut conn)
            .await;
        stalls += 1;
    }
    stalls
}
