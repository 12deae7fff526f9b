//! Embedders: a provider's `/v1/embeddings`, or a model inside the proxy.
//!
//! Every vector handed to the index is unit length, so cosine similarity is
//! a dot product.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tollgate_config::Provider;

use super::provider::ProviderEmbedder;
use crate::cache::CacheError;
use crate::credentials::Credential;
use crate::upstream::{Client, UpstreamError};

/// What a provider embedder sends with: the runtime's providers, their
/// credentials and the pooled client.
pub struct Upstream<'a> {
    pub providers: &'a [Provider],
    pub credentials: &'a [Option<Arc<Credential>>],
    pub client: &'a Client,
}

impl Upstream<'_> {
    /// Posts a JSON `body` for `operation` (embeddings or a chat
    /// completion) to `providers[provider]` with its credentials; the status
    /// and at most `limit` bytes of the answer. (The semantic cache's own
    /// calls: embeddings and the judge.)
    pub(crate) async fn post_json(
        &self,
        provider: usize,
        operation: crate::api::Operation,
        model: &str,
        body: &serde_json::Value,
        request_id: &HeaderValue,
        limit: usize,
    ) -> Result<(http::StatusCode, bytes::Bytes), PostError> {
        use http_body_util::{BodyExt, Limited};
        let p = &self.providers[provider];
        let path = match operation {
            crate::api::Operation::Embeddings => "/v1/embeddings",
            _ => "/v1/chat/completions",
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let req = crate::upstream::build_request(
            crate::upstream::Outgoing {
                provider: p,
                credential: self.credentials.get(provider).and_then(|c| c.as_deref()),
                operation,
                method: http::Method::POST,
                path,
                query: None,
                model: Some(model),
                request_id,
                body: bytes::Bytes::from(serde_json::to_vec(body).expect("serializes")),
                trace: None,
            },
            headers,
        )?;
        let resp = self.client.send(&p.name, req).await?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| PostError::Body(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// Why a call of [`Upstream::post_json`] got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Body(String),
}

/// Why a prompt could not be embedded; the lookup is then a miss.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("no embedding within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("the provider answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("unexpected embeddings answer: {0}")]
    Malformed(String),
    #[error("local model: {0}")]
    Model(String),
}

impl EmbedError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            EmbedError::Timeout(_) => "timeout",
            EmbedError::Upstream(_) => "upstream",
            EmbedError::Status { .. } => "status",
            EmbedError::Malformed(_) => "malformed",
            EmbedError::Model(_) => "model",
        }
    }
}

/// One configured embedder.
pub(crate) enum Embedder {
    Provider(ProviderEmbedder),
    #[cfg(feature = "local-embeddings")]
    Local(Arc<super::local::LocalEmbedder>),
}

impl Embedder {
    /// Unit vectors for `texts`, in order.
    pub(crate) async fn embed(
        &self,
        up: &Upstream<'_>,
        texts: &[&str],
        request_id: &HeaderValue,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Embedder::Provider(p) => p.embed(up, texts, request_id).await,
            #[cfg(feature = "local-embeddings")]
            Embedder::Local(m) => {
                let m = m.clone();
                let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
                tokio::task::spawn_blocking(move || m.embed(&texts))
                    .await
                    .map_err(|e| EmbedError::Model(e.to_string()))?
            }
        }
    }
}

/// The local model in `path`: the previous runtime's when it has the same
/// folder and token limit, else loaded now (off the async threads).
#[cfg(feature = "local-embeddings")]
pub(crate) async fn local(
    name: &str,
    path: &Path,
    max_tokens: usize,
    previous: Option<&[Embedder]>,
) -> Result<Embedder, CacheError> {
    let reuse = previous.into_iter().flatten().find_map(|e| match e {
        Embedder::Local(m) if m.path() == path && m.max_tokens() == max_tokens => Some(m.clone()),
        _ => None,
    });
    if let Some(m) = reuse {
        return Ok(Embedder::Local(m));
    }
    let owned = path.to_path_buf();
    let loaded =
        tokio::task::spawn_blocking(move || super::local::LocalEmbedder::load(&owned, max_tokens))
            .await
            .map_err(|e| CacheError::LocalModel {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
    match loaded {
        Ok(m) => Ok(Embedder::Local(Arc::new(m))),
        Err(e) => Err(CacheError::LocalModel {
            name: name.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Without the `local-embeddings` feature a local embedder is refused.
#[cfg(not(feature = "local-embeddings"))]
pub(crate) async fn local(
    name: &str,
    _path: &Path,
    _max_tokens: usize,
    _previous: Option<&[Embedder]>,
) -> Result<Embedder, CacheError> {
    Err(CacheError::LocalModel {
        name: name.to_string(),
        reason: "this proxy was built without the `local-embeddings` feature".into(),
    })
}
