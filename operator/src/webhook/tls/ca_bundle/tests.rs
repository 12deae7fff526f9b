//! The caBundle patch touches only webhooks that differ, and fails if the
//! configuration changed since it was read.

use serde_json::json;

use super::*;

#[test]
fn only_differing_webhooks_are_patched_against_the_read_version() {
    let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    let cfg = json!({
        "metadata": {"name": "tg", "resourceVersion": "42"},
        "webhooks": [
            {"name": "a", "clientConfig": {"caBundle": b64}},
            {"name": "b", "clientConfig": {"url": "https://127.0.0.1:9443/mutate"}},
            {"name": "c", "clientConfig": {"caBundle": "b2xk"}},
        ],
    });
    assert_eq!(
        patch_ops(&cfg, pem),
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": b64},
            {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": b64},
        ]))
    );
    let current = json!({
        "metadata": {"resourceVersion": "43"},
        "webhooks": [{"name": "a", "clientConfig": {"caBundle": b64}}],
    });
    assert_eq!(patch_ops(&current, pem), None);
    assert_eq!(
        patch_ops(&json!({"metadata": {}}), pem),
        None,
        "no webhooks, nothing to do"
    );
}
