//! Model prices and the cost of usage, in integer nano-USD.
//!
//! A built-in table of well-known models, overridden and extended by
//! `budgets.pricing.models`. A dated snapshot name (`gpt-4o-2024-08-06`,
//! `claude-sonnet-4-5-20250929`) finds its model's price; other suffixes do
//! not, because a cheaper sibling (`o1-pro` vs `o1`) must never borrow a
//! price.

use std::collections::HashMap;

use tollgate_config::{Price, Pricing};

use crate::api::usage::Usage;

/// List prices in USD per million tokens:
/// `(model, input, output, cached input, cache write)`.
///
/// Taken from the OpenAI and Anthropic pricing pages on 2025-11-30. Prices
/// change: `budgets.pricing.models` overrides any entry.
const BUILT_IN: &[(&str, f64, f64, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00, 1.25, 2.50),
    ("chatgpt-4o-latest", 5.00, 15.00, 5.00, 5.00),
    ("gpt-4o-mini", 0.15, 0.60, 0.075, 0.15),
    ("gpt-4.1", 2.00, 8.00, 0.50, 2.00),
    ("gpt-4.1-mini", 0.40, 1.60, 0.10, 0.40),
    ("gpt-4.1-nano", 0.10, 0.40, 0.025, 0.10),
    ("gpt-5", 1.25, 10.00, 0.125, 1.25),
    ("gpt-5-mini", 0.25, 2.00, 0.025, 0.25),
    ("gpt-5-nano", 0.05, 0.40, 0.005, 0.05),
    ("o1", 15.00, 60.00, 7.50, 15.00),
    ("o1-mini", 1.10, 4.40, 0.55, 1.10),
    ("o1-pro", 150.00, 600.00, 150.00, 150.00),
    ("o3", 2.00, 8.00, 0.50, 2.00),
    ("o3-mini", 1.10, 4.40, 0.55, 1.10),
    ("o3-pro", 20.00, 80.00, 20.00, 20.00),
    ("o4-mini", 1.10, 4.40, 0.275, 1.10),
    ("text-embedding-3-small", 0.02, 0.0, 0.02, 0.02),
    ("text-embedding-3-large", 0.13, 0.0, 0.13, 0.13),
    ("text-embedding-ada-002", 0.10, 0.0, 0.10, 0.10),
    ("claude-opus-4-5", 5.00, 25.00, 0.50, 6.25),
    ("claude-opus-4-1", 15.00, 75.00, 1.50, 18.75),
    ("claude-opus-4-0", 15.00, 75.00, 1.50, 18.75),
    ("claude-opus-4", 15.00, 75.00, 1.50, 18.75),
    ("claude-sonnet-4-5", 3.00, 15.00, 0.30, 3.75),
    ("claude-sonnet-4-0", 3.00, 15.00, 0.30, 3.75),
    ("claude-sonnet-4", 3.00, 15.00, 0.30, 3.75),
    ("claude-haiku-4-5", 1.00, 5.00, 0.10, 1.25),
];

/// The label metrics use for the default price.
pub(super) const DEFAULT_LABEL: &str = "default";

/// Prices by model.
#[derive(Debug, Clone)]
pub(crate) struct PriceTable {
    models: HashMap<String, Price>,
    default: Option<Price>,
}

/// A price and the table entry it came from (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Priced<'a> {
    pub label: &'a str,
    pub price: Price,
}

impl PriceTable {
    pub(crate) fn new(cfg: &Pricing) -> PriceTable {
        let mut models: HashMap<String, Price> = BUILT_IN
            .iter()
            .map(|&(m, i, o, c, w)| (m.to_string(), Price::from_usd(i, o, Some(c), Some(w))))
            .collect();
        for (m, p) in &cfg.models {
            models.insert(m.clone(), *p);
        }
        PriceTable {
            models,
            default: cfg.default_price,
        }
    }

    /// The price of `model`: its own, its snapshot's base model's, or the
    /// default; `None` when unknown and no default is configured.
    pub(crate) fn lookup<'a>(&'a self, model: &str) -> Option<Priced<'a>> {
        if let Some((k, p)) = self.models.get_key_value(model) {
            return Some(Priced {
                label: k,
                price: *p,
            });
        }
        if let Some(base) = strip_snapshot(model) {
            if let Some((k, p)) = self.models.get_key_value(base) {
                return Some(Priced {
                    label: k,
                    price: *p,
                });
            }
        }
        self.default.map(|price| Priced {
            label: DEFAULT_LABEL,
            price,
        })
    }
}

