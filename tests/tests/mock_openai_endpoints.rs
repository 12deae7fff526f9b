//! The OpenAI endpoints besides chat: legacy completions, embeddings, models.

mod mock_common;

use base64::Engine as _;
use mock_common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn legacy_completions_whole_and_streamed() {
    let mock = open_mock().await;
    let body = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "say this is a test"});
    let v: Value = openai(&mock, "/v1/completions", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    let text = v["choices"][0]["text"].as_str().unwrap();
    assert_eq!(
        text,
        "Mock reply from gpt-3.5-turbo-instruct: say this is a test"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], words(text));

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let events = sse(&openai(&mock, "/v1/completions", &streamed, &[])
        .await
        .text()
        .await
        .unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(Event::json).collect();
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["text"].as_str())
        .collect();
    assert_eq!(joined, text);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(chunks.last().unwrap()["usage"], v["usage"]);
}

#[tokio::test]
async fn embeddings_are_deterministic_unit_vectors() {
    let mock = open_mock().await;
    let body = json!({"model": "text-embedding-3-small", "input": ["hello world", "hello world", "other"]});
    let v: Value = openai(&mock, "/v1/embeddings", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    assert_eq!(v["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[2]["index"], 2);
    assert_eq!(data[0]["object"], "embedding");
    let vec = |i: usize| -> Vec<f32> {
        data[i]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    assert_eq!(vec(0).len(), 1536);
    assert_eq!(vec(0), vec(1));
    assert_ne!(vec(0), vec(2));
    assert_eq!(vec(0), tollgate_tests::mock::embedding("hello world", 1536));
    let norm: f32 = vec(0).iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);

    // dimensions + base64: little-endian f32s.
    let body = json!({"model": "text-embedding-3-large", "input": "hello world",
                      "dimensions": 8, "encoding_format": "base64"});
    let v: Value = openai(&mock, "/v1/embeddings", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    let b64 = v["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(floats, tollgate_tests::mock::embedding("hello world", 8));

    // Token arrays count one token per id; the large model defaults to 3072.
    let body = json!({"model": "text-embedding-3-large", "input": [[1, 2, 3], [4]]});
    let v: Value = openai(&mock, "/v1/embeddings", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 3072);
}

#[tokio::test]
async fn models_list_and_lookup() {
    let mock = keyed_mock().await;
    let c = client();
    let list: Value = c
        .get(format!("{}/v1/models", mock.url()))
        .bearer_auth(OPENAI_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "gpt-4o" && m["object"] == "model"));
    let one: Value = c
        .get(format!("{}/v1/models/ft:gpt-4o-mini:acme", mock.url()))
        .bearer_auth(OPENAI_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "ft:gpt-4o-mini:acme");
    assert_eq!(one["object"], "model");
}
