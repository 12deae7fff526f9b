//! `spec.cache`: the exact response cache and the semantic cache. The same
//! fields as the proxy's `cache` section, rendered into it as written
//! (unset fields stay unset, so the proxy's defaults apply); the rules that
//! span fields are CEL here, and the proxy's validation (the webhook's)
//! checks the rest: durations, sizes, references to providers.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::{RedisTls, SecretKeyRef, Sentinel};

pub use tollgate_config::raw::{
    CacheStoreType, EmbedderType, GuardCheck, Quantity, RawJudge as Judge,
};

/// Response cache: identical deterministic requests are answered from it
/// without a provider call, cost nothing and skip budgets.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new(
    "!has(self.routes) || self.routes.all(r, !has(r.semantic) || !has(r.semantic.embedder) || (has(self.semantic) && has(self.semantic.embedders) && self.semantic.embedders.exists(e, e.name == r.semantic.embedder)))"
).message("a route's semantic.embedder must name an embedder in cache.semantic.embedders").field_path(".routes"))]
#[x_kube(validation = Rule::new(
    "(!has(self.semantic) || !has(self.semantic.shared) || !self.semantic.shared) && (!has(self.routes) || self.routes.all(r, !has(r.semantic) || !has(r.semantic.shared) || !r.semantic.shared)) || (has(self.store) && has(self.store.type) && self.store.type == 'redis')"
).message("semantic.shared: true needs store.type: redis (the index is shared through Redis)"))]
pub struct Cache {
    /// Cache every route and directly requested model unless a `routes`
    /// entry says otherwise. Default true once the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long an entry is served, at most 30 days. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Memory store: most entries kept. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_entries: Option<u64>,
    /// Memory store: most bytes kept, bytes or a quantity (`64Mi`); counts
    /// against the sidecar's memory limit. Default `64Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::byte_size")]
    pub max_bytes: Option<Quantity>,
    /// Larger responses are not stored, bytes or a quantity; at most
    /// `maxBytes`. Default `1Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::byte_size")]
    pub max_entry_bytes: Option<Quantity>,
    /// Only cache requests whose answer is deterministic: `temperature: 0`
    /// and a single choice. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deterministic_only: Option<bool>,
    /// Request header whose value partitions the cache (e.g.
    /// `x-tollgate-tenant`): tenants never share entries. A request without
    /// it shares the no-tenant partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub tenant_header: Option<String>,
    /// Where entries are kept. Default: the sidecar's memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<CacheStore>,
    /// The semantic cache: embedders, index bounds, and the defaults of the
    /// routes that opt in with `routes[].semantic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<Semantic>,
    /// Per-route settings, by route name (a route from `spec.routes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub routes: Vec<RouteCache>,
}

/// Where cache entries are kept.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'redis' || has(self.redis)")
    .message("redis is required when type is redis"))]
#[x_kube(validation = Rule::new("!has(self.redis) || (has(self.type) && self.type == 'redis')")
    .message("redis is only valid when type is redis"))]
pub struct CacheStore {
    /// `memory` (default) or `redis`: shared by every sidecar with the same
    /// key prefix, with the memory store still answering first.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<CacheStoreType>,
    /// Redis only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<CacheRedis>,
}

/// The cache's Redis connection.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("!has(self.sentinel) || !has(self.cluster) || !self.cluster")
    .message("sentinel cannot be combined with cluster: true"))]
#[x_kube(validation = Rule::new("!has(self.nodes) || size(self.nodes) == 0 || (has(self.cluster) && self.cluster) || has(self.sentinel)")
    .message("nodes only applies with cluster: true or sentinel"))]
#[x_kube(validation = Rule::new("!has(self.passwordFile) || !has(self.passwordSecretRef)")
    .message("set passwordSecretRef or passwordFile, not both"))]
#[x_kube(validation = Rule::new("!has(self.tls) || self.url.startsWith('rediss://')")
    .message("tls needs a rediss:// url").field_path(".tls"))]
pub struct CacheRedis {
    /// `redis://host:port/db` or `rediss://` for TLS. No password here.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// The Secret key holding the password; mounted into the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// A file in the sidecar holding the password, instead of
    /// `passwordSecretRef`: the operator mounts Secret keys the policy names
    /// (e.g. `spec.budgets.store.redis.passwordSecretRef`) at
    /// `/var/run/secrets/tollgate/<secret>/<key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub password_file: Option<String>,
    /// ACL user (Redis 6+) the password belongs to; or the user in `url`,
    /// not both. Default: Redis' `default` user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub username: Option<String>,
    /// TLS for `rediss://`: a private CA and, for mutual TLS, a client
    /// certificate, each a Secret key mounted into the sidecar. Without it
    /// `rediss://` trusts the public web PKI roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RedisTls>,
    /// Prefix of every key, 1 to 64 characters without spaces. Default `tollgate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub key_prefix: Option<String>,
    /// Bound on every Redis call, at most `10s`; a slower answer is a miss.
    /// Default `100ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// True: `url` and `nodes` are seed nodes of a Redis Cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<bool>,
    /// More seed nodes of the cluster, besides `url`; with `sentinel`,
    /// more Sentinels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub nodes: Vec<String>,
    /// Sentinel-managed Redis: `url` and `nodes` are Sentinels, asked for
    /// the current master of `masterName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<Sentinel>,
}

