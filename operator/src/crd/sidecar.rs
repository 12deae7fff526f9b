//! `spec.sidecar` and `spec.injection`: the injected proxy container and
//! what injection changes in the app's containers.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

pub use tollgate_config::raw::{LogFormat, RawAccessLog as AccessLog, RuntimeMode};

/// Proxy port the apps call (on the pod's loopback) unless overridden.
pub const DEFAULT_PORT: u16 = 15800;
/// Admin port (`/metrics`, `/readyz`) unless overridden.
pub const DEFAULT_ADMIN_PORT: u16 = 15801;

/// The injected `tollgate-proxy` container.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("(has(self.port) ? self.port : 15800) != (has(self.adminPort) ? self.adminPort : 15801)")
    .message("port and adminPort must differ"))]
pub struct Sidecar {
    /// Proxy image. Default: the operator's `--proxy-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`. Default: the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Requests and limits. Default: 50m CPU and 64Mi memory requested, 1
    /// CPU and 256Mi limits (one CPU gives the proxy one runtime worker,
    /// its most efficient size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Port the apps call on `127.0.0.1`. Default 15800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Admin port (metrics, probes), on every pod address. Default 15801.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub admin_port: Option<u16>,
    /// A tracing filter such as `info`. Default `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// `text` (default) or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// The access log: `enabled` (default true) and `sample`, the share of
    /// successful requests logged, 0 to 1 (default 1); errors are always
    /// logged. Applies without restarting the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
    /// Default true: the `gen_ai_*` histograms carry the requested and the
    /// response model. False leaves both labels empty (about 50 fewer
    /// series for each model a pod calls). Applies without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_model_histograms: Option<bool>,
    /// How the proxy's workers (one per CPU of its CPU limit) share
    /// connections. `perCore` (default): each worker is a thread of its
    /// own with its own listener and provider connections, the cheapest
    /// per request. `workStealing`: one runtime whose workers share every
    /// connection, for an app that sends everything over one or two
    /// long-lived connections to a sidecar with more than one CPU. The
    /// same with a one-CPU limit. Takes effect when the pod restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeMode>,
}

impl Sidecar {
    /// This sidecar with every unset field taken from `defaults` (the
    /// operator's `--sidecar-defaults`): the policy's own fields win.
    pub fn or(&self, defaults: &Sidecar) -> Sidecar {
        Sidecar {
            image: self.image.clone().or_else(|| defaults.image.clone()),
            image_pull_policy: self.image_pull_policy.or(defaults.image_pull_policy),
            resources: self
                .resources
                .clone()
                .or_else(|| defaults.resources.clone()),
            port: self.port.or(defaults.port),
            admin_port: self.admin_port.or(defaults.admin_port),
            log_level: self
                .log_level
                .clone()
                .or_else(|| defaults.log_level.clone()),
            log_format: self.log_format.or(defaults.log_format),
            access_log: self
                .access_log
                .clone()
                .or_else(|| defaults.access_log.clone()),
            per_model_histograms: self.per_model_histograms.or(defaults.per_model_histograms),
            runtime: self.runtime.or(defaults.runtime),
        }
    }
}

/// Image pull policy.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_fields_win_and_defaults_fill_the_rest() {
        let defaults: Sidecar = serde_json::from_value(serde_json::json!({
            "image": "registry.test/proxy:1", "port": 16000, "logLevel": "debug",
            "resources": {"requests": {"cpu": "10m"}}}))
        .unwrap();
        let own = Sidecar {
            port: Some(15900),
            ..Sidecar::default()
        };
        let got = own.or(&defaults);
        assert_eq!(got.port, Some(15900));
        assert_eq!(got.image.as_deref(), Some("registry.test/proxy:1"));
        assert_eq!(got.log_level.as_deref(), Some("debug"));
        assert!(got.resources.is_some());
        assert_eq!(got.admin_port, None);
        assert_eq!(
            Sidecar::default().or(&Sidecar::default()),
            Sidecar::default()
        );
    }
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// What injection changes in the app containers.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct Injection {
    /// Set `OPENAI_BASE_URL` and `ANTHROPIC_BASE_URL` to the sidecar. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_urls: Option<bool>,
    /// Set `OPENAI_API_KEY` and `ANTHROPIC_API_KEY` to a placeholder when
    /// the container has none (SDKs refuse to start without a key; the
    /// sidecar drops it and sends the real one). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder_api_keys: Option<bool>,
    /// Replace these variables even when the app sets them. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_app_env: Option<bool>,
    /// Only these app containers get the variables. Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
}

impl Injection {
    pub fn base_urls(&self) -> bool {
        self.base_urls.unwrap_or(true)
    }
    pub fn placeholder_api_keys(&self) -> bool {
        self.placeholder_api_keys.unwrap_or(true)
    }
    pub fn override_app_env(&self) -> bool {
        self.override_app_env.unwrap_or(false)
    }
}
