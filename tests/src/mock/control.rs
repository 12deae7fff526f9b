//! `/__mock/*`: the control plane for tests that run out of process.
//!
//! * `GET /__mock/requests` — JSON array of records (`method`, `path`,
//!   `query`, `headers` as `[name, value]` pairs, `body`, `bodyEncoding`
//!   `"utf8"` or `"base64"`);
//! * `DELETE /__mock/requests` — forget records and fail-first counters;
//! * `GET /__mock/defaults`, `PUT /__mock/defaults` — read or replace the
//!   server-wide [`Switches`] (camelCase JSON);
//! * `GET /__mock/stats` — stream and request counters.

use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::MockBody;
use super::router::json_response;
use super::state::State;
use super::switches::Switches;

/// Bodies of control requests are small JSON documents.
const MAX_CONTROL_BODY: usize = 1024 * 1024;

pub(crate) async fn handle(
    state: &State,
    method: &Method,
    endpoint: &str,
    body: Incoming,
) -> Response<MockBody> {
    match (method, endpoint) {
        (&Method::GET, "requests") => {
            let records = state.records();
            let views: Vec<_> = records.iter().map(|r| r.view()).collect();
            ok(&views)
        }
        (&Method::DELETE, "requests") => {
            state.clear();
            no_content()
        }
        (&Method::GET, "defaults") => ok(&**state.defaults()),
        (&Method::PUT, "defaults") => {
            let bytes = match http_body_util::Limited::new(body, MAX_CONTROL_BODY)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(e) => return problem(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            match serde_json::from_slice::<Switches>(&bytes) {
                Ok(s) => {
                    let resp = ok(&s);
                    state.set_defaults(s);
                    resp
                }
                Err(e) => problem(StatusCode::BAD_REQUEST, &format!("invalid switches: {e}")),
            }
        }
        (&Method::GET, "stats") => ok(&state.stats_view()),
        (_, "requests" | "defaults" | "stats") => {
            problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => problem(StatusCode::NOT_FOUND, "no such control endpoint"),
    }
}

fn ok(value: &impl serde::Serialize) -> Response<MockBody> {
    let json = serde_json::to_vec(value).expect("control views serialize");
    json_response(StatusCode::OK, json)
}

fn no_content() -> Response<MockBody> {
    let mut resp = Response::new(MockBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

fn problem(status: StatusCode, message: &str) -> Response<MockBody> {
    let json =
        serde_json::to_vec(&serde_json::json!({ "error": message })).expect("a string serializes");
    json_response(status, json)
}
