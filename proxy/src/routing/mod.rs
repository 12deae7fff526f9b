//! Which provider and model answer a request.
//!
//! A requested model is either a route alias (`routing.routes`) or a model
//! a provider's allow-list admits (exact names first, then the longest
//! prefix). Either way the result is a [`Plan`]: ordered targets plus the
//! policy (retries, timeouts, circuit breaking) for attempting them. The
//! attempt loop lives in `pipeline::attempt`.

pub mod balance;
pub(crate) mod breaker;
pub(crate) mod retry;
pub mod rules;
pub mod targets;
mod unknown;

pub(crate) use unknown::UnknownModel;

use std::borrow::Cow;
use std::collections::HashMap;

use tollgate_config::{Config, ModelPattern, Route, RoutePolicy, Shadow, Shaping, Strategy};

use crate::api::Family;

/// The model → provider index of one config.
#[derive(Debug, Default)]
pub struct Table {
    exact: HashMap<(Family, String), usize>,
    /// Sorted longest prefix first; the label is the pattern as written.
    prefixes: Vec<(Family, String, usize, String)>,
    /// Exact names per family, in config order, for `/v1/models`.
    listed: Vec<(Family, String, usize)>,
    /// Route name → index in `config.routing.routes`.
    aliases: HashMap<String, usize>,
}

/// What a requested model name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A route alias.
    Alias(usize),
    /// A provider's allow-listed model; `label` is the allow-list entry
    /// (a bounded metric label even when a prefix matched).
    Direct { provider: usize, label: &'a str },
}

/// One target of a plan.
#[derive(Debug, Clone)]
pub struct PlanTarget<'a> {
    pub provider: usize,
    /// Model name sent upstream.
    pub model: Cow<'a, str>,
    pub weight: u32,
    pub long_context: bool,
    pub shaping: Option<&'a Shaping>,
    /// `provider/model-label`: metric label and key of the target's state.
    pub key: String,
}

/// How to serve one request.
#[derive(Debug)]
pub struct Plan<'a> {
    /// Metric label: the alias, or the allow-list entry.
    pub label: &'a str,
    pub strategy: Strategy,
    pub policy: &'a RoutePolicy,
    pub targets: Vec<PlanTarget<'a>>,
    pub shaping: Option<&'a Shaping>,
    pub shadow: Option<&'a Shadow>,
    /// The rule that redirected the request here, if any.
    pub rule: Option<&'a str>,
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
                    ModelPattern::Prefix(prefix) => {
                        t.prefixes
                            .push((family, prefix.clone(), i, format!("{prefix}*")))
                    }
                }
            }
        }
        t.prefixes.sort_by_key(|p| std::cmp::Reverse(p.1.len()));
        for (i, r) in config.routing.routes.iter().enumerate() {
            t.aliases.insert(r.name.clone(), i);
        }
        t
    }

    fn direct(&self, family: Family, model: &str) -> Option<(usize, &str)> {
        if let Some((key, &i)) = self.exact.get_key_value(&(family, model.to_string())) {
            return Some((i, key.1.as_str()));
        }
        self.prefixes
            .iter()
            .find(|(f, p, _, _)| *f == family && model.starts_with(p.as_str()))
            .map(|(_, _, i, label)| (*i, label.as_str()))
    }

    /// Resolves `model` requested through `family`'s API.
    pub fn lookup(
        &self,
        config: &Config,
        family: Family,
        model: &str,
    ) -> Result<Lookup<'_>, UnknownModel> {
        if let Some(&i) = self.aliases.get(model) {
            return Ok(Lookup::Alias(i));
        }
        if let Some((provider, label)) = self.direct(family, model) {
            return Ok(Lookup::Direct { provider, label });
        }
        Err(self.unknown(config, family, model))
    }

    fn unknown(&self, config: &Config, family: Family, model: &str) -> UnknownModel {
        let other = match family {
            Family::OpenAi => Family::Anthropic,
            Family::Anthropic => Family::OpenAi,
        };
        if let Some((i, _)) = self.direct(other, model) {
            let api = match other {
                Family::OpenAi => "OpenAI",
                Family::Anthropic => "Anthropic Messages",
            };
            return UnknownModel::other_api(model, &config.providers[i].name, api);
        }
        let names = self
            .aliases
            .keys()
            .map(String::as_str)
            .chain(self.models(family).map(|(m, _)| m))
            .take(20)
            .map(str::to_string)
            .collect();
        UnknownModel::not_served(model, names)
    }

    /// The plan for an alias.
    pub fn plan_route<'a>(config: &'a Config, route: &'a Route, rule: Option<&'a str>) -> Plan<'a> {
        Plan {
            label: &route.name,
            strategy: route.strategy,
            policy: &route.policy,
            targets: route
                .targets
                .iter()
                .map(|t| PlanTarget {
                    provider: t.provider,
                    model: Cow::Borrowed(t.model.as_str()),
                    weight: t.weight,
                    long_context: t.long_context,
                    shaping: (!t.shaping.is_noop()).then_some(&t.shaping),
                    key: format!("{}/{}", config.providers[t.provider].name, t.model),
                })
                .collect(),
            shaping: (!route.shaping.is_noop()).then_some(&route.shaping),
            shadow: route.shadow.as_ref(),
            rule,
        }
    }

    /// The plan for a model requested by its provider name.
    pub fn plan_direct<'a>(
        config: &'a Config,
        provider: usize,
        label: &'a str,
        model: &'a str,
    ) -> Plan<'a> {
        Plan {
            label,
            strategy: Strategy::Weighted,
            policy: &config.routing.defaults,
            targets: vec![PlanTarget {
                provider,
                model: Cow::Borrowed(model),
                weight: 1,
                long_context: false,
                shaping: None,
                key: format!("{}/{}", config.providers[provider].name, label),
            }],
            shaping: None,
            shadow: None,
            rule: None,
        }
    }

    /// Exact model names of `family`, with their provider index.
    pub fn models(&self, family: Family) -> impl Iterator<Item = (&str, usize)> {
        self.listed
            .iter()
            .filter(move |(f, _, _)| *f == family)
            .map(|(_, m, i)| (m.as_str(), *i))
    }

    /// Route aliases, for `/v1/models`.
    pub fn aliases<'a>(&self, config: &'a Config) -> impl Iterator<Item = &'a str> {
        config.routing.routes.iter().map(|r| r.name.as_str())
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
routing:
  routes:
    - name: chat-default
      targets: [{provider: oai, model: gpt-4o, weight: 2}, {provider: ant, model: claude-sonnet-4-5, longContext: true}]
