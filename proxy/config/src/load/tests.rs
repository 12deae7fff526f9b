use super::*;

const MINIMAL: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
providers:
  - name: openai
    type: openai
    credentials: {env: OPENAI_API_KEY}
    models: [gpt-4o-mini, "gpt-4.1*"]
  - name: anthropic
    type: anthropic
    credentials: {file: /var/run/secrets/anthropic/key}
    models: [claude-sonnet-4-5]
"#;

fn errors(text: &str) -> Vec<String> {
    match from_yaml_str(text) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e
            .field_errors()
            .into_iter()
            .map(|f| f.to_string())
            .collect(),
    }
}

#[test]
fn minimal_gets_defaults() {
    let c = from_yaml_str(MINIMAL).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9901");
    assert_eq!(c.server.max_request_body, 16 << 20);
    assert_eq!(c.server.max_concurrent_requests, 1024);
    assert_eq!(
        c.providers[0].base_url.as_string(),
        "https://api.openai.com/v1"
    );
    assert_eq!(
        c.providers[1].base_url.as_string(),
        "https://api.anthropic.com"
    );
    assert_eq!(c.providers[1].anthropic_version, "2023-06-01");
    assert!(c.providers[0].serves("gpt-4.1-mini"));
    assert!(!c.providers[0].serves("gpt-4o"));
    assert_eq!(
        c.providers[0].listed_models().collect::<Vec<_>>(),
        ["gpt-4o-mini"]
    );
    assert_eq!(c.hash.len(), 64);
}

#[test]
fn hash_ignores_formatting_but_not_content() {
    let a = from_yaml_str(MINIMAL).unwrap();
    let reformatted = MINIMAL.replace("{env: OPENAI_API_KEY}", "\n      env: OPENAI_API_KEY");
    let b = from_yaml_str(&reformatted).unwrap();
    assert_eq!(a.hash, b.hash);
    let changed = from_yaml_str(&MINIMAL.replace("gpt-4o-mini", "gpt-4o")).unwrap();
    assert_ne!(a.hash, changed.hash);
}

#[test]
fn unknown_field_names_its_path() {
    let e = errors(&MINIMAL.replace("    passthrough_typo", "").replace(
        "    type: anthropic",
        "    type: anthropic\n    baseURL: https://x",
    ));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("providers[1]"), "{e:?}");
    assert!(e[0].contains("unknown field `baseURL`"), "{e:?}");
}

#[test]
fn wrong_type_names_its_path() {
    let e = errors(&format!(
        "{MINIMAL}server:\n  maxConcurrentRequests: lots\n"
    ));
    assert!(e[0].starts_with("server.maxConcurrentRequests"), "{e:?}");
}

#[test]
fn parse_errors_name_the_line_and_column() {
    let e = errors(&format!(
        "{MINIMAL}server:\n  maxConcurrentRequests: lots\n"
    ));
    let line = MINIMAL.lines().count() + 2;
    assert_eq!(
        e,
        [format!(
            "server.maxConcurrentRequests: invalid u32 at line {line}, column 26"
        )]
    );
    // A duplicate key is named by the mapping that holds it.
    let e = errors(&format!("{MINIMAL}server:\n  listen: a\n  listen: b\n"));
    assert!(
        e[0].starts_with("server: duplicate mapping key `listen` is not allowed here at line"),
        "{e:?}"
    );
    let e = errors(&format!("{MINIMAL}kind: ProxyConfig\n"));
    assert!(
        e[0].starts_with("(root): duplicate mapping key `kind`"),
        "{e:?}"
    );
    // Booleans are YAML 1.2's: `yes` is not one.
    let e = errors(&format!("{MINIMAL}cache:\n  enabled: yes\n"));
    assert!(e[0].starts_with("cache.enabled: invalid boolean"), "{e:?}");
    let e = errors(&format!("{MINIMAL}---\n{MINIMAL}"));
    assert!(
        e[0].starts_with("(root): only single YAML document expected but multiple found at line"),
        "{e:?}"
    );
}

