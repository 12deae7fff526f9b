//! The HTTPS server both webhooks share, and the one place an admission
//! review becomes a response.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::{Api, ResourceExt};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::field::Empty;
use tracing::{debug, info, info_span, warn, Instrument, Span};

use super::mutate::{has_env_from, patch, EnvFromByContainer};
use super::validate::{namespace_warnings, unknown_fields, verdict};
use super::view;
use crate::context::Context;
use crate::crd::LlmPolicy;
use crate::secrets;
use crate::telemetry::record_trace_id;

/// Largest review accepted (the API server sends at most a few MiB).
const MAX_BODY: usize = 8 << 20;

/// Serves `/mutate` and `/validate` over TLS until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, ctx: Arc<Context>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = service_fn(move |req: Request<Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(req: Request<Incoming>, ctx: &Context) -> Response<Full<Bytes>> {
    let webhook = match req.uri().path() {
        "/mutate" => "mutate",
        "/validate" => "validate",
        _ => return reply(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
    };
    // What the review is about is recorded once it is parsed ([`describe`]);
    // never the object itself (a pod's env, a policy's spec).
    let span = info_span!(
        "admission",
        otel.kind = "server",
        webhook,
        kind = Empty,
        operation = Empty,
        namespace = Empty,
        name = Empty,
        dry_run = Empty,
        result = Empty,
        allowed = Empty,
        trace_id = Empty,
        otel.status_code = Empty,
    );
    record_trace_id(&span);
    review(webhook, req, ctx).instrument(span).await
}

/// Records what an admission review is about in the current `admission` span.
fn describe<T: kube::Resource>(req: &AdmissionRequest<T>) {
    let span = Span::current();
    span.record("kind", req.kind.kind.as_str());
    span.record(
        "operation",
        match req.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        },
    );
    if let Some(ns) = &req.namespace {
        span.record("namespace", ns.as_str());
    }
    // Empty for a pod named by `generateName` (the API server names it later).
    if !req.name.is_empty() {
        span.record("name", req.name.as_str());
    }
    span.record("dry_run", req.dry_run);
}

async fn review(
    webhook: &'static str,
    req: Request<Incoming>,
    ctx: &Context,
) -> Response<Full<Bytes>> {
    let span = Span::current();
    let started = Instant::now();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            span.record("result", "too_large");
            span.record("otel.status_code", "ERROR");
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                Bytes::from_static(b"too large\n"),
            );
        }
    };
    let answer = if webhook == "mutate" {
        mutate(&body, ctx).await
    } else {
        Ok(validate(&body, ctx).await)
    };
    let (result, response) = match answer {
        Ok(a) => a,
        Err(Unavailable(why)) => {
            // Not an answer: the API server applies the webhook's
            // failurePolicy (Fail refuses the pod, Ignore admits it as is).
            warn!(error = %why, "cannot decide an admission: caches stale and the API unreachable");
            span.record("result", "error");
            span.record("otel.status_code", "ERROR");
            ctx.metrics
                .admissions
                .with_label_values(&[webhook, "error"])
                .inc();
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from(format!("tollgate: cannot decide now: {why}\n")),
            );
        }
    };
    span.record("result", result);
    span.record("allowed", response.allowed);
    if result == "error" {
        span.record("otel.status_code", "ERROR");
    }
    ctx.metrics
        .admissions
        .with_label_values(&[webhook, result])
        .inc();
    ctx.metrics
        .admission_duration
        .with_label_values(&[webhook])
        .observe(started.elapsed().as_secs_f64());
    let json = serde_json::to_vec(&response.into_review()).expect("review serializes");
    reply(StatusCode::OK, Bytes::from(json))
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap()
}

fn parse<T: kube::Resource + serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<AdmissionRequest<T>, Box<AdmissionResponse>> {
    let review: AdmissionReview<T> = serde_json::from_slice(body)
        .map_err(|e| AdmissionResponse::invalid(format!("malformed review: {e}")))?;
    review.try_into().map_err(|e| {
        Box::new(AdmissionResponse::invalid(format!(
            "review without request: {e}"
        )))
    })
}

/// The webhook cannot decide: it needed a live read (see [`super::view`])
/// and the API server did not answer it.
#[derive(Debug)]
pub struct Unavailable(pub(crate) String);

/// Pods: inject the sidecar or let the pod through unchanged. Never denies:
/// a pod the webhook cannot handle runs without the sidecar and is reported
/// as uninjected by its policy. Decides from the watch caches while they
/// are current, else (and before leaving a pod without the sidecar) from a
/// live read of the namespace and its policies; when that read fails it
/// gives no answer ([`Unavailable`]). See [`super::view`].
pub async fn mutate(
    body: &[u8],
    ctx: &Context,
) -> Result<(&'static str, AdmissionResponse), Unavailable> {
    let req: AdmissionRequest<Pod> = match parse(body) {
        Ok(r) => r,
        Err(resp) => return Ok(("error", *resp)),
    };
    describe(&req);
    let resp = AdmissionResponse::from(&req);
    let Some(pod) = &req.object else {
        return Ok(("allowed", resp));
    };
    let ns = req
        .namespace
        .clone()
        .or_else(|| pod.namespace())
        .unwrap_or_default();
    let Ok((policy, rendered)) = view::decide(ctx, &ns, pod).await? else {
        return Ok(("allowed", resp));
    };
    // The app's envFrom sources are read only for a pod being injected.
    let env_from = if has_env_from(pod) {
        env_from(ctx, &ns, pod).await
    } else {
        EnvFromByContainer::new()
    };
    let (patch, warnings) = patch(pod, &policy, &rendered, &ctx.settings, &env_from);
    let policy = policy.name_any();
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("valid patch");
    Ok(match resp.clone().with_patch(patch) {
        Ok(mut r) => {
            if !warnings.is_empty() {
                warn!(namespace = %ns, pod = %pod.name_any(), %policy, warnings = ?warnings, "injected with warnings");
                r.warnings = Some(warnings);
            }
            if req.dry_run {
                debug!(namespace = %ns, pod = %pod.name_any(), %policy, "would inject (dry run)");
                return Ok(("injected_dry_run", r));
            }
            ctx.metrics.injections.inc();
            info!(namespace = %ns, pod = %pod.name_any(), %policy, "injected");
            ("injected", r)
        }
        Err(e) => {
            warn!(error = %e, "cannot serialize patch");
            ("error", resp)
        }
    })
}

