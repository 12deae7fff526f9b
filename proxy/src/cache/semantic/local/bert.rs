//! A BERT encoder (the architecture of all-MiniLM-L6-v2 and most
//! sentence-embedding models) on candle, for one unpadded sequence at a
//! time: no attention mask is needed, and mean pooling covers exactly the
//! sequence's own tokens. The matrix products are candle's; each step
//! between them is one fused pass in place (`kernels`).

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::kernels::{AddNorm, Bias, Gelu, Identity, Softmax};

/// The fields of `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}
fn gelu() -> String {
    "gelu".into()
}

/// A projection `x · Wᵀ + b`: the product through candle (gemm), the bias
/// added by the fused step after it.
struct Dense {
    /// Wᵀ, `[in, out]` and contiguous: gemm packs a row-major right-hand
    /// side faster (2-3× for a short prompt's few rows).
    weight_t: Tensor,
    bias: Vec<f32>,
}

struct Norm {
    weight: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// The query, key and value projections as one (their weights stacked;
    /// the query's scaled by 1/√head_dim, so the scores need no scaling).
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

pub(crate) struct Bert {
    words: Tensor,
    positions: Tensor,
    /// The token-type embedding of type 0 (every token here).
    token_type: Vec<f32>,
    embeddings_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    eps: f32,
    device: Device,
}

fn dense(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Dense> {
    Ok(Dense {
        weight_t: vb.get((outputs, inputs), "weight")?.t()?.contiguous()?,
        bias: vb.get(outputs, "bias")?.to_vec1()?,
    })
}

fn norm(vb: VarBuilder, size: usize) -> candle_core::Result<Norm> {
    Ok(Norm {
        weight: vb.get(size, "weight")?.to_vec1()?,
        beta: vb.get(size, "bias")?.to_vec1()?,
    })
}

/// The query, key and value projections stacked into one `Dense`.
fn qkv(vb: VarBuilder, h: usize, scale: f64) -> candle_core::Result<Dense> {
    let (q, k, v) = (vb.pp("query"), vb.pp("key"), vb.pp("value"));
    let weight = Tensor::cat(
        &[
            (q.get((h, h), "weight")? * scale)?,
            k.get((h, h), "weight")?,
            v.get((h, h), "weight")?,
        ],
        0,
    )?;
    let bias = Tensor::cat(
        &[
            (q.get(h, "bias")? * scale)?,
            k.get(h, "bias")?,
            v.get(h, "bias")?,
        ],
        0,
    )?;
    Ok(Dense {
        weight_t: weight.t()?.contiguous()?,
        bias: bias.to_vec1()?,
    })
}

impl Bert {
    pub(crate) fn load(vb: VarBuilder, cfg: &Config) -> candle_core::Result<Bert> {
        if cfg.hidden_act != "gelu" {
            candle_core::bail!(
                "hidden_act `{}` is not supported (gelu only)",
                cfg.hidden_act
            );
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            candle_core::bail!("hidden_size is not a multiple of num_attention_heads");
        }
        // Some exports put everything under `bert.`.
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let h = cfg.hidden_size;
        let head_dim = h / cfg.num_attention_heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let e = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            layers.push(Layer {
                qkv: qkv(a.pp("self"), h, scale)?,
                attention_out: dense(a.pp("output.dense"), h, h)?,
                attention_norm: norm(a.pp("output.LayerNorm"), h)?,
                intermediate: dense(l.pp("intermediate.dense"), h, cfg.intermediate_size)?,
                output: dense(l.pp("output.dense"), cfg.intermediate_size, h)?,
                output_norm: norm(l.pp("output.LayerNorm"), h)?,
            });
        }
        let token_types = e.get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?;
        Ok(Bert {
            words: e.get((cfg.vocab_size, h), "word_embeddings.weight")?,
            positions: e.get(
                (cfg.max_position_embeddings, h),
                "position_embeddings.weight",
            )?,
            token_type: token_types.get(0)?.to_vec1()?,
            embeddings_norm: norm(e.pp("LayerNorm"), h)?,
            layers,
            heads: cfg.num_attention_heads,
            head_dim,
            eps: cfg.layer_norm_eps as f32,
            device: vb.device().clone(),
        })
    }

    fn add_norm<'a>(&self, bias: &'a [f32], norm: &'a Norm) -> AddNorm<'a> {
        AddNorm {
            bias,
            weight: &norm.weight,
            beta: &norm.beta,
            eps: self.eps,
        }
    }

    /// The mean of the last hidden states of `ids` (one sequence; at most
    /// `max_position_embeddings` tokens).
    pub(crate) fn mean_pooled(&self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let (n, h) = (ids.len(), self.heads * self.head_dim);
        // [n, h] throughout: one sequence, no batch dimension.
        let x = self
            .words
            .index_select(&Tensor::new(ids, &self.device)?, 0)?;
        let positions = self.positions.narrow(0, 0, n)?;
        x.inplace_op2(
            &positions,
            &self.add_norm(&self.token_type, &self.embeddings_norm),
        )?;
        let mut x = x;
        for l in &self.layers {
            let qkv = x.matmul(&l.qkv.weight_t)?;
            qkv.inplace_op1(&Bias(&l.qkv.bias, Identity))?;
            // [n, 3h] → [3, heads, n, head_dim]: one copy for all three.
            let qkv = qkv
                .reshape((n, 3, self.heads, self.head_dim))?
                .permute((1, 2, 0, 3))?
                .contiguous()?;
            let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
            let p = q.matmul(&k.t()?)?;
            p.inplace_op1(&Softmax)?;
            let ctx = p
                .matmul(&v)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((n, h))?;
            let a = ctx.matmul(&l.attention_out.weight_t)?;
            a.inplace_op2(&x, &self.add_norm(&l.attention_out.bias, &l.attention_norm))?;
            let i = a.matmul(&l.intermediate.weight_t)?;
            i.inplace_op1(&Bias(&l.intermediate.bias, Gelu))?;
            let o = i.matmul(&l.output.weight_t)?;
            o.inplace_op2(&a, &self.add_norm(&l.output.bias, &l.output_norm))?;
            x = o;
        }
        x.mean(0)?.to_vec1::<f32>()
    }
}
