//! `POST /v1/embeddings`: deterministic unit vectors.
//!
//! Each input is hashed (FNV-1a over its UTF-8 bytes; a token-id array is
//! hashed as its ids joined by single spaces) and the hash seeds a
//! splitmix64 sequence that fills the vector, which is then scaled to unit
//! length. The same input always gets the same vector, and a shorter
//! `dimensions` gives the prefix of the longer vector, renormalized — as
//! OpenAI's shortening does. Default sizes: 3072 for `*-3-large` models,
//! 1536 otherwise. `encoding_format: "base64"` sends the little-endian f32
//! bytes in standard base64.
//!
//! A model named `bag-of-words*` embeds a text as the normalized sum of its
//! lower-cased words' vectors instead, so texts sharing most words are
//! similar (for semantic-cache tests): `Is 7 prime?` and `is 8 prime` have
//! cosine 2/3.

use base64::Engine as _;
use http::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mock::body::MockBody;
use crate::mock::error::ApiError;
use crate::mock::ids::splitmix64;
use crate::mock::router::Exchange;
use crate::mock::tokens::words;

/// OpenAI refuses more inputs than this in one request.
const MAX_INPUTS: usize = 2048;

#[derive(Deserialize)]
struct EmbeddingRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    encoding_format: Option<String>,
}

/// The mock's embedding of `input` with `dims` components (unit length).
pub fn embedding(input: &str, dims: usize) -> Vec<f32> {
    vector(fnv1a(input.as_bytes()), dims)
}

fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut state = seed;
    let raw: Vec<f64> = (0..dims)
        .map(|_| (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    raw.iter().map(|x| (x / norm) as f32).collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The `bag-of-words*` embedding of `input`.
pub(crate) fn bag_of_words(input: &str, dims: usize) -> Vec<f32> {
    let mut sum = vec![0f64; dims];
    for w in input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        for (s, x) in sum.iter_mut().zip(embedding(&w.to_lowercase(), dims)) {
            *s += f64::from(x);
        }
    }
    let norm = sum
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    sum.iter().map(|x| (x / norm) as f32).collect()
}

/// One input to embed: its hash seed and its token count (and its text).
struct Input {
    seed: u64,
    tokens: u64,
    text: Option<String>,
}

fn read_inputs(input: &Value) -> Result<Vec<Input>, ApiError> {
    let invalid = |why: &str| {
        ApiError::bad_request(format!("'$.input' is invalid. {why}")).with_param("input")
    };
    let text = |s: &str| Input {
        seed: fnv1a(s.as_bytes()),
        tokens: words(s),
        text: Some(s.to_string()),
    };
    let tokens = |ids: &[Value]| -> Result<Input, ApiError> {
        if !ids.iter().all(Value::is_u64) {
            return Err(invalid("Token ids must be non-negative integers."));
        }
        let joined: Vec<String> = ids.iter().map(Value::to_string).collect();
        Ok(Input {
            seed: fnv1a(joined.join(" ").as_bytes()),
            tokens: ids.len() as u64,
            text: None,
        })
    };
    let inputs = match input {
        Value::String(s) => vec![text(s)],
        Value::Array(items) if items.is_empty() => return Err(invalid("It must not be empty.")),
        Value::Array(items) if items.iter().all(Value::is_number) => vec![tokens(items)?],
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(text(s)),
                Value::Array(ids) => tokens(ids),
                _ => Err(invalid("Expected strings or arrays of token ids.")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid("Expected a string or an array.")),
    };
    if inputs.len() > MAX_INPUTS {
        return Err(invalid("At most 2048 inputs are allowed."));
    }
    Ok(inputs)
}

pub(super) async fn create(
    ex: &Exchange<'_>,
    context_length: bool,
) -> Result<Response<MockBody>, ApiError> {
    let req: EmbeddingRequest = ex.json()?;
    let model = req
        .model
        .ok_or_else(|| ApiError::bad_request("you must provide a model parameter"))?;
    let input = req.input.ok_or_else(|| super::missing("input"))?;
    let inputs = read_inputs(&input)?;
    let prompt_tokens = inputs.iter().map(|i| i.tokens).sum::<u64>().max(1);
    if context_length {
        return Err(super::context_length(prompt_tokens, "input"));
    }
    let dims = match req.dimensions {
        Some(0) => {
            return Err(
                ApiError::bad_request("Invalid 'dimensions': must be at least 1.")
                    .with_param("dimensions"),
            )
        }
        Some(d) => d,
        None if model.contains("3-large") => 3072,
        None => 1536,
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid 'encoding_format': '{other}'. Expected 'float' or 'base64'."
            ))
            .with_param("encoding_format"))
        }
    };
    let data: Vec<Embedding> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let v = match &input.text {
                Some(t) if model.starts_with("bag-of-words") => bag_of_words(t, dims),
                _ => vector(input.seed, dims),
            };
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Vector::Floats(v)
            };
            Embedding {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let usage = (!ex.switches.omit_usage()).then_some(EmbeddingUsage {
        prompt_tokens,
        total_tokens: prompt_tokens,
    });
    let body = EmbeddingList {
        object: "list",
        data,
        model: &model,
        usage,
    };
    let json = serde_json::to_vec(&body).expect("embeddings serialize");
    Ok(ex.whole(json).await)
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<EmbeddingUsage>,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

/// Embeddings report no completion tokens.
#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vectors_are_deterministic_unit_length() {
        let a = embedding("hello world", 64);
        assert_eq!(a, embedding("hello world", 64));
        assert_ne!(a, embedding("hello there", 64));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn shorter_dimensions_are_a_renormalized_prefix() {
        let long = embedding("x", 16);
        let short = embedding("x", 4);
        let scale = short[0] / long[0];
        for (s, l) in short.iter().zip(&long) {
            assert!((s - l * scale).abs() < 1e-5);
        }
    }

    #[test]
    fn bag_of_words_vectors_share_words() {
        let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let a = bag_of_words("Is 7 prime?", 256);
        assert!((cos(&a, &bag_of_words("is 7 PRIME", 256)) - 1.0).abs() < 1e-5);
        let c = cos(&a, &bag_of_words("Is 8 prime?", 256));
        assert!((c - 2.0 / 3.0).abs() < 0.1, "{c}");
    }

    #[test]
    fn reads_input_forms() {
        assert_eq!(read_inputs(&json!("a b")).unwrap().len(), 1);
        let many = read_inputs(&json!(["a", "b c"])).unwrap();
        assert_eq!(many.iter().map(|i| i.tokens).collect::<Vec<_>>(), [1, 2]);
        let tokens = read_inputs(&json!([1, 2, 3])).unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].tokens, 3);
        assert_eq!(read_inputs(&json!([[1], [2, 3]])).unwrap().len(), 2);
        assert!(read_inputs(&json!([])).is_err());
        assert!(read_inputs(&json!([{"a": 1}])).is_err());
        assert!(read_inputs(&json!([-1])).is_err());
    }
}
