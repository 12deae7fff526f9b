//! `LlmPolicySpec` → the proxy's own config, validated by the same code as
//! `tollgate-proxy check`. Pure: no I/O, no clock, so the reconciler and
//! both webhooks agree on every byte.
//!
//! Secrets are never read. Each referenced Secret key becomes a file path
//! under [`SECRETS_DIR`] in the config, and a [`SecretVolume`] that the
//! injection webhook mounts at that path.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};
use tollgate_config::raw::RawConfig;

use crate::crd::{
    BudgetStoreType, Budgets, Cache, LlmPolicySpec, RedisTls, SecretKeyRef, DEFAULT_ADMIN_PORT,
    DEFAULT_PORT,
};

mod paths;
#[cfg(test)]
mod tests;

/// Where the rendered config is mounted in the sidecar (a ConfigMap volume,
/// not a subPath, so updates reach the running proxy).
pub const CONFIG_DIR: &str = "/etc/tollgate";
/// The config file's name in the ConfigMap and in [`CONFIG_DIR`].
pub const CONFIG_FILE: &str = "config.yaml";
/// Where Secret volumes are mounted: `SECRETS_DIR/<secret>/<key>`.
pub const SECRETS_DIR: &str = "/var/run/secrets/tollgate";
/// The sidecar's own writable volume (`emptyDir`), for budget counters.
pub const STATE_DIR: &str = "/var/lib/tollgate";

/// The most a ConfigMap's data may hold: the API server refuses a larger
/// one (the sum of its keys' and values' bytes).
pub const CONFIG_MAP_LIMIT: usize = 1 << 20;

/// What a policy renders to.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The proxy config, as written to the ConfigMap.
    pub yaml: String,
    /// The proxy's hash of that config (`tollgate_config_info{hash}`).
    pub hash: String,
    /// Secrets the sidecar must mount, sorted by name.
    pub secrets: Vec<SecretVolume>,
    /// Port the apps call on loopback.
    pub port: u16,
    /// Admin port (probes, metrics).
    pub admin_port: u16,
    /// The validated config `yaml` holds.
    pub config: tollgate_config::Config,
}

/// One Secret mounted into the sidecar, with only the keys the config uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVolume {
    /// Pod volume name (a DNS label).
    pub volume: String,
    pub secret: String,
    pub keys: Vec<String>,
    pub mount_path: String,
}

/// A problem with the spec, at its `spec.` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a spec does not render into a config a proxy would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct RenderError(pub Vec<SpecError>);

