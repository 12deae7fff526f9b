//! Leader election through a `coordination.k8s.io` Lease: the holder
//! renews it every `renew`; another replica takes it over once it has not
//! been renewed for `lease_duration`, or at once when the holder gives it
//! up (standby replicas watch the Lease between rounds). Updates use the
//! Lease's resourceVersion, so two replicas never both win a round.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::Api;
use tokio::sync::watch;
use tracing::{info, warn};

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew: Duration,
}

/// Runs the election forever; `tx` carries whether this replica leads.
pub async fn run(client: kube::Client, cfg: LeaseConfig, tx: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    loop {
        // A round that hangs must not keep a replica leading past its
        // lease: it is bounded by the renew interval, and any failure ends
        // leadership at once (another replica may take over only after the
        // lease expires, so two never lead together).
        let leading = match tokio::time::timeout(cfg.renew, try_acquire(&api, &cfg)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                warn!(error = %e, "lease update failed");
                false
            }
            Err(_) => {
                warn!(timeout = ?cfg.renew, "lease update timed out");
                false
            }
        };
        if *tx.borrow() != leading {
            info!(leading, identity = %cfg.identity, "leadership changed");
        }
        tx.send_replace(leading);
        if leading {
            tokio::time::sleep(cfg.renew).await;
        } else {
            until_released(&api, &cfg).await;
        }
    }
}

/// Waits `cfg.renew`, or less when the Lease is given up meanwhile (its
/// holder stopped gracefully): a watch of the one Lease, so a standby
/// replica takes over within moments rather than at its next round.
async fn until_released(api: &Api<Lease>, cfg: &LeaseConfig) {
    let deadline = tokio::time::Instant::now() + cfg.renew;
    let params = WatchParams::default()
        .fields(&format!("metadata.name={}", cfg.name))
        .timeout(cfg.renew.as_secs().clamp(1, 290) as u32);
    // A watch that cannot start (or ends) leaves the plain wait.
    if let Ok(Ok(events)) = tokio::time::timeout_at(deadline, api.watch(&params, "0")).await {
        let mut events = std::pin::pin!(events);
        while let Ok(Some(Ok(event))) = tokio::time::timeout_at(deadline, events.next()).await {
            if let WatchEvent::Added(l) | WatchEvent::Modified(l) = event {
                if l.spec.as_ref().is_none_or(|s| s.holder_identity.is_none()) {
                    return;
                }
            }
        }
    }
    tokio::time::sleep_until(deadline).await;
}

/// Gives the Lease up (on shutdown, when this replica holds it): it is
/// marked expired, so another replica takes it over at its next round
/// instead of after the lease duration.
pub async fn release(client: &kube::Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else {
        return;
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => info!(identity = %cfg.identity, "lease released"),
        Err(e) => warn!(error = %e, "cannot release the lease"),
    }
}

/// One round: take or renew the Lease if it is ours or expired.
async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let secs = cfg.lease_duration.as_secs() as i32;
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            let holder = spec.holder_identity.clone().unwrap_or_default();
            let ours = holder == cfg.identity;
            let expired = match &spec.renew_time {
                Some(MicroTime(t)) => {
                    let d = spec.lease_duration_seconds.unwrap_or(secs) as i64;
                    *t + SignedDuration::from_secs(d) < now
                }
                None => true,
            };
            if !ours && !expired {
                return Ok(false);
            }
            if !ours {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.acquire_time = Some(MicroTime(now));
                spec.holder_identity = Some(cfg.identity.clone());
            }
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(secs);
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}
