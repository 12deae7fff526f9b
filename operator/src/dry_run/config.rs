//! `tollgate-operator render`: the proxy config the operator would write
//! into each policy's ConfigMap, or the validating webhook's denial.
//!
//! A policy goes through what the operator does with it: the sidecar
//! defaults merged ([`Settings::effective`]), then the webhook's
//! [`verdict`], then [`render`] — so the bytes are the ConfigMap's and the
//! error is the webhook's message, word for word.

use std::fmt::Write as _;

use kube::ResourceExt;

use crate::context::Settings;
use crate::crd::LlmPolicy;
use crate::reconcile::config_map_name;
use crate::render::{render, CONFIG_FILE};
use crate::webhook::validate::verdict;

/// What `render` prints: the configs (YAML documents separated by `---`,
/// each headed by comments naming its ConfigMap, hash and Secret
/// references) on stdout, denials and warnings on stderr.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: Vec<String>,
    /// Some policy was denied.
    pub denied: bool,
}

/// Renders each policy in its namespace (`namespace` flag, else its own,
/// else `default`), as the operator configured by `settings` would.
pub fn render_all(policies: &[LlmPolicy], namespace: Option<&str>, settings: &Settings) -> Output {
    let mut out = Output::default();
    let mut docs = Vec::new();
    for p in policies {
        let ns = super::namespace(namespace, p.namespace().as_deref());
        let name = p.name_any();
        let mut policy = p.clone();
        policy.metadata.namespace = Some(ns.clone());
        let policy = settings.effective(&policy);
        match verdict(&policy) {
            Err(denial) => {
                out.denied = true;
                out.stderr
                    .push(format!("error: LlmPolicy {ns}/{name} denied: {denial}"));
            }
            Ok(warnings) => {
                for w in warnings {
                    out.stderr
                        .push(format!("warning: LlmPolicy {ns}/{name}: {w}"));
                }
                match render(&ns, &name, &policy.spec) {
                    Ok(r) => docs.push(document(&ns, &name, &r)),
                    // The verdict renders the same spec: unreachable, but
                    // said rather than assumed.
                    Err(e) => {
                        out.denied = true;
                        out.stderr
                            .push(format!("error: LlmPolicy {ns}/{name} denied: {e}"));
                    }
                }
            }
        }
    }
    out.stdout = docs.join("---\n");
    out
}

/// One policy's config, headed by YAML comments (so the output stays a
/// config `tollgate-proxy check` reads).
fn document(ns: &str, name: &str, r: &crate::render::Rendered) -> String {
    let mut s = String::new();
    let cm = config_map_name(name);
    let _ = writeln!(
        s,
        "# ConfigMap {ns}/{cm}, key {CONFIG_FILE}; config hash {}",
        r.hash
    );
    if r.secrets.is_empty() {
        let _ = writeln!(s, "# Secrets: none");
    } else {
        let _ = writeln!(
            s,
            "# Secrets (files the sidecar reads, mounted from these keys; values are never read):"
        );
        for v in &r.secrets {
            for k in &v.keys {
                let _ = writeln!(
                    s,
                    "#   {}/{k} <- Secret {ns}/{}, key {k}",
                    v.mount_path, v.secret
                );
            }
        }
    }
    s.push_str(&r.yaml);
    s
}
