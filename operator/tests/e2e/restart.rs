//! The API server restarts under a running operator, several times: a
//! namespace enabled, a policy created and its pod created at once after
//! each restart get the sidecar (never admitted without it), whether the
//! operator's watches failed through the outage or resumed on the new
//! server without an error; then a policy created afterwards is validated
//! and reconciled, and a change to one created before is picked up.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

use crate::*;

/// `tests/k8s/cluster.sh restart-apiserver` on the cluster of this run.
async fn restart_apiserver() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/k8s/cluster.sh");
    let status = tokio::task::spawn_blocking(move || {
        Command::new(script)
            .arg("restart-apiserver")
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "restart-apiserver: {status}");
}

/// How long the operator may take to notice the API server is back: its
/// watches retry with client-go's backoff (0.8 s doubling to 30 s, with
/// up to 100% jitter), so a watch that failed through the whole outage can
/// wait up to a minute before it reconnects; then the 500 ms debounce and
/// a reconcile.
const AFTER_RESTART: std::time::Duration = std::time::Duration::from_secs(150);

fn named(ns: &str, name: &str) -> LlmPolicy {
    let mut p = policy(ns);
    p.metadata.name = Some(name.into());
    // Its own pods, so the two policies do not conflict.
    p.spec.pod_selector = serde_json::from_value(json!({"matchLabels": {"app": name}})).unwrap();
    p
}

/// Restarts: the first with the operator running through the outage (its
/// watches fail, its caches go stale), the others with it frozen until the
/// new server is ready, so its watches resume there without an error,
/// possibly held by the server while its own watch cache fills.
const ROUNDS: u32 = 5;

#[tokio::test]
async fn operator_recovers_when_the_api_server_restarts() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-restart";
    namespace(&client, ns).await;
    let op = Launch::new("e2e-restart", ns).start(&client).await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    create_policy(&policies, &named(ns, "before")).await;
    wait_policy(&policies, "before", "Ready", ready(None)).await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = |v: Option<&str>| json!({"metadata": {"labels": {"tollgate.dev/injection": v}}});
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for round in 1..=ROUNDS {
        let frozen = round > 1;
        // Injection off in the namespace, and the operator knows it: a pod
        // of `before` is admitted without the sidecar.
        namespaces
            .patch(ns, &PatchParams::default(), &Patch::Merge(&label(None)))
            .await
            .unwrap();
        let mut n = 0;
        eventually("the operator sees injection off", WAIT, || {
            n += 1;
            let pods = pods.clone();
            async move {
                let p = pods
                    .create(
                        &PostParams::default(),
                        &app_pod(&format!("probe-{round}-{n}"), "before"),
                    )
                    .await
                    .unwrap();
                (!injected(&p)).then_some(())
            }
        })
        .await;

        // `/readyz` fails while the caches are stale (watched where the
        // operator runs through the outage).
        let unready_seen = Arc::new(AtomicBool::new(false));
        let poller = (!frozen).then(|| {
            let url = format!("{}/readyz", op.admin);
            let seen = unready_seen.clone();
            tokio::spawn(async move {
                loop {
                    if let Ok(r) = reqwest::get(&url).await {
                        if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                            seen.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            })
        });

        if frozen {
            op.freeze();
        }
        restart_apiserver().await;
        if frozen {
            op.thaw();
        }

        // At once: injection on, a new policy, and its pod. The operator's
        // watches are reconnecting or have just resumed, so its caches may
        // know neither; the pod must still get its sidecar (or be refused,
        // never admitted without it).
        eventually("the API server serves again", AFTER_RESTART, || async {
            namespaces
                .patch(
                    ns,
                    &PatchParams::default(),
                    &Patch::Merge(&label(Some("enabled"))),
                )
                .await
                .ok()
        })
        .await;
        let late = format!("late-{round}");
        create_policy(&policies, &named(ns, &late)).await;
        let pod = eventually("the late pod admitted", AFTER_RESTART, || async {
            match pods
                .create(&PostParams::default(), &app_pod(&late, &late))
                .await
            {
                Ok(p) => Some(p),
                // Refused while the operator could not decide (failurePolicy Fail).
                Err(kube::Error::Api(e)) if e.message.contains("failed calling webhook") => None,
                Err(e) => panic!("create pod: {e}"),
            }
        })
        .await;
        assert!(
            injected(&pod),
            "round {round} (operator frozen: {frozen}): {late} admitted without the sidecar"
        );
        if let Some(poller) = poller {
            poller.abort();
            assert!(
                unready_seen.load(Ordering::Relaxed),
                "/readyz never said the caches were stale"
            );
        }
    }

    // A new policy: the validating webhook answers (from the operator's
    // resumed policy cache) and the controller reconciles it.
    let mut bad = named(ns, "after");
    bad.spec.routes[0].retry.as_mut().unwrap().initial_backoff = Some("soon".into());
    let err = eventually("the API server serves again", AFTER_RESTART, || async {
        match policies.create(&Default::default(), &bad).await {
            Err(kube::Error::Api(e)) if e.code == 400 || e.code == 403 => Some(e.message),
            _ => None,
        }
    })
    .await;
    assert!(err.contains("spec.routes[0].retry.initialBackoff"), "{err}");
    create_policy(&policies, &named(ns, "after")).await;
    wait_policy_within(&policies, "after", "Ready", ready(None), AFTER_RESTART).await;

    // A change to the policy from before the restart.
    let patch = json!({"spec": {"routeDefaults": {"timeouts": {"idle": "61s"}}}});
    let p = policies
        .patch("before", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let generation = p.metadata.generation.unwrap();
    wait_policy_within(
        &policies,
        "before",
        "the new generation",
        ready_at(generation),
        AFTER_RESTART,
    )
    .await;
    // Reconciles failed while the API server was away must not have
    // killed the controller, and the caches are current again.
    eventually("/readyz ready again", AFTER_RESTART, || async {
        let r = reqwest::get(format!("{}/readyz", op.admin)).await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    cleanup(&client, "e2e-restart", ns).await;
}
