//! Fields of a policy that the CRD's schema does not declare, found as the
//! API server's pruning finds them.
//!
//! With the CRD this operator generates, the API server refuses them
//! (`kubectl apply`'s default, `--validate=strict`) or drops them with a
//! warning before the webhook is called. The webhook still looks, for a
//! cluster whose installed CRD is older (one that kept `spec.cache` and
//! `spec.pii` as free-form objects, so a typo there reached the webhook),
//! and the dry-run CLI looks, since files reach it unpruned.

use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::crd::LlmPolicy;

/// `unknown field "spec.cache.tll"` (the API server's words) for each field
/// of `spec` (a policy's `spec`, as written) that the CRD's schema of
/// `spec` does not declare, by path.
pub fn unknown_fields(spec: &Value) -> Vec<String> {
    static SPEC: OnceLock<Value> = OnceLock::new();
    let schema = SPEC.get_or_init(|| {
        let crd = LlmPolicy::crd();
        let root = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("the CRD has a schema");
        serde_json::to_value(root).expect("schema serializes")["properties"]["spec"].take()
    });
    let mut out = Vec::new();
    walk(schema, spec, "spec", &mut out);
    out.into_iter()
        .map(|path| format!("unknown field \"{path}\""))
        .collect()
}

/// Adds to `out` the paths under `path` that `schema` neither declares nor
/// keeps (`x-kubernetes-preserve-unknown-fields`).
fn walk(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let keeps = schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
    match value {
        Value::Object(fields) => {
            let declared = schema["properties"].as_object();
            let others = schema["additionalProperties"].as_object();
            for (k, v) in fields {
                let at = format!("{path}.{k}");
                match (declared.and_then(|d| d.get(k)), others) {
                    (Some(s), _) => walk(s, v, &at, out),
                    (None, Some(s)) => walk(&Value::Object(s.clone()), v, &at, out),
                    (None, None) if keeps => {}
                    (None, None) => out.push(at),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(s, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn undeclared_fields_are_named_at_any_depth() {
        let spec = json!({
            "podSelector": {"matchLabels": {"app": "a"}},
            "providers": [{"name": "p", "type": "openai", "models": ["m"], "modles": ["x"]}],
            "routes": [{"name": "r", "targets": [{"provider": "p", "model": "m"}],
                        "shaping": {"set": {"temperature": 0, "response_format": {"type": "json_object"}}}}],
            "cache": {"ttl": "1m", "tll": "2m", "routes": [{"name": "r", "semantic": {"thershold": 0.9}}]},
            "pii": {"entities": {"email": {"action": "mask", "acton": "block"}}},
            "sidecar": {"resources": {"limits": {"memory": "1Gi"}}},
        });
        assert_eq!(
            unknown_fields(&spec),
            [
                "unknown field \"spec.cache.routes[0].semantic.thershold\"",
                "unknown field \"spec.cache.tll\"",
                "unknown field \"spec.pii.entities.email.acton\"",
                "unknown field \"spec.providers[0].modles\"",
            ]
        );
    }

    #[test]
    fn every_example_declares_only_known_fields() {
        let p: Value =
            serde_saphyr::from_str(include_str!("../../../testdata/policy.yaml")).unwrap();
        assert_eq!(unknown_fields(&p["spec"]), Vec::<String>::new());
    }
}
