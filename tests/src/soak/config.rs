//! The proxy config the soak runs, and the variants its reload chaos writes.
//!
//! The harness's two providers on the mock, two routes that translate
//! (OpenAI app → Anthropic target, Anthropic app → OpenAI target), a small
//! exact cache that unique prompts keep full, and budgets in Redis. The
//! budget has one limit scoped by [`CLASS_HEADER`], so the spend of
//! requests settled from the provider's usage (`exact`) and of requests cut
//! short and settled on the proxy's estimate (`cut`) land in separate
//! counters; prices are whole USD per million tokens, so every cost is a
//! whole number of nano-USD and the comparison is exact.

use crate::harness;

/// The budget store's call timeout. Longer than the 100 ms default: with
/// `appendfsync always` on a busy machine a call can take longer, and a
/// call that times out after Redis ran it is counted wrongly by the proxy
/// (`--redis-stall-every-s` shows it on purpose; see tests/README.md).
pub(crate) const REDIS_TIMEOUT: &str = "1s";

/// The request header that picks a request's budget counter.
pub(crate) const CLASS_HEADER: &str = "x-soak-class";
/// The budget limit's name (part of its Redis keys).
pub(crate) const LIMIT: &str = "soak";
/// Cache bounds: unique prompts overflow them within seconds.
pub(crate) const CACHE_MAX_ENTRIES: u64 = 64;
pub(crate) const CACHE_MAX_BYTES: u64 = 64 * 1024;

/// Served model → USD per million input and output tokens, written into
/// `budgets.pricing` and used again to price what the mock billed.
pub(crate) const PRICES: &[(&str, u64, u64)] =
    &[("gpt-4o-mini", 2, 8), ("claude-sonnet-4-5", 3, 15)];

/// What `input` and `output` tokens on `model` cost, in nano-USD, as the
/// proxy's price table computes it (nano-USD per million tokens, summed,
/// rounded up once); `None` for a model without a price.
pub(crate) fn cost_nano(model: &str, input: u64, output: u64) -> Option<u64> {
    const NANO_PER_USD: u128 = 1_000_000_000;
    let &(_, usd_in, usd_out) = PRICES.iter().find(|(m, _, _)| *m == model)?;
    let total = u128::from(input) * u128::from(usd_in) * NANO_PER_USD
        + u128::from(output) * u128::from(usd_out) * NANO_PER_USD;
    u64::try_from(total.div_ceil(1_000_000)).ok()
}

/// The harness config's upstream line, and the soak's: idle upstream
/// connections close after 2 s, so open descriptors return to their
/// baseline soon after traffic stops.
const HARNESS_UPSTREAM: &str = "upstream: {credentialRefreshInterval: 1s}";
const SOAK_UPSTREAM: &str = "upstream: {credentialRefreshInterval: 1s, poolIdleTimeout: 2s}";

/// The config texts of one run.
pub(crate) struct Configs {
    mock_url: String,
    store: String,
}

/// What a reload write is, and so what the proxy must do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// A real change: applied, `tollgate_config_last_reload_successful` 1.
    Valid,
    /// Refused; the last good config keeps serving and the gauge is 0.
    Invalid,
}

impl Configs {
    /// `store` is the `budgets.store` block (see `budgets::StoreBlock`).
    pub(crate) fn new(mock_url: &str, store: String) -> Configs {
        Configs {
            mock_url: mock_url.to_string(),
            store,
        }
    }

    /// The config the proxy starts with.
    pub(crate) fn initial(&self) -> String {
        self.valid(20)
    }

    /// The text of reload number `n` (0-based): valid and invalid in turn.
    /// Valid ones alternate the retry backoff (30 ms, 20 ms, …), so each
    /// differs from the config it replaces; invalid ones alternate a YAML
    /// syntax error and a config error (an unknown field).
    pub(crate) fn reload(&self, n: u64) -> (Write, String) {
        if n % 2 == 0 {
            let backoff = if n % 4 == 0 { 30 } else { 20 };
            (Write::Valid, self.valid(backoff))
        } else if n % 4 == 1 {
            (
                Write::Invalid,
                format!("{}\n  : [unclosed\n", self.valid(20)),
            )
        } else {
            (
                Write::Invalid,
                format!("{}\nsoakUnknownField: 1\n", self.valid(20)),
            )
        }
    }

    fn valid(&self, backoff_ms: u64) -> String {
        let prices: String = PRICES
            .iter()
            .map(|(m, i, o)| format!("      {m}: {{input: {i}, output: {o}}}\n"))
            .collect();
        let extra = format!(
            r#"routing:
  defaults:
    retry: {{maxAttempts: 2, initialBackoff: {backoff_ms}ms, maxBackoff: 200ms}}
    circuitBreaker: {{consecutiveFailures: 1000000, errorRate: 1.0, minRequests: 1000000}}
  routes:
    - {{name: soak-o2a, targets: [{{provider: anthropic, model: claude-sonnet-4-5}}]}}
    - {{name: soak-a2o, targets: [{{provider: openai, model: gpt-4o-mini}}]}}
cache: {{maxEntries: {CACHE_MAX_ENTRIES}, maxBytes: {CACHE_MAX_BYTES}, maxEntryBytes: 16Ki, ttl: 1h}}
budgets:
{store}  pricing:
    models:
{prices}  reservation: {{defaultMaxOutputTokens: 64}}
  limits:
    - {{name: {LIMIT}, scope: header, header: {CLASS_HEADER}, window: month, usd: 100000, tokens: 1000000000000}}
  rateLimits:
    - {{name: soak-rate, scope: policy, requestsPerMinute: 1000000, tokensPerMinute: 1000000000}}
"#,
            store = self.store,
        );
        let text = harness::config(&self.mock_url, "", &extra);
        assert!(
            text.contains(HARNESS_UPSTREAM),
            "the harness config's upstream line changed; update soak/config.rs"
        );
        text.replace(HARNESS_UPSTREAM, SOAK_UPSTREAM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_whole_nano_usd() {
        // 10 × $2/M + 5 × $8/M = 20,000 + 40,000 nano-USD.
        assert_eq!(cost_nano("gpt-4o-mini", 10, 5), Some(60_000));
        assert_eq!(cost_nano("claude-sonnet-4-5", 1, 1), Some(18_000));
        assert_eq!(cost_nano("gpt-4o", 1, 1), None);
    }
}
