//! Status' spend: each budget's current window, read from the Redis the
//! policy's sidecars share, with the proxy's own key and window code
//! ([`tollgate_spend::read_spend`]).
//!
//! Budgets scoped `policy`, `namespace` or `workload` have one counter per
//! policy and show its spend. Budgets scoped `model` or `header` count each
//! model or header value against its own limit; a sum over values would
//! compare with nothing, so they show their limits only. A Redis that does
//! not answer within [`READ_TIMEOUT`] leaves the reconcile successful and
//! the spend `unknown`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use tollgate_config::{BudgetStore, Budgets, Config};
use tollgate_spend::redis_auth::ClientPem;
use tollgate_spend::{read_spend, Identity, RedisSecrets, WindowSpend};

use crate::crd::{BudgetStatus, LlmPolicySpec, SecretKeyRef};
use crate::metrics::Metrics;

/// Bound on reading one policy's spend: connecting, the password's and TLS
/// files' Secrets and every Redis call.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a policy with a Redis store is reconciled to refresh its spend.
pub const REFRESH: Duration = Duration::from_secs(30);
/// What `status.spend` says when Redis does not answer.
pub const UNKNOWN: &str = "unknown";

const NANO_PER_USD: f64 = 1e9;

/// Why the spend could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    #[error("Secret {name}: {message}")]
    Secret { name: String, message: String },
    /// A CA, client certificate or key that is not PEM.
    #[error(transparent)]
    Material(#[from] tollgate_spend::SecretError),
    #[error("redis settings: {0}")]
    Settings(String),
    #[error("redis: {0}")]
    Redis(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// What status shows of a policy's budgets: `status.spend` and
/// `status.budgets`. `None` when the policy's budgets do not use Redis.
pub async fn spend_status(
    client: &Client,
    metrics: &Metrics,
    namespace: &str,
    spec: &LlmPolicySpec,
    config: &Config,
) -> Option<(Option<String>, Vec<BudgetStatus>)> {
    if !matches!(config.budgets.store, BudgetStore::Redis(_)) || config.budgets.limits.is_empty() {
        return None;
    }
    let read = async {
        let secrets = secrets(client, namespace, spec).await?;
        read(config, &secrets).await
    };
    let spent = match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Err(SpendError::Timeout(READ_TIMEOUT)),
    };
    let spent = match spent {
        Ok(s) => {
            metrics.spend_reads.with_label_values(&["success"]).inc();
            Some(s)
        }
        Err(e) => {
            metrics.spend_reads.with_label_values(&["error"]).inc();
            tracing::warn!(error = %e, "cannot read budget spend");
            None
        }
    };
    Some(summarize(&config.budgets, spent.as_deref()))
}

/// Each limit's spend in its current window (`None` for `model` and
/// `header` scopes), as the sidecars running `config` count it.
pub async fn read(
    config: &Config,
    secrets: &RedisSecrets,
) -> Result<Vec<Option<WindowSpend>>, SpendError> {
    let BudgetStore::Redis(r) = &config.budgets.store else {
        return Ok(vec![None; config.budgets.limits.len()]);
    };
    let mut conn =
        tollgate_spend::redis_conn::connect_lazy(r, secrets).map_err(SpendError::Settings)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    read_spend(&mut conn, &config.budgets, &Identity::of(config), now_ms)
        .await
        .map_err(|e| SpendError::Redis(e.to_string()))
}

/// The Redis password and TLS material from the Secrets
/// `spec.budgets.store.redis` names, as the sidecar reads its mounted
/// files (the password's trailing newlines dropped).
async fn secrets(
    client: &Client,
    namespace: &str,
    spec: &LlmPolicySpec,
) -> Result<RedisSecrets, SpendError> {
    let Some(r) = spec
        .budgets
        .as_ref()
        .and_then(|b| b.store.as_ref())
        .and_then(|s| s.redis.as_ref())
    else {
        return Ok(RedisSecrets::default());
    };
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut read = Keys {
        api: &api,
        fetched: BTreeMap::new(),
    };
    let password = match &r.password_secret_ref {
        Some(k) => {
            let bytes = read.key(k).await?;
            let text = String::from_utf8(bytes).map_err(|_| SpendError::Secret {
                name: k.name.clone(),
                message: format!("key {} is not UTF-8", k.key),
            })?;
            Some(tollgate_spend::redis_auth::password_text(&text))
        }
        None => None,
    };
    let tls = r.tls.clone().unwrap_or_default();
    let ca = match &tls.ca_secret_ref {
        Some(k) => Some(read.key(k).await?),
        None => None,
    };
    let client_pem = match (&tls.cert_secret_ref, &tls.key_secret_ref) {
        (Some(c), Some(k)) => Some(ClientPem {
            cert: read.key(c).await?,
            key: read.key(k).await?,
        }),
        _ => None,
    };
    let s = RedisSecrets {
        password,
        ca,
        client: client_pem,
    };
    s.check(|what| {
        let k = match what {
            tollgate_spend::redis_auth::CA => tls.ca_secret_ref.as_ref(),
            tollgate_spend::redis_auth::CLIENT_CERT => tls.cert_secret_ref.as_ref(),
            _ => tls.key_secret_ref.as_ref(),
        };
        k.map_or_else(String::new, |k| format!("Secret {} key {}", k.name, k.key))
    })?;
    Ok(s)
}

/// Secret keys, each Secret read once.
struct Keys<'a> {
    api: &'a Api<Secret>,
    fetched: BTreeMap<String, Secret>,
}

