//! What happens to a finding: mask, hash, pseudonymize, block or audit.
//!
//! A [`Redaction`] collects one request's (or one response's) effects: the
//! pseudonyms issued (to restore them in the answer), the types that call
//! for a block, and counts per type and action for metrics. It never
//! records a value anywhere but in the pseudonym table, which lives only as
//! long as the request.

use std::collections::{BTreeSet, HashMap};

use sha2::{Digest, Sha256};
use tollgate_config::PiiAction;

use super::finding::{Entity, Finding};
use super::Engine;

/// Which way the text travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    /// A request to an API the proxy forwards without reading its answer
    /// (other `/v1/*` paths): pseudonyms could not be restored, so they mask.
    Opaque,
    Response,
}

/// Placeholders issued for one request, and their originals.
#[derive(Debug, Default, Clone)]
pub struct Pseudonyms {
    /// (placeholder, original), in issue order.
    pub entries: Vec<(String, String)>,
    by_value: HashMap<(Entity, String), usize>,
    counters: HashMap<Entity, u32>,
}

impl Pseudonyms {
    /// The placeholder for `value`: the same value gets the same one.
    fn issue(&mut self, entity: Entity, label: &str, value: &str) -> &str {
        let key = (entity, value.to_string());
        let idx = match self.by_value.get(&key) {
            Some(&i) => i,
            None => {
                let n = self.counters.entry(entity).or_insert(0);
                *n += 1;
                self.entries
                    .push((format!("[{label}_{n}]"), value.to_string()));
                self.by_value.insert(key, self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        &self.entries[idx].0
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The effects of redacting one request or response.
#[derive(Debug, Default)]
pub(crate) struct Redaction {
    pub pseudonyms: Pseudonyms,
    /// Types whose action is `block` (names, sorted).
    pub blocked: BTreeSet<String>,
    /// (entity, action taken) and its count, each pair once (few per
    /// request: a list beats a hash map).
    pub counts: Vec<((Entity, PiiAction), u64)>,
    /// Something in the text changed.
    pub changed: bool,
}

impl Redaction {
    /// Applies each finding's action to `text`; returns the rewritten text
    /// when anything changed.
    pub(crate) fn apply(
        &mut self,
        engine: &Engine,
        text: &str,
        findings: &[Finding],
        dir: Direction,
    ) -> Option<String> {
        if findings.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut changed = false;
        for f in findings {
            let configured = engine.action(f.entity);
            let action = match (dir, configured) {
                // An answer cannot be refused midway; what would block is masked.
                (Direction::Response, PiiAction::Block) => PiiAction::Mask,
                // Values the model produced go to the app that owns them.
                (Direction::Response, PiiAction::Pseudonymize) => PiiAction::Audit,
                (Direction::Opaque, PiiAction::Pseudonymize) => PiiAction::Mask,
                (_, a) => a,
            };
            match self
                .counts
                .iter_mut()
                .find(|(k, _)| *k == (f.entity, action))
            {
                Some((_, n)) => *n += 1,
                None => self.counts.push(((f.entity, action), 1)),
            }
            let value = &text[f.start..f.end];
            let label = engine.label(f.entity);
            // The replacement is written straight into `out`.
            let before = &text[last..f.start];
            match action {
                PiiAction::Audit => continue,
                PiiAction::Block => {
                    self.blocked.insert(engine.name(f.entity).to_string());
                    continue;
                }
                PiiAction::Mask => {
                    out.push_str(before);
                    out.push('[');
                    out.push_str(label);
                    out.push(']');
                }
                PiiAction::Hash => {
                    out.push_str(before);
                    out.push('[');
                    out.push_str(label);
                    out.push('_');
                    out.push_str(&engine.hash_token(label, value));
                    out.push(']');
                }
                PiiAction::Pseudonymize => {
                    out.push_str(before);
                    out.push_str(self.pseudonyms.issue(f.entity, label, value));
                }
            }
            last = f.end;
            changed = true;
        }
        if !changed {
            return None;
        }
        out.push_str(&text[last..]);
        self.changed = true;
        Some(out)
    }
}

/// HMAC-SHA-256 (RFC 2104).
pub(crate) fn hmac_sha256(key: &[u8], msg: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for m in msg {
        inner.update(m);
    }
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn pseudonyms_are_stable_per_value() {
        let mut p = Pseudonyms::default();
        let e = Entity::Custom(0);
        assert_eq!(p.issue(e, "X", "a"), "[X_1]");
        assert_eq!(p.issue(e, "X", "b"), "[X_2]");
        assert_eq!(p.issue(e, "X", "a"), "[X_1]");
        assert_eq!(p.entries.len(), 2);
    }
}
