//! Embeddings from a configured provider's OpenAI-compatible
//! `/v1/embeddings`, sent with the proxy's pooled client and the provider's
//! own credentials (Azure's deployment path and API version included).

use std::time::Duration;

use http::header::HeaderValue;
use serde::Deserialize;
use serde_json::json;

use super::embed::{EmbedError, PostError, Upstream};
use super::vector::normalized;
use crate::api::Operation;

/// Larger answers are refused (a 3072-dimension vector is ~70 KB of JSON).
const MAX_ANSWER: usize = 8 << 20;

pub(crate) struct ProviderEmbedder {
    /// Index into the config's providers.
    pub provider: usize,
    pub model: String,
    pub dimensions: Option<u32>,
    pub timeout: Duration,
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: usize,
    embedding: Vec<f32>,
}

impl ProviderEmbedder {
    pub(crate) async fn embed(
        &self,
        up: &Upstream<'_>,
        texts: &[&str],
        request_id: &HeaderValue,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut body = json!({"model": self.model, "input": texts, "encoding_format": "float"});
        if let Some(d) = self.dimensions {
            body["dimensions"] = json!(d);
        }
        let call = async {
            let (status, bytes) = up
                .post_json(
                    self.provider,
                    Operation::Embeddings,
                    &self.model,
                    &body,
                    request_id,
                    MAX_ANSWER,
                )
                .await
                .map_err(|e| match e {
                    PostError::Upstream(u) => EmbedError::Upstream(u),
                    PostError::Body(b) => EmbedError::Malformed(b),
                })?;
            if !status.is_success() {
                return Err(EmbedError::Status {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
                });
            }
            parse(&bytes, texts.len())
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| EmbedError::Timeout(self.timeout))?
    }
}

/// The vectors of an embeddings answer, in input order, unit length.
pub(crate) fn parse(bytes: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut answer: Answer =
        serde_json::from_slice(bytes).map_err(|e| EmbedError::Malformed(e.to_string()))?;
    if answer.data.len() != expected {
        return Err(EmbedError::Malformed(format!(
            "{} vectors for {expected} inputs",
            answer.data.len()
        )));
    }
    answer.data.sort_by_key(|i| i.index);
    let dims = answer.data[0].embedding.len();
    answer
        .data
        .into_iter()
        .map(|i| {
            if i.embedding.len() != dims || dims == 0 {
                return Err(EmbedError::Malformed("vectors of different sizes".into()));
            }
            normalized(i.embedding).ok_or_else(|| EmbedError::Malformed("a zero vector".into()))
        })
        .collect()
}
