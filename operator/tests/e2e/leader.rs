//! Two replicas share one Lease: only the holder reconciles; when it dies
//! the other takes the Lease over and reconciles; a replica that loses the
//! Lease stops exporting the gauges only a leader keeps current.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

use crate::*;

const NS: &str = "e2e-leader";
const UNINJECTED: &str =
    "tollgate_operator_uninjected_pods{namespace=\"e2e-leader\",policy=\"lead\"}";

/// Which of the two replicas leads, once exactly one says so.
async fn leader_of(ops: &[Operator; 2]) -> usize {
    eventually("exactly one leader", WAIT, || async {
        let a = ops[0].metric("tollgate_operator_leader").await;
        let b = ops[1].metric("tollgate_operator_leader").await;
        match (a, b) {
            (Some(1.0), Some(0.0)) => Some(0),
            (Some(0.0), Some(1.0)) => Some(1),
            _ => None,
        }
    })
    .await
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    holder_of(leases, "e2e-leader").await
}

async fn holder_of(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases.get_opt(name).await.ok()??.spec?.holder_identity
}

/// Some once the replica counted a successful reconcile (it counts when
/// the reconcile returns, just after the status it wrote is visible).
async fn reconciled(op: &Operator) -> Option<()> {
    let n = op
        .metric("tollgate_operator_reconciles_total{result=\"success\"}")
        .await?;
    (n >= 1.0).then_some(())
}

/// Whether a replica's metrics hold any series of the leader-only gauges.
fn has_leader_gauges(metrics: &str) -> bool {
    metrics.lines().any(|l| {
        l.starts_with("tollgate_operator_policies{")
            || l.starts_with("tollgate_operator_uninjected_pods{")
    })
}

#[tokio::test]
async fn one_replica_leads_and_the_other_takes_over() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    namespace(&client, NS).await;
    let names = ["replica-a", "replica-b"];
    let launch = |name| Launch {
        pod_name: Some(name),
        lease_seconds: 3,
        webhooks: false,
        ..Launch::new("e2e-leader", NS)
    };
    let mut ops = [
        launch(names[0]).start(&client).await,
        launch(names[1]).start(&client).await,
    ];
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let first = leader_of(&ops).await;
    let other = 1 - first;
    assert_eq!(holder(&leases).await.as_deref(), Some(names[first]));

    // A pod created before its policy runs without the sidecar.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "early", "labels": {"app": "lead"}},
        "spec": {"containers": [{"name": "app", "image": "example.test/app:1"}]}}))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), NS);
    let mut p = policy(NS);
    p.metadata.name = Some("lead".into());
    p.spec.pod_selector = serde_json::from_value(json!({"matchLabels": {"app": "lead"}})).unwrap();
    policies.create(&PostParams::default(), &p).await.unwrap();
    wait_policy(
        &policies,
        "lead",
        "one uninjected pod",
        |p: Option<&LlmPolicy>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.uninjected_pods == Some(1))
        },
    )
    .await;

    // Only the leader reconciled and reports the gauges.
    eventually("the leader's uninjected-pods gauge", WAIT, || async {
        (ops[first].metric(UNINJECTED).await == Some(1.0)).then_some(())
    })
    .await;
    eventually("the leader's reconciles counted", WAIT, || {
        reconciled(&ops[first])
    })
    .await;
    let follower = ops[other].metrics().await.unwrap();
    assert!(
        !follower.contains("tollgate_operator_reconciles_total{"),
        "the follower reconciled:\n{follower}"
    );
    assert!(!has_leader_gauges(&follower), "{follower}");

    // The leader dies without a word; the other takes over once the Lease
    // expires, and reconciles the next change.
    ops[first].kill();
    eventually("the Lease taken over", WAIT, || async {
        (holder(&leases).await.as_deref() == Some(names[other])).then_some(())
    })
    .await;
    let patch = json!({"spec": {"routeDefaults": {"timeouts": {"idle": "61s"}}}});
    let p = policies
        .patch("lead", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_policy(
        &policies,
        "lead",
        "reconciled by the new leader",
        ready_at(p.metadata.generation.unwrap()),
    )
    .await;
    assert_eq!(
        ops[other].metric("tollgate_operator_leader").await,
        Some(1.0)
    );
    eventually("the new leader's reconciles counted", WAIT, || {
        reconciled(&ops[other])
    })
    .await;
    eventually("the new leader's gauges", WAIT, || async {
        (ops[other].metric(UNINJECTED).await == Some(1.0)).then_some(())
    })
    .await;

    // Another holder takes the Lease (as after a network partition): the
    // replica stops leading and drops the leader-only gauges.
    let mut lease = leases.get("e2e-leader").await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("someone-else".into());
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    spec.lease_duration_seconds = Some(3600);
    leases
        .replace("e2e-leader", &PostParams::default(), &lease)
        .await
        .unwrap();
    let metrics = eventually("leadership lost", WAIT, || async {
        let m = ops[other].metrics().await?;
        m.lines()
            .any(|l| l == "tollgate_operator_leader 0")
            .then_some(m)
    })
    .await;
    assert!(!has_leader_gauges(&metrics), "stale gauges:\n{metrics}");

    // Once that holder's Lease expires the replica leads again; stopped
    // gracefully, it gives the Lease up instead of letting it run out.
    let mut lease = leases.get("e2e-leader").await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(
        Timestamp::now() - std::time::Duration::from_secs(60),
    ));
    leases
        .replace("e2e-leader", &PostParams::default(), &lease)
        .await
        .unwrap();
    eventually("leading again", WAIT, || async {
        (ops[other].metric("tollgate_operator_leader").await == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(holder(&leases).await.as_deref(), Some(names[other]));
    assert!(ops[other].terminate().await.success());
    assert_eq!(holder(&leases).await, None, "released on shutdown");

    cleanup(&client, "e2e-leader", NS).await;
}

/// A leader stopped gracefully (a rolling update) hands over at once: the
/// standby watches the Lease, so it does not wait for its next round. With
/// 300 s leases a round is 100 s apart, so only the watch makes it.
#[tokio::test]
async fn a_graceful_stop_hands_the_lease_over_at_once() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-handover";
    namespace(&client, ns).await;
    let names = ["replica-a", "replica-b"];
    let launch = |name| Launch {
        pod_name: Some(name),
        lease_seconds: 300,
        webhooks: false,
        ..Launch::new("e2e-handover", ns)
    };
    let mut ops = [
        launch(names[0]).start(&client).await,
        launch(names[1]).start(&client).await,
    ];
    let first = leader_of(&ops).await;
    let other = 1 - first;
    assert!(ops[first].terminate().await.success());
    eventually(
        "the standby leads",
        std::time::Duration::from_secs(10),
        || async {
            (ops[other].metric("tollgate_operator_leader").await == Some(1.0)).then_some(())
        },
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    assert_eq!(
        holder_of(&leases, "e2e-handover").await.as_deref(),
        Some(names[other])
    );

    cleanup(&client, "e2e-handover", ns).await;
}
