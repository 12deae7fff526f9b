//! The replica holding the Lease keeps the certificate Secret and the
//! webhooks' `caBundle`: it creates the Secret (one CA, one serving
//! certificate, whichever replica leads), rotates it by [`issue::plan`],
//! and makes `caBundle` equal to the Secret's `ca.crt` (with a user's
//! Secret, only the latter). Writes carry the Secret's resourceVersion, so
//! a replica that still believes it leads can never overwrite a newer one.
//!
//! A replica not leading only waits for the Secret, except when it has
//! waited `grace` (four lease durations) and the Secret still does not
//! exist: the leader is then a replica that does not make it (an older
//! version, during an upgrade from the chart's `helm` certificate), and the
//! rollout would wait for this replica's readiness forever. It then creates
//! the Secret itself; creation is atomic, so there is still one CA.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{info, warn};

use super::ca_bundle::{self, Targets};
use super::issue::{self, Issued, Policy};
use super::stored::{self, CA_CRT};
use super::{CertStore, TlsError};

/// A leader's pass runs at least this often: a `caBundle` changed by
/// someone else is put back within it.
const RECHECK: Duration = Duration::from_secs(60);

/// What the leader keeps.
pub struct Rotator {
    pub client: Client,
    /// The Secret's namespace (the operator's own) and name.
    pub namespace: String,
    pub name: String,
    /// `Some`: the operator makes and rotates the Secret; `None`: it is the
    /// user's, only its `ca.crt` is injected.
    pub policy: Option<Policy>,
    pub webhooks: Targets,
    /// The Lease, the Secret's owner.
    pub lease: String,
    pub grace: Duration,
}

