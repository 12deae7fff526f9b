//! The built-in embedder (cargo feature `local-embeddings`): a BERT-family
//! sentence-embedding model run in the proxy, from a folder holding
//! `config.json`, `tokenizer.json` and `model.safetensors` (as
//! sentence-transformers exports them; e.g. all-MiniLM-L6-v2).
//!
//! Each text is tokenized without padding (a `tokenizer.json` that pads to a
//! fixed length has that turned off) and cut to `maxTokens`; the vector is
//! the mean of the last hidden states over the text's own tokens, scaled to
//! unit length — sentence-transformers' mean pooling. Texts are encoded
//! one at a time on the blocking pool; candle's matrix products use as many
//! threads as `RAYON_NUM_THREADS` says (else one per physical core), the
//! steps between them one. tests/semantic/anchor.py measures it against
//! ONNX Runtime.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use tokenizers::{Tokenizer, TruncationParams};

use super::embed::EmbedError;
use super::vector::normalized;

mod bert;
mod kernels;

use bert::{Bert, Config};

/// Why a model folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

pub struct LocalEmbedder {
    path: PathBuf,
    max_tokens: usize,
    tokenizer: Tokenizer,
    model: Bert,
}

impl LocalEmbedder {
    /// Loads the model in `dir` (blocking: reads ~90 MB for MiniLM).
    pub fn load(dir: &Path, max_tokens: usize) -> Result<LocalEmbedder, LoadError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| LoadError::Read { path, source })
        };
        let invalid = |name: &str, reason: String| LoadError::Invalid {
            path: dir.join(name),
            reason,
        };
        let cfg: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| invalid("config.json", e.to_string()))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| invalid("tokenizer.json", e.to_string()))?;
        let max_tokens = max_tokens.min(cfg.max_position_embeddings);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| invalid("tokenizer.json", e.to_string()))?;
        let weights = read("model.safetensors")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| invalid("model.safetensors", e.to_string()))?;
        let model =
            Bert::load(vb, &cfg).map_err(|e| invalid("model.safetensors", e.to_string()))?;
        Ok(LocalEmbedder {
            path: dir.to_path_buf(),
            max_tokens,
            tokenizer,
            model,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token limit asked for in the config (before the model's own
    /// limit applied).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The token ids of `text` as the model sees them (with `[CLS]` and
    /// `[SEP]`, cut to the limit).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Unit vectors for `texts`, in order (blocking).
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts
            .iter()
            .map(|t| {
                let ids = self.token_ids(t)?;
                let pooled = self
                    .model
                    .mean_pooled(&ids)
                    .map_err(|e| EmbedError::Model(e.to_string()))?;
                normalized(pooled).ok_or_else(|| EmbedError::Model("a zero vector".into()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
