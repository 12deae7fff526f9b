//! Admission webhooks, served by every replica: `/mutate` injects the
//! sidecar into pods, `/validate` checks `LlmPolicy` objects beyond what CEL
//! can. TLS with rustls; the certificate comes from files (a Secret) or is
//! generated at start with its CA patched into the webhook configurations.

pub mod mutate;
pub mod server;
pub mod tls;
pub mod validate;
