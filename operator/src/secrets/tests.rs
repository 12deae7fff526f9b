use serde_json::json;

use super::*;

#[test]
fn every_secret_a_policy_mounts_is_referenced() {
    let key = |name: &str| json!({"name": name, "key": "k"});
    let spec: LlmPolicySpec = serde_json::from_value(json!({
        "podSelector": {},
        "providers": [{"name": "openai", "type": "openai", "credentialsSecretRef": key("llm-keys"), "models": ["m"]}],
        "budgets": {"store": {"type": "redis", "redis": {"url": "rediss://r:6380",
            "passwordSecretRef": key("budget-pw"),
            "tls": {"caSecretRef": key("ca"), "certSecretRef": key("client"), "keySecretRef": key("client-key")}}}},
        "cache": {"store": {"type": "redis", "redis": {"url": "rediss://r:6380",
            "passwordSecretRef": key("cache-pw"), "tls": {"caSecretRef": key("cache-ca")}}}},
    }))
    .unwrap();
    let names: Vec<String> = referenced(&spec).into_iter().collect();
    assert_eq!(
        names,
        [
            "budget-pw",
            "ca",
            "cache-ca",
            "cache-pw",
            "client",
            "client-key",
            "llm-keys"
        ]
    );
}
