//! What the operator does per admission review and per reconcile, without
//! the network: the pod webhook's whole handler (parse the review, find the
//! namespace and its policies in the watch caches, decide, render, build
//! the JSON patch, serialize the response) with 500 policies cached across
//! 50 namespaces; and the pure part of a reconcile (render a policy, count
//! its pods among 5,000 cached ones).
//!
//! Before criterion's own figures, prints p50/p99/p99.9 of single calls,
//! since an admission webhook's budget is a tail latency:
//!
//! ```sh
//! cargo bench -p tollgate-operator --bench admission
//! ```

use std::sync::Arc;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::json;
use tollgate_operator::conflict::{pod_counts, PodInfo};
use tollgate_operator::context::{Context, Settings, Stores};
use tollgate_operator::crd::LlmPolicy;
use tollgate_operator::metrics::Metrics;
use tollgate_operator::render::render;
use tollgate_operator::webhook::server::mutate;

const NAMESPACES: usize = 50;
const POLICIES_PER_NS: usize = 10;
const PODS_PER_NS: usize = 100;

fn policy(ns: usize, i: usize) -> LlmPolicy {
    let mut p: LlmPolicy =
        serde_saphyr::from_str(include_str!("../testdata/policy.yaml")).expect("example policy");
    p.metadata.name = Some(format!("policy-{i}"));
    p.metadata.namespace = Some(format!("ns-{ns}"));
    p.metadata.uid = Some(format!("uid-{ns}-{i}"));
    p.metadata.creation_timestamp = None;
    p.spec.pod_selector =
        serde_json::from_value(json!({"matchLabels": {"app": format!("app-{i}")}})).unwrap();
    p
}

fn pod_meta(i: usize) -> PodInfo {
    PodInfo {
        name: format!("pod-{i}"),
        labels: [("app".to_string(), format!("app-{}", i % POLICIES_PER_NS))].into(),
        annotations: Default::default(),
        eligible: true,
    }
}

/// A context whose watch caches hold the namespaces and policies; its
/// client points nowhere (the pod webhook never calls the API).
fn context() -> Arc<Context> {
    let (policies, mut pw) = reflector::store::<LlmPolicy>();
    let (namespaces, mut nw) = reflector::store::<PartialObjectMeta<Namespace>>();
    let (pods, _) = reflector::store::<PartialObjectMeta<Pod>>();
    for ns in 0..NAMESPACES {
        let mut meta = PartialObjectMeta::<Namespace>::default();
        meta.metadata.name = Some(format!("ns-{ns}"));
        meta.metadata.labels = Some([("tollgate.dev/injection".into(), "enabled".into())].into());
        nw.apply_watcher_event(&Event::Apply(meta));
        for i in 0..POLICIES_PER_NS {
            pw.apply_watcher_event(&Event::Apply(policy(ns, i)));
        }
    }
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).expect("client");
    let stores = Stores {
        policies,
        pods: Arc::new(std::sync::RwLock::new(pods)),
        namespaces,
        synced: vec![tollgate_operator::cache::Synced::already()],
    };
    Context::new(client, stores, Metrics::new(), Settings::default())
}

/// An AdmissionReview for a new pod in namespace `ns-7`, selected by one
/// of its ten policies, with two app containers.
fn review() -> Vec<u8> {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-7d9c", "namespace": "ns-7",
            "labels": {"app": "app-3", "pod-template-hash": "7d9c"}},
        "spec": {"containers": [
            {"name": "app", "image": "example.test/app:1",
             "env": [{"name": "LOG_LEVEL", "value": "info"}],
             "ports": [{"containerPort": 8080}]},
            {"name": "worker", "image": "example.test/worker:1"},
        ]},
    });
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web-7d9c", "namespace": "ns-7", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }))
    .unwrap()
}

/// The handler as the server runs it, response serialized.
fn admit(rt: &tokio::runtime::Runtime, body: &[u8], ctx: &Context) -> Vec<u8> {
    let (result, resp) = rt.block_on(mutate(body, ctx)).expect("caches are current");
    assert_eq!(result, "injected");
    serde_json::to_vec(&resp.into_review()).unwrap()
}

fn percentiles(name: &str, n: usize, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let mut t: Vec<u64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_nanos() as u64
        })
        .collect();
    t.sort_unstable();
    let q = |p: f64| t[((t.len() as f64 * p) as usize).min(t.len() - 1)] as f64 / 1000.0;
    println!(
        "{name}: n={n} p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0)
    );
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let ctx = context();
    let body = review();
    let p = policy(7, 3);
    let policies: Vec<LlmPolicy> = (0..POLICIES_PER_NS).map(|i| policy(7, i)).collect();
    let refs: Vec<&LlmPolicy> = policies.iter().collect();
    let pods: Vec<PodInfo> = (0..PODS_PER_NS).map(pod_meta).collect();

    percentiles(
        "mutate (pod admission, 500 policies cached)",
        20_000,
        || {
            black_box(admit(&rt, &body, &ctx));
        },
    );
    percentiles("render (one policy)", 20_000, || {
        black_box(render("ns-7", "policy-3", &p.spec).unwrap());
    });
    percentiles("pod_counts (10 policies, 100 pods)", 20_000, || {
        black_box(pod_counts(&p, &refs, &pods));
    });

    c.bench_function("mutate_pod_500_policies", |b| {
        b.iter(|| admit(&rt, black_box(&body), &ctx))
    });
    c.bench_function("render_policy", |b| {
        b.iter(|| render("ns-7", "policy-3", black_box(&p.spec)).unwrap())
    });
    c.bench_function("pod_counts_10_policies_100_pods", |b| {
        b.iter(|| pod_counts(black_box(&p), &refs, &pods))
    });
}

criterion_group!(admission, benches);
criterion_main!(admission);
