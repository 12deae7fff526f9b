//! The exact-cache key: a hash of everything that can change the answer.
//!
//! The request body is normalized by dropping fields that never change
//! output (`stream`, `stream_options`, `user`, `metadata`, `store`,
//! `service_tier`, …) and serialized canonically (object keys sorted), so
//! two requests that differ only in formatting, key order or those fields
//! share an entry. Every other field — messages, system prompt, tools,
//! tool choice, temperature, top_p, max_tokens, stop, seed,
//! response_format, n, logprobs, and any field the proxy does not know —
//! is part of the key. The scope (policy, API, operation, route and its
//! targets, tenant) is hashed in front, so entries never cross scopes.

use std::ops::Range;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::{Family, Operation};

/// Fields that do not change what the model answers.
const IGNORED: &[&str] = &[
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
];

/// A cache key (SHA-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Where an entry may be served.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The policy (config name): proxies of different policies sharing one
    /// Redis never share entries.
    pub policy: &'a str,
    pub family: Family,
    pub operation: Operation,
    /// The route the alias resolved to, with its targets
    /// (`route=chat;openai/gpt-4o-mini,anthropic/claude-x`), or the
    /// provider for a directly requested model.
    pub route: &'a str,
    pub tenant: Option<&'a str>,
}

/// Why a request is not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncacheable {
    /// Sampling is not deterministic (temperature unset or above 0, or
    /// several choices) and the cache only keeps deterministic answers.
    NotDeterministic,
    /// The body is not a JSON object.
    NotAnObject,
}

/// True when the request's answer is deterministic: `temperature: 0` and
/// at most one choice. Both APIs default temperature to 1.
pub fn deterministic(body: &Value) -> bool {
    let temp_zero = body
        .get("temperature")
        .and_then(Value::as_f64)
        .is_some_and(|t| t == 0.0);
    let one_choice = body.get("n").and_then(Value::as_u64).is_none_or(|n| n == 1);
    temp_zero && one_choice
}

/// The key of a request, or why it cannot be cached.
pub fn key(scope: &Scope<'_>, body: &Value, deterministic_only: bool) -> Result<Key, Uncacheable> {
    let Some(obj) = body.as_object() else {
        return Err(Uncacheable::NotAnObject);
    };
    // Embeddings are deterministic by nature.
    if deterministic_only && scope.operation != Operation::Embeddings && !deterministic(body) {
        return Err(Uncacheable::NotDeterministic);
    }
    Ok(hash("tollgate-cache-v1", scope, &Relevant(obj)))
}

/// [`key`] of a body whose bytes `written` are its JSON as serde_json
/// writes it (compact, object keys in order; the PII filter's rewrite):
/// the same key, hashed from those bytes with the ignored fields left out
/// instead of from the body serialized again.
pub fn key_written(
    scope: &Scope<'_>,
    body: &Value,
    written: &[u8],
    deterministic_only: bool,
) -> Result<Key, Uncacheable> {
    let Some(obj) = body.as_object() else {
        return Err(Uncacheable::NotAnObject);
    };
    if deterministic_only && scope.operation != Operation::Embeddings && !deterministic(body) {
        return Err(Uncacheable::NotDeterministic);
    }
    let Some(entries) = entries(written) else {
        return Ok(hash("tollgate-cache-v1", scope, &Relevant(obj)));
    };
    Ok(hash_with("tollgate-cache-v1", scope, |h| {
        // What serde_json writes for `Relevant`: `{`, the kept entries
        // joined by `,`, `}`.
        h.update(b"{");
        let mut first = true;
        for (entry, name) in entries {
            if IGNORED
                .iter()
                .any(|i| i.as_bytes() == &written[name.clone()])
            {
                continue;
            }
            if !first {
                h.update(b",");
            }
            h.update(&written[entry]);
            first = false;
        }
        h.update(b"}");
    }))
}

/// The top-level entries of a compact JSON object as serde_json writes
/// it: each entry's bytes (`"name":value`) and its name's (between the
/// quotes); `None` when `b` is not such an object.
fn entries(b: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
    if b.len() < 2 || b[0] != b'{' || b[b.len() - 1] != b'}' {
        return None;
    }
    let mut out = Vec::with_capacity(8);
    let end = b.len() - 1;
    let mut i = 1;
    while i < end {
        let start = i;
        if b[i] != b'"' {
            return None;
        }
        let name_end = string_end(b, i + 1)?;
        if b.get(name_end + 1) != Some(&b':') {
            return None;
        }
        // The value, up to the `,` (or the object's `}`) at depth zero.
        let mut j = name_end + 2;
        let mut depth = 0usize;
        while j < end {
            match b[j] {
                b'"' => j = string_end(b, j + 1)?,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.checked_sub(1)?,
                b',' if depth == 0 => break,
                _ => {}
            }
            j += 1;
        }
        if depth != 0 || j == name_end + 2 {
            return None;
        }
        out.push((start..j, start + 1..name_end));
        // Past the `,`; one right before the closing `}` is not JSON.
        i = j + 1;
        if j < end && i == end {
            return None;
        }
    }
    Some(out)
}

/// Where the string whose contents start at `i` ends (its closing quote).
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i);
        }
        i += 2;
    }
}

/// The body without the fields that never change the answer, serialized
/// as [`normalized`] would be, without copying the body.
struct Relevant<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for Relevant<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0 {
            if !IGNORED.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// Feeds what serde_json writes straight into the digest.
struct Digesting<'a>(&'a mut Sha256);

impl std::io::Write for Digesting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The body without the fields that never change the answer.
pub(crate) fn normalized(obj: &serde_json::Map<String, Value>) -> Value {
    let mut normalized = serde_json::Map::new();
    for (k, v) in obj {
        if !IGNORED.contains(&k.as_str()) {
            normalized.insert(k.clone(), v.clone());
        }
    }
    Value::Object(normalized)
}

/// SHA-256 of a domain tag, the scope, and `body` in canonical form.
pub(crate) fn hash(tag: &str, scope: &Scope<'_>, body: &impl serde::Serialize) -> Key {
    hash_with(tag, scope, |h| {
        // serde_json's map is ordered by key: this serialization is canonical.
        serde_json::to_writer(Digesting(h), body).expect("a Value serializes");
    })
}

/// SHA-256 of a domain tag, the scope, and what `body` feeds in.
fn hash_with(tag: &str, scope: &Scope<'_>, body: impl FnOnce(&mut Sha256)) -> Key {
    let mut h = Sha256::new();
    for part in [
        tag,
        scope.policy,
        scope.family.as_str(),
        scope.operation.otel_name(),
        scope.route,
        scope.tenant.unwrap_or(""),
    ] {
        // Length-prefixed, so no two scopes concatenate alike.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update([u8::from(scope.tenant.is_some())]);
    body(&mut h);
    Key(h.finalize().into())
}
