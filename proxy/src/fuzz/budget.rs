//! Budget accounting driven by bytes: a sequence of admissions,
//! settlements (below, at or above the reservation), releases and clock
//! jumps, run against the memory store and — when a Redis URL is given —
//! against the Redis store's Lua scripts at the same time.
//!
//! Every decision is checked against a model of the documented rule (a
//! request is admitted when `spent + reserved + worst case <= limit` on
//! every limit) and every admission's `x-tollgate-budget-remaining-usd`
//! against the model's counters; the two stores must agree step by step.
//! At each step the model's spend obeys the README's overshoot bound: a
//! window's spend exceeds its limit by at most the sum of `actual -
//! reservation`, where positive, over the requests in flight at that
//! window's last admission.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::api::usage::Usage;
use crate::budget::fixtures::{budgets, headers, identity};
use crate::budget::{Admission, AdmitRequest, BudgetEngine, Clock, FakeClock, SystemClock};

/// m1's prices (`budget::fixtures`): nano-USD per input and output token.
const IN_NANO: u64 = 1_000;
const OUT_NANO: u64 = 2_000;
const DAY_MS: i64 = 86_400_000;

/// Runs the scenario `data` encodes; with `TOLLGATE_FUZZ_REDIS_URL` set,
/// against Redis too (a server of its own: every input flushes it).
pub fn budget_stores(data: &[u8]) {
    let redis = std::env::var("TOLLGATE_FUZZ_REDIS_URL").ok();
    runtime().block_on(run(&Scenario::decode(data), redis.as_deref()));
}

/// [`budget_stores`] against the memory store, and Redis at `redis`.
#[cfg(test)]
pub(crate) fn budget_stores_with(data: &[u8], redis: Option<&str>) {
    runtime().block_on(run(&Scenario::decode(data), redis));
}

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// Per team, per day (cents).
    team_cents: u64,
    /// All teams, per day.
    tokens: u64,
    ops: Vec<Op>,
}

#[derive(Debug, Clone)]
enum Op {
    Admit {
        team: usize,
        prompt: u64,
        max_out: u64,
    },
    /// Settles the in-flight request `which` (modulo their number) with
    /// usage scaled from its reservation by `in_x`/`out_x` (in 64ths).
    Settle {
        which: usize,
        in_x: u64,
        out_x: u64,
    },
    Release {
        which: usize,
    },
    Advance {
        ms: i64,
    },
}

impl Scenario {
    pub(crate) fn decode(data: &[u8]) -> Scenario {
        let b = |i: usize| u64::from(data.get(i).copied().unwrap_or(0));
        let ops = data
            .get(2..)
            .unwrap_or_default()
            .chunks(4)
            .take(64)
            .map(|c| {
                let x = |i: usize| u64::from(c.get(i).copied().unwrap_or(0));
                match x(0) % 4 {
                    0 => Op::Admit {
                        team: (x(1) % 2) as usize,
                        prompt: x(2) * 20,
                        max_out: x(3) * 10 + 1,
                    },
                    1 => Op::Settle {
                        which: x(1) as usize,
                        in_x: x(2) % 129,
                        out_x: x(3) % 129,
                    },
                    2 => Op::Release {
                        which: x(1) as usize,
                    },
                    _ => Op::Advance {
                        ms: (x(1) * 15 * 60_000 + x(2) * 1_000) as i64,
                    },
                }
            })
            .collect();
        Scenario {
            team_cents: b(0) % 32 + 1,
            tokens: (b(1) % 64 + 1) * 2_000,
            ops,
        }
    }

    /// The lease outlasts any scenario (64 advances of at most ~64 h each,
    /// ~170 days): Redis expires a dead proxy's reservations after it, the
    /// memory store's die with the process, so past it the stores rightly
    /// differ.
    fn config(&self, store: &str) -> String {
        format!(
            "{store}  reservation: {{leaseTimeout: 8760h}}\n  limits:\n    - {{name: team-usd, scope: header, header: x-team, window: day, usd: {}.{:02}}}\n    - {{name: all-tokens, scope: policy, window: day, tokens: {}}}\n",
            self.team_cents / 100,
            self.team_cents % 100,
            self.tokens
        )
    }
}

/// One request as the model sees it.
struct Flight {
    team: usize,
    usd: u64,
    tokens: u64,
    /// The admissions of each store, settled together.
    held: Vec<Admission>,
}

/// The model: spend per (day, team) and tokens per day, reservations.
#[derive(Default)]
struct Model {
    spent_usd: HashMap<(i64, usize), u64>,
    spent_tokens: HashMap<i64, u64>,
    reserved_usd: [u64; 2],
    reserved_tokens: u64,
    /// Per (day, team) counter: the flights of that team in flight at
    /// its last admission.
    last_admission: HashMap<(i64, usize), Vec<usize>>,
    /// Per settled flight: `actual - reservation`, where positive.
    overshoot: HashMap<usize, u64>,
}

