//! `saturate`: the most a target serves.
//!
//! A closed loop: `--concurrency` requests are always in flight per target
//! (each worker sends its next request as soon as the last one answered)
//! for `--duration-s`, and the answered requests per second are the
//! throughput. Targets alternate in rounds as in `rate` (A B C, C B A, …),
//! and each phase reports the CPU its target's processes used and how long
//! their threads waited for one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use tokio::task::JoinSet;

use crate::cpu::CpuWatch;
use crate::{
    client, exchange, nanos, parse_targets, pcts, templates, PerTarget, RequestSpec, Template,
};

#[derive(Args, Debug)]
pub(crate) struct SaturateArgs {
    /// `NAME=URL` of a chat-completions endpoint (repeatable).
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Requests in flight at all times, per target.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Length of one measured phase (one target, one round).
    #[arg(long, default_value_t = 3.0)]
    duration_s: f64,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Unrecorded traffic per target before the first round.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    #[arg(long, default_value_t = 10000)]
    timeout_ms: u64,
    #[arg(long)]
    stream: bool,
    #[command(flatten)]
    per_target: PerTarget,
}

pub(crate) async fn run(req: &RequestSpec, a: SaturateArgs) -> anyhow::Result<()> {
    let targets = parse_targets(&a.targets)?;
    let clients: Vec<_> = targets.iter().map(|_| client(a.concurrency)).collect();
    let templates = templates(req, &targets, a.stream, &a.per_target)?;
    let cpu = CpuWatch::new(&a.per_target.pids, &targets)?;
    let timeout = Duration::from_millis(a.timeout_ms);
    let templates: Vec<Arc<Template>> = templates.into_iter().map(Arc::new).collect();
    let phase = |i: usize, secs: f64| {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut set = JoinSet::new();
        for _ in 0..a.concurrency {
            let (client, template) = (clients[i].clone(), templates[i].clone());
            let stream = a.stream;
            set.spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < deadline {
                    let r = template.request();
                    let t0 = Instant::now();
                    match tokio::time::timeout(timeout, exchange(&client, r, stream)).await {
                        Ok(Some(_)) => lat.push(nanos(t0.elapsed())),
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            });
        }
        async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while let Some(r) = set.join_next().await {
                if let Ok((l, e)) = r {
                    lat.extend(l);
                    errors += e;
                }
            }
            (lat, errors)
        }
    };
    for i in 0..targets.len() {
        phase(i, a.warmup_s).await;
    }
    for round in 0..a.rounds {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (before, waited) = (cpu.read(i), cpu.read_wait(i));
            let t0 = Instant::now();
            let (lat, errors) = phase(i, a.duration_s).await;
            // Workers finish the request in flight at the deadline: divide
            // by the time the phase really took.
            let secs = t0.elapsed().as_secs_f64();
            let ok = lat.len();
            println!(
                "{}",
                json!({"mode": "saturate", "round": round, "target": targets[i].0,
                       "concurrency": a.concurrency,
                       "stats": {"ok": ok, "errors": errors, "secs": secs,
                                 "achieved_rps": ok as f64 / secs,
                                 "latency_us": pcts(lat),
                                 "cpu_s": cpu.since(i, before),
                                 "runq_wait_s": cpu.wait_since(i, waited)}})
            );
        }
    }
    Ok(())
}
