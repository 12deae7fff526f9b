//! The typed `LlmPolicy` against a real API server: `kubectl explain`
//! describes `spec.cache` and `spec.pii` (the published OpenAPI schema),
//! every example policy is accepted with strict field validation, a typo
//! is refused strictly and dropped with a warning otherwise, names are
//! unique per list map, and the two admission warnings (no PII filtering
//! in a personal-data namespace, a sidecar without a memory limit) reach
//! the client in the `Warning` header, at policy and at pod admission.

use std::path::Path;

use http::{header, Request, StatusCode};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{json, Value};
use tollgate_operator::crd::LlmPolicy;

use crate::*;

/// The API server's answer to `req`: status, warnings and body.
async fn send(client: &Client, req: Request<Vec<u8>>) -> (StatusCode, Vec<String>, Value) {
    let resp = client.send(req.map(Body::from)).await.unwrap();
    let status = resp.status();
    let warnings = resp
        .headers()
        .get_all(header::WARNING)
        .iter()
        .map(|v| warning_text(v.to_str().unwrap()))
        .collect();
    let body = resp.into_body().collect_bytes().await.unwrap();
    (
        status,
        warnings,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// The text of a `Warning` header value (`299 - "text"`, quotes escaped).
fn warning_text(header: &str) -> String {
    let quoted = header.strip_prefix("299 - ").unwrap_or(header);
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(quoted);
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// POSTs `object` (JSON as written: no typed round trip that would drop
/// fields) to `path` with `fieldValidation=<validation>`, retrying while
/// the validating webhook is not yet reachable.
async fn create(
    client: &Client,
    path: &str,
    validation: &str,
    object: &Value,
) -> (StatusCode, Vec<String>, Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let req = Request::post(format!("{path}?fieldValidation={validation}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(object).unwrap())
            .unwrap();
        let answer = send(client, req).await;
        let starting = answer.2["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed calling webhook"));
        if !starting || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn policies_path(ns: &str) -> String {
    format!("/apis/tollgate.dev/v1alpha1/namespaces/{ns}/llmpolicies")
}

/// Every LlmPolicy a user is shown, as written: the test fixture, every
/// file of `examples/k8s`, and the first policy of the chart's NOTES.
fn example_policies() -> Vec<(String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut texts = vec![(
        "operator/testdata/policy.yaml".to_string(),
        std::fs::read_to_string(root.join("operator/testdata/policy.yaml")).unwrap(),
    )];
    let mut files: Vec<_> = std::fs::read_dir(root.join("examples/k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let name = format!("examples/k8s/{}", f.file_name().unwrap().to_string_lossy());
        texts.push((name, std::fs::read_to_string(&f).unwrap()));
    }
    let notes = std::fs::read_to_string(root.join("charts/tollgate/templates/NOTES.txt")).unwrap();
    let start = notes.find("cat <<'POLICY'").expect("NOTES has a policy");
    let body: String = notes[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim() != "POLICY")
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    texts.push(("charts/tollgate/templates/NOTES.txt".into(), body));
    let mut out = Vec::new();
    for (at, text) in texts {
        for v in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
            if v["kind"] == "LlmPolicy" {
                out.push((at.clone(), v));
            }
        }
    }
    out
}

/// What `kubectl explain llmpolicy.spec.cache` reads: the API server's
/// OpenAPI v3 document for the group, with a description for every field
/// of `spec.cache` and `spec.pii`; and the `tollgate` category.
#[tokio::test]
async fn the_api_server_explains_cache_and_pii() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    // The published document follows the CRD within seconds of its install.
    let spec = eventually("the OpenAPI schema of LlmPolicy", WAIT, || async {
        let req = Request::get("/openapi/v3/apis/tollgate.dev/v1alpha1")
            .body(Vec::new())
            .unwrap();
        let (status, _, doc) = send(&client, req).await;
        let spec = doc["components"]["schemas"]["dev.tollgate.v1alpha1.LlmPolicy"]["properties"]
            ["spec"]
            .clone();
        (status == StatusCode::OK && spec["properties"]["pii"]["properties"].is_object())
            .then_some(spec)
    })
    .await;
    fn described(s: &Value, at: &str, n: &mut usize) {
        for (k, p) in s["properties"].as_object().into_iter().flatten() {
            let at = format!("{at}.{k}");
            let d = p["description"].as_str().unwrap_or_default();
            assert!(!d.is_empty(), "{at} has no description");
            *n += 1;
            described(p, &at, n);
            described(&p["items"], &at, n);
            described(&p["additionalProperties"], &at, n);
        }
    }
    for section in ["cache", "pii"] {
        let s = &spec["properties"][section];
        let mut n = 0;
        described(s, &format!("spec.{section}"), &mut n);
        assert!(n >= 20, "spec.{section}: {n} fields described");
    }
    assert_eq!(
        spec["properties"]["cache"]["properties"]["store"]["properties"]["type"]["enum"],
        json!(["memory", "redis"])
    );
    assert!(
        spec["properties"]["pii"]["properties"]["entities"]["description"]
            .as_str()
            .unwrap()
            .contains("built-in type")
    );

    let req = Request::get("/apis/tollgate.dev/v1alpha1")
        .body(Vec::new())
        .unwrap();
    let (_, _, list) = send(&client, req).await;
    let r = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "llmpolicies")
        .unwrap();
    assert_eq!(r["categories"], json!(["tollgate"]), "kubectl get tollgate");
}

/// Backward compatible: every example applies with strict field
/// validation (kubectl's default) and the webhook admits it. A typo is
/// refused strictly and, under `warn`, dropped with the API server's
/// warning; duplicate names and unknown entity types are refused.
#[tokio::test]
async fn examples_apply_strictly_and_typos_are_named() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-typed";
    namespace(&client, ns).await;
    let _op = Launch::new("e2e-typed", ns).start(&client).await;
    let path = policies_path(ns);

    let examples = example_policies();
    assert!(examples.len() >= 13, "{}", examples.len());
    for (i, (at, p)) in examples.iter().enumerate() {
        let mut p = p.clone();
        p["metadata"]["name"] = json!(format!("example-{i}"));
        let (status, _, answer) = create(&client, &path, "Strict", &p).await;
        assert_eq!(status, StatusCode::CREATED, "{at}: {answer}");
    }

    // A typo in spec.cache: strict refuses it, naming the field.
    let mut typo = serde_json::to_value(policy(ns)).unwrap();
    typo["metadata"]["name"] = json!("typo");
    typo["spec"]["cache"] = json!({"ttl": "1m", "tll": "2m"});
    let (status, _, answer) = create(&client, &path, "Strict", &typo).await;
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(status.is_client_error(), "{status}: {answer}");
    assert!(
        message.contains("unknown field \"spec.cache.tll\""),
        "{message}"
    );
    // Under `warn` (a client that asks for nothing gets it too) it is
    // dropped, and said so in a Warning header.
    let (status, warnings, answer) = create(&client, &path, "Warn", &typo).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("unknown field \"spec.cache.tll\"")),
        "{warnings:?}"
    );
    assert_eq!(answer["spec"]["cache"], json!({"ttl": "1m"}), "pruned");

    // The schema's own rules, which the API server checks before the
    // webhook: a duplicate name in a list map, a type the proxy lacks.
    let mut dup = serde_json::to_value(policy(ns)).unwrap();
    dup["metadata"]["name"] = json!("dup");
    dup["spec"]["routes"][1]["name"] = json!("chat-default");
    let (status, _, answer) = create(&client, &path, "Strict", &dup).await;
    assert!(status.is_client_error(), "{status}: {answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.routes[1]") && message.contains("Duplicate value"),
        "{message}"
    );
    let mut entity = serde_json::to_value(policy(ns)).unwrap();
    entity["metadata"]["name"] = json!("entity");
    entity["spec"]["pii"] = json!({"entities": {"emial": {"action": "block"}}});
    let (status, _, answer) = create(&client, &path, "Strict", &entity).await;
    assert!(status.is_client_error(), "{status}: {answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("unknown entity type"), "{message}");
    // What only the proxy's rules know is the webhook's: named at its field.
    let mut regex = serde_json::to_value(policy(ns)).unwrap();
    regex["metadata"]["name"] = json!("regex");
    regex["spec"]["pii"] = json!({"custom": [{"name": "ticket", "regex": "("}]});
    let (status, _, answer) = create(&client, &path, "Strict", &regex).await;
    assert!(status.is_client_error(), "{status}: {answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.pii.custom[0].regex: does not compile"),
        "{message}"
    );

    cleanup(&client, "e2e-typed", ns).await;
}

