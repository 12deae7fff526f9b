//! Webhook certificates from a Secret, with the API server calling the
//! webhooks: two replicas and the operator-made certificate (one Secret,
//! one CA, both serving it, the caBundle trusting it, renewals and a CA
//! rotation reaching both and the caBundle without a restart or a refused
//! admission), and a user's Secret served with its `ca.crt` injected.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::net::TcpStream;
use tollgate_operator::crd::LlmPolicy;

use crate::*;

/// The certificate the webhook listener on `port` presents, if a client
/// trusting only the PEM `bundle` accepts it for 127.0.0.1 (the API
/// server's check).
async fn served(port: u16, bundle: &str) -> Option<CertificateDer<'static>> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(bundle.as_bytes()).flatten() {
        roots.add(ca).ok()?;
    }
    if roots.is_empty() {
        return None;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .ok()?;
    Some(tls.get_ref().1.peer_certificates()?[0].clone().into_owned())
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("a certificate")
}

fn pems(bundle: &str) -> usize {
    CertificateDer::pem_slice_iter(bundle.as_bytes()).count()
}

fn text(s: &Secret, key: &str) -> String {
    let v = &s.data.as_ref().expect("data")[key].0;
    String::from_utf8(v.clone()).unwrap()
}

async fn replica_ready(op: &Operator) -> bool {
    match reqwest::get(format!("{}/readyz", op.admin)).await {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

/// The `caBundle` (PEM) of the first webhook of each configuration.
async fn ca_bundles(client: &Client, name: &str) -> (String, String) {
    let pem = |b: Option<&k8s_openapi::ByteString>| {
        String::from_utf8(b.map(|b| b.0.clone()).unwrap_or_default()).unwrap()
    };
    let m = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(name)
        .await
        .unwrap();
    let v = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(name)
        .await
        .unwrap();
    (
        pem(m.webhooks.unwrap()[0].client_config.ca_bundle.as_ref()),
        pem(v.webhooks.unwrap()[0].client_config.ca_bundle.as_ref()),
    )
}

/// The bundle both configurations agree on, once they do and it is not empty.
async fn agreed_bundle(client: &Client, name: &str) -> Option<String> {
    let (m, v) = ca_bundles(client, name).await;
    (m == v && !m.is_empty()).then_some(m)
}

/// The configurations `tollgate-<tag>`: pods in `ns` sent to `mutate_port`,
/// policies in `ns` to `validate_port`; no caBundle (the operator's job).
async fn split_webhooks(
    client: &Client,
    tag: &str,
    ns: &str,
    mutate_port: u16,
    validate_port: u16,
) {
    let scope = json!({"matchLabels": {"kubernetes.io/metadata.name": ns}});
    let mwc: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": format!("tollgate-{tag}")},
        "webhooks": [{
            "name": "inject.tollgate.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "reinvocationPolicy": "Never", "namespaceSelector": scope,
            "clientConfig": {"url": format!("https://127.0.0.1:{mutate_port}/mutate")},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        }],
    }))
    .unwrap();
    let vwc: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": format!("tollgate-{tag}")},
        "webhooks": [{
            "name": "validate.tollgate.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "namespaceSelector": scope,
            "clientConfig": {"url": format!("https://127.0.0.1:{validate_port}/validate")},
            "rules": [{"apiGroups": ["tollgate.dev"], "apiVersions": ["v1alpha1"],
                       "operations": ["CREATE", "UPDATE"], "resources": ["llmpolicies"]}],
        }],
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&pp, &mwc)
        .await
        .unwrap();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&pp, &vwc)
        .await
        .unwrap();
}

/// Dry-run admissions in a loop (a pod through the mutating webhook, a
/// policy through the validating one) until dropped; every failure kept.
struct Admissions {
    task: tokio::task::JoinHandle<()>,
    failures: Arc<Mutex<Vec<String>>>,
    done: Arc<Mutex<u32>>,
}

