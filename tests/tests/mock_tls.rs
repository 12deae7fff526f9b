//! HTTPS mode: a per-start CA, ALPN h2 and http/1.1.

mod mock_common;

use mock_common::*;
use serde_json::{json, Value};
use tollgate_tests::mock::{MockConfig, MockServer};

async fn tls_mock() -> MockServer {
    MockServer::start(MockConfig {
        tls: true,
        ..MockConfig::default()
    })
    .await
    .expect("TLS mock starts")
}

fn trusting(ca_pem: &str) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM parses");
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
}

#[tokio::test]
async fn serves_https_signed_by_its_ca_over_h1_and_h2() {
    let mock = tls_mock().await;
    assert!(mock.url().starts_with("https://127.0.0.1:"));
    let ca = mock.ca_pem().expect("a CA in TLS mode");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "over tls"}]});

    let h2 = trusting(&ca).build().unwrap();
    let resp = h2
        .post(format!("{}/v1/chat/completions", mock.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock reply from gpt-4o: over tls"
    );

    let h1 = trusting(&ca).http1_only().build().unwrap();
    let url = format!(
        "https://localhost:{}/v1/chat/completions",
        mock.addr().port()
    );
    let resp = h1.post(url).json(&body).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn untrusted_clients_fail_the_handshake() {
    let mock = tls_mock().await;
    let other = tls_mock().await;
    let wrong_ca = trusting(&other.ca_pem().unwrap()).build().unwrap();
    let err = wrong_ca
        .get(format!("{}/v1/models", mock.url()))
        .send()
        .await
        .expect_err("a different CA is not trusted");
    assert!(err.is_connect() || err.is_request(), "{err}");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn plain_mode_has_no_ca() {
    let mock = open_mock().await;
    assert!(mock.ca_pem().is_none());
    assert!(mock.url().starts_with("http://"));
}
