//! Test builders: a [`Context`] whose watch caches hold what a test says.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;

use crate::cache::Synced;
use crate::context::{Context, Settings, Stores};
use crate::crd::LlmPolicy;
use crate::metrics::Metrics;

/// A context whose caches hold the namespace `team-a` with `labels`, and
/// `policies`, current or not. Its client talks to `client`, else to
/// nothing (a test that expects no API call).
pub(crate) fn context(
    labels: &[(&str, &str)],
    policies: &[LlmPolicy],
    current: bool,
    client: Option<kube::Client>,
) -> Arc<Context> {
    let (policy_store, mut pw) = reflector::store::<LlmPolicy>();
    for p in policies {
        pw.apply_watcher_event(&Event::Apply(p.clone()));
    }
    let (namespaces, mut nw) = reflector::store::<PartialObjectMeta<Namespace>>();
    let mut team_a = PartialObjectMeta::<Namespace>::default();
    team_a.metadata.name = Some("team-a".into());
    team_a.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    nw.apply_watcher_event(&Event::Apply(team_a));
    let (pods, _) = reflector::store::<PartialObjectMeta<Pod>>();
    let client = client.unwrap_or_else(|| {
        let nowhere = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        kube::Client::try_from(nowhere).unwrap()
    });
    let synced = if current {
        Synced::already()
    } else {
        Synced::default()
    };
    let stores = Stores {
        policies: policy_store,
        pods: Arc::new(std::sync::RwLock::new(pods)),
        namespaces,
        synced: vec![synced],
    };
    Context::new(client, stores, Metrics::new(), Settings::default())
}
