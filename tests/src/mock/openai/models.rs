//! `GET /v1/models` and `GET /v1/models/{id}`.
//!
//! The list is a fixed handful of well-known ids; a lookup by id succeeds for
//! any id, since the mock serves every model name it is sent.

use http::Response;
use serde::Serialize;

use crate::mock::body::MockBody;
use crate::mock::router::Exchange;

/// When the listed models claim to have been created (fixed, for stable output).
const CREATED: u64 = 1_700_000_000;

const KNOWN: [(&str, &str); 8] = [
    ("gpt-4o", "system"),
    ("gpt-4o-mini", "system"),
    ("gpt-4.1", "system"),
    ("o3-mini", "system"),
    ("gpt-3.5-turbo-instruct", "system"),
    ("text-embedding-3-small", "system"),
    ("text-embedding-3-large", "system"),
    ("text-embedding-ada-002", "openai-internal"),
];

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

fn model(id: &str) -> Model<'_> {
    let owned_by = KNOWN
        .iter()
        .find(|(known, _)| *known == id)
        .map_or("mock", |(_, owner)| owner);
    Model {
        id,
        object: "model",
        created: CREATED,
        owned_by,
    }
}

pub(super) async fn list(ex: &Exchange<'_>) -> Response<MockBody> {
    let body = ModelList {
        object: "list",
        data: KNOWN.iter().map(|(id, _)| model(id)).collect(),
    };
    ex.whole(serde_json::to_vec(&body).expect("models serialize"))
        .await
}

pub(super) async fn get(ex: &Exchange<'_>, id: &str) -> Response<MockBody> {
    ex.whole(serde_json::to_vec(&model(id)).expect("models serialize"))
        .await
}
