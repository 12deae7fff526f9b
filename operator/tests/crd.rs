//! The committed CRD matches the Rust types, and its CEL rules accept and
//! refuse what they should (evaluated client-side; the e2e suite checks the
//! same against a real API server).

use kube::core::cel::Validator;
use serde_json::{json, Value};
use tollgate_operator::crd::LlmPolicy;

#[test]
fn committed_crd_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/llmpolicy.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == tollgate_operator::crd_yaml(),
        "crds/llmpolicy.yaml is stale; regenerate it with\n  cargo run -p tollgate-operator -- crd > crds/llmpolicy.yaml"
    );
}

fn schema() -> Value {
    use kube::CustomResourceExt;
    let crd = LlmPolicy::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn base() -> Value {
    let text = include_str!("../testdata/policy.yaml");
    serde_yaml::from_str(text).unwrap()
}

/// The CEL messages a policy fails with, sorted.
fn violations(obj: &Value) -> Vec<String> {
    match Validator::new().validate(&schema(), obj, None) {
        Ok(()) => vec![],
        Err(errs) => {
            let mut v: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            v.sort();
            v
        }
    }
}

fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    *obj.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    obj
}

#[track_caller]
fn refused(obj: Value, message: &str) {
    let v = violations(&obj);
    assert!(
        v.iter().any(|e| e.contains(message)),
        "expected `{message}` among {v:#?}"
    );
}

#[test]
fn the_full_example_passes_every_rule() {
    assert_eq!(violations(&base()), Vec::<String>::new());
}

#[test]
fn route_needs_a_target() {
    refused(
        with(base(), "/spec/routes/1/targets", json!([])),
        "at least one target",
    );
}

#[test]
fn weight_must_be_positive() {
    refused(
        with(base(), "/spec/routes/0/targets/0/weight", json!(0)),
        "weight must be greater than 0",
    );
}

/// A target or shadow naming no provider is left to the validating webhook
/// (the proxy's own check), which names the field: a CEL message cannot say
/// which target within the schema's cost budget.
#[test]
fn provider_references_are_the_webhooks() {
    let v = with(base(), "/spec/routes/0/targets/1/provider", json!("nope"));
    assert_eq!(
        violations(&with(v, "/spec/routes/0/shadow/provider", json!("nope"))),
        Vec::<String>::new()
    );
}

#[test]
fn rules_must_name_a_route() {
    refused(
        with(base(), "/spec/routes/0/rules/0/route", json!("nope")),
        "every rule must send requests to a route",
    );
}

#[test]
fn default_provider_must_exist() {
    refused(
        with(base(), "/spec/defaultProvider", json!("nope")),
        "defaultProvider must name a provider",
    );
}

#[test]
fn downgrade_target_must_exist() {
    refused(
        with(base(), "/spec/budgets/limits/0/downgradeTo", json!("nope")),
        "downgradeTo must name a route",
    );
}

#[test]
fn names_are_unique() {
    refused(
        with(base(), "/spec/providers/1/name", json!("openai")),
        "provider names must be unique",
    );
    refused(
        with(base(), "/spec/routes/1/name", json!("chat-default")),
        "route names must be unique",
    );
}

#[test]
fn shares_and_thresholds_are_in_unit_interval() {
    refused(
        with(base(), "/spec/routes/0/shadow/share", json!(0.0)),
        "share must be in (0, 1]",
    );
    refused(
        with(base(), "/spec/routes/0/shadow/share", json!(1.5)),
        "share must be in (0, 1]",
    );
    refused(
        with(
            base(),
            "/spec/routes/0/circuitBreaker/errorRate",
            json!(2.0),
        ),
        "errorRate must be in (0, 1]",
    );
    refused(
        with(
            base(),
            "/spec/budgets/limits/0/thresholds",
            json!([0.5, 1.1]),
        ),
        "each threshold must be in (0, 1]",
    );
}

#[test]
fn credentials_xor_passthrough() {
    let mut both = base();
    both["spec"]["providers"][0]["passthrough"] = json!(true);
    refused(both, "exactly one of credentialsSecretRef or passthrough");
    let mut none = base();
    none["spec"]["providers"][0]
        .as_object_mut()
        .unwrap()
        .remove("credentialsSecretRef");
    refused(none, "exactly one of credentialsSecretRef or passthrough");
}

#[test]
fn azure_needs_api_version_and_base_url() {
    let obj = with(base(), "/spec/providers/0/type", json!("azure-openai"));
    refused(obj.clone(), "apiVersion is required");
    refused(obj, "baseUrl is required");
}

#[test]
fn budget_rules() {
    let limit = json!({"name": "b", "scope": "header", "window": "rolling", "action": "downgrade"});
    let obj = with(base(), "/spec/budgets/limits/1", limit);
    refused(obj.clone(), "set usd, tokens or both");
    refused(obj.clone(), "header is required with scope: header");
    refused(obj.clone(), "rollingWindow is required");
    refused(obj, "downgradeTo is required");
    refused(
        with(base(), "/spec/budgets/limits/0/usd", json!(0)),
        "usd must be greater than 0",
    );
    refused(
        with(
            base(),
            "/spec/budgets/rateLimits/0",
            json!({"name": "r", "scope": "policy"}),
        ),
        "requestsPerMinute, tokensPerMinute or both",
    );
    refused(
        with(base(), "/spec/budgets/store", json!({"type": "redis"})),
        "redis is required when type is redis",
    );
    refused(
        with(
            base(),
            "/spec/budgets/store",
            json!({"redis": {"url": "redis://r:6379"}}),
        ),
        "redis is only valid when type is redis",
    );
}

#[test]
fn sidecar_ports_differ() {
    refused(
        with(base(), "/spec/sidecar/adminPort", json!(15800)),
        "port and adminPort must differ",
    );
    let mut obj = base();
    obj["spec"]["sidecar"] = json!({"port": 15801});
    refused(obj, "port and adminPort must differ");
}
