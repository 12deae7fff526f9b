use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::config::render_all;
use super::explain::explain;
use super::*;
use crate::context::Settings;
use crate::render::render;
use crate::webhook::validate::verdict;

const POLICY: &str = include_str!("../../testdata/policy.yaml");

fn policy(name: &str, created_secs: Option<i64>, selector: &str) -> LlmPolicy {
    let mut p: LlmPolicy = serde_saphyr::from_str(POLICY).unwrap();
    p.metadata.name = Some(name.into());
    p.spec.pod_selector = serde_saphyr::from_str(selector).unwrap();
    p.metadata.creation_timestamp =
        created_secs.map(|s| Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap()));
    p
}

fn pod_yaml(extra_metadata: &str) -> Pod {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\n  namespace: team-a\n{extra_metadata}spec:\n  containers:\n    - {{name: app, image: app:1}}\n"
    );
    pod("pod.yaml", &text).unwrap()
}

fn enabled() -> BTreeMap<String, String> {
    labels("tollgate.dev/injection=enabled").unwrap()
}

// === input ===

#[test]
fn policies_skip_other_kinds_and_spread_lists() {
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: llm-keys}}\n---\n---\n{POLICY}\n---\nkind: List\nitems:\n{}",
        POLICY
            .lines()
            .filter(|l| !l.starts_with('#'))
            .enumerate()
            .map(|(i, l)| if i == 0 { format!("  - {l}\n") } else { format!("    {l}\n") })
            .collect::<String>()
    );
    let (ps, notes) = policies("in.yaml", &text).unwrap();
    assert_eq!(ps.len(), 2);
    assert!(ps
        .iter()
        .all(|p| p.metadata.name.as_deref() == Some("chat")));
    assert_eq!(
        notes,
        ["in.yaml: document 1: skipped Secret llm-keys, not an LlmPolicy"]
    );
}

#[test]
fn policy_errors_name_the_document_and_field() {
    let e = policies("in.yaml", "kind: ConfigMap\n").unwrap_err();
    assert_eq!(e.to_string(), "in.yaml: no LlmPolicy in it");
    let bad = POLICY.replace("type: anthropic", "type: antropic");
    let e = policies("in.yaml", &bad).unwrap_err().to_string();
    assert!(
        e.starts_with("in.yaml: document 1: spec.providers[1].type: unknown variant `antropic`"),
        "{e}"
    );
}

/// A typo would be dropped by the typed spec (and by the API server): it is
/// named instead, as `kubectl apply` names it.
#[test]
fn fields_the_crd_lacks_are_named() {
    let bad = POLICY.replace("  sidecar:\n", "  cache: {ttl: 1m, tll: 2m}\n  sidecar:\n");
    assert_ne!(bad, POLICY);
    let e = policies("in.yaml", &bad).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "in.yaml: document 1: unknown field \"spec.cache.tll\" (not in the LlmPolicy CRD"
        ),
        "{e}"
    );
}

#[test]
fn pod_from_a_pod_or_a_workload_template() {
    let p = pod_yaml("");
    assert_eq!(p.metadata.name.as_deref(), Some("app"));
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: team-b}\nspec:\n  template:\n    metadata: {labels: {app: chat}}\n    spec: {containers: [{name: app, image: app:1}]}\n";
    let p = pod("d.yaml", deploy).unwrap();
    assert_eq!(p.metadata.namespace.as_deref(), Some("team-b"));
    assert_eq!(p.metadata.name.as_deref(), Some("web (template)"));
    assert_eq!(p.metadata.labels.unwrap()["app"], "chat");
    let two = format!("{deploy}---\n{deploy}");
    assert_eq!(
        pod("d.yaml", &two).unwrap_err().to_string(),
        "d.yaml: 2 Pods in it; explain one at a time"
    );
}

#[test]
fn labels_and_namespaces() {
    assert_eq!(
        labels("a=1, b=").unwrap(),
        BTreeMap::from([("a".into(), "1".into()), ("b".into(), String::new())])
    );
    assert!(labels("").unwrap().is_empty());
    assert!(matches!(labels("a"), Err(Error::Label(l)) if l == "a"));
    assert_eq!(namespace(Some("x"), Some("y")), "x");
    assert_eq!(namespace(None, Some("y")), "y");
    assert_eq!(namespace(None, None), "default");
}

// === render ===

