//! The HTTPS server both webhooks share, and the one place an admission
//! review becomes a response.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::ResourceExt;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::mutate::{decide, Decision};
use super::validate::problems;
use crate::context::Context;
use crate::crd::LlmPolicy;

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
    let path = req.uri().path().to_string();
    let webhook = match path.as_str() {
        "/mutate" => "mutate",
        "/validate" => "validate",
        _ => return reply(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
    };
    let started = Instant::now();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                Bytes::from_static(b"too large\n"),
            )
        }
    };
    let (result, response) = if webhook == "mutate" {
        mutate(&body, ctx)
    } else {
        validate(&body, ctx).await
    };
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

/// Pods: inject the sidecar or let the pod through unchanged. Never denies:
/// a pod the webhook cannot handle runs without the sidecar and is reported
/// as uninjected by its policy.
pub fn mutate(body: &[u8], ctx: &Context) -> (&'static str, AdmissionResponse) {
    let req: AdmissionRequest<Pod> = match parse(body) {
        Ok(r) => r,
        Err(resp) => return ("error", *resp),
    };
    let resp = AdmissionResponse::from(&req);
    let Some(pod) = &req.object else {
        return ("allowed", resp);
    };
    let ns = req
        .namespace
        .clone()
        .or_else(|| pod.namespace())
        .unwrap_or_default();
    let ns_labels = ctx
        .stores
        .namespaces
        .state()
        .into_iter()
        .find(|n| n.name_any() == ns)
        .map(|n| n.labels().clone())
        .unwrap_or_default();
    let policies: Vec<LlmPolicy> = ctx
        .stores
        .policies
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .map(|p| ctx.settings.effective(&p))
        .collect();
    let refs: Vec<&LlmPolicy> = policies.iter().collect();
    match decide(pod, &ns, &ns_labels, &refs, &ctx.settings.proxy_image) {
        Decision::Skip(_) => ("allowed", resp),
        Decision::Inject { policy, patch } => {
            let patch: json_patch::Patch = serde_json::from_value(patch).expect("valid patch");
            match resp.clone().with_patch(patch) {
                Ok(r) => {
                    ctx.metrics.injections.inc();
                    info!(namespace = %ns, pod = %pod.name_any(), %policy, "injected");
                    ("injected", r)
                }
                Err(e) => {
                    warn!(error = %e, "cannot serialize patch");
                    ("error", resp)
                }
            }
        }
    }
}

async fn validate(body: &[u8], ctx: &Context) -> (&'static str, AdmissionResponse) {
    let req: AdmissionRequest<LlmPolicy> = match parse(body) {
        Ok(r) => r,
        Err(resp) => return ("error", *resp),
    };
    let resp = AdmissionResponse::from(&req);
    let Some(policy) = &req.object else {
        return ("allowed", resp);
    };
    let mut policy = ctx.settings.effective(policy);
    if policy.metadata.namespace.is_none() {
        policy.metadata.namespace = req.namespace.clone();
    }
    let problems = problems(&ctx.client, &policy).await;
    if problems.is_empty() {
        ("allowed", resp)
    } else {
        ("denied", resp.deny(problems.join("; ")))
    }
}
