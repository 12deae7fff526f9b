//! What the mock saw: one [`RecordedRequest`] per API request, in arrival order.

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

/// One request as received (control endpoints are not recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names, in the order received; repeated headers repeat.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RecordedRequest {
    pub(crate) fn new(parts: &http::request::Parts, body: Bytes) -> Self {
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), v)
            })
            .collect();
        RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers,
            body,
        }
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, or `Value::Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The shape served by `GET /__mock/requests`.
    pub(crate) fn view(&self) -> RecordView<'_> {
        let (body, body_encoding) = match std::str::from_utf8(&self.body) {
            Ok(s) => (s.to_owned(), "utf8"),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(&self.body),
                "base64",
            ),
        };
        RecordView {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            body,
            body_encoding,
        }
    }
}

/// JSON form of a record for out-of-process tests.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordView<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a [(String, String)],
    body: String,
    body_encoding: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &'static [u8]) -> RecordedRequest {
        let (parts, ()) = http::Request::post("/v1/x?a=1")
            .header("X-Thing", "one")
            .header("x-thing", "two")
            .body(())
            .unwrap()
            .into_parts();
        RecordedRequest::new(&parts, Bytes::from_static(body))
    }

    #[test]
    fn keeps_path_query_and_headers() {
        let r = record(b"{\"a\":1}");
        assert_eq!(r.path, "/v1/x");
        assert_eq!(r.query.as_deref(), Some("a=1"));
        assert_eq!(r.header("X-THING"), Some("one"));
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.json()["a"], 1);
    }

    #[test]
    fn view_base64_encodes_binary_bodies() {
        let v = serde_json::to_value(record(b"\xff\x00").view()).unwrap();
        assert_eq!(v["bodyEncoding"], "base64");
        assert_eq!(v["body"], "/wA=");
        assert_eq!(v["headers"][0][0], "x-thing");
        let v = serde_json::to_value(record(b"hi").view()).unwrap();
        assert_eq!(v["body"], "hi");
        assert_eq!(record(b"hi").json(), serde_json::Value::Null);
    }
}
