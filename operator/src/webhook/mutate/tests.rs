use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;

const IMAGE: &str = "example.test/tollgate-proxy:default";

/// Why a pod was or was not injected: [`choose`], then [`patch`].
#[derive(Debug, Clone, PartialEq)]
enum Decision {
    Skip(&'static str),
    Inject {
        policy: String,
        patch: Value,
        warnings: Vec<String>,
    },
}

fn decide(
    pod: &Pod,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    policies: &[&LlmPolicy],
    settings: &Settings,
    env_from: &EnvFromByContainer,
) -> Decision {
    match choose(pod, namespace, namespace_labels, policies, settings) {
        Err(why) => Decision::Skip(why),
        Ok((policy, rendered)) => {
            let (patch, warnings) = patch(pod, policy, &rendered, settings, env_from);
            Decision::Inject {
                policy: policy.name_any(),
                patch,
                warnings,
            }
        }
    }
}

fn settings() -> Settings {
    Settings {
        proxy_image: IMAGE.into(),
        excluded_namespaces: vec!["tollgate-system".into(), "kube-system".into()],
        ..Settings::default()
    }
}

/// The example policy, with a memory limit (the tests of warnings count
/// only the warnings they are about; [`a_sidecar_without_a_memory_limit_is_warned_about`]
/// takes it away).
fn policy() -> LlmPolicy {
    let mut p: LlmPolicy =
        serde_saphyr::from_str(include_str!("../../../testdata/policy.yaml")).unwrap();
    p.metadata.namespace = Some("team-a".into());
    let resources = p.spec.sidecar.as_mut().unwrap().resources.as_mut().unwrap();
    resources.limits = Some([("memory".into(), Quantity("256Mi".into()))].into());
    p.metadata.creation_timestamp =
        Some(Time(k8s_openapi::jiff::Timestamp::from_second(1).unwrap()));
    p
}

fn pod(extra: Value) -> Pod {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "team-a", "labels": {"app": "chat"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn enabled() -> BTreeMap<String, String> {
    [(NAMESPACE_LABEL.to_string(), "enabled".to_string())].into()
}

fn decide_for(pod: &Pod, ns: &BTreeMap<String, String>, p: &LlmPolicy) -> Decision {
    decide(
        pod,
        "team-a",
        ns,
        &[p],
        &settings(),
        &EnvFromByContainer::new(),
    )
}

/// Applies the decision's patch; returns the pod as JSON.
fn injected(pod: &Pod, p: &LlmPolicy) -> Value {
    let Decision::Inject { patch, .. } = decide_for(pod, &enabled(), p) else {
        panic!("not injected");
    };
    let mut doc = serde_json::to_value(pod).unwrap();
    let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    doc
}

fn env(doc: &Value, container: usize) -> BTreeMap<String, String> {
    doc["spec"]["containers"][container]["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().into(),
                        e["value"].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn who_gets_injected() {
    let p = policy();
    let none = BTreeMap::new();
    assert_eq!(
        decide_for(&pod(json!({})), &none, &p),
        Decision::Skip("not_enabled")
    );
    assert!(matches!(
        decide_for(&pod(json!({})), &enabled(), &p),
        Decision::Inject { .. }
    ));
    let asked = pod(json!({"metadata": {"labels": {"tollgate.dev/inject": "true"}}}));
    assert!(matches!(
        decide_for(&asked, &none, &p),
        Decision::Inject { .. }
    ));
    let asked = pod(json!({"metadata": {"annotations": {"tollgate.dev/inject": "true"}}}));
    assert!(matches!(
        decide_for(&asked, &none, &p),
        Decision::Inject { .. }
    ));
    let out = pod(json!({"metadata": {"annotations": {"tollgate.dev/inject": "false"}}}));
    assert_eq!(
        decide_for(&out, &enabled(), &p),
        Decision::Skip("opted_out")
    );
    let other = pod(json!({"metadata": {"labels": {"app": "batch"}}}));
    assert_eq!(
        decide_for(&other, &enabled(), &p),
        Decision::Skip("no_policy")
    );
    // Namespaces the webhooks are not called for, even when asked.
    let s = settings();
    let asked = pod(json!({"metadata": {"labels": {"tollgate.dev/inject": "true"}}}));
    assert_eq!(
        decide(
            &asked,
            "kube-system",
            &enabled(),
            &[&p],
            &s,
            &EnvFromByContainer::new()
        ),
        Decision::Skip("excluded_namespace")
    );
    let mirror = pod(json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}}));
    assert_eq!(
        decide_for(&mirror, &enabled(), &p),
        Decision::Skip("mirror_pod")
    );
    let mut bad = policy();
    bad.spec.routes[0].retry.as_mut().unwrap().initial_backoff = Some("soon".into());
    assert_eq!(
        decide_for(&pod(json!({})), &enabled(), &bad),
        Decision::Skip("invalid_policy")
    );
}

#[test]
fn native_sidecar_with_restrictive_security_context() {
    let doc = injected(&pod(json!({})), &policy());
    let c = &doc["spec"]["initContainers"][0];
    assert_eq!(c["name"], "tollgate-proxy");
    assert_eq!(c["restartPolicy"], "Always");
    assert_eq!(
        c["image"], "example.test/tollgate-proxy:dev",
        "the policy's image"
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["args"],
        json!(["run", "--config", "/etc/tollgate/config.yaml"])
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": 15801})
    );
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "50m", "memory": "64Mi"})
    );
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        mounts,
        [
            "/etc/tollgate",
            "/var/lib/tollgate",
            "/var/run/secrets/tollgate/llm-keys"
        ]
    );
    assert_eq!(
        doc["spec"]["volumes"],
        json!([
            {"name": "tollgate-config", "configMap": {"name": "tollgate-chat"}},
            {"name": "tollgate-state", "emptyDir": {}},
            {"name": "tollgate-secret-0", "secret": {"secretName": "llm-keys",
                "items": [{"key": "anthropic", "path": "anthropic"}, {"key": "openai", "path": "openai"}]}},
        ])
    );
    let hash = render("team-a", "chat", &policy().spec).unwrap().hash;
    assert_eq!(
        doc["metadata"]["annotations"],
        json!({"tollgate.dev/policy": "chat", "tollgate.dev/config-hash": hash})
    );
}