/// `spec.cache.semantic`: what the semantic cache embeds with and how big
/// its index may grow. Nothing is served semantically until a route opts in.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct Semantic {
    /// Named embedders that routes refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub embedders: Vec<Embedder>,
    /// Default cosine similarity, in (0, 1], a stored prompt must reach.
    /// Below 0.9 near-miss prompts share answers often (admitted with a
    /// warning). Default 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message("threshold must be in (0, 1]"))]
    pub threshold: Option<f64>,
    /// Default checks run before a semantic hit is served; `[]` runs none.
    /// Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Vec<GuardCheck>>,
    /// Most prompts the index keeps (oldest go first). Default: `maxEntries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_entries: Option<u64>,
    /// A partition of the index with fewer prompts than this is searched
    /// exactly; a larger one through an HNSW graph. Default 2048.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_scan_below: Option<u64>,
    /// Default online verification of semantic hits (on, at 5%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    /// Share the index between the policy's sidecars through the cache's
    /// Redis store: each insert is appended to a Redis stream per route and
    /// embedder, which every sidecar follows into its own index and a new
    /// sidecar warms up from. Needs `store.type: redis`. Default true with
    /// a Redis store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}

/// Online verification: a share of semantic hits is also sent upstream in
/// the background and the fresh answer compared with the one served; a
/// route whose rolling agreement falls below `floor` stops serving
/// semantic hits until it recovers. Unset fields inherit.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("!has(self.window) || !has(self.minSamples) || self.minSamples <= self.window")
    .message("minSamples must not exceed window"))]
pub struct Verify {
    /// Share of semantic hits verified, 0 to 1, evenly spaced (0.05: one in
    /// twenty). 0 turns verification off. Default 0.05.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub share: Option<f64>,
    /// Rolling agreement, 0 to 1, below which the route stops serving
    /// semantic hits. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub floor: Option<f64>,
    /// Verifications the rolling agreement is taken over. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub window: Option<u32>,
    /// Verifications needed before the floor applies. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u32>,
    /// Verifications of one route in flight at once; more are skipped.
    /// Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub queue_size: Option<u32>,
}

/// One embedder: a provider's embeddings API (`type: provider`, the
/// default) or a model run inside the sidecar (`type: local`).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("(has(self.type) && self.type == 'local') || (has(self.provider) && has(self.model))")
    .message("provider and model are required with type: provider (the default)"))]
#[x_kube(validation = Rule::new("(has(self.type) && self.type == 'local') || (!has(self.path) && !has(self.maxTokens))")
    .message("path and maxTokens only apply to type: local"))]
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'local' || has(self.path)")
    .message("path is required with type: local"))]
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'local' || (!has(self.provider) && !has(self.model) && !has(self.dimensions) && !has(self.timeout))")
    .message("provider, model, dimensions and timeout only apply to type: provider"))]
pub struct Embedder {
    /// Unique among embedders; routes name it in `semantic.embedder`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `provider` (default): an OpenAI-compatible `/v1/embeddings` endpoint
    /// of a provider from `spec.providers`. `local`: a BERT-family model
    /// folder inside the sidecar image (needs a proxy built with the
    /// `local-embeddings` feature; the operator mounts no model).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<EmbedderType>,
    /// `provider`: a provider name from `spec.providers` (not Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub provider: Option<String>,
    /// `provider`: the embedding model, e.g. `text-embedding-3-small`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub model: Option<String>,
    /// `provider`: shorter vectors, for models that support `dimensions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub dimensions: Option<u32>,
    /// `provider`: how long an embedding may take; slower is a miss.
    /// Default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `local`: the model folder (`config.json`, `tokenizer.json`,
    /// `model.safetensors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub path: Option<String>,
    /// `local`: longer texts are cut to this many tokens, 2 to 8192.
    /// Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 8192))]
    pub max_tokens: Option<u32>,
    /// Vectors of this many recently embedded texts are kept in each
    /// sidecar, so a text seen again (the same prompt from another tenant
    /// or for another model, after its answer expired, or an app's retry)
    /// is not embedded again. Default 1024 (about 1.6 KB each for 384
    /// dimensions); 0 keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1048576))]
    pub cache_entries: Option<u32>,
}

/// The cache settings of one route.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("!has(self.semantic) || !has(self.enabled) || self.enabled || (has(self.semantic.enabled) && !self.semantic.enabled)")
    .message("semantic needs the route's cache on (it serves answers the exact cache stored)"))]
pub struct RouteCache {
    /// A route name from `spec.routes`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Default: `cache.enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// This route's entry lifetime. Default: `cache.ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Opt this route into the semantic cache (`semantic: {}` for the
    /// defaults of `cache.semantic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<RouteSemantic>,
}

/// `spec.cache.routes[].semantic`: after an exact miss, a stored answer to
/// a prompt that says the same in other words is served.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct RouteSemantic {
    /// Default true once the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// An embedder name from `cache.semantic.embedders`; may be left out
    /// when exactly one is declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub embedder: Option<String>,
    /// Cosine similarity, in (0, 1], a stored prompt must reach. Below 0.9
    /// near-miss prompts share answers often (admitted with a warning).
    /// Default: `cache.semantic.threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message("threshold must be in (0, 1]"))]
    pub threshold: Option<f64>,
    /// Checks run before a hit is served; `[]` runs none. Default:
    /// `cache.semantic.guard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Vec<GuardCheck>>,
    /// This route's online verification (unset fields inherit
    /// `cache.semantic.verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    /// A second stage: before a semantic hit is served, a chat model is
    /// asked whether the stored prompt and this one ask for the same thing
    /// (the best candidate only; no, an error or a timeout is a miss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<Judge>,
    /// Share this route's index entries through Redis (a judged route's
    /// entries carry the prompt's last text). Default:
    /// `cache.semantic.shared`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}
