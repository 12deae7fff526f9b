//! Tollgate proxy configuration.
//!
//! Two phases, as in every config we trust: [`raw`] holds the serde types that
//! mirror the YAML file exactly (unknown fields are refused), and [`load`]
//! turns them into the validated types in [`model`], reporting every problem
//! with the field path that caused it. The crate has no networking
//! dependencies so the operator can render and validate proxy config with the
//! same code the proxy runs.
#![forbid(unsafe_code)]

pub mod load;
pub mod model;
mod quantity;
pub mod raw;
pub mod yaml;

pub use load::{from_yaml_str, load_file, FieldError, LoadError};
pub use model::*;

/// The `apiVersion` every config file must carry.
pub const API_VERSION: &str = "tollgate.dev/v1alpha1";
/// The `kind` every config file must carry.
pub const KIND: &str = "ProxyConfig";

/// JSON Schema of the config file, as printed by `tollgate-proxy schema`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(raw::RawConfig)).expect("schema serializes")
}