#[test]
fn default_image_when_the_policy_names_none() {
    let mut p = policy();
    p.spec.sidecar = None;
    let doc = injected(&pod(json!({})), &p);
    assert_eq!(doc["spec"]["initContainers"][0]["image"], IMAGE);
    assert!(doc["spec"]["initContainers"][0]
        .get("imagePullPolicy")
        .is_none());
}

#[test]
fn app_containers_point_at_the_sidecar() {
    let doc = injected(&pod(json!({})), &policy());
    let e = env(&doc, 0);
    assert_eq!(e["OPENAI_BASE_URL"], "http://127.0.0.1:15800/v1");
    assert_eq!(e["ANTHROPIC_BASE_URL"], "http://127.0.0.1:15800");
    assert_eq!(e["OPENAI_API_KEY"], PLACEHOLDER_KEY);
    assert_eq!(e["ANTHROPIC_API_KEY"], PLACEHOLDER_KEY);
}

#[test]
fn existing_env_is_respected_unless_told_otherwise() {
    let app = pod(
        json!({"spec": {"containers": [{"name": "app", "image": "app:1",
        "env": [{"name": "OPENAI_BASE_URL", "value": "https://mine"}, {"name": "OPENAI_API_KEY", "value": "sk-own"}]}]}}),
    );
    let doc = injected(&app, &policy());
    let e = env(&doc, 0);
    assert_eq!(e["OPENAI_BASE_URL"], "https://mine");
    assert_eq!(e["OPENAI_API_KEY"], "sk-own");
    assert_eq!(e["ANTHROPIC_BASE_URL"], "http://127.0.0.1:15800");

    let mut p = policy();
    p.spec.injection.as_mut().unwrap().override_app_env = Some(true);
    let doc = injected(&app, &p);
    let e = env(&doc, 0);
    assert_eq!(e["OPENAI_BASE_URL"], "http://127.0.0.1:15800/v1");
    assert_eq!(e["OPENAI_API_KEY"], "sk-own", "a key is never overwritten");
}

/// The pod's env after injection, given what `envFrom` defines for "app".
fn env_with(from: EnvFrom, p: &LlmPolicy) -> (BTreeMap<String, String>, Vec<String>) {
    let app = pod(
        json!({"spec": {"containers": [{"name": "app", "image": "app:1",
        "envFrom": [{"configMapRef": {"name": "app-env"}}]}]}}),
    );
    let env_from = EnvFromByContainer::from([("app".to_string(), from)]);
    let Decision::Inject {
        patch, warnings, ..
    } = decide(&app, "team-a", &enabled(), &[p], &settings(), &env_from)
    else {
        panic!("not injected");
    };
    let mut doc = serde_json::to_value(&app).unwrap();
    let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    (env(&doc, 0), warnings)
}

