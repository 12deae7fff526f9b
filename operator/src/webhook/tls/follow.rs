//! Every replica serves the certificate a Secret holds (`--tls-secret`):
//! read at start, then watched (by name, so RBAC can grant that one
//! Secret), so a rotation is served to new connections within moments and
//! without a restart. Until the Secret exists the store stays empty: the
//! webhook listener completes no handshake and `/readyz` fails, so the
//! Service sends this replica nothing. A pair that does not parse or match
//! is refused and counted, and the last good one kept; so is a deletion.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{WatchEvent, WatchParams};
use kube::Api;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::stored::{text, TLS_CRT, TLS_KEY};
use super::{certified_key, CertPem, CertStore};
use crate::metrics::Metrics;

#[cfg(test)]
mod tests;

/// The Secret every replica serves from.
pub struct Follow {
    pub api: Api<Secret>,
    pub name: String,
}

impl Follow {
    /// Runs until the task is dropped. `changed` is notified on every event
    /// about the Secret (the rotator's wake-up).
    pub async fn run(self, store: Arc<CertStore>, metrics: Metrics, changed: Arc<Notify>) {
        let mut serving = Serving {
            store,
            metrics,
            last: None,
            name: self.name.clone(),
        };
        let mut backoff = Backoff::default();
        // The resourceVersion last seen (`None`: absent), so a read that
        // finds nothing new wakes no one.
        let mut seen: Option<Option<String>> = None;
        loop {
            let rv = match self.api.get_opt(&self.name).await {
                Ok(s) => {
                    backoff.reset();
                    serving.take(s.as_ref());
                    let rv = s.and_then(|s| s.metadata.resource_version);
                    if seen.as_ref() != Some(&rv) {
                        changed.notify_one();
                    }
                    seen = Some(rv.clone());
                    rv
                }
                Err(e) => {
                    warn!(secret = %self.name, error = %e, "cannot read the webhook certificate Secret");
                    backoff.wait().await;
                    continue;
                }
            };
            // From the read on; "0" (any point) when it does not exist yet:
            // its creation still arrives as an event.
            let params = WatchParams::default()
                .fields(&format!("metadata.name={}", self.name))
                .timeout(290);
            let events = match self.api.watch(&params, rv.as_deref().unwrap_or("0")).await {
                Ok(events) => events,
                Err(e) => {
                    warn!(secret = %self.name, error = %e, "cannot watch the webhook certificate Secret");
                    backoff.wait().await;
                    continue;
                }
            };
            let mut events = std::pin::pin!(events);
            let mut failed = false;
            while let Some(event) = events.next().await {
                match event {
                    Ok(WatchEvent::Added(s) | WatchEvent::Modified(s)) => {
                        serving.take(Some(&s));
                        seen = Some(s.metadata.resource_version);
                    }
                    Ok(WatchEvent::Deleted(_)) => {
                        serving.take(None);
                        seen = Some(None);
                    }
                    Ok(WatchEvent::Bookmark(_)) => continue,
                    // Too old a resourceVersion and the like: read again.
                    Ok(WatchEvent::Error(e)) => {
                        debug!(secret = %self.name, error = %e.message, "watch of the webhook certificate Secret ended");
                        failed = true;
                        break;
                    }
                    Err(e) => {
                        debug!(secret = %self.name, error = %e, "watch of the webhook certificate Secret ended");
                        failed = true;
                        break;
                    }
                }
                backoff.reset();
                changed.notify_one();
            }
            // A watch that ends at its timeout is renewed at once; one that
            // fails, after the backoff.
            if failed {
                backoff.wait().await;
            }
        }
    }
}

/// What this replica serves, and the Secret's pair it last looked at.
struct Serving {
    store: Arc<CertStore>,
    metrics: Metrics,
    last: Option<(String, String)>,
    name: String,
}

impl Serving {
    fn take(&mut self, secret: Option<&Secret>) {
        let Some(secret) = secret else {
            if self.store.loaded() {
                warn!(secret = %self.name, "webhook certificate Secret deleted; serving the last certificate");
            }
            return;
        };
        let (Some(cert), Some(key)) = (text(secret, TLS_CRT), text(secret, TLS_KEY)) else {
            warn!(secret = %self.name, "webhook certificate Secret has no {TLS_CRT} and {TLS_KEY}");
            return;
        };
        if self
            .last
            .as_ref()
            .is_some_and(|(c, k)| (c.as_str(), k.as_str()) == (cert, key))
        {
            return;
        }
        self.last = Some((cert.to_string(), key.to_string()));
        let pem = CertPem {
            cert: cert.to_string(),
            key: key.to_string(),
        };
        match certified_key(&pem) {
            Ok(k) => {
                let first = !self.store.loaded();
                self.store.set(k);
                if first {
                    info!(secret = %self.name, "webhook certificate loaded");
                } else {
                    self.metrics
                        .tls_reloads
                        .with_label_values(&["success"])
                        .inc();
                    info!(secret = %self.name, "webhook certificate reloaded");
                }
            }
            Err(e) => {
                self.metrics
                    .tls_reloads
                    .with_label_values(&["failure"])
                    .inc();
                warn!(secret = %self.name, error = %e, "webhook certificate refused; serving the previous one, if any");
            }
        }
    }
}

/// 1 s, doubling to 30 s, between failed reads.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    async fn wait(&mut self) {
        let secs = 1u64 << self.0.min(5);
        self.0 += 1;
        tokio::time::sleep(Duration::from_secs(secs.min(30))).await;
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}
