//! The `LlmPolicy` custom resource: serde + schemars types and CEL rules, no
//! logic. What a schema cannot say is checked by [`crate::render`] (through
//! the proxy's own validation) and by the validating webhook.
//!
//! Field names follow the Kubernetes API conventions (camelCase, `...Ref`,
//! durations as strings such as `30s`). Lists and strings that CEL rules
//! iterate over carry `maxItems` / `maxLength`, so the API server's cost
//! estimate for the rules stays within its budget. Lists of named entries
//! are list maps keyed by `name` (unique names without CEL, and
//! server-side apply merges them entry by entry). Every section is typed,
//! so a field the schema lacks is refused or dropped by the API server
//! (see [`crate::webhook::validate::unknown_fields`]).

// Every type here is public (re-exported below). `KubeSchema`'s derive
// copies each struct, `pub` included, into a scope of its own, which
// `unreachable_pub` then reports; the copies are not ours to restrict.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

mod budgets;
mod cache;
mod pii;
mod routes;
mod sidecar;
mod status;
pub use budgets::*;
pub use cache::*;
pub use pii::*;
pub use routes::*;
pub use sidecar::*;
pub use status::*;

pub use tollgate_config::raw::{ProviderType, UnknownPaths};

/// API group of every Tollgate resource.
pub const GROUP: &str = "tollgate.dev";

/// Policy for the LLM traffic of the pods it selects: providers and their
/// keys, routes, cache, PII filtering, budgets and rate limits. The operator
/// renders it into the `tollgate-proxy` config of a ConfigMap, and the
/// injection webhook adds the proxy as a sidecar to the selected pods.
// Each printcolumn repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "LlmPolicy",
    plural = "llmpolicies",
    shortname = "llmp",
    category = "tollgate",
    namespaced,
    status = "LlmPolicyStatus",
    derive = "PartialEq",
    doc = "LLM traffic policy for the pods it selects; enforced by the tollgate-proxy sidecar.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "why the policy is or is not Ready (the Ready condition's reason)",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Pods",
        type_ = "integer",
        description = "pods the policy selects",
        json_path = ".status.matchedPods"
    ),
    printcolumn(
        name = "Injected",
        type_ = "integer",
        description = "selected pods that run the sidecar",
        json_path = ".status.injectedPods"
    ),
    printcolumn(
        name = "Budgets",
        type_ = "string",
        description = "where budgets are counted: SharedStore (Redis) or PerPodStore (each replica enforces the full limits on its own)",
        json_path = ".status.conditions[?(@.type==\"BudgetsShared\")].reason"
    ),
    printcolumn(
        name = "Spend",
        type_ = "string",
        description = "current window's spend of the first budget, USD first (Redis store only)",
        json_path = ".status.spend"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new(
    "!has(self.routes) || self.routes.all(r, !has(r.rules) || r.rules.all(x, self.routes.exists(q, q.name == x.route)))"
).message("every rule must send requests to a route in spec.routes").field_path(".routes"))]
#[x_kube(validation = Rule::new(
    "!has(self.defaultProvider) || self.providers.exists(p, p.name == self.defaultProvider)"
).message("defaultProvider must name a provider in spec.providers").field_path(".defaultProvider"))]
#[x_kube(validation = Rule::new(
    "!has(self.budgets) || !has(self.budgets.limits) || self.budgets.limits.all(l, !has(l.downgradeTo) || (has(self.routes) && self.routes.exists(r, r.name == l.downgradeTo)))"
).message("a budget's downgradeTo must name a route in spec.routes").field_path(".budgets.limits"))]
#[x_kube(validation = Rule::new(
    "!has(self.cache) || !has(self.cache.routes) || self.cache.routes.all(c, has(self.routes) && self.routes.exists(r, r.name == c.name))"
).message("every cache route must name a route in spec.routes").field_path(".cache.routes"))]
pub struct LlmPolicySpec {
    /// Pods of this namespace the policy applies to. `{}` selects every pod.
    pub pod_selector: LabelSelector,
    /// LLM providers the sidecar may call, by name. At least one.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub providers: Vec<Provider>,
    /// Provider that receives `/v1/*` paths the proxy does not route by model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub default_provider: Option<String>,
    /// `forward` (default) other `/v1/*` paths to `defaultProvider`, or `reject` them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_paths: Option<UnknownPaths>,
    /// Model aliases apps can request, with targets, fallbacks and rules,
    /// by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub routes: Vec<Route>,
    /// Retries, timeouts and circuit breaking for every route unless it overrides them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_defaults: Option<RouteDefaults>,
    /// Response cache: identical deterministic requests are answered
    /// without a provider call (the exact cache), and on routes that opt in,
    /// prompts that say the same in other words (the semantic cache). Each
    /// sidecar keeps its own unless `store` is Redis. The proxy's `cache`
    /// section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    /// PII filtering and prompt guard: personal data in prompts is masked,
    /// hashed, pseudonymized or refused before it reaches a provider, and
    /// injected instructions are flagged or refused. The proxy's `pii`
    /// section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<Pii>,
    /// Budgets, rate limits, prices and where the counters live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Budgets>,
    /// The injected proxy container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<Sidecar>,
    /// What injection changes in the app containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection: Option<Injection>,
}