/// How long one `envFrom` source may take to read.
const ENV_FROM_READ: Duration = Duration::from_secs(2);

/// What each container's `envFrom` sources define. A source that does not
/// exist defines nothing when `optional`, and is unreadable otherwise (the
/// kubelet waits for it; it may appear with any keys). Secrets are read
/// through the namespace's RoleBinding (see [`crate::secrets`]); key names
/// only are kept.
async fn env_from(ctx: &Context, ns: &str, pod: &Pod) -> EnvFromByContainer {
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    // One read per source, whichever containers share it.
    let mut read: BTreeMap<String, Option<Option<BTreeSet<String>>>> = BTreeMap::new();
    let mut out = EnvFromByContainer::new();
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        for src in c.env_from.iter().flatten() {
            let (kind, name, optional) = match (&src.config_map_ref, &src.secret_ref) {
                (Some(r), _) => ("ConfigMap", r.name.clone(), r.optional == Some(true)),
                (_, Some(r)) => ("Secret", r.name.clone(), r.optional == Some(true)),
                _ => continue,
            };
            let key = format!("{kind} {name}");
            if !read.contains_key(&key) {
                let keys = async {
                    if kind == "ConfigMap" {
                        Ok(configmaps.get_opt(&name).await?.map(|cm| {
                            let data = cm.data.into_iter().flatten().map(|(k, _)| k);
                            let binary = cm.binary_data.into_iter().flatten().map(|(k, _)| k);
                            data.chain(binary).collect()
                        }))
                    } else {
                        let mut found =
                            secrets::keys(&ctx.client, ns, std::slice::from_ref(&name)).await?;
                        Ok::<_, kube::Error>(found.remove(&name).flatten())
                    }
                };
                let got = match tokio::time::timeout(ENV_FROM_READ, keys).await {
                    Ok(Ok(keys)) => Some(keys),
                    Ok(Err(e)) => {
                        warn!(namespace = %ns, source = %key, error = %e, "cannot read an envFrom source");
                        None
                    }
                    Err(_) => None,
                };
                read.insert(key.clone(), got);
            }
            let entry = out.entry(c.name.clone()).or_default();
            match &read[&key] {
                Some(Some(keys)) => {
                    let prefix = src.prefix.as_deref().unwrap_or_default();
                    entry
                        .names
                        .extend(keys.iter().map(|k| format!("{prefix}{k}")));
                }
                Some(None) if optional => {}
                Some(None) => entry.unreadable.push(format!("{key} (does not exist)")),
                None => entry.unreadable.push(key),
            }
        }
    }
    out
}

/// Policies: denied when the spec does not render into a config the proxy
/// accepts, or names fields the CRD lacks; admitted with warnings, some of
/// them about the policy's namespace.
async fn validate(body: &[u8], ctx: &Context) -> (&'static str, AdmissionResponse) {
    let req: AdmissionRequest<LlmPolicy> = match parse(body) {
        Ok(r) => r,
        Err(resp) => return ("error", *resp),
    };
    describe(&req);
    let mut resp = AdmissionResponse::from(&req);
    let Some(policy) = &req.object else {
        return ("allowed", resp);
    };
    // The object as sent: the typed one has lost what the schema lacks.
    let spec = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|mut r| {
            r.pointer_mut("/request/object/spec")
                .map(serde_json::Value::take)
        });
    let unknown = spec.as_ref().map(unknown_fields).unwrap_or_default();
    let mut policy = policy.clone();
    if policy.metadata.namespace.is_none() {
        policy.metadata.namespace = req.namespace.clone();
    }
    let policy = ctx.settings.effective(&policy);
    let verdict = match verdict(&policy) {
        Ok(_) if !unknown.is_empty() => Err(unknown.join("; ")),
        Err(denial) if !unknown.is_empty() => Err(format!("{}; {denial}", unknown.join("; "))),
        v => v,
    };
    match verdict {
        Ok(mut warnings) => {
            let ns = policy.namespace().unwrap_or_default();
            if let Some(labels) = view::namespace_labels(ctx, &ns).await {
                warnings.extend(namespace_warnings(&policy, &labels));
            }
            if !warnings.is_empty() {
                resp.warnings = Some(warnings);
            }
            ("allowed", resp)
        }
        Err(denial) => ("denied", resp.deny(denial)),
    }
}

#[cfg(test)]
mod tests;