/// Renders a policy's spec into proxy config. `namespace` and `name` are the
/// policy's; they become the config's `metadata` (the `namespace` and
/// `workload` scope values of budgets: one config serves every pod the
/// policy selects, so `workload` is the policy's name).
pub fn render(namespace: &str, name: &str, spec: &LlmPolicySpec) -> Result<Rendered, RenderError> {
    let mut secrets = Secrets::default();
    let sidecar = spec.sidecar.clone().unwrap_or_default();
    let port = sidecar.port.unwrap_or(DEFAULT_PORT);
    let admin_port = sidecar.admin_port.unwrap_or(DEFAULT_ADMIN_PORT);

    let mut doc = Map::new();
    doc.insert("apiVersion".into(), json!(tollgate_config::API_VERSION));
    doc.insert("kind".into(), json!(tollgate_config::KIND));
    doc.insert(
        "metadata".into(),
        json!({"name": format!("{namespace}/{name}"), "namespace": namespace, "workload": name}),
    );
    let mut server = json!({"listen": format!("127.0.0.1:{port}")});
    if let Some(runtime) = sidecar.runtime {
        server["runtime"] = json!(runtime);
    }
    doc.insert("server".into(), server);
    doc.insert(
        "admin".into(),
        json!({"listen": format!("0.0.0.0:{admin_port}")}),
    );

    let providers: Vec<Value> = spec
        .providers
        .iter()
        .map(|p| {
            let mut v = to_object(p);
            v.remove("credentialsSecretRef");
            if let Some(r) = &p.credentials_secret_ref {
                v.insert("credentials".into(), json!({"file": secrets.file(r)}));
            }
            Value::Object(v)
        })
        .collect();
    doc.insert("providers".into(), Value::Array(providers));
    if let Some(d) = &spec.default_provider {
        doc.insert("defaultProvider".into(), json!(d));
    }
    if let Some(u) = &spec.unknown_paths {
        doc.insert("unknownPaths".into(), json!(u));
    }

    let mut logging = Map::new();
    if let Some(level) = &sidecar.log_level {
        logging.insert("level".into(), json!(level));
    }
    if let Some(format) = &sidecar.log_format {
        logging.insert("format".into(), json!(format));
    }
    if let Some(access) = &sidecar.access_log {
        logging.insert("access".into(), json!(access));
    }
    if !logging.is_empty() {
        doc.insert("logging".into(), Value::Object(logging));
    }
    if let Some(per_model) = sidecar.per_model_histograms {
        doc.insert("metrics".into(), json!({ "perModelHistograms": per_model }));
    }

    let mut routing = Map::new();
    if let Some(d) = &spec.route_defaults {
        routing.insert("defaults".into(), json!(d));
    }
    if !spec.routes.is_empty() {
        routing.insert("routes".into(), json!(spec.routes));
    }
    if !routing.is_empty() {
        doc.insert("routing".into(), Value::Object(routing));
    }
    // Written as the spec has them: unset fields stay unset (the proxy's
    // defaults apply), so the config is the one the section describes.
    if let Some(c) = &spec.cache {
        doc.insert("cache".into(), cache(c, &mut secrets));
    }
    if let Some(p) = &spec.pii {
        doc.insert("pii".into(), json!(p));
    }
    if let Some(b) = &spec.budgets {
        doc.insert("budgets".into(), budgets(b, &mut secrets));
    }

    check_pod_level(spec)?;
    let raw: RawConfig = serde_path_to_error::deserialize(Value::Object(doc)).map_err(|e| {
        let path = e.path().to_string();
        RenderError(vec![SpecError {
            path: paths::to_spec(&path),
            message: e.into_inner().to_string(),
        }])
    })?;
    let yaml = tollgate_config::yaml::to_string(&raw).expect("config serializes");
    let config = tollgate_config::load::validate(raw).map_err(|e| {
        RenderError(
            e.field_errors()
                .into_iter()
                .map(|f| SpecError {
                    path: paths::to_spec(&f.path),
                    message: f.message,
                })
                .collect(),
        )
    })?;
    let yaml = format!("# Rendered by tollgate-operator from LlmPolicy {namespace}/{name}; edits are reverted.\n{yaml}");
    let size = CONFIG_FILE.len() + yaml.len();
    if size > CONFIG_MAP_LIMIT {
        return Err(too_large(size, &spec_sections(spec)));
    }
    Ok(Rendered {
        yaml,
        hash: config.hash.clone(),
        secrets: secrets.volumes(),
        port,
        admin_port,
        config,
    })
}

/// Bytes (as JSON) per top-level field of the spec, largest first.
fn spec_sections(spec: &LlmPolicySpec) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = to_object(spec)
        .into_iter()
        .map(|(k, v)| (format!("spec.{k}"), v.to_string().len()))
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.1));
    out
}

/// The error for a config a ConfigMap cannot hold, naming the sections
/// that take the room (as `spec.` paths).
fn too_large(size: usize, sections: &[(String, usize)]) -> RenderError {
    let largest: Vec<String> = sections
        .iter()
        .take(3)
        .map(|(k, n)| format!("{k} {} KiB", n.div_ceil(1024)))
        .collect();
    RenderError(vec![SpecError {
        path: "spec".into(),
        message: format!(
            "renders to a {} KiB config, more than the {} KiB a ConfigMap holds (largest: {}); split the policy or shorten those sections",
            size.div_ceil(1024),
            CONFIG_MAP_LIMIT / 1024,
            largest.join(", ")
        ),
    }])
}

/// Header names that carry keys: they belong in a Secret, not a ConfigMap.
const KEY_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
];

