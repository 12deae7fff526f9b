//! Admission webhooks, served by every replica: `/mutate` injects the
//! sidecar into pods, `/validate` checks `LlmPolicy` objects beyond what CEL
//! can. TLS with rustls; the certificate comes from mounted files
//! (cert-manager, the chart's `helm` generator) or from a Secret every
//! replica watches: one the leader creates, renews and rotates, patching its
//! CA into the webhook configurations (the default), or one the user
//! provides ([`tls`]).

pub mod mutate;
pub mod server;
pub mod tls;
pub mod validate;
pub mod view;