impl Rotator {
    /// Runs until the task is dropped. `leading` follows the election;
    /// `changed` is notified when the Secret changes; `store` is what this
    /// replica serves.
    pub async fn run(
        self,
        mut leading: watch::Receiver<bool>,
        changed: Arc<Notify>,
        store: Arc<CertStore>,
    ) {
        let mut failures = 0u32;
        let mut waiting_since: Option<Instant> = None;
        loop {
            let leads = *leading.borrow_and_update();
            let wake = if leads {
                waiting_since = None;
                match self.pass().await {
                    Ok(next) => {
                        failures = 0;
                        let now = Timestamp::now();
                        let until =
                            Duration::try_from(next.duration_since(now)).unwrap_or_default();
                        Instant::now() + until.min(RECHECK)
                    }
                    Err(e) => {
                        failures += 1;
                        warn!(secret = %self.name, error = %e, "webhook certificate pass failed; retrying");
                        Instant::now() + Duration::from_secs(1 << failures.min(5))
                    }
                }
            } else if self.policy.is_some() && !store.loaded() {
                let since = *waiting_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.grace {
                    self.create_for_an_older_leader().await;
                    waiting_since = Some(Instant::now());
                }
                waiting_since.expect("set above") + self.grace
            } else {
                waiting_since = None;
                Instant::now() + RECHECK
            };
            // The election reports every round; only a change of
            // leadership is news.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    _ = changed.notified() => break,
                    r = leading.changed() => {
                        if r.is_err() {
                            return;
                        }
                        if *leading.borrow_and_update() != leads {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// One pass of the leader: the Secret as [`issue::plan`] wants it, then
    /// `caBundle` as the Secret says. Returns when the next change is due.
    async fn pass(&self) -> Result<Timestamp, TlsError> {
        let api = self.secrets();
        let now = Timestamp::now();
        let mut secret = api.get_opt(&self.name).await.map_err(self.err("read"))?;
        let mut next = now + RECHECK;
        if let Some(policy) = &self.policy {
            let issued = match secret.as_ref().map(stored::read) {
                None => None,
                Some(Ok(i)) => Some(i),
                Some(Err(why)) => {
                    warn!(secret = %self.name, reason = %why, "the webhook certificate Secret is not one the operator can use; replacing it");
                    None
                }
            };
            let issued = match issue::plan(issued.as_ref(), now, policy)? {
                Some(change) => {
                    secret = Some(self.write(secret, &change.next).await?);
                    info!(
                        secret = %self.name,
                        reasons = %change.reasons.join("; "),
                        ca_not_after = %change.next.ca.not_after,
                        certificate_not_after = %change.next.cert.not_after,
                        trusted_cas = change.next.trust.len(),
                        "webhook certificate Secret updated"
                    );
                    change.next
                }
                None => issued.expect("plan creates when there is nothing"),
            };
            next = next.min(issue::next_due(&issued, policy));
        }
        if self.webhooks.is_empty() {
            return Ok(next);
        }
        let Some(secret) = secret else {
            warn!(secret = %self.name, "no webhook certificate Secret yet: caBundle left as it is");
            return Ok(next);
        };
        let Some(ca) = stored::text(&secret, CA_CRT).filter(|ca| !ca.trim().is_empty()) else {
            warn!(secret = %self.name, "the webhook certificate Secret has no {CA_CRT}: caBundle left as it is");
            return Ok(next);
        };
        if ca_bundle::ensure(&self.client, &self.webhooks, ca).await? {
            info!(secret = %self.name, "webhook configurations' caBundle updated");
        }
        Ok(next)
    }

    /// Creates the Secret (none yet) or replaces it (`current`, whose
    /// resourceVersion the write must match).
    async fn write(&self, current: Option<Secret>, next: &Issued) -> Result<Secret, TlsError> {
        let api = self.secrets();
        match current {
            Some(mut s) => {
                stored::write(next, &mut s);
                api.replace(&self.name, &PostParams::default(), &s)
                    .await
                    .map_err(self.err("update"))
            }
            None => {
                let mut s = stored::new(&self.name, self.owner().await);
                stored::write(next, &mut s);
                api.create(&PostParams::default(), &s)
                    .await
                    .map_err(self.err("create"))
            }
        }
    }

    /// See the module's doc: a replica that is not leading creates the
    /// missing Secret once it has waited `grace`.
    async fn create_for_an_older_leader(&self) {
        let Some(policy) = &self.policy else { return };
        match self.secrets().get_opt(&self.name).await {
            Ok(None) => {}
            Ok(Some(_)) => return,
            Err(e) => {
                warn!(secret = %self.name, error = %e, "cannot read the webhook certificate Secret");
                return;
            }
        }
        warn!(
            secret = %self.name,
            waited = ?self.grace,
            "the replica holding the Lease has not created the webhook certificate Secret; creating it"
        );
        let created = match issue::plan(None, Timestamp::now(), policy) {
            Ok(Some(change)) => self.write(None, &change.next).await,
            Ok(None) => return,
            Err(e) => Err(e),
        };
        match created {
            Ok(_) => info!(secret = %self.name, "webhook certificate Secret created"),
            // Another replica was first: its Secret is served.
            Err(TlsError::Secret {
                source: kube::Error::Api(e),
                ..
            }) if e.code == 409 => {}
            Err(e) => {
                warn!(secret = %self.name, error = %e, "cannot create the webhook certificate Secret")
            }
        }
    }

    /// The Lease as the Secret's owner, so the Secret goes with the
    /// release; `None` (an unowned Secret) if it cannot be read.
    async fn owner(&self) -> Option<OwnerReference> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        match api.get(&self.lease).await {
            Ok(lease) => Some(OwnerReference {
                api_version: Lease::api_version(&()).into(),
                kind: Lease::kind(&()).into(),
                name: lease.name_any(),
                uid: lease.uid()?,
                ..Default::default()
            }),
            Err(e) => {
                warn!(lease = %self.lease, error = %e, "cannot read the Lease; the webhook certificate Secret will have no owner");
                None
            }
        }
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn err(&self, verb: &'static str) -> impl Fn(kube::Error) -> TlsError + '_ {
        move |source| TlsError::Secret {
            verb,
            name: self.name.clone(),
            source,
        }
    }
}
