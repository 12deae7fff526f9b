//! Vectors of texts an embedder embedded lately, so a text seen again — the
//! same prompt from another tenant or for another model (another
//! partition), after its answer expired, or an app's retry — is not
//! embedded again (an embedding is a provider call or milliseconds of CPU;
//! a lookup here is a hash of the text).
//!
//! Keyed by the SHA-256 of the text, so a long prompt costs 32 bytes of key
//! and no two texts share a vector; bounded by entry count (S3-FIFO, as the
//! exact cache's memory store). One per embedder: a vector belongs to the
//! model that made it.

use std::sync::Arc;

use sha2::{Digest, Sha256};

type Vectors = quick_cache::sync::Cache<[u8; 32], Arc<[f32]>>;

/// Recently embedded texts' vectors; keeps none when made with 0 entries.
pub(crate) struct Memo {
    vectors: Option<Vectors>,
}

impl Memo {
    pub(crate) fn new(entries: usize) -> Memo {
        Memo {
            vectors: (entries > 0).then(|| Vectors::new(entries)),
        }
    }

    fn key(text: &str) -> [u8; 32] {
        Sha256::digest(text.as_bytes()).into()
    }

    /// The vector of `text`, if it was embedded lately.
    pub(crate) fn get(&self, text: &str) -> Option<Vec<f32>> {
        let v = self.vectors.as_ref()?.get(&Memo::key(text))?;
        Some(v.to_vec())
    }

    pub(crate) fn put(&self, text: &str, vector: &[f32]) {
        if let Some(m) = &self.vectors {
            m.insert(Memo::key(text), Arc::from(vector));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_seen_again_gets_its_vector_and_others_do_not() {
        let m = Memo::new(4);
        m.put("system: be brief", &[0.6, 0.8]);
        assert_eq!(m.get("system: be brief"), Some(vec![0.6, 0.8]));
        assert_eq!(m.get("system: be brief "), None);
        assert_eq!(m.get("something else"), None);
    }

    #[test]
    fn it_is_bounded_and_zero_keeps_nothing() {
        let m = Memo::new(8);
        for i in 0..1000 {
            m.put(&format!("text {i}"), &[i as f32]);
        }
        let kept = (0..1000)
            .filter(|i| m.get(&format!("text {i}")).is_some())
            .count();
        assert!(kept > 0 && kept <= 16, "{kept}");
        let off = Memo::new(0);
        off.put("a", &[1.0]);
        assert_eq!(off.get("a"), None);
    }
}
