//! The semantic cache: serves a stored answer to a request that says the
//! same thing in other words.
//!
//! On an exact-cache miss of a route that opted in, the request's texts
//! ([`text`]) are embedded ([`embed`]) and its partition of the index
//! ([`index`]) — the same scope hash, i.e. everything but the wording
//! matches exactly — is searched. A stored prompt is served when its query
//! vector, and its whole-prompt vector if it has several texts, are at
//! least `threshold` similar, and the near-miss [`guard`] finds nothing that
//! differs. The answer itself lives in the exact cache under its key; the
//! index only points at it. A miss's answer, once stored, is indexed with
//! the vectors the lookup computed; with a Redis store, the index is
//! also [`shared`] with the policy's other proxies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use sha2::{Digest, Sha256};
use tollgate_config::{EmbedderKind, RouteSemantic, Semantic as SemanticConfig};

pub(crate) mod ann;
pub mod calibrate;
pub(crate) mod embed;
pub(crate) mod guard;
pub mod index;
pub(crate) mod judge;
#[cfg(feature = "local-embeddings")]
pub mod local;
pub(crate) mod memo;
pub(crate) mod provider;
pub mod shared;
pub(crate) mod text;
pub mod vector;
pub(crate) mod wire;

pub(crate) use embed::{EmbedError, Embedder, Upstream};
pub use guard::{Check, Profile};
pub(crate) use text::Prompt;

use self::index::{Index, Query, Slot};
use self::shared::{Cursors, Link, Publish, Sharing, Stream};
use super::{now_ms, CacheError, CacheMetrics, Key};

/// Candidates looked at per lookup (best first).
const CANDIDATES: usize = 8;

/// The embedders and the index; the index survives reloads while its
/// bounds are unchanged.
pub struct SemanticCache {
    index: Arc<Index>,
    /// Who the index is and how far it followed the shared streams: kept
    /// with it.
    cursors: Arc<Cursors>,
    embedders: Vec<Embedder>,
    /// Each embedder's recent vectors (new on every reload: a vector
    /// belongs to the model and endpoint that made it).
    memos: Vec<memo::Memo>,
    /// Set when routes share their entries through Redis.
    sharing: Option<Arc<Sharing>>,
    metrics: Arc<CacheMetrics>,
}

/// A request's embedding, kept to index its answer.
pub struct Probe {
    part: Key,
    /// The query's text, for a route with a judge.
    text: Option<Arc<str>>,
    query: Vec<f32>,
    context: Option<Vec<f32>>,
    profile: Profile,
    route: RouteSemantic,
    /// The route's stream, when it is shared.
    stream: Option<Arc<Stream>>,
}

/// A stored prompt that may be served.
pub struct Match {
    /// The stored query's text, when its route has a judge.
    pub text: Option<Arc<str>>,
    pub id: u64,
    /// The exact-cache key of its answer.
    pub key: Key,
    pub similarity: f32,
}

impl SemanticCache {
    pub async fn new(
        cfg: &SemanticConfig,
        previous: Option<&SemanticCache>,
        metrics: Arc<CacheMetrics>,
    ) -> Result<SemanticCache, CacheError> {
        let (index, cursors) = match previous {
            Some(p)
                if p.index.max_entries() == cfg.max_entries as usize
                    && p.index.exact_scan_below() == cfg.exact_scan_below =>
            {
                (p.index.clone(), p.cursors.clone())
            }
            _ => (
                Index::new(cfg.max_entries as usize, cfg.exact_scan_below),
                Cursors::new(),
            ),
        };
        let mut embedders = Vec::with_capacity(cfg.embedders.len());
        for e in &cfg.embedders {
            embedders.push(match &e.kind {
                EmbedderKind::Provider {
                    provider,
                    model,
                    dimensions,
                    timeout,
                } => Embedder::Provider(provider::ProviderEmbedder {
                    provider: *provider,
                    model: model.clone(),
                    dimensions: *dimensions,
                    timeout: *timeout,
                }),
                EmbedderKind::Local { path, max_tokens } => {
                    embed::local(
                        &e.name,
                        path,
                        *max_tokens,
                        previous.map(|p| &p.embedders[..]),
                    )
                    .await?
                }
            });
        }
        let memos = cfg
            .embedders
            .iter()
            .map(|e| memo::Memo::new(e.cache_entries))
            .collect();
        Ok(SemanticCache {
            index,
            cursors,
            embedders,
            memos,
            sharing: None,
            metrics,
        })
    }

