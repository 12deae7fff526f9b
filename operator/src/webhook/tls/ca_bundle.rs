//! The `caBundle` of the chart's two webhook configurations, named by
//! `--mutating-webhook-config` and `--validating-webhook-config`: made equal
//! to the CAs the served certificate chains to. Read first and patched only
//! where it differs, with the read's resourceVersion tested in the same
//! patch (an edit in between, such as a `helm upgrade` adding a webhook,
//! makes it fail and the next pass retries).

use std::fmt::Debug;

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::TlsError;

#[cfg(test)]
mod tests;

/// The webhook configurations whose `caBundle` the operator keeps.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub mutating: Option<String>,
    pub validating: Option<String>,
}

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.mutating.is_none() && self.validating.is_none()
    }
}

/// Makes every webhook's `caBundle` in `targets` equal to `pem`; true if
/// any had to be patched.
pub async fn ensure(client: &Client, targets: &Targets, pem: &str) -> Result<bool, TlsError> {
    let mut patched = false;
    if let Some(name) = &targets.mutating {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        patched |= ensure_one(&api, "MutatingWebhookConfiguration", name, pem).await?;
    }
    if let Some(name) = &targets.validating {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        patched |= ensure_one(&api, "ValidatingWebhookConfiguration", name, pem).await?;
    }
    Ok(patched)
}

async fn ensure_one<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
    pem: &str,
) -> Result<bool, TlsError>
where
    K: Resource + Clone + Debug + DeserializeOwned + Serialize,
{
    let err = |source| TlsError::Patch {
        kind,
        name: name.into(),
        source,
    };
    let cfg = serde_json::to_value(api.get(name).await.map_err(err)?).expect("serializes");
    let Some(ops) = patch_ops(&cfg, pem) else {
        return Ok(false);
    };
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("a valid JSON patch");
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map_err(err)?;
    Ok(true)
}

/// The JSON patch that sets `pem` as every webhook's `caBundle` in the
/// configuration `cfg`, or `None` when all already hold it.
pub fn patch_ops(cfg: &Value, pem: &str) -> Option<Value> {
    let want = base64::engine::general_purpose::STANDARD.encode(pem);
    let hooks = cfg["webhooks"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut ops = vec![json!({
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": cfg["metadata"]["resourceVersion"],
    })];
    for (i, hook) in hooks.iter().enumerate() {
        if hook["clientConfig"]["caBundle"].as_str() != Some(want.as_str()) {
            ops.push(json!({
                "op": "add",
                "path": format!("/webhooks/{i}/clientConfig/caBundle"),
                "value": want,
            }));
        }
    }
    (ops.len() > 1).then_some(Value::Array(ops))
}
