//! What Redis holds for the soak's budget limit, read straight from its
//! keys (the layout of `proxy/spend/src/keys.rs` and of the reservation
//! key in `proxy/src/budget/mod.rs`):
//!
//! - spend: `PREFIX:spent:LIMIT:header:month:WINDOW_START:SCOPE`, a hash
//!   with `u` (nano-USD) and `t` (input + output tokens);
//! - reservations: `PREFIX:resv:LIMIT:header:SCOPE`, a hash with
//!   `u:EPOCH` and `t:EPOCH` fields;
//!
//! where SCOPE is 16 hex digits of the SHA-256 of the header value. Every
//! window's key is summed, so a run across a month boundary still adds up.

use std::collections::HashMap;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use super::config::LIMIT;

/// One scope value's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub spent_nano_usd: i64,
    pub spent_tokens: i64,
    pub reserved_nano_usd: i64,
    pub reserved_tokens: i64,
}

/// The key segment of a header scope's value.
fn scope(value: &str) -> String {
    hex::encode(&Sha256::digest(value.as_bytes())[..8])
}

/// The counters of the header values `values`, and of every other value
/// the limit has keys for (requests without the header, say), summed as
/// `others`.
pub(crate) async fn read(
    url: &str,
    prefix: &str,
    values: &[&str],
) -> anyhow::Result<(Vec<Counters>, Counters)> {
    let client = redis::Client::open(url).context("redis url")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to redis")?;
    let mut by_scope: HashMap<String, Counters> = HashMap::new();
    for (pattern, spent) in [
        (format!("{prefix}:spent:{LIMIT}:header:*"), true),
        (format!("{prefix}:resv:{LIMIT}:header:*"), false),
    ] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .with_context(|| format!("KEYS {pattern}"))?;
        for key in keys {
            let fields: HashMap<String, i64> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .with_context(|| format!("HGETALL {key}"))?;
            let value = key.rsplit(':').next().unwrap_or_default().to_string();
            let c = by_scope.entry(value).or_default();
            for (field, n) in fields {
                match (spent, field.split(':').next()) {
                    (true, Some("u")) => c.spent_nano_usd += n,
                    (true, Some("t")) => c.spent_tokens += n,
                    (false, Some("u")) => c.reserved_nano_usd += n,
                    (false, Some("t")) => c.reserved_tokens += n,
                    _ => {}
                }
            }
        }
    }
    let named = values
        .iter()
        .map(|v| by_scope.remove(&scope(v)).unwrap_or_default())
        .collect();
    let others = by_scope
        .into_values()
        .fold(Counters::default(), |a, c| Counters {
            spent_nano_usd: a.spent_nano_usd + c.spent_nano_usd,
            spent_tokens: a.spent_tokens + c.spent_tokens,
            reserved_nano_usd: a.reserved_nano_usd + c.reserved_nano_usd,
            reserved_tokens: a.reserved_tokens + c.reserved_tokens,
        });
    Ok((named, others))
}

#[cfg(test)]
mod tests {
    #[test]
    fn scope_is_the_proxys_hash() {
        // proxy/spend/src/keys.rs: 16 hex digits of SHA-256.
        assert_eq!(super::scope("exact").len(), 16);
        assert_eq!(
            super::scope("abc"),
            "ba7816bf8f01cfea",
            "SHA-256(\"abc\") starts ba7816bf8f01cfea"
        );
    }
}
