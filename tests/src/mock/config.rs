//! How a [`MockServer`](super::MockServer) is set up at start.

use super::switches::Switches;

/// Start-up settings of the mock.
///
/// `Default` gives a plain-HTTP mock that accepts any key and uses the
/// built-in switch defaults.
#[derive(Clone, Debug, Default)]
pub struct MockConfig {
    /// Required `Authorization: Bearer` key for the OpenAI endpoints; `None`
    /// accepts any key (or none).
    pub openai_key: Option<String>,
    /// Required `x-api-key` for the Anthropic endpoints; `None` accepts any.
    pub anthropic_key: Option<String>,
    /// Server-wide switches; per-request `x-mock-*` headers override them.
    pub defaults: Switches,
    /// Serve HTTPS with a certificate signed by a fresh CA (see
    /// [`MockServer::ca_pem`](super::MockServer::ca_pem)).
    pub tls: bool,
}
