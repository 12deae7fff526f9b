//! OpenAI's error body: `{"error":{"message","type","param","code"}}`.

use http::header::{HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::mock::body::MockBody;
use crate::mock::error::ApiError;
use crate::mock::router::json_response;

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

pub(crate) fn render(err: &ApiError) -> Response<MockBody> {
    let (kind, stock_code, stock_message) = stock(err.status);
    let (message, code) = match &err.message {
        Some(m) => (m.as_str(), err.code),
        None => (stock_message, err.code.or(stock_code)),
    };
    let body = Envelope {
        error: Body {
            message,
            kind,
            param: err.param,
            code,
        },
    };
    let json = serde_json::to_vec(&body).expect("error bodies serialize");
    let mut resp = json_response(err.status, json);
    if let Some(secs) = err.retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// `type`, default `code` and default message for a status.
fn stock(status: StatusCode) -> (&'static str, Option<&'static str>, &'static str) {
    match status.as_u16() {
        401 => (
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        ),
        403 => (
            "invalid_request_error",
            Some("unsupported_country_region_territory"),
            "Country, region, or territory not supported",
        ),
        404 => (
            "invalid_request_error",
            Some("model_not_found"),
            "The model does not exist or you do not have access to it.",
        ),
        429 => (
            "requests",
            Some("rate_limit_exceeded"),
            "Rate limit reached for requests per min (RPM): Limit 10000, Used 10000, Requested 1. Please try again in 6ms.",
        ),
        500 => (
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        ),
        503 => (
            "server_error",
            None,
            "The server is overloaded or not ready yet.",
        ),
        s if s >= 500 => ("server_error", None, "The server had an error processing your request."),
        _ => ("invalid_request_error", None, "Invalid request."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(resp: Response<MockBody>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn stock_and_custom_errors() {
        let mut err = ApiError::status(StatusCode::TOO_MANY_REQUESTS);
        err.retry_after = Some(3);
        let resp = render(&err);
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "3");
        let v = body(resp).await;
        assert_eq!(v["error"]["type"], "requests");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v["error"]["param"], serde_json::Value::Null);

        let err = ApiError::bad_request("nope").with_param("messages");
        let v = body(render(&err)).await;
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "nope", "type": "invalid_request_error", "param": "messages", "code": null}})
        );
    }
}
