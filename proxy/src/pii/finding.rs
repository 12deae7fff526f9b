//! What a recognizer reports: a byte span, an entity type and a score.

use tollgate_config::Builtin;

/// An entity type: built in, or a custom recognizer by its index in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Builtin(Builtin),
    Custom(u16),
}

/// One detected value: `text[start..end]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub entity: Entity,
    /// Confidence in [0, 1] after context words.
    pub score: f32,
}

impl Finding {
    pub fn new(start: usize, end: usize, b: Builtin, score: f32) -> Finding {
        Finding {
            start,
            end,
            entity: Entity::Builtin(b),
            score: score.clamp(0.0, 1.0),
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    fn overlaps(&self, other: &Finding) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Keeps the best of overlapping findings (higher score, then longer, then
/// earlier) and returns the rest sorted by position.
pub(crate) fn resolve(mut found: Vec<Finding>) -> Vec<Finding> {
    if found.len() < 2 {
        return found;
    }
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.len().cmp(&a.len()))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found {
        if !kept.iter().any(|k| k.overlaps(&f)) {
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.start);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_keep_the_strongest() {
        let f = |s, e, b, sc| Finding::new(s, e, b, sc);
        let out = resolve(vec![
            f(0, 10, Builtin::Phone, 0.6),
            f(2, 12, Builtin::CreditCard, 1.0),
            f(20, 25, Builtin::Email, 0.9),
            f(20, 30, Builtin::Email, 0.9),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].entity, Entity::Builtin(Builtin::CreditCard));
        assert_eq!(
            (out[1].start, out[1].end),
            (20, 30),
            "equal score: longer wins"
        );
    }
}
