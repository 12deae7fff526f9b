//! Cost of budget admission + settlement, in memory, through a local Redis
//! and through a local three-master Redis Cluster, and of estimating prompt
//! tokens.
//!
//! `cargo bench -p tollgate-proxy --bench budget`. The Redis groups start
//! `redis-server` on free loopback ports and are skipped (with a message)
//! when the binaries are absent. Absolute times drift on a shared machine;
//! compare runs on the same machine.

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use tollgate_proxy::api::usage::Usage;
use tollgate_proxy::api::Family;
use tollgate_proxy::budget::{AdmitRequest, BudgetEngine, Identity};

const BASE: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
metadata: {name: bench, namespace: ns, workload: api}
providers:
  - {name: openai, type: openai, passthrough: true, models: [gpt-4o-mini]}
"#;

/// One daily USD limit and one RPM limit.
const SMALL: &str = r#"
  limits: [{name: daily, scope: policy, window: day, usd: 1000000}]
  rateLimits: [{name: rpm, scope: policy, requestsPerMinute: 1000000000}]
"#;

/// Four budgets over four scopes (one rolling) and RPM + TPM per user.
const WIDE: &str = r#"
  limits:
    - {name: team, scope: header, header: x-team, window: day, usd: 1000000, tokens: 1000000000000000}
    - {name: ns, scope: namespace, window: month, usd: 1000000}
    - {name: hourly, scope: workload, window: rolling, rollingWindow: 1h, usd: 1000000}
    - {name: model, scope: model, window: hour, usd: 1000000, action: warn}
  rateLimits:
    - {name: user, scope: header, header: x-user, requestsPerMinute: 1000000000, tokensPerMinute: 1000000000}
"#;

fn engine(rt: &tokio::runtime::Runtime, store: &str, limits: &str) -> BudgetEngine {
    let cfg = tollgate_config::from_yaml_str(&format!("{BASE}budgets:\n{store}{limits}"))
        .expect("bench config")
        .budgets;
    let id = Identity {
        policy: "bench".into(),
        namespace: Some("ns".into()),
        workload: Some("api".into()),
    };
    rt.block_on(BudgetEngine::new(&cfg, &id, None))
        .expect("engine")
}

fn admit_settle(c: &mut Criterion, group: &str, rt: &tokio::runtime::Runtime, store: &str) {
    let mut headers = HeaderMap::new();
    headers.insert("x-team", "payments".parse().unwrap());
    headers.insert("x-user", "u-123".parse().unwrap());
    let usage = Usage {
        // Small, so the tokens-per-minute limit (at most 1e9) holds for
        // the hundreds of thousands of iterations a second criterion runs.
        input: 10,
        output: 6,
        ..Usage::default()
    };
    let mut g = c.benchmark_group(group);
    for (name, limits) in [("1_budget_1_rate", SMALL), ("4_budgets_2_rates", WIDE)] {
        let e = engine(rt, store, limits);
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let req = AdmitRequest {
                        headers: &headers,
                        requested_model: "gpt-4o-mini",
                        models: &["gpt-4o-mini"],
                        prompt_tokens: 10,
                        max_output_tokens: Some(6),
                    };
                    let a = e.admit(black_box(&req)).await.expect("admitted");
                    a.settle("gpt-4o-mini", &usage, false).await;
                })
            })
        });
    }
    g.finish();
}

fn memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    admit_settle(c, "budget_memory", &rt, "");
}

/// A throwaway `redis-server`, killed on drop.
struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(Redis, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Redis(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((server, port))
}

fn redis(c: &mut Criterion) {
    let Some((_server, port)) = start_redis() else {
        eprintln!("budget_redis skipped: redis-server not available");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = format!(
        "  store: {{type: redis, redis: {{url: \"redis://127.0.0.1:{port}/0\", timeout: 1s}}}}\n"
    );
    admit_settle(c, "budget_redis", &rt, &store);
}

/// The same through a Redis Cluster of three masters (the admission's keys
/// share the policy's slot, so each call is one script on one master), in
/// the same run as `budget_redis` so the two compare.
fn redis_cluster(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(cluster) = rt.block_on(tollgate_tests::redis::RedisCluster::start(3)) else {
        eprintln!("budget_redis_cluster skipped: redis-server or redis-cli not available");
        return;
    };
    let nodes: Vec<String> = cluster
        .other_urls()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect();
    let store = format!(
        "  store: {{type: redis, redis: {{url: \"{}\", cluster: true, nodes: [{}], timeout: 1s}}}}\n",
        cluster.url(),
        nodes.join(", ")
    );
    admit_settle(c, "budget_redis_cluster", &rt, &store);
}

fn estimate(c: &mut Criterion) {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(100);
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": text}
        ]
    });
    // Warm the tokenizer tables once, outside the measurement.
    BudgetEngine::estimate_prompt_tokens(Family::OpenAi, &body);
    c.bench_function("estimate_prompt_tokens/4.5KB_chat", |b| {
        b.iter(|| BudgetEngine::estimate_prompt_tokens(Family::OpenAi, black_box(&body)))
    });
}

criterion_group!(benches, memory, redis, redis_cluster, estimate);
criterion_main!(benches);
