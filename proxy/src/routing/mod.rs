//! Which provider answers a request.
//!
//! Today a requested model maps to the one provider of the app's API whose
//! allow-list has it (exact names first, then the longest matching prefix).
//! Aliases, weighted targets, retries and fallbacks build on this table.

use std::collections::HashMap;

use tollgate_config::{Config, ModelPattern};

use crate::api::Family;
use crate::error::ProxyError;

/// The model → provider index of one config.
#[derive(Debug, Default)]
pub struct Table {
    exact: HashMap<(Family, String), usize>,
    /// Sorted longest prefix first.
    prefixes: Vec<(Family, String, usize)>,
    /// Exact names per family, in config order, for `/v1/models`.
    listed: Vec<(Family, String, usize)>,
}

impl Table {
    pub fn new(config: &Config) -> Table {
        let mut t = Table::default();
        for (i, p) in config.providers.iter().enumerate() {
            let family = p.kind.family();
            for m in &p.models {
                match m {
                    ModelPattern::Exact(name) => {
                        t.exact.entry((family, name.clone())).or_insert(i);
                        t.listed.push((family, name.clone(), i));
                    }
                    ModelPattern::Prefix(prefix) => t.prefixes.push((family, prefix.clone(), i)),
                }
            }
        }
        t.prefixes.sort_by_key(|p| std::cmp::Reverse(p.1.len()));
        t
    }

    fn lookup(&self, family: Family, model: &str) -> Option<usize> {
        // Avoid allocating a key String on the hot path for the common case.
        if let Some(&i) = self.exact.get(&(family, model.to_string())) {
            return Some(i);
        }
        self.prefixes
            .iter()
            .find(|(f, p, _)| *f == family && model.starts_with(p.as_str()))
            .map(|&(_, _, i)| i)
    }

    /// The provider index for `model` requested through `family`'s API.
    pub fn resolve(
        &self,
        config: &Config,
        family: Family,
        model: &str,
    ) -> Result<usize, ProxyError> {
        if let Some(i) = self.lookup(family, model) {
            return Ok(i);
        }
        let other = match family {
            Family::OpenAi => Family::Anthropic,
            Family::Anthropic => Family::OpenAi,
        };
        let message = match self.lookup(other, model) {
            Some(i) => format!(
                "The model `{model}` is served by provider `{}`, which speaks the {} API; call it through that API",
                config.providers[i].name,
                match other {
                    Family::OpenAi => "OpenAI",
                    Family::Anthropic => "Anthropic Messages",
                }
            ),
            None => {
                let names: Vec<&str> = self.models(family).map(|(m, _)| m).take(20).collect();
                if names.is_empty() {
                    format!("The model `{model}` does not exist or is not served by this proxy")
                } else {
                    format!(
                        "The model `{model}` does not exist or is not served by this proxy; available: {}",
                        names.join(", ")
                    )
                }
            }
        };
        Err(ProxyError::UnknownModel {
            model: model.to_string(),
            message,
        })
    }

    /// Exact model names of `family`, with their provider index.
    pub fn models(&self, family: Family) -> impl Iterator<Item = (&str, usize)> {
        self.listed
            .iter()
            .filter(move |(f, _, _)| *f == family)
            .map(|(_, m, i)| (m.as_str(), *i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        tollgate_config::from_yaml_str(
            r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
providers:
  - {name: oai, type: openai, passthrough: true, models: [gpt-4o, "gpt-*"]}
  - {name: local, type: openai-compatible, baseUrl: "http://127.0.0.1:1/v1", passthrough: true, models: ["gpt-4o-local*"]}
  - {name: ant, type: anthropic, passthrough: true, models: [claude-sonnet-4-5]}
"#,
        )
        .unwrap()
    }

    #[test]
    fn exact_then_longest_prefix() {
        let c = config();
        let t = Table::new(&c);
        assert_eq!(t.resolve(&c, Family::OpenAi, "gpt-4o").unwrap(), 0);
        assert_eq!(t.resolve(&c, Family::OpenAi, "gpt-4o-local-q4").unwrap(), 1);
        assert_eq!(t.resolve(&c, Family::OpenAi, "gpt-5").unwrap(), 0);
        assert_eq!(
            t.resolve(&c, Family::Anthropic, "claude-sonnet-4-5")
                .unwrap(),
            2
        );
    }

    #[test]
    fn unknown_models_explain_themselves() {
        let c = config();
        let t = Table::new(&c);
        let e = t
            .resolve(&c, Family::OpenAi, "claude-sonnet-4-5")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("provider `ant`") && e.contains("Anthropic Messages API"),
            "{e}"
        );
        let e = t
            .resolve(&c, Family::Anthropic, "nope")
            .unwrap_err()
            .to_string();
        assert!(e.contains("available: claude-sonnet-4-5"), "{e}");
        assert_eq!(
            t.models(Family::OpenAi).map(|m| m.0).collect::<Vec<_>>(),
            ["gpt-4o"]
        );
    }
}