async fn run(s: &Scenario, redis: Option<&str>) {
    // Noon today: Redis expires keys by its own clock, so the scenario's
    // days must not lie in the past.
    let today = SystemClock.now_ms().div_euclid(DAY_MS);
    let clock = Arc::new(FakeClock::new(today * DAY_MS + DAY_MS / 2));
    let mut engines = vec![engine(&s.config(""), clock.clone()).await];
    if let Some(url) = redis {
        // The server is this target's own: each input starts from nothing.
        let client = ::redis::Client::open(url).expect("a Redis URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        ::redis::cmd("FLUSHDB")
            .query_async::<()>(&mut conn)
            .await
            .expect("FLUSHDB");
        // The longest timeout allowed: the fuzzer and its redis-server run at a low
        // priority beside other work, and a call that times out fails open
        // (admitted without headers), which this target would report as
        // the stores disagreeing. Once, with 2 s, it did.
        let store = format!(
            "  store: {{type: redis, redis: {{url: \"{url}\", keyPrefix: fz, timeout: 10s}}}}\n"
        );
        engines.push(engine(&s.config(&store), clock.clone()).await);
    }
    let team_limit = s.team_cents * 10_000_000;
    let mut m = Model::default();
    let mut flights: Vec<Option<Flight>> = Vec::new();
    for (step, op) in s.ops.iter().enumerate() {
        let day = clock.now_ms().div_euclid(DAY_MS);
        match *op {
            Op::Admit {
                team,
                prompt,
                max_out,
            } => {
                let usd = prompt * IN_NANO + max_out * OUT_NANO;
                let tokens = prompt + max_out;
                let spent = m.spent_usd.get(&(day, team)).copied().unwrap_or(0);
                let spent_tokens = m.spent_tokens.get(&day).copied().unwrap_or(0);
                let fits = spent + m.reserved_usd[team] + usd <= team_limit
                    && spent_tokens + m.reserved_tokens + tokens <= s.tokens;
                let h = headers(&[("x-team", ["red", "blue"][team])]);
                let req = AdmitRequest {
                    headers: &h,
                    requested_model: "m1",
                    models: &["m1"],
                    prompt_tokens: prompt,
                    max_output_tokens: Some(max_out),
                };
                let mut held = Vec::new();
                for (i, e) in engines.iter().enumerate() {
                    let got = e.admit(&req).await;
                    assert_eq!(
                        got.is_ok(),
                        fits,
                        "store {i}, step {step}: admission of {op:?} in {s:?}"
                    );
                    if let Ok(a) = got {
                        let left = team_limit - spent - m.reserved_usd[team] - usd;
                        assert_eq!(
                            remaining_usd(&a),
                            Some(format!(
                                "{}.{:06}",
                                left / 1_000_000_000,
                                left / 1_000 % 1_000_000
                            )),
                            "store {i}: remaining USD after {op:?}"
                        );
                        held.push(a);
                    }
                }
                if fits {
                    m.reserved_usd[team] += usd;
                    m.reserved_tokens += tokens;
                    flights.push(Some(Flight {
                        team,
                        usd,
                        tokens,
                        held,
                    }));
                    let open = (0..flights.len())
                        .filter(|&i| flights[i].as_ref().is_some_and(|f| f.team == team))
                        .collect();
                    m.last_admission.insert((day, team), open);
                }
            }
            Op::Settle { which, in_x, out_x } => {
                let Some(i) = nth_open(&flights, which) else {
                    continue;
                };
                let f = flights[i].take().expect("open");
                // Usage scaled from the reservation: up to twice as much.
                let input = f.usd / IN_NANO / 2 * in_x / 64;
                let output = f.usd / OUT_NANO / 2 * out_x / 64;
                let cost = input * IN_NANO + output * OUT_NANO;
                let usage = Usage {
                    input,
                    output,
                    ..Usage::default()
                };
                for a in f.held {
                    a.settle("m1", &usage, false).await;
                }
                m.reserved_usd[f.team] -= f.usd;
                m.reserved_tokens -= f.tokens;
                *m.spent_usd.entry((day, f.team)).or_default() += cost;
                *m.spent_tokens.entry(day).or_default() += input + output;
                m.overshoot.insert(i, cost.saturating_sub(f.usd));
            }
            Op::Release { which } => {
                let Some(i) = nth_open(&flights, which) else {
                    continue;
                };
                let f = flights[i].take().expect("open");
                for a in f.held {
                    a.release().await;
                }
                m.reserved_usd[f.team] -= f.usd;
                m.reserved_tokens -= f.tokens;
            }
            Op::Advance { ms } => clock.advance(ms),
        }
        // The overshoot bound, for each window with an admission.
        for ((d, team), spent) in &m.spent_usd {
            let Some(open) = m.last_admission.get(&(*d, *team)) else {
                continue;
            };
            let bound: u64 = open.iter().filter_map(|i| m.overshoot.get(i)).sum();
            assert!(
                *spent <= team_limit + bound,
                "day {d} team {team}: spent {spent} > limit {team_limit} + bound {bound}"
            );
        }
    }
    // Everything still in flight is released with the engines.
    drop(flights);
    drop(engines);
}

fn nth_open(flights: &[Option<Flight>], which: usize) -> Option<usize> {
    let open: Vec<usize> = (0..flights.len())
        .filter(|&i| flights[i].is_some())
        .collect();
    (!open.is_empty()).then(|| open[which % open.len()])
}

fn remaining_usd(a: &Admission) -> Option<String> {
    a.headers()
        .into_iter()
        .find(|(n, _)| n == "x-tollgate-budget-remaining-usd")
        .map(|(_, v)| v.to_str().expect("ASCII").to_string())
}

async fn engine(body: &str, clock: Arc<FakeClock>) -> BudgetEngine {
    BudgetEngine::with_clock(&budgets(body), &identity(), None, clock)
        .await
        .expect("the scenario's config is valid")
}