#[test]
fn every_invalid_value_is_reported_at_once() {
    let text = r#"
apiVersion: tollgate.dev/v1
kind: Proxy
server: {listen: "localhost", maxRequestBody: 16MB, headerReadTimeout: "0s", maxConcurrentRequests: 0}
upstream: {connectTimeout: soon}
defaultProvider: nope
providers:
  - name: Bad_Name
    type: openai-compatible
    models: []
  - name: dup
    type: openai
    baseUrl: "ftp://x"
    credentials: {env: A, file: /b}
    models: ["a*b"]
    anthropicVersion: "2023-06-01"
  - name: dup
    type: azure-openai
    baseUrl: "https://user:pw@x.openai.azure.com"
    credentials: {env: "NOT-VALID"}
    models: [gpt-4o]
    headers: {Authorization: x}
"#;
    let e = errors(text);
    let has = |p: &str, m: &str| e.iter().any(|x| x.starts_with(p) && x.contains(m));
    assert!(has("apiVersion", "tollgate.dev/v1alpha1"), "{e:#?}");
    assert!(has("kind", "ProxyConfig"));
    assert!(has("server.listen", "not an IP:port"));
    assert!(has("server.maxRequestBody", "suffix `MB`"));
    assert!(has("server.headerReadTimeout", "greater than zero"));
    assert!(has("server.maxConcurrentRequests", "at least 1"));
    assert!(has("upstream.connectTimeout", "not a duration"));
    assert!(has("defaultProvider", "no provider is named `nope`"));
    assert!(has("providers[0].name", "DNS label"));
    assert!(has(
        "providers[0].baseUrl",
        "required for type `openai-compatible`"
    ));
    assert!(has("providers[0].credentials", "required unless"));
    assert!(has("providers[0].models", "at least one model"));
    assert!(has("providers[1].baseUrl", "http or https"));
    assert!(has("providers[1].credentials", "not both"));
    assert!(has("providers[1].models[0]", "only allowed at the end"));
    assert!(has("providers[1].anthropicVersion", "only applies"));
    assert!(has("providers[2].name", "already the name of providers[1]"));
    assert!(has("providers[2].baseUrl", "must not carry credentials"));
    assert!(has(
        "providers[2].credentials.env",
        "not an environment variable"
    ));
    assert!(has(
        "providers[2].apiVersion",
        "required for type `azure-openai`"
    ));
    assert!(has(
        "providers[2].headers.Authorization",
        "managed by the proxy"
    ));
}

#[test]
fn same_model_on_two_providers_of_one_api_is_ambiguous() {
    let text = MINIMAL.replace("models: [claude-sonnet-4-5]", "models: [claude-sonnet-4-5]\n  - name: other\n    type: openai-compatible\n    baseUrl: http://127.0.0.1:1/v1\n    passthrough: true\n    models: [gpt-4o-mini]");
    let e = errors(&text);
    assert!(
        e.iter().any(|x| x.starts_with("providers[2].models")
            && x.contains("already served by provider `openai`")),
        "{e:?}"
    );
}

#[test]
fn base_url_parsing() {
    let u = parse_base_url("http://127.0.0.1:8000/openai/v1/").unwrap();
    assert_eq!(
        (u.scheme.as_str(), u.authority.as_str(), u.path.as_str()),
        ("http", "127.0.0.1:8000", "/openai/v1")
    );
    assert!(parse_base_url("http://[::1]:80").is_ok());
    assert!(parse_base_url("http://h:notaport").is_err());
    assert!(parse_base_url("https://h/v1?x=1").is_err());
    assert!(parse_base_url("api.openai.com").is_err());
}

#[test]
fn schema_describes_the_file() {
    let s = crate::json_schema();
    let text = s.to_string();
    assert!(text.contains("\"providers\""));
    assert!(text.contains("openai-compatible"));
    assert!(text.contains("additionalProperties"));
}

const ROUTED: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
providers:
  - {name: openai, type: openai, passthrough: true, models: [gpt-4o-mini]}
  - {name: anthropic, type: anthropic, passthrough: true, models: [claude-sonnet-4-5]}
routing:
  defaults:
    retry: {maxAttempts: 3, deadline: 30s}
  routes:
    - name: chat-default
      strategy: round-robin
      targets:
        - {provider: openai, model: gpt-4o-mini, weight: 3}
        - {provider: anthropic, model: claude-haiku-4-5, longContext: true}
      rules:
        - {name: long, when: {promptTokensAbove: 4000}, route: chat-strong}
        - {when: {header: {name: X-Tollgate-Tier, values: [Premium]}, systemPrompt: "(?i)legal"}, route: chat-strong}
      timeouts: {firstByte: 20s}
      shaping: {defaultMaxTokens: 512, maxTokens: 4096, set: {temperature: 0}, strip: [logit_bias]}
      shadow: {provider: anthropic, model: claude-sonnet-4-5, share: 0.1}
    - name: chat-strong
      targets: [{provider: anthropic, model: claude-sonnet-4-5}]
"#;

