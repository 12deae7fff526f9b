//! Where injected sidecars send their traces: the standard OpenTelemetry
//! variables the proxy reads, set on the `tollgate-proxy` container.
//!
//! The pod's name and namespace come from the downward API into two
//! variables declared first, so the kubelet can expand them inside
//! `OTEL_RESOURCE_ATTRIBUTES` (`$(VAR)` sees only earlier variables).
//! The collector's headers (often credentials) never appear in a pod spec:
//! with `--sidecar-otlp-headers-secret`, the sidecar reads
//! `OTEL_EXPORTER_OTLP_HEADERS` from a Secret of that name in its own
//! namespace (optional: a pod starts without it, and its export is refused
//! and counted). A collector whose certificate a private CA signed is
//! trusted through `--sidecar-otlp-ca-configmap`: a ConfigMap of that name
//! in the pod's namespace (as trust-manager distributes bundles) is
//! mounted, and `OTEL_EXPORTER_OTLP_CERTIFICATE` names its `ca.crt`
//! (optional too: without it the sidecar's tracing stays off, with an
//! error line, and the pod runs).

use serde_json::{json, Value};
use tollgate_otel::Protocol;

use super::SIDECAR_NAME;

/// The service name the sidecars' spans are exported under.
pub const SERVICE: &str = "tollgate-proxy";
/// The downward-API variable holding the pod's name.
const POD_NAME: &str = "TOLLGATE_POD_NAME";
/// The downward-API variable holding the pod's namespace.
const POD_NAMESPACE: &str = "TOLLGATE_POD_NAMESPACE";

/// Trace export settings for injected sidecars (`--sidecar-otlp-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarTracing {
    /// The collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    /// `None`: the proxy's default (OTLP/HTTP, protobuf).
    pub protocol: Option<Protocol>,
    /// Share of new traces sampled, parent-based (a caller's sampled flag
    /// is followed). `None`: all.
    pub sample_ratio: Option<f64>,
    /// A Secret in the pod's namespace whose key `headers` holds
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    pub headers_secret: Option<String>,
    /// A ConfigMap in the pod's namespace whose key `ca.crt` holds the CA
    /// (PEM) the collector's certificate chains to.
    pub ca_config_map: Option<String>,
}

/// The key of the headers Secret.
pub const HEADERS_KEY: &str = "headers";
/// The key of the CA ConfigMap.
pub const CA_KEY: &str = "ca.crt";
/// The CA ConfigMap's volume, and where the sidecar mounts it.
const CA_VOLUME: &str = "tollgate-otlp-ca";
const CA_DIR: &str = "/etc/tollgate/otlp-ca";

impl SidecarTracing {
    /// The sidecar container's `env` entries, in order.
    pub fn env(&self) -> Vec<Value> {
        let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}});
        let var = |name: &str, value: &str| json!({"name": name, "value": value});
        let mut env = vec![
            field(POD_NAME, "metadata.name"),
            field(POD_NAMESPACE, "metadata.namespace"),
            var("OTEL_SERVICE_NAME", SERVICE),
            var(
                "OTEL_RESOURCE_ATTRIBUTES",
                &format!(
                    "k8s.pod.name=$({POD_NAME}),k8s.namespace.name=$({POD_NAMESPACE}),k8s.container.name={SIDECAR_NAME}"
                ),
            ),
            var("OTEL_EXPORTER_OTLP_ENDPOINT", &self.endpoint),
        ];
        if let Some(p) = self.protocol {
            env.push(var("OTEL_EXPORTER_OTLP_PROTOCOL", p.as_str()));
        }
        if let Some(r) = self.sample_ratio {
            env.push(var("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"));
            env.push(var("OTEL_TRACES_SAMPLER_ARG", &r.to_string()));
        }
        if let Some(secret) = &self.headers_secret {
            env.push(json!({
                "name": "OTEL_EXPORTER_OTLP_HEADERS",
                "valueFrom": {"secretKeyRef": {"name": secret, "key": HEADERS_KEY, "optional": true}},
            }));
        }
        if self.ca_config_map.is_some() {
            env.push(var(
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                &format!("{CA_DIR}/{CA_KEY}"),
            ));
        }
        env
    }

    /// The pod volume holding the collector's CA, if one is set.
    pub fn volume(&self) -> Option<Value> {
        let name = self.ca_config_map.as_ref()?;
        Some(json!({
            "name": CA_VOLUME,
            "configMap": {"name": name, "items": [{"key": CA_KEY, "path": CA_KEY}], "optional": true},
        }))
    }

    /// The sidecar's mount of [`SidecarTracing::volume`].
    pub fn mount(&self) -> Option<Value> {
        self.ca_config_map.as_ref()?;
        Some(json!({"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": true}))
    }
}

/// A sample ratio as a flag gives it: a number within 0..=1.
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        Ok(r) => Err(format!("{r} is not within 0..=1")),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_within_zero_and_one_only() {
        assert_eq!(parse_ratio("0.1"), Ok(0.1));
        assert_eq!(parse_ratio("1"), Ok(1.0));
        assert_eq!(parse_ratio("0"), Ok(0.0));
        assert!(parse_ratio("1.5").unwrap_err().contains("within 0..=1"));
        assert!(parse_ratio("-0.1").is_err());
        assert!(parse_ratio("half").unwrap_err().contains("half"));
    }
}
