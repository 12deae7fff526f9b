//! One index entry in bytes, the value of a stream entry's field `e`.
//!
//! Version 1, little-endian throughout: the version byte, a flags byte
//! (1: a whole-prompt vector follows the query vector, 2: the query's text
//! follows the profile), the writer's origin (`u64`), the insert time (Unix
//! ms, `u64`) and TTL (ms, `u64`), the embedder's identity (8 bytes), the
//! partition and the answer's exact-cache key (32 bytes each), the query
//! vector (`u32` length, `f32`s), the whole-prompt vector if flagged, the
//! guard's profile, and the text if flagged. Vectors stay `f32`, as the
//! index keeps them for the exact similarity of every candidate, so a
//! followed entry compares exactly as it did where it was written. An
//! entry of a later version is not read (`None`), so proxies of two
//! versions can share a stream during a rollout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::semantic::index::Slot;
use crate::cache::semantic::wire::{Reader, Writer};
use crate::cache::semantic::Profile;
use crate::cache::Key;

const VERSION: u8 = 1;
const CONTEXT: u8 = 1;
const TEXT: u8 = 2;
/// The longest TTL a config allows (30 days): no entry lives longer.
const MOST_MS: u64 = 30 * 24 * 3600 * 1000;

/// What an entry says besides the slot itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The index that wrote it ([`super::Cursors`]).
    pub origin: u64,
    pub inserted_ms: u64,
    pub ttl_ms: u64,
    /// The first bytes of the SHA-256 of the embedder's identity.
    pub embedder: [u8; 8],
}

impl Meta {
    /// The Unix ms past which the answer has left the exact cache.
    pub fn expires_ms(&self) -> u64 {
        self.inserted_ms.saturating_add(self.ttl_ms)
    }
}

/// `slot` (its expiry aside: `meta` says it) in bytes.
pub fn encode(meta: &Meta, slot: &Slot) -> Vec<u8> {
    let dims = slot.query.len() + slot.context.as_ref().map_or(0, |c| c.len());
    let mut out = Vec::with_capacity(112 + dims * 4 + slot.profile.heap_bytes());
    let mut w = Writer(&mut out);
    w.u8(VERSION);
    let mut flags = 0;
    if slot.context.is_some() {
        flags |= CONTEXT;
    }
    if slot.text.is_some() {
        flags |= TEXT;
    }
    w.u8(flags);
    w.u64(meta.origin);
    w.u64(meta.inserted_ms);
    w.u64(meta.ttl_ms);
    w.bytes(&meta.embedder);
    w.bytes(&slot.part.0);
    w.bytes(&slot.key.0);
    w.f32s(&slot.query);
    if let Some(c) = &slot.context {
        w.f32s(c);
    }
    slot.profile.encode(&mut w);
    if let Some(t) = &slot.text {
        w.str(t);
    }
    out
}

/// An entry read back, with the slot it makes for an index at `now`
/// (Unix ms `now_ms`); `None` when the bytes are not a whole version-1
/// entry.
pub(crate) fn decode(bytes: &[u8], now_ms: u64, now: Instant) -> Option<(Meta, Slot)> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return None;
    }
    let flags = r.u8()?;
    let meta = Meta {
        origin: r.u64()?,
        inserted_ms: r.u64()?,
        ttl_ms: r.u64()?,
        embedder: r.array()?,
    };
    let part = Key(r.array()?);
    let key = Key(r.array()?);
    let query = r.f32s()?;
    let context = match flags & CONTEXT {
        0 => None,
        _ => Some(r.f32s()?.into_boxed_slice()),
    };
    let profile = Profile::decode(&mut r)?;
    let text = match flags & TEXT {
        0 => None,
        _ => Some(Arc::from(r.str()?)),
    };
    if !r.is_empty() || query.is_empty() {
        return None;
    }
    let left = meta.expires_ms().saturating_sub(now_ms).min(MOST_MS);
    Some((
        meta,
        Slot {
            part,
            key,
            query: query.into_boxed_slice(),
            context,
            profile,
            expires: now + Duration::from_millis(left),
            text,
        },
    ))
}
