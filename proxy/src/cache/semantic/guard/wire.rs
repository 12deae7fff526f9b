//! A profile in bytes, as the shared index sends it to other proxies: the
//! word hashes are FNV-1a, the same in every process, so a profile read
//! back compares exactly as the one written.

use super::Profile;
use crate::cache::semantic::wire::{Reader, Writer};

impl Profile {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.len(self.numbers.len());
        for n in &self.numbers {
            w.str(n);
        }
        w.u32(self.negations);
        w.len(self.opposites.len());
        for (group, side) in &self.opposites {
            w.u16(*group);
            w.u8(*side);
        }
        w.u64s(&self.entities);
        w.u64s(&self.words);
        w.u64s(&self.order);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Option<Profile> {
        let n = r.len(4)?;
        let numbers = (0..n)
            .map(|_| r.str().map(Box::from))
            .collect::<Option<_>>()?;
        let negations = r.u32()?;
        let n = r.len(3)?;
        let opposites = (0..n)
            .map(|_| Some((r.u16()?, r.u8()?)))
            .collect::<Option<_>>()?;
        Some(Profile {
            numbers,
            negations,
            opposites,
            entities: r.u64s()?,
            words: r.u64s()?,
            order: r.u64s()?,
        })
    }
}
