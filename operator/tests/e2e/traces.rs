//! The operator's traces reach a real collector (Jaeger): a `reconcile`
//! span per reconcile and an `admission` span per review, tagged with the
//! policy or object they were about, under service `tollgate-operator`
//! with the pod and namespace as resource attributes; its JSON log lines
//! inside those spans carry the same trace id; and injected sidecars get
//! the variables that send their own traces on.
//!
//! Needs the Jaeger binary too (`tests/trace/build-jaeger.sh`); skipped
//! without it unless `TOLLGATE_REQUIRE_JAEGER` is set.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;
use serde_json::Value;
use tollgate_operator::crd::LlmPolicy;
use tollgate_tests::jaeger::{Jaeger, Trace};

use crate::*;

const NS: &str = "e2e-traces";
const SERVICE: &str = "tollgate-operator";

/// The first span named `name` whose tags include all of `tags`, with its
/// trace.
fn find<'t>(
    traces: &'t [Trace],
    name: &str,
    tags: &[(&str, &str)],
) -> Option<(&'t Trace, tollgate_tests::jaeger::Span<'t>)> {
    traces.iter().find_map(|t| {
        t.named(name)
            .into_iter()
            .find(|s| {
                tags.iter()
                    .all(|(k, v)| s.tag_str(k).as_deref() == Some(*v))
            })
            .map(|s| (t, s))
    })
}

/// Jaeger may print a trace id without its leading zeros.
fn same_trace(a: &str, b: &str) -> bool {
    a.trim_start_matches('0') == b.trim_start_matches('0')
}

#[tokio::test]
async fn reconciles_and_admissions_are_traced() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let Some(jaeger) = Jaeger::start().await else {
        return;
    };
    let client = client().await;
    namespace(&client, NS).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("operator.log");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.grpc_url()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        // Batches go within a fifth of a second, not the default five.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ("TOLLGATE_LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info,kube=warn".into()),
    ];
    let op = Launch {
        pod_name: Some("tollgate-operator-traced"),
        env: env.map(|(k, v)| (k.to_string(), v)).to_vec(),
        log: Some(log.clone()),
        args: [
            "--sidecar-otlp-endpoint=http://otel-collector.observability:4317",
            "--sidecar-otlp-protocol=grpc",
            "--sidecar-trace-sample-ratio=0.5",
        ]
        .map(String::from)
        .to_vec(),
        ..Launch::new("e2e-traces", NS)
    }
    .start(&client)
    .await;

    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), NS);
    create_policy(&policies, &policy(NS)).await;
    wait_policy(&policies, "chat", "Ready", ready(None)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = pods
        .create(&PostParams::default(), &app_pod("traced", "chat"))
        .await
        .unwrap();
    assert!(injected(&pod));

    // The sidecar's variables, as the API server accepted and stored them.
    let sidecar = &pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
    let vars: BTreeMap<String, String> = sidecar
        .env
        .iter()
        .flatten()
        .map(|e| {
            let value = e.value.clone().or_else(|| {
                let f = e.value_from.as_ref()?.field_ref.as_ref()?;
                Some(format!("fieldRef:{}", f.field_path))
            });
            (e.name.clone(), value.unwrap_or_default())
        })
        .collect();
    let want: BTreeMap<String, String> = [
        ("TOLLGATE_POD_NAME", "fieldRef:metadata.name"),
        ("TOLLGATE_POD_NAMESPACE", "fieldRef:metadata.namespace"),
        ("OTEL_SERVICE_NAME", "tollgate-proxy"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "k8s.pod.name=$(TOLLGATE_POD_NAME),k8s.namespace.name=$(TOLLGATE_POD_NAMESPACE),k8s.container.name=tollgate-proxy",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://otel-collector.observability:4317",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(vars, want);

    let reconcile = [("policy", "chat"), ("namespace", NS), ("result", "success")];
    let validate = [
        ("webhook", "validate"),
        ("kind", "LlmPolicy"),
        ("operation", "CREATE"),
        ("namespace", NS),
        ("name", "chat"),
        ("result", "allowed"),
        ("allowed", "true"),
    ];
    let mutate = [
        ("webhook", "mutate"),
        ("kind", "Pod"),
        ("operation", "CREATE"),
        ("namespace", NS),
        ("name", "traced"),
        ("result", "injected"),
        ("allowed", "true"),
    ];
    let traces = jaeger
        .wait_for(SERVICE, |t| {
            find(t, "reconcile", &reconcile).is_some()
                && find(t, "admission", &validate).is_some()
                && find(t, "admission", &mutate).is_some()
        })
        .await;

    // Each span is the root of its own trace, and its `trace_id` field
    // (what log lines show) is that trace's id.
    let (t, span) = find(&traces, "reconcile", &reconcile).unwrap();
    assert_eq!(span.parent(), None, "{:?}", t.summary());
    assert!(same_trace(&span.tag_str("trace_id").unwrap(), t.id()));
    // Resource attributes: the service and where the replica runs.
    let process = &t.0["processes"][span.v["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], SERVICE);
    let tags: BTreeMap<&str, &Value> = process["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["key"].as_str().unwrap(), &t["value"]))
        .collect();
    assert_eq!(
        tags.get("k8s.pod.name").copied(),
        Some(&Value::from("tollgate-operator-traced"))
    );
    assert_eq!(
        tags.get("k8s.namespace.name").copied(),
        Some(&Value::from(NS))
    );

    // The log line written while injecting carries the admission's trace id.
    let (t, _) = find(&traces, "admission", &mutate).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "injected" && l["pod"] == "traced")
        .unwrap_or_else(|| panic!("no `injected` log line:\n{text}"));
    let id = line["span"]["trace_id"].as_str().unwrap_or_default();
    assert!(
        same_trace(id, t.id()),
        "log {id} vs trace {}: {line}",
        t.id()
    );

    // Nothing secret in any span: the Secret's values and the keys' paths.
    let raw = jaeger
        .raw(&format!(
            "/api/traces?service={SERVICE}&limit=1000&lookback=1h"
        ))
        .await;
    assert!(!raw.contains("sk-test"), "a Secret value in a span");

    // And the operator counts what it exported.
    let exported = eventually("exported spans counted", WAIT, || async {
        op.metric("tollgate_operator_trace_spans_total{result=\"exported\"}")
            .await
            .filter(|n| *n > 0.0)
    })
    .await;
    assert!(exported >= 3.0, "{exported}");
    assert_eq!(
        op.metric("tollgate_operator_trace_spans_total{result=\"export_failed\"}")
            .await,
        Some(0.0)
    );

    drop(op);
    cleanup(&client, "e2e-traces", NS).await;
}