impl Admissions {
    fn start(client: &Client, ns: &str) -> Admissions {
        let failures: Arc<Mutex<Vec<String>>> = Arc::default();
        let done: Arc<Mutex<u32>> = Arc::default();
        let (f, d) = (Arc::clone(&failures), Arc::clone(&done));
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
        let mut p = policy(ns);
        p.metadata.name = Some("dry".into());
        let task = tokio::spawn(async move {
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            loop {
                match pods.create(&dry, &app_pod("dry", "chat")).await {
                    Ok(pod) if injected(&pod) => *d.lock().unwrap() += 1,
                    Ok(_) => f
                        .lock()
                        .unwrap()
                        .push("a pod admitted without its sidecar".into()),
                    Err(e) => f.lock().unwrap().push(format!("pod: {e}")),
                }
                match policies.create(&dry, &p).await {
                    Ok(_) => *d.lock().unwrap() += 1,
                    Err(e) => f.lock().unwrap().push(format!("policy: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Admissions {
            task,
            failures,
            done,
        }
    }

    /// Stops; (admissions done, failures).
    fn stop(self) -> (u32, Vec<String>) {
        self.task.abort();
        let done = *self.done.lock().unwrap();
        let failures = self.failures.lock().unwrap().clone();
        (done, failures)
    }
}

/// Whether a client trusting `bundle` accepts what each replica presents.
async fn both_trusted(ops: &[Operator; 2], bundle: &str) -> bool {
    served(ops[0].webhook, bundle).await.is_some() && served(ops[1].webhook, bundle).await.is_some()
}

/// The certificate both replicas present, trusted by `bundle`.
async fn both_serve(ops: &[Operator; 2], bundle: &str) -> Option<CertificateDer<'static>> {
    let a = served(ops[0].webhook, bundle).await?;
    let b = served(ops[1].webhook, bundle).await?;
    (a == b).then_some(a)
}

#[tokio::test]
async fn two_replicas_share_one_operator_made_certificate_through_rotations() {
    if !cluster() {
        return;
    }
    const NS: &str = "e2e-certs";
    const TAG: &str = "e2e-certs";
    const SECRET: &str = "tollgate-e2e-certs-tls";
    let webhooks = format!("tollgate-{TAG}");
    let _serial = serial().await;
    let client = client().await;
    namespace(&client, NS).await;
    // The Lease is held by a replica that does not make the Secret (an
    // older version, during an upgrade from the chart's helm certificate).
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let held = Lease {
        metadata: ObjectMeta {
            name: Some(TAG.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("older-version".into()),
            lease_duration_seconds: Some(3600),
            renew_time: Some(MicroTime(Timestamp::now())),
            acquire_time: Some(MicroTime(Timestamp::now())),
            ..Default::default()
        }),
    };
    leases.create(&PostParams::default(), &held).await.unwrap();

    let args: Vec<String> = [
        "--tls-secret",
        SECRET,
        "--tls-generate",
        // Renewed every 20 s, and a new CA trusted 3 s before it signs.
        "--tls-cert-validity",
        "30s",
        "--tls-overlap",
        "3s",
        "--mutating-webhook-config",
        &webhooks,
        "--validating-webhook-config",
        &webhooks,
    ]
    .map(String::from)
    .to_vec();
    let launch = |name| Launch {
        pod_name: Some(name),
        // Renewed every second; a replica waits 8 s for a Secret its
        // leader does not make.
        lease_seconds: 2,
        webhooks: false,
        args: args.clone(),
        ..Launch::new(TAG, NS)
    };
    let ops = [
        launch("replica-a").start(&client).await,
        launch("replica-b").start(&client).await,
    ];
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);

    // Neither makes a certificate of its own: not ready, no Secret.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        assert!(!replica_ready(&ops[0]).await && !replica_ready(&ops[1]).await);
        assert!(secrets.get_opt(SECRET).await.unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Having waited four lease durations, one creates it; both serve it.
    let secret = eventually("the Secret, created by one replica", WAIT, || async {
        secrets.get_opt(SECRET).await.unwrap()
    })
    .await;
    let ca = text(&secret, "ca.crt");
    assert_eq!(pems(&ca), 1, "one CA");
    eventually("both replicas ready", WAIT, || async {
        (replica_ready(&ops[0]).await && replica_ready(&ops[1]).await).then_some(())
    })
    .await;
    let leaf = eventually("both serve the Secret's certificate", WAIT, || async {
        let s = secrets.get(SECRET).await.unwrap();
        both_serve(&ops, &ca)
            .await
            .filter(|l| *l == der(&text(&s, "tls.crt")))
    })
    .await;
    let uid = secret.metadata.uid.clone();
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=tollgate-operator");
    assert_eq!(secrets.list(&managed).await.unwrap().items.len(), 1);
    let owner = &secret.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Lease", TAG));

    // No replica of this version leads: the caBundle is left alone. Once
    // the Lease is given up, the one that takes it fills it in.
    split_webhooks(&client, TAG, NS, ops[0].webhook, ops[1].webhook).await;
    assert_eq!(
        ca_bundles(&client, &webhooks).await,
        (String::new(), String::new())
    );
    leases
        .patch(
            TAG,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": null, "renewTime": null}})),
        )
        .await
        .unwrap();
    let bundle = eventually("caBundle set to the Secret's CA", WAIT, || async {
        agreed_bundle(&client, &webhooks).await.filter(|b| *b == ca)
    })
    .await;
    assert_eq!(served(ops[0].webhook, &bundle).await, Some(leaf.clone()));

    // The API server calls both: policies through replica b, pods through a.
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), NS);
    policies
        .create(&PostParams::default(), &policy(NS))
        .await
        .unwrap();
    wait_policy(&policies, "chat", "Ready", ready(None)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = pods
        .create(&PostParams::default(), &app_pod("first", "chat"))
        .await
        .unwrap();
    assert!(injected(&pod));

    let load = Admissions::start(&client, NS);
    // A renewal (with a third of its 30 s left) reaches both replicas.
    let renewed = eventually("a renewed certificate served by both", WAIT, || async {
        both_serve(&ops, &bundle).await.filter(|l| *l != leaf)
    })
    .await;
    let secret = secrets.get(SECRET).await.unwrap();
    assert_eq!(text(&secret, "ca.crt"), ca, "renewed by the same CA");

    // A CA rotation, asked for on the Secret.
    secrets
        .patch(
            SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"tollgate.dev/rotate": "ca"}}})),
        )
        .await
        .unwrap();
    let both = eventually("old and new CA in the caBundle", WAIT, || async {
        agreed_bundle(&client, &webhooks)
            .await
            .filter(|b| pems(b) == 2 && b.ends_with(&ca))
    })
    .await;
    let new_ca = both.strip_suffix(&ca).unwrap().to_string();
    let switched = eventually(
        "both replicas serve a certificate of the new CA",
        WAIT,
        || async {
            // Whatever they serve meanwhile, the caBundle trusts it.
            let current = agreed_bundle(&client, &webhooks).await?;
            assert!(
                both_trusted(&ops, &current).await,
                "a replica serves a certificate the caBundle does not trust"
            );
            both_serve(&ops, &new_ca).await
        },
    )
    .await;
    assert_ne!(switched, renewed);
    eventually("the old CA leaves the caBundle", WAIT, || async {
        let current = agreed_bundle(&client, &webhooks).await?;
        assert!(both_trusted(&ops, &current).await);
        (current == new_ca).then_some(())
    })
    .await;
    let secret = secrets.get(SECRET).await.unwrap();
    assert_eq!(text(&secret, "ca.crt"), new_ca);
    assert!(!secret
        .metadata
        .annotations
        .unwrap_or_default()
        .contains_key("tollgate.dev/rotate"));
    assert_eq!(secret.metadata.uid, uid, "the same Secret throughout");
    assert_eq!(secrets.list(&managed).await.unwrap().items.len(), 1);

    let (done, failures) = load.stop();
    assert!(failures.is_empty(), "admissions refused: {failures:?}");
    assert!(done >= 20, "only {done} admissions");

    cleanup(&client, TAG, NS).await;
}

