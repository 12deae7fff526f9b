//! The Redis key layout of budget counters and the scope values they are
//! kept per.

use sha2::{Digest, Sha256};
use tollgate_config::{Limit, Scope};

use crate::window::Span;

/// The scope value of a request that lacks it (a missing header, a config
/// without `metadata.namespace`).
pub const MISSING: &str = "(missing)";

/// Where a proxy runs: the scope values of `policy`, `namespace` and
/// `workload` budgets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub policy: String,
    pub namespace: Option<String>,
    pub workload: Option<String>,
}

impl Identity {
    /// The identity a proxy running `config` has: its name and metadata.
    pub fn of(config: &tollgate_config::Config) -> Identity {
        let meta = config.raw.metadata.as_ref();
        Identity {
            policy: config.name.clone().unwrap_or_default(),
            namespace: meta.and_then(|m| m.namespace.clone()),
            workload: meta.and_then(|m| m.workload.clone()),
        }
    }
}

/// The key-safe form of a scope value: 16 hex digits of its SHA-256.
/// Header values may be user ids; hashed, keys stay bounded and neither the
/// state file nor Redis holds the ids.
pub fn scope_hash(value: &[u8]) -> String {
    hex::encode(&Sha256::digest(value)[..8])
}

/// `prefix:part:part:...`.
pub fn key(prefix: &str, parts: &[&str]) -> String {
    let mut k = String::with_capacity(prefix.len() + 80);
    k.push_str(prefix);
    for p in parts {
        k.push(':');
        k.push_str(p);
    }
    k
}

/// The Redis key counting `l`'s spend in `span` for the scope value whose
/// [`scope_hash`] is `scope`.
pub fn spent_key(prefix: &str, l: &Limit, span: &Span, scope: &str) -> String {
    match span {
        Span::Calendar { start_ms, .. } => key(
            prefix,
            &[
                "spent",
                &l.name,
                l.scope.kind(),
                l.window.kind(),
                &start_ms.to_string(),
                scope,
            ],
        ),
        Span::Rolling { slot_ms, .. } => key(
            prefix,
            &["roll", &l.name, l.scope.kind(), &slot_ms.to_string(), scope],
        ),
    }
}

/// The scope value every request of a proxy with `identity` shares, or
/// `None` when the value comes from the request (`model`, `header`).
pub fn fixed_scope_value<'a>(scope: &Scope, identity: &'a Identity) -> Option<&'a [u8]> {
    Some(match scope {
        Scope::Policy => identity.policy.as_bytes(),
        Scope::Namespace => identity.namespace.as_deref().unwrap_or(MISSING).as_bytes(),
        Scope::Workload => identity.workload.as_deref().unwrap_or(MISSING).as_bytes(),
        Scope::Model | Scope::Header { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_scope_values() {
        let h = scope_hash(b"alice@example.com");
        assert_eq!(h.len(), 16);
        assert_ne!(h, scope_hash(b"bob@example.com"));
        assert_eq!(
            key("tg", &["spent", "team", &h]),
            format!("tg:spent:team:{h}")
        );
    }
}