/// One LLM provider. Its key comes from a Secret that is mounted into the
/// sidecar, never copied.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new(
    "has(self.credentialsSecretRef) != (has(self.passthrough) && self.passthrough)"
).message("set exactly one of credentialsSecretRef or passthrough: true"))]
#[x_kube(validation = Rule::new("self.type != 'azure-openai' || has(self.apiVersion)")
    .message("apiVersion is required for type azure-openai"))]
#[x_kube(validation = Rule::new("self.type == 'openai' || self.type == 'anthropic' || has(self.baseUrl)")
    .message("baseUrl is required for types openai-compatible and azure-openai"))]
pub struct Provider {
    /// Unique name, a DNS label.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// `openai`, `anthropic`, `openai-compatible` or `azure-openai`.
    #[serde(rename = "type")]
    pub kind: ProviderType,
    /// Base URL as the provider's SDK takes it. Defaults exist for `openai`
    /// and `anthropic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub base_url: Option<String>,
    /// The Secret key holding the provider's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyRef>,
    /// Forward the app's own key instead of injecting one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<bool>,
    /// Models served: exact names, or a prefix ending in `*`.
    #[schemars(length(min = 1, max = 256))]
    pub models: Vec<String>,
    /// `anthropic-version` sent when the app sends none (Anthropic only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic_version: Option<String>,
    /// Azure OpenAI `api-version` (required for `azure-openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Extra headers sent upstream (not secrets: they land in the ConfigMap).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Default true: while the sidecar exports traces, requests to this
    /// provider carry a W3C `traceparent` (and the app's `tracestate`)
    /// naming the proxy's span as parent. False sends neither, the app's
    /// included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_trace: Option<bool>,
}

/// A key of a Secret in the policy's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// For each property with a doc comment of its own, that comment is its
/// description. kube lifts an `Option<T>`'s `T` into the property,
/// description included, so `T`'s doc would replace the property's (the
/// enum's "What happens to a detected value." over the field's list of
/// values and default). Applied to a struct: `#[schemars(transform = ...)]`.
pub(crate) fn own_docs(schema: &mut schemars::Schema) {
    let Some(props) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for p in props.values_mut() {
        if p.get("description").is_none() {
            continue;
        }
        for s in p
            .get_mut("anyOf")
            .and_then(serde_json::Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(s) = s.as_object_mut() {
                s.remove("description");
            }
        }
    }
}

/// Schema of a map whose values are any JSON (request fields a route
/// forces): the keys are listed, the values kept as written.
pub(crate) fn any_values(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {"x-kubernetes-preserve-unknown-fields": true},
    })
}

/// Schema of a size: an integer number of bytes or a quantity such as
/// `512Ki`, `16Mi` or `1G`.
pub(crate) fn byte_size(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"x-kubernetes-int-or-string": true})
}
