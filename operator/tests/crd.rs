//! The committed CRD matches the Rust types, its CEL rules accept and
//! refuse what they should, and every example policy of the repository
//! passes its structural schema (evaluated client-side; the e2e suite
//! applies the same to a real API server).

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
    serde_saphyr::from_str(text).unwrap()
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

/// Named lists are maps keyed by name: the API server refuses a
/// duplicate name (`Duplicate value`, checked against a real one in the
/// e2e) and server-side apply merges them entry by entry.
#[test]
fn named_lists_are_maps_by_name() {
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    for list in [
        &spec["providers"],
        &spec["routes"],
        &spec["budgets"]["properties"]["limits"],
        &spec["budgets"]["properties"]["rateLimits"],
        &spec["cache"]["properties"]["routes"],
        &spec["cache"]["properties"]["semantic"]["properties"]["embedders"],
        &spec["pii"]["properties"]["custom"],
    ] {
        assert_eq!(list["x-kubernetes-list-type"], "map", "{list}");
        assert_eq!(list["x-kubernetes-list-map-keys"], json!(["name"]));
        assert!(
            list["items"]["required"]
                .as_array()
                .unwrap()
                .contains(&json!("name")),
            "a map key must be required"
        );
    }
    assert_eq!(
        structure(&with(base(), "/spec/providers/1/name", json!("openai"))),
        ["spec.providers[1]: duplicate name openai"]
    );
    assert_eq!(
        structure(&with(base(), "/spec/routes/1/name", json!("chat-default"))),
        ["spec.routes[1]: duplicate name chat-default"]
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
fn redis_tls_and_passwords() {
    let key = |k: &str| json!({"name": "redis-tls", "key": k});
    let tls = json!({"caSecretRef": key("ca.crt"), "certSecretRef": key("tls.crt"), "keySecretRef": key("tls.key")});
    let budgets = |redis: Value| {
        with(
            base(),
            "/spec/budgets/store",
            json!({"type": "redis", "redis": redis}),
        )
    };
    let ok = budgets(json!({"url": "rediss://r:6380", "username": "tollgate", "tls": tls}));
    assert_eq!(violations(&ok), Vec::<String>::new());
    assert_eq!(structure(&ok), Vec::<String>::new());
    refused(
        budgets(json!({"url": "redis://r:6379", "tls": {"caSecretRef": key("ca.crt")}})),
        "tls needs a rediss:// url",
    );
    refused(
        budgets(json!({"url": "rediss://r:6380", "tls": {"certSecretRef": key("tls.crt")}})),
        "certSecretRef and keySecretRef go together",
    );
    let cache_redis = |redis: Value| cache(json!({"store": {"type": "redis", "redis": redis}}));
    let ok = cache_redis(json!({"url": "rediss://r:6380", "username": "cache",
        "passwordSecretRef": key("password"), "tls": {"caSecretRef": key("ca.crt")}}));
    assert_eq!(violations(&ok), Vec::<String>::new());
    assert_eq!(structure(&ok), Vec::<String>::new());
    refused(
        cache_redis(json!({"url": "redis://r:6379", "passwordFile": "/p",
            "passwordSecretRef": key("password")})),
        "set passwordSecretRef or passwordFile, not both",
    );
    refused(
        cache_redis(json!({"url": "redis://r:6379", "tls": {"keySecretRef": key("tls.key")}})),
        "tls needs a rediss:// url",
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

/// The structural schema's own checks, as the API server makes them before
/// CEL: fields the schema lacks, types, enums, required fields, bounds,
/// patterns and the keys of list maps. (Formats and quantities are left to
/// the API server.)
fn structure(obj: &Value) -> Vec<String> {
    let s = schema();
    let mut out = tollgate_operator::webhook::validate::unknown_fields(&obj["spec"]);
    check(&s["properties"]["spec"], &obj["spec"], "spec", &mut out);
    out
}

fn check(s: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    if v.is_null() {
        if s["nullable"] != json!(true) {
            out.push(format!("{at}: null"));
        }
        return;
    }
    if s["x-kubernetes-int-or-string"] == json!(true) {
        if !(v.is_u64() || v.is_i64() || v.is_string()) {
            out.push(format!("{at}: not an integer or a string"));
        }
        return;
    }
    let typed = match s["type"].as_str() {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_u64() || v.is_i64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !typed {
        out.push(format!("{at}: not of type {}", s["type"]));
        return;
    }
    if let Some(e) = s["enum"].as_array() {
        if !e.contains(v) {
            out.push(format!("{at}: {v} not in {s}", s = s["enum"]));
        }
    }
    let bound = |key: &str, n: Option<f64>, out: &mut Vec<String>| {
        if let (Some(b), Some(n)) = (s[key].as_f64(), n) {
            let ok = if key.starts_with("max") {
                n <= b
            } else {
                n >= b
            };
            if !ok {
                out.push(format!("{at}: {key} {b}"));
            }
        }
    };
    bound("minimum", v.as_f64(), out);
    bound("maximum", v.as_f64(), out);
    let len = v.as_str().map(|t| t.chars().count() as f64);
    bound("minLength", len, out);
    bound("maxLength", len, out);
    bound("minItems", v.as_array().map(|a| a.len() as f64), out);
    bound("maxItems", v.as_array().map(|a| a.len() as f64), out);
    bound("maxProperties", v.as_object().map(|o| o.len() as f64), out);
    if let (Some(p), Some(t)) = (s["pattern"].as_str(), v.as_str()) {
        if !regex::Regex::new(p).unwrap().is_match(t) {
            out.push(format!("{at}: does not match {p}"));
        }
    }
    match v {
        Value::Object(fields) => {
            for r in s["required"].as_array().into_iter().flatten() {
                if !fields.contains_key(r.as_str().unwrap()) {
                    out.push(format!("{at}.{}: required", r.as_str().unwrap()));
                }
            }
            for (k, f) in fields {
                let sub = s["properties"].get(k).or(s.get("additionalProperties"));
                if let Some(sub) = sub {
                    check(sub, f, &format!("{at}.{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            let mut keys = std::collections::BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                check(&s["items"], item, &format!("{at}[{i}]"), out);
                if s["x-kubernetes-list-type"] == json!("map")
                    && !keys.insert(item["name"].to_string())
                {
                    out.push(format!(
                        "{at}[{i}]: duplicate name {}",
                        item["name"].as_str().unwrap_or("")
                    ));
                }
            }
        }
        _ => {}
    }
}

/// Every LlmPolicy a user is shown: the test fixture, `examples/k8s`, and
/// the chart's NOTES (its first policy), as (where, object).
fn example_policies() -> Vec<(String, Value)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
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
        texts.push((
            f.display().to_string(),
            std::fs::read_to_string(&f).unwrap(),
        ));
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

#[test]
fn every_example_policy_passes_the_structural_schema_and_its_rules() {
    let all = example_policies();
    assert!(all.len() >= 13, "{}", all.len());
    for (at, p) in &all {
        assert_eq!(structure(p), Vec::<String>::new(), "{at}");
        assert_eq!(violations(p), Vec::<String>::new(), "{at}");
    }
}

#[test]
fn the_structural_check_finds_what_the_api_server_refuses() {
    let mut p = base();
    p["spec"]["cache"] = json!({"tll": "1m", "maxEntries": "many", "store": {"type": "disk"}});
    p["spec"]["pii"] = json!({"entities": {"email": {"minScore": 2}}, "custom": [{"name": "Bad Name", "terms": ["x"]}]});
    assert_eq!(
        structure(&p),
        [
            "unknown field \"spec.cache.tll\"",
            "spec.cache.maxEntries: not of type \"integer\"",
            "spec.cache.store.type: \"disk\" not in [\"memory\",\"redis\"]",
            "spec.pii.custom[0].name: does not match ^[a-z][a-z0-9_]{0,47}$",
            "spec.pii.entities.email.minScore: maximum 1",
        ]
    );
}

/// `base()` with `spec.cache` set.
fn cache(v: Value) -> Value {
    base().tap(|p| p["spec"]["cache"] = v)
}

/// `base()` with `spec.pii` set.
fn pii(v: Value) -> Value {
    base().tap(|p| p["spec"]["pii"] = v)
}

/// Sets the field at `pointer`, adding it to its (existing) object.
fn set(obj: &mut Value, pointer: &str, v: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = obj
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{pointer}"));
    match parent {
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = v,
        _ => parent[key] = v,
    }
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[test]
fn cache_rules() {
    let ok = json!({"ttl": "1h", "store": {"type": "redis", "redis": {"url": "redis://r:6379"}},
        "semantic": {"embedders": [{"name": "e", "provider": "openai", "model": "m"},
                                   {"name": "l", "type": "local", "path": "/m"}], "threshold": 0.95},
        "routes": [{"name": "chat-default", "semantic": {"embedder": "e", "threshold": 1.0}}]});
    assert_eq!(violations(&cache(ok.clone())), Vec::<String>::new());
    assert_eq!(structure(&cache(ok.clone())), Vec::<String>::new());
    let edit = |pointer: &str, v: Value| {
        let mut c = ok.clone();
        set(&mut c, pointer, v);
        cache(c)
    };
    refused(
        edit("/routes/0/name", json!("nope")),
        "every cache route must name a route in spec.routes",
    );
    refused(
        edit("/routes/0/semantic/embedder", json!("nope")),
        "must name an embedder in cache.semantic.embedders",
    );
    refused(
        edit("/routes/0/semantic/threshold", json!(0.0)),
        "threshold must be in (0, 1]",
    );
    refused(
        edit("/semantic/threshold", json!(1.5)),
        "threshold must be in (0, 1]",
    );
    refused(
        edit("/store", json!({"type": "redis"})),
        "redis is required when type is redis",
    );
    refused(
        edit("/store/type", json!("memory")),
        "redis is only valid when type is redis",
    );
    refused(
        edit(
            "/store/redis",
            json!({"url": "redis://r", "cluster": true, "sentinel": {"masterName": "m"}}),
        ),
        "sentinel cannot be combined with cluster: true",
    );
    refused(
        edit(
            "/store/redis",
            json!({"url": "redis://r", "nodes": ["redis://s"]}),
        ),
        "nodes only applies with cluster: true or sentinel",
    );
    refused(
        edit(
            "/semantic/embedders/0",
            json!({"name": "e", "provider": "openai"}),
        ),
        "provider and model are required",
    );
    refused(
        edit(
            "/semantic/embedders/0",
            json!({"name": "e", "provider": "openai", "model": "m", "path": "/m"}),
        ),
        "path and maxTokens only apply to type: local",
    );
    refused(
        edit(
            "/semantic/embedders/1",
            json!({"name": "l", "type": "local"}),
        ),
        "path is required with type: local",
    );
    refused(
        edit(
            "/semantic/embedders/1",
            json!({"name": "l", "type": "local", "path": "/m", "model": "m"}),
        ),
        "only apply to type: provider",
    );
    refused(
        edit("/semantic/verify", json!({"window": 5, "minSamples": 6})),
        "minSamples must not exceed window",
    );
    refused(
        edit(
            "/routes/0",
            json!({"name": "chat-default", "enabled": false, "semantic": {}}),
        ),
        "semantic needs the route's cache on",
    );
    // Switched off on both counts is consistent.
    assert_eq!(
        violations(&edit(
            "/routes/0",
            json!({"name": "chat-default", "enabled": false, "semantic": {"enabled": false}})
        )),
        Vec::<String>::new()
    );
}

#[test]
fn pii_rules() {
    let ok = json!({"action": "mask", "entities": {"email": {"action": "pseudonymize"}, "credit_card": {"enabled": false}},
        "custom": [{"name": "customer_id", "regex": "CUST-[0-9]{8}", "validator": "luhn"}, {"name": "codename", "terms": ["falcon"]}],
        "promptGuard": {"disabledRules": ["role_play"]}});
    assert_eq!(violations(&pii(ok.clone())), Vec::<String>::new());
    assert_eq!(structure(&pii(ok.clone())), Vec::<String>::new());
    let edit = |pointer: &str, v: Value| {
        let mut c = ok.clone();
        set(&mut c, pointer, v);
        pii(c)
    };
    refused(
        edit("/entities", json!({"emial": {"action": "block"}})),
        "unknown entity type; the built-in types are email, phone,",
    );
    refused(
        edit("/custom/0/name", json!("email")),
        "is a built-in type; configure it under pii.entities",
    );
    refused(
        edit(
            "/custom/0",
            json!({"name": "c", "regex": "x+", "terms": ["x"]}),
        ),
        "set exactly one of regex or terms",
    );
    refused(
        edit("/custom/1", json!({"name": "codename"})),
        "set exactly one of regex or terms",
    );
    refused(
        edit("/custom/1/validator", json!("luhn")),
        "validator only applies to regex recognizers",
    );
    assert_eq!(
        structure(&edit("/promptGuard/disabledRules", json!(["role_ply"]))),
        ["spec.pii.promptGuard.disabledRules[0]: \"role_ply\" not in [\"instruction_override\",\"role_play\",\"prompt_leak\",\"invisible_chars\",\"bidi_chars\",\"tag_chars\",\"encoded_blob\"]"]
    );
}

/// The schema's lists of names are the proxy's own.
#[test]
fn pii_names_are_the_proxys() {
    let s = schema();
    let p = &s["properties"]["spec"]["properties"]["pii"]["properties"];
    let rule = p["entities"]["x-kubernetes-validations"][0]["rule"]
        .as_str()
        .unwrap();
    for b in tollgate_config::Builtin::ALL {
        assert!(rule.contains(&format!("'{}'", b.name())), "{rule}");
    }
    assert_eq!(
        p["entities"]["maxProperties"],
        json!(tollgate_config::Builtin::ALL.len())
    );
    assert_eq!(
        p["promptGuard"]["properties"]["disabledRules"]["items"]["enum"],
        json!(tollgate_config::GUARD_RULES)
    );
}

/// `kubectl explain llmpolicy.spec.cache` and `.spec.pii` describe every
/// field, and `kubectl get tollgate` lists policies with their Ready reason.
#[test]
fn cache_and_pii_fields_are_described() {
    let s = schema();
    fn described(s: &Value, at: &str, n: &mut usize) {
        if let Some(props) = s["properties"].as_object() {
            for (k, p) in props {
                let at = format!("{at}.{k}");
                assert!(
                    p["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{at} has no description"
                );
                *n += 1;
                described(p, &at, n);
                described(&p["items"], &at, n);
                described(&p["additionalProperties"], &at, n);
            }
        }
    }
    let mut n = 0;
    for section in ["cache", "pii"] {
        let sub = &s["properties"]["spec"]["properties"][section];
        assert!(sub.get("x-kubernetes-preserve-unknown-fields").is_none());
        described(sub, &format!("spec.{section}"), &mut n);
    }
    assert!(n > 60, "{n} fields");

    use kube::CustomResourceExt;
    let crd = LlmPolicy::crd();
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["tollgate".to_string()])
    );
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap();
    let reason = columns
        .iter()
        .find(|c| c.name == "Reason")
        .expect("a Reason column");
    assert_eq!(
        reason.json_path,
        ".status.conditions[?(@.type==\"Ready\")].reason"
    );
}