/// The two warnings of issue 23, as the client receives them: a policy
/// without PII filtering in a namespace labelled as handling personal
/// data, and a sidecar without a memory limit (at the policy's admission,
/// and at the injection into a pod created directly).
#[tokio::test]
async fn personal_data_and_memory_limit_warnings_reach_the_client() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-warnings";
    namespace(&client, ns).await;
    // Labelled before the operator starts, so its first list has it.
    let label = json!({"metadata": {"labels": {"tollgate.dev/personal-data": "true"}}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let _op = Launch::new("e2e-warnings", ns).start(&client).await;
    let path = policies_path(ns);

    // The example: no spec.pii, and a sidecar with requests but no limits.
    let mut p = serde_json::to_value(policy(ns)).unwrap();
    p["spec"]["budgets"] = Value::Null;
    let (status, warnings, answer) = create(&client, &path, "Strict", &p).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w.contains(
            "spec.pii: no PII filtering (the section is not set) although the namespace is labelled tollgate.dev/personal-data=true"
        )),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("spec.sidecar.resources: no memory limit")),
        "{warnings:?}"
    );

    // Injected into a pod created directly, the sidecar's missing limit is
    // said to whoever creates it. (The pod webhook decides from its watch
    // of policies: a pod created before the policy reached it is let
    // through uninjected, and another one is tried.)
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    wait_policy(&policies, "chat", "Ready", ready(None)).await;
    let pods = format!("/api/v1/namespaces/{ns}/pods");
    let mut tries = 0;
    let warnings = eventually("a pod injected", WAIT, || {
        tries += 1;
        let pod = serde_json::to_value(app_pod(&format!("direct-{tries}"), "chat")).unwrap();
        let (client, pods) = (client.clone(), pods.clone());
        async move {
            let (status, warnings, answer) = create(&client, &pods, "Strict", &pod).await;
            assert_eq!(status, StatusCode::CREATED, "{answer}");
            (answer["spec"]["initContainers"][0]["name"] == "tollgate-proxy").then_some(warnings)
        }
    })
    .await;
    assert_eq!(
        warnings,
        ["tollgate: container tollgate-proxy has no memory limit (LlmPolicy chat, spec.sidecar.resources): set limits.memory"]
    );

    // PII filtering on and a memory limit: admitted without a warning.
    let mut p = p.clone();
    p["metadata"]["name"] = json!("filtered");
    p["spec"]["podSelector"] = json!({"matchLabels": {"app": "filtered"}});
    p["spec"]["pii"] = json!({"action": "mask"});
    p["spec"]["sidecar"]["resources"]["limits"] = json!({"memory": "256Mi"});
    let (status, warnings, answer) = create(&client, &path, "Strict", &p).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(warnings, Vec::<String>::new());

    cleanup(&client, "e2e-warnings", ns).await;
}
