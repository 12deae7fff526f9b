//! Answers the proxy gives itself: the model list.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::Response;
use serde_json::json;

use crate::api::Family;
use crate::body::ResponseBody;
use crate::routing::UnknownModel;
use crate::state::Runtime;

/// `GET /v1/models` and `GET /v1/models/{id}` in the shape of the app's API
/// (Anthropic's when the request carries Anthropic headers).
pub(crate) fn models(
    rt: &Runtime,
    family: Family,
    path: &str,
    request_id: &HeaderValue,
) -> Result<Response<ResponseBody>, UnknownModel> {
    let entry = |id: &str, provider: usize| match family {
        Family::OpenAi => json!({
            "id": id,
            "object": "model",
            "created": 0,
            "owned_by": rt.config.providers[provider].name,
        }),
        Family::Anthropic => json!({
            "type": "model",
            "id": id,
            "display_name": id,
            "created_at": "1970-01-01T00:00:00Z",
        }),
    };
    let body = match path.strip_prefix("/v1/models/") {
        Some(id) => {
            let found = rt.routes.models(family).find(|(m, _)| *m == id);
            match found {
                Some((m, p)) => entry(m, p),
                None => {
                    return Err(UnknownModel::not_served(id, Vec::new()));
                }
            }
        }
        None => {
            let data: Vec<_> = rt.routes.models(family).map(|(m, p)| entry(m, p)).collect();
            match family {
                Family::OpenAi => json!({"object": "list", "data": data}),
                Family::Anthropic => json!({
                    "data": data,
                    "has_more": false,
                    "first_id": data.first().map(|d| d["id"].clone()),
                    "last_id": data.last().map(|d| d["id"].clone()),
                }),
            }
        }
    };
    let mut resp = Response::new(ResponseBody::full(Bytes::from(body.to_string())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert("x-request-id", request_id.clone());
    Ok(resp)
}
