//! Leader election through a `coordination.k8s.io` Lease: the holder
//! renews it every `renew`; another replica takes it over once it has not
//! been renewed for `lease_duration`. Updates use the Lease's
//! resourceVersion, so two replicas never both win a round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
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
        let leading = match try_acquire(&api, &cfg).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "lease update failed");
                // Keep leading only while our last renewal is still valid;
                // the renew interval is well within the lease duration.
                false
            }
        };
        if *tx.borrow() != leading {
            info!(leading, identity = %cfg.identity, "leadership changed");
        }
        tx.send_replace(leading);
        tokio::time::sleep(cfg.renew).await;
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