#[test]
fn render_prints_the_configmap_bytes_and_secret_references() {
    let p = policy("chat", None, "matchLabels: {app: chat}");
    let out = render_all(
        std::slice::from_ref(&p),
        Some("team-a"),
        &Settings::default(),
    );
    assert!(!out.denied, "{:?}", out.stderr);
    let r = render("team-a", "chat", &p.spec).unwrap();
    assert!(out.stdout.ends_with(&r.yaml), "the reconcile's bytes");
    assert!(out.stdout.starts_with(&format!(
        "# ConfigMap team-a/tollgate-chat, key config.yaml; config hash {}\n",
        r.hash
    )));
    assert!(out.stdout.contains(
        "#   /var/run/secrets/tollgate/llm-keys/openai <- Secret team-a/llm-keys, key openai\n"
    ));
    tollgate_config::from_yaml_str(&out.stdout).unwrap();
    // The webhook's admission warnings: the memory store's per-pod
    // budgets, and a sidecar with requests but no memory limit.
    assert_eq!(out.stderr.len(), 2, "{:?}", out.stderr);
    assert!(
        out.stderr[0].starts_with("warning: LlmPolicy team-a/chat: spec.budgets: no shared store")
    );
    assert!(out.stderr[1]
        .starts_with("warning: LlmPolicy team-a/chat: spec.sidecar.resources: no memory limit"));
}