/// `gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929` →
/// `claude-sonnet-4-5`, `claude-sonnet-4-5@20250929` (Vertex) and
/// `gpt-4o-latest`-style suffixes likewise.
fn strip_snapshot(model: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(base) = model.strip_suffix("-latest") {
        return Some(base);
    }
    if let Some((base, tail)) = model.rsplit_once(['-', '@']) {
        if tail.len() == 8 && digits(tail) {
            return Some(base);
        }
    }
    // -YYYY-MM-DD
    let n = model.len();
    if n > 11 && model.is_char_boundary(n - 11) {
        let (base, tail) = model.split_at(n - 11);
        let b = tail.as_bytes();
        if b[0] == b'-'
            && b[5] == b'-'
            && b[8] == b'-'
            && digits(&tail[1..5])
            && digits(&tail[6..8])
            && digits(&tail[9..11])
        {
            return Some(base);
        }
    }
    None
}

/// `tokens × nano-USD per million`, rounded up so a sum of costs never
/// undercounts.
fn nano(tokens: u64, per_million: u64) -> u128 {
    u128::from(tokens) * u128::from(per_million)
}

fn round_up(total: u128) -> u64 {
    u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The most a request can cost: every prompt token at the dearer of the
/// input and cache-write prices, and every allowed output token.
pub(super) fn worst_case(price: &Price, prompt_tokens: u64, max_output_tokens: u64) -> u64 {
    round_up(
        nano(prompt_tokens, price.input.max(price.cache_write))
            + nano(max_output_tokens, price.output),
    )
}

/// The cost of reported usage. `usage.input` includes cached and
/// cache-creation tokens, each billed at its own price.
pub(super) fn cost(price: &Price, usage: &Usage) -> u64 {
    let plain = usage
        .input
        .saturating_sub(usage.cached_input)
        .saturating_sub(usage.cache_creation);
    round_up(
        nano(plain, price.input)
            + nano(usage.cached_input, price.cached_input)
            + nano(usage.cache_creation, price.cache_write)
            + nano(usage.output, price.output),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::new(&Pricing {
            default_price: None,
            models: vec![("gpt-4o".into(), Price::from_usd(2.0, 8.0, Some(1.0), None))],
        })
    }

    #[test]
    fn config_overrides_and_snapshots_resolve() {
        let t = table();
        assert_eq!(t.lookup("gpt-4o").unwrap().price.input, 2_000_000_000);
        let p = t.lookup("gpt-4o-2024-08-06").unwrap();
        assert_eq!((p.label, p.price.output), ("gpt-4o", 8_000_000_000));
        assert_eq!(
            t.lookup("gpt-4o-mini-2024-07-18").unwrap().label,
            "gpt-4o-mini"
        );
        assert_eq!(
            t.lookup("claude-sonnet-4-5-20250929").unwrap().label,
            "claude-sonnet-4-5"
        );
        assert_eq!(
            t.lookup("claude-haiku-4-5@20251001").unwrap().label,
            "claude-haiku-4-5"
        );
        assert_eq!(t.lookup("o1-preview"), None, "no borrowing from `o1`");
        assert_eq!(t.lookup("llama3"), None);
    }

    #[test]
    fn default_price_labels_unknown_models() {
        let t = PriceTable::new(&Pricing {
            default_price: Some(Price::from_usd(5.0, 15.0, None, None)),
            models: vec![],
        });
        assert_eq!(t.lookup("llama3").unwrap().label, DEFAULT_LABEL);
    }

    #[test]
    fn exact_costs() {
        let p = Price::from_usd(3.0, 15.0, Some(0.30), Some(3.75));
        let u = Usage {
            input: 1_500,
            output: 200,
            cached_input: 300,
            cache_creation: 200,
            reasoning: 0,
        };
        // 1000 × 3 + 300 × 0.30 + 200 × 3.75 + 200 × 15 = 3000 + 90 + 750 + 3000 micro-USD
        assert_eq!(cost(&p, &u), 6_840_000);
        assert_eq!(worst_case(&p, 1_000, 100), 3_750_000 + 1_500_000);
        // Rounds up: one token at $0.0001/M is a tenth of a nano-dollar,
        // billed as one.
        let tiny = Price::from_usd(0.0001, 0.0, None, None);
        assert_eq!(
            cost(
                &tiny,
                &Usage {
                    input: 1,
                    ..Usage::default()
                }
            ),
            1
        );
    }
}
