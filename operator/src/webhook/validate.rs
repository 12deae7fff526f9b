//! Deep checks of an `LlmPolicy` that CEL cannot make: the spec renders into
//! a config the proxy accepts (regexes compile, prices and durations are
//! sane, sections are well-formed) and the Secrets it references exist.

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::{Api, Client, ResourceExt};

use crate::crd::LlmPolicy;
use crate::render::render;

/// Every problem with `policy`, empty when it is valid. Secrets are looked
/// up by name only (metadata), never read.
pub async fn problems(client: &Client, policy: &LlmPolicy) -> Vec<String> {
    let ns = policy.namespace().unwrap_or_else(|| "default".into());
    let mut out: Vec<String> = match render(&ns, &policy.name_any(), &policy.spec) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    };
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), &ns);
    let mut refs: Vec<(String, &str)> = policy
        .spec
        .providers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            p.credentials_secret_ref.as_ref().map(|r| {
                (
                    format!("spec.providers[{i}].credentialsSecretRef"),
                    r.name.as_str(),
                )
            })
        })
        .collect();
    if let Some(r) = policy
        .spec
        .budgets
        .as_ref()
        .and_then(|b| b.store.as_ref())
        .and_then(|s| s.redis.as_ref())
        .and_then(|r| r.password_secret_ref.as_ref())
    {
        refs.push((
            "spec.budgets.store.redis.passwordSecretRef".into(),
            r.name.as_str(),
        ));
    }
    for (path, name) in refs {
        match api.get_metadata_opt(name).await {
            Ok(Some(_)) => {}
            Ok(None) => out.push(format!("{path}: Secret {ns}/{name} does not exist")),
            Err(e) => out.push(format!("{path}: cannot look up Secret {ns}/{name}: {e}")),
        }
    }
    out
}
