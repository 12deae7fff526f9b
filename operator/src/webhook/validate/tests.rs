//! The admission warnings: when each is given, and that each fits a
//! `Warning` header.

use serde_json::{json, Value};

use super::*;

fn policy(edit: impl FnOnce(&mut Value)) -> LlmPolicy {
    let mut v: Value =
        serde_saphyr::from_str(include_str!("../../../testdata/policy.yaml")).unwrap();
    v["metadata"]["namespace"] = json!("team-a");
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

fn cache(v: Value) -> Cache {
    serde_json::from_value(v).unwrap()
}

#[track_caller]
fn header_safe(w: &str) {
    assert!(
        w.len() < 256 && w.is_ascii() && !w.contains('"') && !w.contains('\n'),
        "not a Warning header value: {w}"
    );
}

#[test]
fn a_low_semantic_threshold_is_a_warning_naming_its_field() {
    assert!(low_thresholds(None).is_empty());
    let ok = cache(json!({"routes": [{"name": "faq", "semantic": {"embedder": "e"}}]}));
    assert!(low_thresholds(Some(&ok)).is_empty(), "the 0.95 default");
    let own = cache(json!({"routes": [
        {"name": "faq", "semantic": {"threshold": 0.85}},
        {"name": "off", "semantic": {"threshold": 0.5, "enabled": false}},
        {"name": "plain"}
    ]}));
    let w = low_thresholds(Some(&own));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("spec.cache.routes[0].semantic.threshold: 0.85 is below 0.9"),
        "{}",
        w[0]
    );
    header_safe(&w[0]);
    let inherited =
        cache(json!({"semantic": {"threshold": 0.8}, "routes": [{"name": "faq", "semantic": {}}]}));
    let w = low_thresholds(Some(&inherited));
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with("spec.cache.semantic.threshold: 0.8 "),
        "{}",
        w[0]
    );
}

fn personal() -> BTreeMap<String, String> {
    [(PERSONAL_DATA_LABEL.to_string(), "true".to_string())].into()
}

#[test]
fn no_pii_filtering_in_a_personal_data_namespace_is_a_warning() {
    // The example has no spec.pii.
    let none = policy(|_| {});
    let w = namespace_warnings(&none, &personal());
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("spec.pii: no PII filtering (the section is not set) although the namespace is labelled tollgate.dev/personal-data=true"),
        "{}",
        w[0]
    );
    header_safe(&w[0]);
    // Elsewhere, or with another value, nothing.
    assert!(namespace_warnings(&none, &BTreeMap::new()).is_empty());
    let other = [(PERSONAL_DATA_LABEL.to_string(), "false".to_string())].into();
    assert!(namespace_warnings(&none, &other).is_empty());

    let off = policy(|v| v["spec"]["pii"] = json!({"enabled": false, "action": "block"}));
    let w = namespace_warnings(&off, &personal());
    assert!(
        w[0].starts_with("spec.pii.enabled: PII filtering is off "),
        "{w:?}"
    );

    let audit = policy(|v| {
        v["spec"]["pii"] = json!({"action": "audit", "entities": {"email": {"action": "mask", "enabled": false}},
            "custom": [{"name": "codename", "terms": ["falcon"]}]})
    });
    let w = namespace_warnings(&audit, &personal());
    assert!(
        w[0].starts_with("spec.pii: every entity type is audited only or off "),
        "{w:?}"
    );
    header_safe(&w[0]);

    // Anything masked, hashed, pseudonymized or blocked is filtering.
    for pii in [
        json!({}),
        json!({"action": "audit", "entities": {"email": {"action": "mask"}}}),
        json!({"action": "audit", "custom": [{"name": "codename", "terms": ["falcon"], "action": "block"}]}),
    ] {
        let p = policy(|v| v["spec"]["pii"] = pii.clone());
        assert_eq!(
            namespace_warnings(&p, &personal()),
            Vec::<String>::new(),
            "{pii}"
        );
    }
}

#[test]
fn a_sidecar_without_a_memory_limit_is_a_warning() {
    // The example's sidecar sets requests only.
    let w = warnings(&policy(|_| {}));
    assert!(w.contains(&NO_MEMORY_LIMIT.to_string()), "{w:?}");
    header_safe(NO_MEMORY_LIMIT);
    // No resources at all: the injected default has a 256Mi limit.
    let w = warnings(&policy(|v| v["spec"]["sidecar"] = json!({"port": 15800})));
    assert!(!w.contains(&NO_MEMORY_LIMIT.to_string()), "{w:?}");
    let w = warnings(&policy(|v| {
        v["spec"]["sidecar"]["resources"]["limits"] = json!({"memory": "320Mi"})
    }));
    assert!(!w.contains(&NO_MEMORY_LIMIT.to_string()), "{w:?}");
    // A CPU limit is not a memory limit.
    let w = warnings(&policy(|v| {
        v["spec"]["sidecar"]["resources"]["limits"] = json!({"cpu": "1"})
    }));
    assert!(w.contains(&NO_MEMORY_LIMIT.to_string()), "{w:?}");
}