/// What the proxy cannot see: secrets must never land in the ConfigMap,
/// and the two ports share the pod's network namespace.
fn check_pod_level(spec: &LlmPolicySpec) -> Result<(), RenderError> {
    let mut errs = Vec::new();
    for (i, p) in spec.providers.iter().enumerate() {
        for h in p.headers.keys() {
            if KEY_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
                errs.push(SpecError {
                    path: format!("spec.providers[{i}].headers.{h}"),
                    message: "keys would be stored in a ConfigMap; use credentialsSecretRef".into(),
                });
            }
        }
    }
    let sidecar = spec.sidecar.clone().unwrap_or_default();
    if sidecar.port.unwrap_or(DEFAULT_PORT) == sidecar.admin_port.unwrap_or(DEFAULT_ADMIN_PORT) {
        // 127.0.0.1:P and 0.0.0.0:P are different addresses to the proxy,
        // but one port in the pod.
        errs.push(SpecError {
            path: "spec.sidecar.adminPort".into(),
            message: "must differ from port".into(),
        });
    }
    if spec.pii.as_ref().is_some_and(|p| p.hash_salt.is_some()) {
        errs.push(SpecError {
            path: "spec.pii.hashSalt".into(),
            message: "the salt would be stored in a ConfigMap; omit it (derived from the policy's name) until the proxy can read it from a file".into(),
        });
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(RenderError(errs))
    }
}

fn budgets(b: &Budgets, secrets: &mut Secrets) -> Value {
    let mut v = to_object(b);
    if let Some(store) = &b.store {
        let mut s = to_object(store);
        match store.kind.unwrap_or_default() {
            BudgetStoreType::Memory => {
                s.insert(
                    "persistPath".into(),
                    json!(format!("{STATE_DIR}/budgets.json")),
                );
            }
            BudgetStoreType::Redis => {
                if let Some(redis) = &store.redis {
                    let r = redis_files(
                        to_object(redis),
                        redis.password_secret_ref.as_ref(),
                        redis.tls.as_ref(),
                        secrets,
                    );
                    s.insert("redis".into(), r);
                }
            }
        }
        v.insert("store".into(), Value::Object(s));
    } else if !b.limits.is_empty() || !b.rate_limits.is_empty() {
        // Counters survive a proxy restart (not a pod's): the sidecar's own volume.
        v.insert(
            "store".into(),
            json!({"type": "memory", "persistPath": format!("{STATE_DIR}/budgets.json")}),
        );
    }
    Value::Object(v)
}

/// The cache section as written, its Redis Secrets turned into files.
fn cache(c: &Cache, secrets: &mut Secrets) -> Value {
    let mut v = to_object(c);
    if let Some(redis) = c.store.as_ref().and_then(|s| s.redis.as_ref()) {
        let r = redis_files(
            to_object(redis),
            redis.password_secret_ref.as_ref(),
            redis.tls.as_ref(),
            secrets,
        );
        if let Some(Value::Object(store)) = v.get_mut("store") {
            store.insert("redis".into(), r);
        }
    }
    Value::Object(v)
}

/// A store's `redis` block as the proxy reads it: the password and TLS
/// Secret keys become the files they are mounted at.
fn redis_files(
    mut r: Map<String, Value>,
    password: Option<&SecretKeyRef>,
    tls: Option<&RedisTls>,
    secrets: &mut Secrets,
) -> Value {
    r.remove("passwordSecretRef");
    if let Some(p) = password {
        r.insert("passwordFile".into(), json!(secrets.file(p)));
    }
    if let Some(t) = tls {
        let mut files = Map::new();
        for (field, key) in [
            ("caFile", &t.ca_secret_ref),
            ("certFile", &t.cert_secret_ref),
            ("keyFile", &t.key_secret_ref),
        ] {
            if let Some(k) = key {
                files.insert(field.into(), json!(secrets.file(k)));
            }
        }
        r.insert("tls".into(), Value::Object(files));
    }
    Value::Object(r)
}

fn to_object<T: serde::Serialize>(t: &T) -> Map<String, Value> {
    match serde_json::to_value(t).expect("spec serializes") {
        Value::Object(m) => m,
        _ => unreachable!("spec sections are objects"),
    }
}

/// The Secret keys a config uses, grouped by Secret.
#[derive(Default)]
struct Secrets(BTreeMap<String, Vec<String>>);

impl Secrets {
    fn file(&mut self, r: &SecretKeyRef) -> String {
        let keys = self.0.entry(r.name.clone()).or_default();
        if !keys.contains(&r.key) {
            keys.push(r.key.clone());
            keys.sort();
        }
        format!("{SECRETS_DIR}/{}/{}", r.name, r.key)
    }

    fn volumes(self) -> Vec<SecretVolume> {
        self.0
            .into_iter()
            .enumerate()
            .map(|(i, (secret, keys))| SecretVolume {
                volume: format!("tollgate-secret-{i}"),
                mount_path: format!("{SECRETS_DIR}/{secret}"),
                secret,
                keys,
            })
            .collect()
    }
}