"#,
        )
        .unwrap()
    }

    fn provider_of(l: Lookup<'_>) -> (usize, String) {
        match l {
            Lookup::Direct { provider, label } => (provider, label.to_string()),
            Lookup::Alias(_) => panic!("not direct"),
        }
    }

    #[test]
    fn exact_then_longest_prefix_with_bounded_labels() {
        let c = config();
        let t = Table::new(&c);
        let l = |f, m| provider_of(t.lookup(&c, f, m).unwrap());
        assert_eq!(l(Family::OpenAi, "gpt-4o"), (0, "gpt-4o".into()));
        assert_eq!(
            l(Family::OpenAi, "gpt-4o-local-q4"),
            (1, "gpt-4o-local*".into())
        );
        assert_eq!(l(Family::OpenAi, "gpt-5"), (0, "gpt-*".into()));
        assert_eq!(l(Family::Anthropic, "claude-sonnet-4-5").0, 2);
        let p = Table::plan_direct(&c, 0, "gpt-*", "gpt-5x");
        assert_eq!(p.targets[0].key, "oai/gpt-*");
        assert_eq!(p.targets[0].model, "gpt-5x");
    }

    #[test]
    fn aliases_work_from_both_apis() {
        let c = config();
        let t = Table::new(&c);
        for f in [Family::OpenAi, Family::Anthropic] {
            let Lookup::Alias(i) = t.lookup(&c, f, "chat-default").unwrap() else {
                panic!()
            };
            let p = Table::plan_route(&c, &c.routing.routes[i], None);
            assert_eq!(p.label, "chat-default");
            let keys: Vec<&str> = p.targets.iter().map(|t| t.key.as_str()).collect();
            assert_eq!(keys, ["oai/gpt-4o", "ant/claude-sonnet-4-5"]);
            assert!(p.targets[1].long_context);
        }
    }

    #[test]
    fn unknown_models_explain_themselves() {
        let c = config();
        let t = Table::new(&c);
        let e = t
            .lookup(&c, Family::OpenAi, "claude-sonnet-4-5")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("provider `ant`") && e.contains("Anthropic Messages API"),
            "{e}"
        );
        let e = t
            .lookup(&c, Family::Anthropic, "nope")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("chat-default") && e.contains("claude-sonnet-4-5"),
            "{e}"
        );
        assert_eq!(
            t.models(Family::OpenAi).map(|m| m.0).collect::<Vec<_>>(),
            ["gpt-4o"]
        );
    }
}