#[test]
fn env_from_values_are_respected_like_env() {
    let names = |ns: &[&str]| EnvFrom {
        names: ns.iter().map(|n| n.to_string()).collect(),
        unreadable: vec![],
    };
    // The app's envFrom sets a base URL and a key: both kept (an `env` entry
    // would override them), the rest injected.
    let (e, w) = env_with(names(&["OPENAI_BASE_URL", "OPENAI_API_KEY"]), &policy());
    assert!(
        !e.contains_key("OPENAI_BASE_URL") && !e.contains_key("OPENAI_API_KEY"),
        "{e:?}"
    );
    assert_eq!(e["ANTHROPIC_BASE_URL"], "http://127.0.0.1:15800");
    assert_eq!(e["ANTHROPIC_API_KEY"], PLACEHOLDER_KEY);
    assert!(w.is_empty());
    // overrideAppEnv: the base URL is set (wins over envFrom); the key never.
    let mut p = policy();
    p.spec.injection.as_mut().unwrap().override_app_env = Some(true);
    let (e, _) = env_with(names(&["OPENAI_BASE_URL", "OPENAI_API_KEY"]), &p);
    assert_eq!(e["OPENAI_BASE_URL"], "http://127.0.0.1:15800/v1");
    assert!(!e.contains_key("OPENAI_API_KEY"), "{e:?}");
    // A prefixed source (`APP_OPENAI_API_KEY`) collides with nothing.
    let (e, _) = env_with(names(&["APP_OPENAI_API_KEY"]), &policy());
    assert_eq!(e["OPENAI_API_KEY"], PLACEHOLDER_KEY);
}

#[test]
fn an_unreadable_env_from_source_is_not_guessed() {
    let from = EnvFrom {
        names: Default::default(),
        unreadable: vec!["Secret app-secret".into()],
    };
    let (e, w) = env_with(from.clone(), &policy());
    assert!(e.is_empty(), "nothing set that the source may set: {e:?}");
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("\"app\"")
            && w[0].contains("OPENAI_BASE_URL")
            && w[0].contains("Secret app-secret"),
        "{w:?}"
    );
    // What overrides anyway is set; keys still are not.
    let mut p = policy();
    p.spec.injection.as_mut().unwrap().override_app_env = Some(true);
    let (e, w) = env_with(from, &p);
    assert_eq!(
        e.keys().collect::<Vec<_>>(),
        ["ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"]
    );
    assert!(w[0].contains("OPENAI_API_KEY, ANTHROPIC_API_KEY"), "{w:?}");
}

#[test]
fn only_listed_containers_and_switches() {
    let app = pod(
        json!({"spec": {"containers": [{"name": "app", "image": "a"}, {"name": "metrics", "image": "m"}]}}),
    );
    let mut p = policy();
    p.spec.injection = Some(crate::crd::Injection {
        containers: vec!["app".into()],
        placeholder_api_keys: Some(false),
        ..Default::default()
    });
    let doc = injected(&app, &p);
    assert_eq!(
        env(&doc, 0).keys().collect::<Vec<_>>(),
        ["ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"]
    );
    assert!(env(&doc, 1).is_empty());
}

#[test]
fn patch_is_minimal_and_keeps_what_exists() {
    let app = pod(json!({
        "metadata": {"annotations": {"team": "a"}},
        "spec": {"initContainers": [{"name": "migrate", "image": "m"}],
                 "volumes": [{"name": "data", "emptyDir": {}}]}}));
    let Decision::Inject { patch, .. } = decide_for(&app, &enabled(), &policy()) else {
        panic!()
    };
    let ops = patch.as_array().unwrap();
    assert!(ops.iter().all(|o| o["op"] == "add"), "{patch:#}");
    let paths: Vec<&str> = ops.iter().map(|o| o["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/spec/initContainers/0",
            "/spec/volumes/-",
            "/spec/volumes/-",
            "/spec/volumes/-",
            "/spec/containers/0/env",
            "/metadata/annotations/tollgate.dev~1policy",
            "/metadata/annotations/tollgate.dev~1config-hash",
        ]
    );
    let doc = injected(&app, &policy());
    assert_eq!(doc["spec"]["initContainers"][1]["name"], "migrate");
    assert_eq!(doc["spec"]["volumes"][0]["name"], "data");
    assert_eq!(doc["metadata"]["annotations"]["team"], "a");
}