#[test]
fn render_applies_sidecar_defaults_as_the_operator_does() {
    let mut p = policy("chat", None, "matchLabels: {app: chat}");
    p.spec.sidecar.as_mut().unwrap().log_level = None;
    let settings = Settings {
        sidecar_defaults: serde_json::from_str(r#"{"logLevel":"debug","port":15900}"#).unwrap(),
        ..Settings::default()
    };
    let out = render_all(&[p], None, &settings);
    let config = tollgate_config::from_yaml_str(&out.stdout).unwrap();
    assert!(out.stdout.contains("level: debug"), "{}", out.stdout);
    // The policy's own port (15800) wins over the default's.
    assert!(out.stdout.contains("listen: 127.0.0.1:15800"));
    assert_eq!(config.name.as_deref(), Some("default/chat"));
}

#[test]
fn render_applies_the_default_store_as_the_operator_does() {
    let mut p = policy("chat", None, "matchLabels: {app: chat}");
    p.spec.budgets = Some(
        serde_json::from_value(serde_json::json!({
            "limits": [{"name": "d", "scope": "policy", "window": "day", "usd": 5}]
        }))
        .unwrap(),
    );
    let settings = Settings {
        default_store: Some(
            crate::default_store::DefaultStore::parse(
                r#"{"redis": {"url": "redis://redis.shared:6379", "passwordSecretRef": {"name": "tollgate-redis", "key": "password"}}}"#,
            )
            .unwrap(),
        ),
        ..Settings::default()
    };
    let out = render_all(&[p], Some("team-a"), &settings);
    assert!(!out.denied, "{:?}", out.stderr);
    assert!(
        out.stdout.contains("keyPrefix: tollgate:team-a:chat"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains("passwordFile: /var/run/secrets/tollgate/tollgate-redis/password"));
    assert!(
        !out.stderr.iter().any(|w| w.contains("no shared store")),
        "{:?}",
        out.stderr
    );
}

#[test]
fn render_denies_with_the_webhooks_message_and_renders_the_rest() {
    let good = policy("chat", None, "matchLabels: {app: chat}");
    let mut bad = policy("bad", None, "matchLabels: {app: bad}");
    bad.metadata.namespace = Some("team-b".into());
    bad.spec.routes[1].targets[0].provider = "anthropc".into();
    let out = render_all(&[good, bad.clone()], None, &Settings::default());
    assert!(out.denied);
    let denial = verdict(&bad).unwrap_err();
    assert!(
        denial.contains("spec.routes[1].targets[0].provider: no provider is named `anthropc`"),
        "{denial}"
    );
    assert!(out
        .stderr
        .contains(&format!("error: LlmPolicy team-b/bad denied: {denial}")));
    assert!(out.stdout.contains("ConfigMap default/tollgate-chat"));
    assert!(!out.stdout.contains("---"), "one config only");
}

#[test]
fn render_separates_several_policies() {
    let a = policy("a", None, "matchLabels: {app: a}");
    let b = policy("b", None, "matchLabels: {app: b}");
    let out = render_all(&[a, b], Some("x"), &Settings::default());
    let docs: Vec<&str> = out.stdout.split("---\n").collect();
    assert_eq!(docs.len(), 2);
    for (doc, name) in docs.iter().zip(["a", "b"]) {
        let c = tollgate_config::from_yaml_str(doc).unwrap();
        assert_eq!(c.name, Some(format!("x/{name}")));
    }
}

// === explain-pod ===

#[test]
fn explains_an_injected_pod() {
    let p = pod_yaml("  labels: {app: chat}\n");
    let ps = [policy("chat", Some(1), "matchLabels: {app: chat}")];
    let e = explain(&p, None, &enabled(), &ps, &Settings::default());
    assert_eq!(e.injected_by.as_deref(), Some("chat"), "{}", e.text);
    assert_eq!(e.skipped, None);
    for want in [
        "  chat: selects it (the winner) (podSelector: app=chat)\n",
        "Injected with LlmPolicy chat's sidecar: namespace team-a has tollgate.dev/injection=enabled\n",
        "  sidecar: init container tollgate-proxy (restartPolicy Always), image example.test/tollgate-proxy:dev\n",
        "    mounts tollgate-secret-0 at /var/run/secrets/tollgate/llm-keys (read-only)\n",
        "  volume tollgate-config: ConfigMap tollgate-chat\n",
        "  volume tollgate-secret-0: Secret llm-keys, keys anthropic, openai\n",
        "  env of container app: OPENAI_BASE_URL, ANTHROPIC_BASE_URL, OPENAI_API_KEY, ANTHROPIC_API_KEY\n",
    ] {
        assert!(e.text.contains(want), "{want:?} not in\n{}", e.text);
    }
    let hash = render("team-a", "chat", &ps[0].spec).unwrap().hash;
    // The example's sidecar has requests only: the injection's warning.
    assert!(
        e.text.ends_with(&format!(
            "  annotations: tollgate.dev/config-hash={hash}, tollgate.dev/policy=chat\n  warning: tollgate: container tollgate-proxy has no memory limit (LlmPolicy chat, spec.sidecar.resources): set limits.memory\n"
        )),
        "{}",
        e.text
    );
    assert!(
        !e.text.contains("tollgate-placeholder"),
        "names, not values"
    );
}

#[test]
fn explains_why_not() {
    let ps = [policy("chat", Some(1), "matchLabels: {app: chat}")];
    let s = Settings::default();
    let cases = [
        ("  labels: {app: chat}\n  annotations: {tollgate.dev/inject: \"false\"}\n", enabled(), "opted_out", "Not injected: opted out (annotation tollgate.dev/inject=false)"),
        ("  labels: {app: other}\n", enabled(), "no_policy", "Not injected: no LlmPolicy of team-a selects it"),
        ("  labels: {app: chat}\n", BTreeMap::new(), "not_enabled", "Not injected: injection is not enabled: namespace team-a lacks"),
        ("  labels: {app: chat, tollgate.dev/inject: \"true\"}\n", BTreeMap::new(), "", "Injected with LlmPolicy chat's sidecar: the pod asks for it (label tollgate.dev/inject=true)"),
    ];
    for (meta, ns_labels, skipped, want) in cases {
        let e = explain(&pod_yaml(meta), None, &ns_labels, &ps, &s);
        assert_eq!(e.skipped.unwrap_or(""), skipped, "{}", e.text);
        assert!(e.text.contains(want), "{want:?} not in\n{}", e.text);
    }
    let excluded = Settings {
        excluded_namespaces: vec!["team-a".into()],
        ..Settings::default()
    };
    let e = explain(
        &pod_yaml("  labels: {app: chat}\n"),
        None,
        &enabled(),
        &ps,
        &excluded,
    );
    assert_eq!(e.skipped, Some("excluded_namespace"));
}

#[test]
fn explains_conflicts_with_the_conflict_codes_reason() {
    let p = pod_yaml("  labels: {app: chat, tier: web}\n");
    let mut elsewhere = policy("far", Some(0), "{}");
    elsewhere.metadata.namespace = Some("team-z".into());
    let ps = [
        policy("young", Some(5), "matchLabels: {tier: web}"),
        policy("old", Some(1), "matchLabels: {app: chat}"),
        policy(
            "twin",
            Some(1),
            "matchExpressions: [{key: app, operator: In, values: [chat]}]",
        ),
        policy("undated", None, "{}"),
        elsewhere,
    ];
    let e = explain(&p, None, &enabled(), &ps, &Settings::default());
    assert_eq!(e.injected_by.as_deref(), Some("old"));
    for want in [
        "  (LlmPolicy team-z/far left out: not in namespace team-a)\n",
        "  young: selects it, but old is older and wins (podSelector: tier=web)\n",
        "  old: selects it (the winner) (podSelector: app=chat)\n",
        "  twin: selects it, but old wins (same creation second: its name sorts first) (podSelector: app in (chat))\n",
        "  undated: selects it, but old is older and wins (podSelector: {} (every pod))\n",
        "  note: a policy without metadata.creationTimestamp",
    ] {
        assert!(e.text.contains(want), "{want:?} not in\n{}", e.text);
    }
}

#[test]
fn explains_an_invalid_winner_with_the_webhooks_message() {
    let mut bad = policy("chat", Some(1), "matchLabels: {app: chat}");
    bad.spec.routes[1].targets[0].provider = "anthropc".into();
    let e = explain(
        &pod_yaml("  labels: {app: chat}\n"),
        None,
        &enabled(),
        &[bad.clone()],
        &Settings::default(),
    );
    assert_eq!(e.skipped, Some("invalid_policy"));
    bad.metadata.namespace = Some("team-a".into());
    let denial = verdict(&bad).unwrap_err();
    assert!(
        e.text.contains(&format!(
            "Not injected: LlmPolicy team-a/chat is invalid: {denial}\n"
        )),
        "{}",
        e.text
    );
}
