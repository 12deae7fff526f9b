//! Certificate renewal without a restart. cert-manager (or the chart)
//! replaces the Secret; the kubelet swaps the mounted files atomically
//! (`..data`). The files are re-read every interval: a changed pair that
//! parses and matches replaces the served certificate for new handshakes;
//! anything else (a half-written pair, a key that does not match) is
//! logged and counted, and the last good certificate stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{certified_key, read, CertStore};
use crate::metrics::Metrics;

/// The certificate and key files, and how often to look at them.
pub struct Watch {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub interval: Duration,
}

impl Watch {
    /// Runs until the task is dropped. `loaded` is the pair `store` holds.
    pub async fn run(self, store: Arc<CertStore>, loaded: (String, String), metrics: Metrics) {
        let mut last = loaded;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pem = match read(&self.cert, &self.key) {
                Ok(p) => p,
                Err(e) => {
                    // The kubelet's swap is atomic, but a file may vanish
                    // between the two reads; the next tick sees the pair.
                    warn!(error = %e, "cannot read the webhook certificate");
                    continue;
                }
            };
            if (pem.cert.as_str(), pem.key.as_str()) == (last.0.as_str(), last.1.as_str()) {
                continue;
            }
            match certified_key(&pem) {
                Ok(k) => {
                    store.set(k);
                    metrics.tls_reloads.with_label_values(&["success"]).inc();
                    info!(cert = %self.cert.display(), "webhook certificate reloaded");
                }
                Err(e) => {
                    metrics.tls_reloads.with_label_values(&["failure"]).inc();
                    warn!(error = %e, "new webhook certificate refused; serving the previous one");
                }
            }
            last = (pem.cert, pem.key);
        }
    }
}