#[test]
fn injection_is_idempotent() {
    let doc = injected(&pod(json!({})), &policy());
    let again: Pod = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(
        decide_for(&again, &enabled(), &policy()),
        Decision::Skip("already_injected")
    );
    // A pod that carries the container but lost the annotation is not injected twice either.
    let mut doc = doc;
    doc["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .clear();
    let again: Pod = serde_json::from_value(doc).unwrap();
    assert_eq!(
        decide_for(&again, &enabled(), &policy()),
        Decision::Skip("already_injected")
    );
}

#[test]
fn oldest_policy_injects() {
    let old = policy();
    let mut young = policy();
    young.metadata.name = Some("young".into());
    young.metadata.creation_timestamp =
        Some(Time(k8s_openapi::jiff::Timestamp::from_second(9).unwrap()));
    let d = decide(
        &pod(json!({})),
        "team-a",
        &enabled(),
        &[&young, &old],
        &settings(),
        &EnvFromByContainer::new(),
    );
    assert!(matches!(d, Decision::Inject { policy, .. } if policy == "chat"));
}

/// The sidecar's `env` after injection with `settings`, as (name, value or
/// field path) in order.
/// The example pod injected with `settings`.
fn injected_with(settings: &Settings) -> Value {
    let p = policy();
    let pod = pod(json!({}));
    let Decision::Inject { patch, .. } = decide(
        &pod,
        "team-a",
        &enabled(),
        &[&p],
        settings,
        &EnvFromByContainer::new(),
    ) else {
        panic!("not injected");
    };
    let mut doc = serde_json::to_value(&pod).unwrap();
    let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    doc
}

fn sidecar_env(settings: &Settings) -> Option<Vec<(String, String)>> {
    let doc = injected_with(settings);
    // The app's own variables never get the sidecar's.
    assert!(env(&doc, 0).keys().all(|k| !k.starts_with("OTEL_")));
    let env = doc["spec"]["initContainers"][0]
        .get("env")?
        .as_array()?
        .clone();
    Some(
        env.iter()
            .map(|e| {
                let from = &e["valueFrom"];
                let secret = from["secretKeyRef"].as_object().map(|r| {
                    format!(
                        "secret {} key {} optional {}",
                        r["name"], r["key"], r["optional"]
                    )
                });
                let value = e["value"]
                    .as_str()
                    .or(from["fieldRef"]["fieldPath"].as_str())
                    .map(str::to_string)
                    .or(secret)
                    .unwrap();
                (e["name"].as_str().unwrap().to_string(), value)
            })
            .collect(),
    )
}

#[test]
fn sidecars_get_the_trace_variables_only_when_told() {
    assert_eq!(sidecar_env(&settings()), None, "no endpoint, no variables");

    let tracing = trace_env::SidecarTracing {
        endpoint: "http://otel-collector.observability:4317".into(),
        protocol: Some(tollgate_otel::Protocol::Grpc),
        sample_ratio: Some(0.25),
        headers_secret: Some("otlp-headers".into()),
        ca_config_map: None,
    };
    let s = Settings {
        sidecar_tracing: Some(tracing.clone()),
        ..settings()
    };
    let env = sidecar_env(&s).expect("variables");
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    let get = |name: &str| &env.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(
        get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "http://otel-collector.observability:4317"
    );
    assert_eq!(get("OTEL_EXPORTER_OTLP_PROTOCOL"), "grpc");
    assert_eq!(get("OTEL_SERVICE_NAME"), "tollgate-proxy");
    assert_eq!(get("OTEL_TRACES_SAMPLER"), "parentbased_traceidratio");
    assert_eq!(get("OTEL_TRACES_SAMPLER_ARG"), "0.25");
    assert_eq!(get("TOLLGATE_POD_NAME"), "metadata.name");
    // Headers (credentials) from a Secret in the pod's namespace, never a
    // value in the spec; optional, so a missing one never stops the pod.
    assert_eq!(
        get("OTEL_EXPORTER_OTLP_HEADERS"),
        r#"secret "otlp-headers" key "headers" optional true"#
    );
    assert_eq!(get("TOLLGATE_POD_NAMESPACE"), "metadata.namespace");
    let attrs = get("OTEL_RESOURCE_ATTRIBUTES");
    assert_eq!(
        attrs,
        "k8s.pod.name=$(TOLLGATE_POD_NAME),k8s.namespace.name=$(TOLLGATE_POD_NAMESPACE),k8s.container.name=tollgate-proxy"
    );
    // The kubelet expands `$(VAR)` only for variables defined before.
    let at = names
        .iter()
        .position(|n| *n == "OTEL_RESOURCE_ATTRIBUTES")
        .unwrap();
    for var in attrs
        .split("$(")
        .skip(1)
        .map(|r| r.split(')').next().unwrap())
    {
        let defined = names.iter().position(|n| *n == var);
        assert!(
            defined.is_some_and(|d| d < at),
            "{var} not defined before use: {names:?}"
        );
    }

    // Without a protocol or ratio: the proxy's defaults (HTTP, all sampled).
    let s = Settings {
        sidecar_tracing: Some(trace_env::SidecarTracing {
            protocol: None,
            sample_ratio: None,
            headers_secret: None,
            ..tracing
        }),
        ..settings()
    };
    let env = sidecar_env(&s).unwrap();
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"OTEL_EXPORTER_OTLP_ENDPOINT"), "{names:?}");
    for absent in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ] {
        assert!(!names.contains(&absent), "{absent} in {names:?}");
    }
}