    /// Shares `streams`' routes' entries through Redis, keeping the
    /// `previous` runtime's followers when nothing they depend on changed.
    pub(crate) fn share(
        &mut self,
        streams: Vec<Stream>,
        link: Link<'_>,
        previous: Option<&SemanticCache>,
    ) -> Result<(), CacheError> {
        if streams.is_empty() {
            return Ok(());
        }
        self.sharing = Some(Sharing::start(
            streams,
            self.index.max_entries() as u64,
            link,
            &self.index,
            &self.cursors,
            &self.metrics,
            previous.and_then(|p| p.sharing.as_ref()),
        )?);
        Ok(())
    }

    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    /// Embeds a request's prompt with the embedder of `route` (named
    /// `name`).
    pub async fn probe(
        &self,
        up: &Upstream<'_>,
        cfg: &SemanticConfig,
        name: &str,
        route: &RouteSemantic,
        prompt: &Prompt,
        request_id: &HeaderValue,
    ) -> Result<Probe, EmbedError> {
        let e = &cfg.embedders[route.embedder];
        let context = prompt.context();
        let mut texts = vec![prompt.query()];
        if let Some(c) = &context {
            texts.push(c);
        }
        let mut vectors = self
            .vectors(up, route.embedder, &e.name, &texts, request_id)
            .await?;
        let context = (vectors.len() > 1).then(|| vectors.pop().expect("two vectors"));
        let query = vectors.pop().expect("one vector per text");
        // The partition: the scope, and what shapes the vectors.
        let mut h = Sha256::new();
        h.update(prompt.scope.0);
        h.update(e.identity(up.providers).as_bytes());
        Ok(Probe {
            text: route.judge.map(|_| Arc::from(prompt.query())),
            part: Key(h.finalize().into()),
            query,
            context,
            profile: Profile::of(prompt.texts.iter().map(String::as_str)),
            route: *route,
            stream: match (&self.sharing, route.shared) {
                (Some(s), true) => s.stream(name).cloned(),
                _ => None,
            },
        })
    }

    /// The vectors of `texts` by embedder `i` (named `name`), in order:
    /// those kept from earlier requests, the others embedded in one call.
    async fn vectors(
        &self,
        up: &Upstream<'_>,
        i: usize,
        name: &str,
        texts: &[&str],
        request_id: &HeaderValue,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let memo = &self.memos[i];
        let mut vectors: Vec<Option<Vec<f32>>> = texts.iter().map(|t| memo.get(t)).collect();
        let missing: Vec<&str> = texts
            .iter()
            .zip(&vectors)
            .filter(|(_, v)| v.is_none())
            .map(|(t, _)| *t)
            .collect();
        let reused = texts.len() - missing.len();
        if reused > 0 {
            self.metrics
                .embeddings_reused
                .with_label_values(&[name])
                .inc_by(reused as u64);
        }
        if !missing.is_empty() {
            let started = Instant::now();
            let result = self.embedders[i].embed(up, &missing, request_id).await;
            self.metrics
                .embedding_duration
                .with_label_values(&[name])
                .observe(started.elapsed().as_secs_f64());
            let fresh = result.inspect_err(|err| {
                self.metrics
                    .embedding_errors
                    .with_label_values(&[name, err.metric_label()])
                    .inc();
            })?;
            let mut fresh = missing.iter().zip(fresh);
            for slot in vectors.iter_mut().filter(|v| v.is_none()) {
                let (text, v) = fresh
                    .next()
                    .ok_or_else(|| EmbedError::Malformed("fewer vectors than texts".into()))?;
                memo.put(text, &v);
                *slot = Some(v);
            }
        }
        Ok(vectors.into_iter().map(|v| v.expect("filled")).collect())
    }

    /// Stored prompts that may answer `probe`, best first: similar enough
    /// on every vector and passed by the guard.
    pub fn find(&self, probe: &Probe) -> Vec<Match> {
        let threshold = probe.route.threshold;
        let candidates = self.index.search(&Query {
            part: &probe.part,
            query: &probe.query,
            threshold,
            limit: CANDIDATES,
        });
        let mut out = Vec::new();
        for c in candidates {
            let similarity = match (&probe.context, &c.slot.context) {
                (None, None) => c.similarity,
                (Some(a), Some(b)) => {
                    let s = vector::similarity(a, b);
                    if s < threshold {
                        continue;
                    }
                    s.min(c.similarity)
                }
                _ => continue,
            };
            if let Err(check) = probe.profile.compare(&c.slot.profile, &probe.route.guard) {
                self.metrics
                    .guard_refusals
                    .with_label_values(&[check.label()])
                    .inc();
                continue;
            }
            out.push(Match {
                text: c.slot.text.clone(),
                id: c.id,
                key: c.slot.key,
                similarity,
            });
        }
        out
    }

    /// Indexes the prompt whose answer was stored under `key`; what to
    /// append to the route's stream once the answer is in Redis, when the
    /// route is shared.
    pub fn remember(&self, probe: Probe, key: Key, ttl: Duration) -> Option<Publish> {
        let slot = Slot {
            text: probe.text,
            part: probe.part,
            key,
            query: probe.query.into_boxed_slice(),
            context: probe.context.map(Vec::into_boxed_slice),
            profile: probe.profile,
            expires: Instant::now() + ttl,
        };
        let publish = probe.stream.map(|stream| Publish {
            bytes: shared::entry::encode(
                &shared::entry::Meta {
                    origin: self.cursors.origin(),
                    inserted_ms: now_ms(),
                    ttl_ms: ttl.as_millis() as u64,
                    embedder: stream.embedder,
                },
                &slot,
            ),
            stream,
        });
        self.index.insert(slot);
        self.metrics.semantic_entries.set(self.index.len() as i64);
        publish
    }

    /// Appends an insert to its route's stream.
    pub(crate) async fn publish(&self, p: Publish) {
        if let Some(s) = &self.sharing {
            s.publish(p).await;
        }
    }

    /// Drops an entry whose answer has left the exact cache.
    pub fn forget(&self, id: u64) {
        self.index.remove(id);
        self.metrics.semantic_entries.set(self.index.len() as i64);
    }
}

#[cfg(test)]
mod tests;