/// A CA and a leaf for 127.0.0.1 it signed: (CA PEM, leaf PEM, key PEM).
fn user_pki(ca: Option<(&rcgen::Certificate, &KeyPair)>) -> (String, String, String) {
    let own;
    let (ca_cert, ca_key) = match ca {
        Some(c) => c,
        None => {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            own = (p.self_signed(&key).unwrap(), key);
            (&own.0, &own.1)
        }
    };
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, ca_cert, ca_key)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

fn user_secret(name: &str, ca: &str, cert: &str, key: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "stringData": {"ca.crt": ca, "tls.crt": cert, "tls.key": key},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_users_secret_is_served_and_its_ca_injected() {
    if !cluster() {
        return;
    }
    const NS: &str = "e2e-certs-user";
    const TAG: &str = "e2e-certs-user";
    const SECRET: &str = "platform-webhook-tls";
    let webhooks = format!("tollgate-{TAG}");
    let _serial = serial().await;
    let client = client().await;
    namespace(&client, NS).await;
    let args: Vec<String> = [
        "--tls-secret",
        SECRET,
        "--mutating-webhook-config",
        &webhooks,
        "--validating-webhook-config",
        &webhooks,
    ]
    .map(String::from)
    .to_vec();
    let op = Launch {
        lease_seconds: 2,
        webhooks: false,
        args,
        ..Launch::new(TAG, NS)
    }
    .start(&client)
    .await;
    split_webhooks(&client, TAG, NS, op.webhook, op.webhook).await;
    // Waits for the Secret: not ready, the caBundle untouched.
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < until {
        assert!(!replica_ready(&op).await);
        assert_eq!(
            ca_bundles(&client, &webhooks).await,
            (String::new(), String::new())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca1 = p.self_signed(&key).unwrap();
    let (ca, leaf, leaf_key) = user_pki(Some((&ca1, &key)));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    secrets
        .create(
            &PostParams::default(),
            &user_secret(SECRET, &ca, &leaf, &leaf_key),
        )
        .await
        .unwrap();
    eventually(
        "ready, serving the Secret's certificate, its CA injected",
        WAIT,
        || async {
            let ok = replica_ready(&op).await
                && agreed_bundle(&client, &webhooks).await.as_deref() == Some(ca.as_str())
                && served(op.webhook, &ca).await == Some(der(&leaf));
            ok.then_some(())
        },
    )
    .await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), NS);
    policies
        .create(&PostParams::default(), &policy(NS))
        .await
        .unwrap();
    wait_policy(&policies, "chat", "Ready", ready(None)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = pods
        .create(&PostParams::default(), &app_pod("first", "chat"))
        .await
        .unwrap();
    assert!(injected(&pod));

    // The platform renews the certificate (same CA): served without a restart.
    let (_, renewed, renewed_key) = user_pki(Some((&ca1, &key)));
    secrets
        .replace(
            SECRET,
            &PostParams::default(),
            &user_secret(SECRET, &ca, &renewed, &renewed_key),
        )
        .await
        .unwrap();
    eventually("the renewed certificate served", WAIT, || async {
        (served(op.webhook, &ca).await == Some(der(&renewed))).then_some(())
    })
    .await;
    // ... and moves to a new CA, trusting both meanwhile: injected as written.
    let (ca2, leaf2, key2) = user_pki(None);
    let both = format!("{ca2}{ca}");
    let written = secrets
        .replace(
            SECRET,
            &PostParams::default(),
            &user_secret(SECRET, &both, &leaf2, &key2),
        )
        .await
        .unwrap();
    eventually(
        "the new CA's certificate served, both CAs injected",
        WAIT,
        || async {
            let ok = agreed_bundle(&client, &webhooks).await.as_deref() == Some(both.as_str())
                && served(op.webhook, &ca2).await == Some(der(&leaf2));
            ok.then_some(())
        },
    )
    .await;
    assert!(injected(
        &pods
            .create(&PostParams::default(), &app_pod("second", "chat"))
            .await
            .unwrap()
    ));
    // The operator never writes a user's Secret.
    let s = secrets.get(SECRET).await.unwrap();
    assert!(s.metadata.owner_references.is_none());
    assert!(s
        .metadata
        .annotations
        .unwrap_or_default()
        .keys()
        .all(|k| !k.starts_with("tollgate.dev/")));
    assert_eq!(
        s.metadata.resource_version,
        written.metadata.resource_version
    );

    cleanup(&client, TAG, NS).await;
}