#[test]
fn a_private_collector_ca_is_mounted_from_a_config_map_of_the_pods_namespace() {
    let tracing = |ca: Option<&str>| Settings {
        sidecar_tracing: Some(trace_env::SidecarTracing {
            endpoint: "https://otel-collector.observability:4317".into(),
            protocol: Some(tollgate_otel::Protocol::Grpc),
            sample_ratio: None,
            headers_secret: None,
            ca_config_map: ca.map(Into::into),
        }),
        ..settings()
    };
    let doc = injected_with(&tracing(Some("otlp-ca")));
    let volume = doc["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tollgate-otlp-ca")
        .expect("the CA volume");
    // Optional: a namespace without the ConfigMap still runs its pods (the
    // sidecar's tracing stays off, with an error line).
    assert_eq!(
        volume["configMap"],
        json!({"name": "otlp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}], "optional": true})
    );
    let sidecar = &doc["spec"]["initContainers"][0];
    let mount = sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tollgate-otlp-ca")
        .expect("the CA mount");
    assert_eq!(mount["readOnly"], true);
    let file = format!("{}/ca.crt", mount["mountPath"].as_str().unwrap());
    let env = sidecar_env(&tracing(Some("otlp-ca"))).unwrap();
    assert!(
        env.contains(&("OTEL_EXPORTER_OTLP_CERTIFICATE".into(), file.clone())),
        "{env:?}"
    );
    // The app containers get neither.
    assert!(doc["spec"]["containers"][0].get("volumeMounts").is_none());

    let doc = injected_with(&tracing(None));
    assert!(!doc.to_string().contains("tollgate-otlp-ca"));
    let env = sidecar_env(&tracing(None)).unwrap();
    assert!(env
        .iter()
        .all(|(n, _)| n != "OTEL_EXPORTER_OTLP_CERTIFICATE"));
}

#[test]
fn a_sidecar_without_a_memory_limit_is_warned_about() {
    let warnings = |p: &LlmPolicy| match decide_for(&pod(json!({})), &enabled(), p) {
        Decision::Inject { warnings, .. } => warnings,
        d => panic!("{d:?}"),
    };
    assert_eq!(warnings(&policy()), Vec::<String>::new());
    let mut p = policy();
    p.spec
        .sidecar
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .limits = None;
    assert_eq!(
        warnings(&p),
        ["tollgate: container tollgate-proxy has no memory limit (LlmPolicy chat, spec.sidecar.resources): set limits.memory"]
    );
    // Without resources the default's 256Mi limit applies.
    p.spec.sidecar.as_mut().unwrap().resources = None;
    assert_eq!(warnings(&p), Vec::<String>::new());
    let doc = injected(&pod(json!({})), &p);
    assert_eq!(
        doc["spec"]["initContainers"][0]["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}})
    );
}
