//! The refusal for a model that no alias or allow-list serves through the
//! API the app called, with a hint the app can act on: the other API that
//! serves it, or the names that are available.

use std::fmt;

/// A requested model this proxy does not serve through the app's API.
#[derive(Debug, thiserror::Error)]
#[error("The model `{model}` {hint}")]
pub struct UnknownModel {
    model: String,
    hint: Hint,
}

#[derive(Debug)]
enum Hint {
    /// A provider of the other API lists the model.
    OtherApi { provider: String, api: &'static str },
    /// What the app could ask for instead (possibly nothing).
    Available(Vec<String>),
}

impl UnknownModel {
    /// Served by `provider`, which speaks the other API (named `api`).
    pub(crate) fn other_api(model: &str, provider: &str, api: &'static str) -> UnknownModel {
        UnknownModel {
            model: model.to_string(),
            hint: Hint::OtherApi {
                provider: provider.to_string(),
                api,
            },
        }
    }

    /// Not served at all; `available` lists names to use instead.
    pub(crate) fn not_served(model: &str, available: Vec<String>) -> UnknownModel {
        UnknownModel {
            model: model.to_string(),
            hint: Hint::Available(available),
        }
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hint::OtherApi { provider, api } => write!(
                f,
                "is served by provider `{provider}`, which speaks the {api} API; call it through that API or route to it with an alias"
            ),
            Hint::Available(names) => {
                f.write_str("does not exist or is not served by this proxy")?;
                if !names.is_empty() {
                    write!(f, "; available: {}", names.join(", "))?;
                }
                Ok(())
            }
        }
    }
}
