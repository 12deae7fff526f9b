//! Test builders shared by the budget tests: a config with round prices,
//! requests and usage.
//!
//! Model `m1` costs $1/M input and $2/M output: 1 000 and 2 000 nano-USD a
//! token. A request of 1 000 prompt tokens and 500 output tokens reserves
//! `WORST` = 2 000 000 nano-USD ($0.002).
// The fuzz targets (feature `fuzzing`) use only some of these.
#![cfg_attr(not(test), allow(dead_code))]

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use tollgate_config::Budgets;

use super::{AdmitRequest, BudgetEngine, Clock, Identity};
use crate::api::usage::Usage;

pub(crate) const WORST: u64 = 2_000_000;
pub(crate) const PROMPT: u64 = 1_000;
pub(crate) const MAX_OUT: u64 = 500;
/// 2025-06-15T12:00:00Z.
pub(crate) const T0: i64 = 1_749_988_800_000;

const BASE: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
metadata: {name: p, namespace: team-ns, workload: api}
providers:
  - {name: openai, type: openai, passthrough: true, models: [m1, m2, m3]}
routing:
  routes:
    - name: chat-cheap
      targets: [{provider: openai, model: m1}]
"#;

const PRICES: &str = r#"
  pricing:
    models:
      m1: {input: 1, output: 2}
      m2: {input: 4, output: 8, cachedInput: 1, cacheWrite: 5}
"#;

/// Validated budgets from a `budgets:` body (indented by two spaces);
/// `m1`/`m2` prices are added unless the body has its own `pricing:`.
pub(crate) fn budgets(body: &str) -> Budgets {
    let pricing = if body.contains("pricing:") {
        ""
    } else {
        PRICES
    };
    let text = format!("{BASE}budgets:\n{pricing}{body}");
    tollgate_config::from_yaml_str(&text)
        .unwrap_or_else(|e| panic!("{e}"))
        .budgets
}

pub(crate) fn identity() -> Identity {
    Identity {
        policy: "p".into(),
        namespace: Some("team-ns".into()),
        workload: Some("api".into()),
    }
}

pub(crate) async fn engine(body: &str, clock: Arc<dyn Clock>) -> BudgetEngine {
    BudgetEngine::with_clock(&budgets(body), &identity(), None, clock)
        .await
        .unwrap()
}

pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::try_from(*k).unwrap(),
            HeaderValue::try_from(*v).unwrap(),
        );
    }
    h
}

/// `PROMPT` tokens, at most `MAX_OUT` output, served by `m1`.
pub(crate) fn req(h: &HeaderMap) -> AdmitRequest<'_> {
    AdmitRequest {
        headers: h,
        requested_model: "m1",
        models: &["m1"],
        prompt_tokens: PROMPT,
        max_output_tokens: Some(MAX_OUT),
    }
}

pub(crate) fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input,
        output,
        ..Usage::default()
    }
}

/// The value of a response header of an admission.
pub(crate) fn header(a: &super::Admission, name: &str) -> Option<String> {
    a.headers()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.to_str().unwrap().to_string())
}

/// A metric line's value from the exposition text.
pub(crate) fn metric(engine: &BudgetEngine, line_prefix: &str) -> Option<f64> {
    let text = String::from_utf8(engine.metrics().encode()).unwrap();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
}

/// A fake clock at [`T0`].
pub(crate) fn clock() -> Arc<super::FakeClock> {
    Arc::new(super::FakeClock::new(T0))
}

/// One policy-wide daily budget of one cent.
pub(crate) const DAILY_1C: &str =
    "  limits: [{name: daily, scope: policy, window: day, usd: 0.01}]\n";
