//! `cache:`: the exact response cache, as written.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Quantity, RawRedisStore};

/// Response cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCache {
    /// Cache every route and directly requested model unless a `routes`
    /// entry says otherwise. Default `true` once the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long an entry is served. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Memory store: most entries kept. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
    /// Memory store: most bytes kept (`64Mi`). Default `64Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<Quantity>,
    /// Larger responses are not stored. Default `1Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entry_bytes: Option<Quantity>,
    /// Only cache requests whose answer is deterministic: `temperature: 0`
    /// and a single choice. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deterministic_only: Option<bool>,
    /// Request header whose value partitions the cache (e.g.
    /// `x-tollgate-tenant`): tenants never share entries. A request without
    /// it shares the no-tenant partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_header: Option<String>,
    /// Where entries are kept. Default in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<RawCacheStore>,
    /// The semantic cache: embedders, index bounds, and defaults for the
    /// routes that opt in with `routes[].semantic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<RawSemantic>,
    /// Per-route overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RawRouteCache>,
}

impl RawCache {
    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Which store keeps cache entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CacheStoreType {
    /// In the proxy's memory, bounded by entries and bytes.
    #[default]
    Memory,
    /// In Redis, shared by every proxy using the same key prefix; the
    /// memory store still answers first.
    Redis,
}

/// The entry store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCacheStore {
    #[serde(default, rename = "type")]
    pub kind: CacheStoreType,
    /// Redis only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RawRedisStore>,
}

/// Cache settings of one route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRouteCache {
    /// A route name from `routing.routes`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Opt this route into the semantic cache (`semantic: {}` for the
    /// defaults of `cache.semantic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<RawRouteSemantic>,
}

/// `cache.semantic`: what the semantic cache embeds with and how big its
/// index may grow. Nothing is served semantically until a route opts in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSemantic {
    /// Named embedders that routes refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedders: Vec<RawEmbedder>,
    /// Default cosine similarity a stored prompt must reach. Default 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Default checks run before a semantic hit is served. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Vec<GuardCheck>>,
    /// Most prompts the index keeps (oldest go first). Default: `cache.maxEntries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
    /// A partition of the index (one scope) with fewer prompts than this is
    /// searched exactly; a larger one through an HNSW graph. Default 2048.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_scan_below: Option<u64>,
    /// Default online verification of semantic hits (on, at 5%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<RawVerify>,
    /// Share the index between every proxy of the policy through Redis:
    /// each insert is appended to a Redis stream per route and embedder,
    /// the other proxies follow it into their own index, and a new proxy
    /// warms its index from it. Needs `store.type: redis`. Default `true`
    /// with a Redis store (`false` keeps each proxy's index to itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}

/// Online verification: a share of semantic hits is also sent upstream in
/// the background, the fresh answer compared with the one served, and a
/// route whose rolling agreement falls below `floor` stops serving semantic
/// hits (the exact cache goes on) until it recovers. Unset fields inherit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawVerify {
    /// Share of semantic hits verified, 0 to 1, evenly spaced (0.05: one
    /// in twenty). 0 turns verification off. Default 0.05.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub share: Option<f64>,
    /// Rolling agreement (0 to 1) below which the route stops serving
    /// semantic hits. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub floor: Option<f64>,
    /// Verifications the rolling agreement is taken over. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// Verifications needed before the floor applies. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u32>,
    /// Verifications of one route in flight at once; more are skipped
    /// (and counted). Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<u32>,
}

/// Where embeddings come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EmbedderType {
    /// An OpenAI-compatible `/v1/embeddings` endpoint of a configured
    /// provider, with that provider's credentials.
    #[default]
    Provider,
    /// A BERT-family sentence-embedding model run inside the proxy, from a
    /// folder with `config.json`, `tokenizer.json` and `model.safetensors`
    /// (needs a proxy built with the `local-embeddings` feature).
    Local,
}

/// One embedder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawEmbedder {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: EmbedderType,
    /// `provider`: a provider name from `providers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `provider`: the embedding model, e.g. `text-embedding-3-small`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `provider`: shorter vectors, for models that support `dimensions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// `provider`: how long an embedding may take; slower is a miss.
    /// Default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `local`: the model folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `local`: longer texts are cut to this many tokens. Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Vectors of this many recently embedded texts are kept, so a text
    /// seen again (the same prompt from another tenant or for another
    /// model, after its answer expired, or an app's retry) is not embedded
    /// again. Default 1024 (about 1.6 KB each for 384 dimensions); 0 keeps
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_entries: Option<u32>,
}

/// A check that two prompts agree on something an embedding blurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GuardCheck {
    /// The same numbers (digits, number words, ordinals).
    Numbers,
    /// The same number of negations (`not`, `never`, `n't`, `without`, …).
    Negations,
    /// The same side of opposite pairs (`before`/`after`, `max`/`min`,
    /// `encrypt`/`decrypt`, …).
    Opposites,
    /// Names, acronyms and code identifiers of one prompt appear in the other.
    Entities,
    /// Shared words in the same order, up to moving one phrase (`Alice
    /// called Bob` is not `Bob called Alice`).
    Order,
}

/// `cache.routes[].semantic`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRouteSemantic {
    /// Default `true` once the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// An embedder name; may be left out when exactly one is declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Vec<GuardCheck>>,
    /// This route's online verification (fields not set inherit
    /// `cache.semantic.verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<RawVerify>,
    /// A second stage: before a semantic hit is served, a chat model is
    /// asked whether the stored prompt and this one ask for the same thing
    /// (the best candidate only; "no", an error or a timeout is a miss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<RawJudge>,
    /// Share this route's index entries through Redis. Default:
    /// `cache.semantic.shared`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}

/// The model that judges a semantic candidate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawJudge {
    /// An OpenAI-compatible provider from `providers` (not Anthropic).
    pub provider: String,
    /// A chat model, e.g. `gpt-4o-mini`.
    pub model: String,
    /// How long the judgment may take; slower is a miss. Default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}