impl Keys<'_> {
    async fn key(&mut self, r: &SecretKeyRef) -> Result<Vec<u8>, SpendError> {
        let err = |message: String| SpendError::Secret {
            name: r.name.clone(),
            message,
        };
        if !self.fetched.contains_key(&r.name) {
            let secret = self
                .api
                .get(&r.name)
                .await
                .map_err(|e| err(e.to_string()))?;
            self.fetched.insert(r.name.clone(), secret);
        }
        self.fetched[&r.name]
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| b.0.clone())
            .ok_or_else(|| err(format!("has no key {}", r.key)))
    }
}

/// `status.spend` and `status.budgets` from what was read (`None`: Redis
/// did not answer). `status.spend` summarizes the first budget with a known
/// spend, USD budgets first: `$12.40/$100 day`, or `1200/50000 tokens hour`.
pub fn summarize(
    budgets: &Budgets,
    spent: Option<&[Option<WindowSpend>]>,
) -> (Option<String>, Vec<BudgetStatus>) {
    let mut out = Vec::with_capacity(budgets.limits.len());
    for (i, l) in budgets.limits.iter().enumerate() {
        let s = spent.and_then(|s| s.get(i).copied().flatten());
        out.push(BudgetStatus {
            name: l.name.clone(),
            spent_usd: s
                .filter(|_| l.usd.is_some())
                .map(|s| round_cents(s.usd as f64 / NANO_PER_USD)),
            limit_usd: l.usd.map(|u| u as f64 / NANO_PER_USD),
            spent_tokens: s.filter(|_| l.tokens.is_some()).map(|s| s.tokens),
            limit_tokens: l.tokens,
        });
    }
    let Some(_) = spent else {
        return (Some(UNKNOWN.into()), out);
    };
    let window = |i: usize| budgets.limits[i].window.kind();
    let usd = out.iter().enumerate().find_map(|(i, b)| {
        Some(format!(
            "${:.2}/{} {}",
            b.spent_usd?,
            dollars(b.limit_usd?),
            window(i)
        ))
    });
    let tokens = || {
        out.iter().enumerate().find_map(|(i, b)| {
            Some(format!(
                "{}/{} tokens {}",
                b.spent_tokens?,
                b.limit_tokens?,
                window(i)
            ))
        })
    };
    (usd.or_else(tokens), out)
}

/// Whole cents: status changes when the spend does, not with every token.
fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

/// `$100`, or `$2.50` for a limit with cents.
fn dollars(usd: f64) -> String {
    if usd.fract() == 0.0 {
        format!("${usd:.0}")
    } else {
        format!("${usd:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(limits: &str) -> Budgets {
        let text = format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nproviders:\n  - {{name: o, type: openai, passthrough: true, models: [m]}}\nbudgets:\n  store: {{type: redis, redis: {{url: \"redis://127.0.0.1:1/0\"}}}}\n  pricing: {{models: {{m: {{input: 1, output: 1}}}}}}\n  limits:\n{limits}"
        );
        tollgate_config::from_yaml_str(&text)
            .unwrap_or_else(|e| panic!("{e}"))
            .budgets
    }

    #[test]
    fn summary_falls_back_to_tokens_and_skips_unknown_budgets() {
        let b = budgets(
            "    - {name: team, scope: header, header: x-team, window: day, usd: 2.5}\n    - {name: tok, scope: policy, window: hour, tokens: 50000}\n",
        );
        let spent = [
            None,
            Some(WindowSpend {
                usd: 0,
                tokens: 1200,
            }),
        ];
        let (summary, out) = summarize(&b, Some(&spent));
        assert_eq!(summary.as_deref(), Some("1200/50000 tokens hour"));
        assert_eq!((out[0].spent_usd, out[0].limit_usd), (None, Some(2.5)));
        assert_eq!(out[1].spent_usd, None, "a token budget shows no USD");
    }

    #[test]
    fn usd_summary_rounds_to_cents() {
        let b = budgets("    - {name: d, scope: policy, window: day, usd: 2.5}\n");
        let spent = [Some(WindowSpend {
            usd: 1_234_567_890,
            tokens: 9,
        })];
        let (summary, out) = summarize(&b, Some(&spent));
        assert_eq!(summary.as_deref(), Some("$1.23/$2.50 day"));
        assert_eq!(out[0].spent_usd, Some(1.23));
        assert_eq!(out[0].spent_tokens, None);
    }
}