#[test]
fn routing_is_validated_with_defaults_inherited() {
    let c = from_yaml_str(ROUTED).unwrap();
    let r = &c.routing.routes[0];
    assert_eq!(r.strategy, Strategy::RoundRobin);
    assert_eq!(r.targets[0].weight, 3);
    assert_eq!(r.targets[1].weight, 1);
    assert_eq!(r.targets[1].provider, 1);
    assert_eq!(r.rules[0].route, 1);
    assert_eq!(r.rules[1].name, "rule-1");
    assert_eq!(
        r.rules[1].when.header.as_ref().unwrap().name,
        "x-tollgate-tier"
    );
    assert_eq!(r.rules[1].when.header.as_ref().unwrap().values, ["premium"]);
    assert!(r.rules[1]
        .when
        .system_prompt
        .as_ref()
        .unwrap()
        .0
        .is_match("LEGAL review"));
    assert_eq!(
        r.policy.retry.max_attempts, 3,
        "inherited from routing.defaults"
    );
    assert_eq!(r.policy.retry.deadline, std::time::Duration::from_secs(30));
    assert_eq!(
        r.policy.timeouts.first_byte,
        std::time::Duration::from_secs(20)
    );
    assert_eq!(r.policy.timeouts.connect, c.upstream.connect_timeout);
    assert_eq!(
        r.shaping.set,
        vec![("temperature".to_string(), serde_json::json!(0))]
    );
    assert_eq!(r.shadow.as_ref().unwrap().queue_size, 64);
    assert_eq!(c.routing.routes[1].policy.retry.max_attempts, 3);
}

#[test]
fn routing_errors_name_their_paths() {
    let bad = ROUTED
        .replace("weight: 3", "weight: 0")
        .replace("route: chat-strong}", "route: nowhere}")
        .replace("(?i)legal", "(unclosed")
        .replace("share: 0.1", "share: 1.5")
        .replace("{provider: anthropic, model: claude-sonnet-4-5}]", "]")
        .replace("strip: [logit_bias]", "strip: [messages]")
        .replace("maxAttempts: 3", "maxAttempts: 0");
    let e = errors(&bad);
    let has = |p: &str, m: &str| e.iter().any(|x| x.starts_with(p) && x.contains(m));
    assert!(
        has("routing.routes[0].targets[0].weight", "greater than 0"),
        "{e:#?}"
    );
    assert!(has(
        "routing.routes[0].rules[0].route",
        "no route is named `nowhere`"
    ));
    assert!(has(
        "routing.routes[0].rules[1].when.systemPrompt",
        "invalid regular expression"
    ));
    assert!(has("routing.routes[0].shadow.share", "(0, 1]"));
    assert!(has("routing.routes[1].targets", "at least one target"));
    assert!(has("routing.routes[0].shaping", "`messages` cannot be set"));
    assert!(has("routing.defaults.retry.maxAttempts", "at least 1"));
}

#[test]
fn tracing_is_off_by_default_and_validated_when_set() {
    let c = from_yaml_str(MINIMAL).unwrap();
    assert_eq!(c.tracing, Tracing::default());
    assert!(c.providers.iter().all(|p| p.propagate_trace));

    let on = format!(
        "{MINIMAL}tracing:\n  otlp: {{endpoint: 'http://otel-collector:4317', protocol: grpc, timeout: 3s}}\n  serviceName: checkout-llm\n  sampleRatio: 0.25\n  queueSize: 512\n"
    );
    let c = from_yaml_str(&on).unwrap();
    assert_eq!(
        c.tracing.endpoint.as_deref(),
        Some("http://otel-collector:4317")
    );
    assert_eq!(c.tracing.protocol, Some(crate::raw::OtlpProtocol::Grpc));
    assert_eq!(c.tracing.timeout, Some(Duration::from_secs(3)));
    assert_eq!(c.tracing.service_name.as_deref(), Some("checkout-llm"));
    assert_eq!(c.tracing.sample_ratio, Some(0.25));
    assert_eq!(c.tracing.queue_size, Some(512));

    let off = MINIMAL.replace(
        "models: [claude-sonnet-4-5]",
        "models: [claude-sonnet-4-5]\n    propagateTrace: false",
    );
    let c = from_yaml_str(&off).unwrap();
    assert!(c.providers[0].propagate_trace && !c.providers[1].propagate_trace);

    let bad = format!(
        "{MINIMAL}tracing:\n  otlp: {{endpoint: 'otel-collector:4317', protocol: http/json}}\n"
    );
    let e = match from_yaml_str(&bad) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("http/json is not supported"),
    };
    assert!(e.contains("tracing.otlp.protocol"), "{e}");
    let errs = errors(&format!(
        "{MINIMAL}tracing:\n  otlp: {{endpoint: 'otel-collector:4317'}}\n  sampleRatio: 1.5\n  queueSize: 0\n  serviceName: ' '\n"
    ));
    for path in [
        "tracing.otlp.endpoint",
        "tracing.sampleRatio",
        "tracing.queueSize",
        "tracing.serviceName",
    ] {
        assert!(errs.iter().any(|e| e.starts_with(path)), "{path}: {errs:?}");
    }
}
