use super::*;
use tollgate_config::CredentialSource;

fn provider(yaml: &str) -> Provider {
    let text =
        format!("apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nproviders:\n  - {yaml}\n");
    tollgate_config::from_yaml_str(&text)
        .unwrap()
        .providers
        .remove(0)
}

fn outgoing<'a>(
    p: &'a Provider,
    cred: Option<&'a Credential>,
    rid: &'a HeaderValue,
) -> Outgoing<'a> {
    Outgoing {
        provider: p,
        credential: cred,
        operation: Operation::ChatCompletions,
        method: Method::POST,
        path: "/v1/chat/completions",
        query: None,
        model: Some("gpt-4o"),
        request_id: rid,
        body: Bytes::from_static(b"{}"),
        trace: None,
    }
}

fn app_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_static("Bearer app-placeholder"),
    );
    h.insert("x-api-key", HeaderValue::from_static("app-placeholder"));
    h.insert("connection", HeaderValue::from_static("keep-alive, x-hop"));
    h.insert("x-hop", HeaderValue::from_static("1"));
    h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
    h.insert("x-tollgate-cache", HeaderValue::from_static("bypass"));
    h.insert("openai-organization", HeaderValue::from_static("org-1"));
    h.insert("accept-encoding", HeaderValue::from_static("gzip"));
    h
}

#[test]
fn replaces_the_apps_key_and_strips_hop_headers() {
    std::env::set_var("TG_UPSTREAM_TEST_KEY", "sk-real");
    let p = provider("{name: o, type: openai, credentials: {env: TG_UPSTREAM_TEST_KEY}, models: [gpt-4o], headers: {X-Extra: v}}");
    let cred = Credential::load(CredentialSource::Env("TG_UPSTREAM_TEST_KEY".into()));
    let rid = HeaderValue::from_static("rid-1");
    let req = build_request(outgoing(&p, Some(&cred), &rid), app_headers()).unwrap();
    assert_eq!(req.uri(), "https://api.openai.com/v1/chat/completions");
    let h = req.headers();
    assert_eq!(h["authorization"], "Bearer sk-real");
    assert!(h.get("x-api-key").is_none());
    assert!(h.get("x-hop").is_none() && h.get("connection").is_none() && h.get("host").is_none());
    assert!(h.get("x-tollgate-cache").is_none());
    assert_eq!(h["openai-organization"], "org-1");
    assert_eq!(h["accept-encoding"], "identity");
    assert_eq!(h["x-request-id"], "rid-1");
    assert_eq!(h["x-extra"], "v");
}

#[test]
fn anthropic_gets_x_api_key_and_version() {
    std::env::set_var("TG_UPSTREAM_TEST_AKEY", "sk-ant-real");
    let p = provider("{name: a, type: anthropic, baseUrl: 'http://127.0.0.1:9/', credentials: {env: TG_UPSTREAM_TEST_AKEY}, models: [c]}");
    let cred = Credential::load(CredentialSource::Env("TG_UPSTREAM_TEST_AKEY".into()));
    let rid = HeaderValue::from_static("r");
    let mut out = outgoing(&p, Some(&cred), &rid);
    out.operation = Operation::Messages;
    out.path = "/v1/messages";
    let req = build_request(out, app_headers()).unwrap();
    assert_eq!(req.uri(), "http://127.0.0.1:9/v1/messages");
    assert_eq!(req.headers()["x-api-key"], "sk-ant-real");
    assert!(req.headers().get("authorization").is_none());
    assert_eq!(req.headers()["anthropic-version"], "2023-06-01");
}

#[test]
fn passthrough_keeps_the_apps_key() {
    let p = provider("{name: o, type: openai-compatible, baseUrl: 'http://h/v1', passthrough: true, models: [m]}");
    let rid = HeaderValue::from_static("r");
    let req = build_request(outgoing(&p, None, &rid), app_headers()).unwrap();
    assert_eq!(req.headers()["authorization"], "Bearer app-placeholder");
}

#[test]
fn missing_credentials_is_a_clear_error() {
    let p = provider("{name: o, type: openai, credentials: {file: /nonexistent/key}, models: [m]}");
    let cred = Credential::load(CredentialSource::File("/nonexistent/key".into()));
    let rid = HeaderValue::from_static("r");
    let e = build_request(outgoing(&p, Some(&cred), &rid), app_headers()).unwrap_err();
    assert_eq!(e.metric_label(), "credentials_unavailable");
    assert!(e.to_string().contains("provider `o`"));
}

#[test]
fn azure_paths() {
    let p = provider("{name: az, type: azure-openai, baseUrl: 'https://r.openai.azure.com', apiVersion: 2024-10-21, passthrough: true, models: ['gpt*']}");
    let u = upstream_uri(
        &p,
        Operation::ChatCompletions,
        "/v1/chat/completions",
        None,
        Some("gpt 4o/x"),
    )
    .unwrap();
    assert_eq!(u, "https://r.openai.azure.com/openai/deployments/gpt%204o%2Fx/chat/completions?api-version=2024-10-21");
    let u = upstream_uri(
        &p,
        Operation::Other,
        "/v1/files",
        Some("purpose=batch"),
        None,
    )
    .unwrap();
    assert_eq!(
        u,
        "https://r.openai.azure.com/openai/files?purpose=batch&api-version=2024-10-21"
    );
}

#[test]
fn compatible_base_with_prefix() {
    let p = provider("{name: g, type: openai-compatible, baseUrl: 'https://api.groq.com/openai/v1', passthrough: true, models: [m]}");
    let u = upstream_uri(
        &p,
        Operation::Embeddings,
        "/v1/embeddings",
        Some("a=1"),
        Some("m"),
    )
    .unwrap();
    assert_eq!(u, "https://api.groq.com/openai/v1/embeddings?a=1");
}

/// The error of a client trusting a CA bundle with `contents`.
fn ca_bundle_error(contents: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, contents).unwrap();
    let mut s = tollgate_config::from_yaml_str("apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nproviders: [{name: o, type: openai, passthrough: true, models: [m]}]").unwrap().upstream;
    s.extra_ca_file = Some(path);
    Client::new(&s).err().unwrap().to_string()
}

#[test]
fn bad_ca_bundle_is_reported() {
    let e = ca_bundle_error("not a certificate");
    assert!(e.contains("no PEM certificates"), "{e}");
    let e = ca_bundle_error("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n");
    assert!(e.contains("not a PEM bundle: base64 decode error"), "{e}");
    let e = ca_bundle_error("-----BEGIN CERTIFICATE-----\nMIIB\n");
    assert!(e.contains("not a PEM bundle: missing section end"), "{e}");
}
