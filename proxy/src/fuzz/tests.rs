//! Every seed and every saved fuzz finding, replayed on stable Rust; and
//! property tests that drive two targets with proptest's generators.

use std::path::Path;

use proptest::prelude::*;

/// A target's property.
type Target = fn(&[u8]);

/// The targets by their directory names under `proxy/fuzz/`.
const TARGETS: &[(&str, Target)] = &[
    ("request_head", super::request_head),
    ("translate_request", super::translate_request),
    ("translate_stream", super::translate_stream),
    ("sse_split", super::sse_split),
    ("config", super::config),
    ("pii_stream", super::pii_stream),
    ("cache_key", super::cache_key),
    ("budget_stores", super::budget_stores),
];

#[test]
fn seeds_and_findings_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for (name, target) in TARGETS {
        let mut seeds = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let caught = std::panic::catch_unwind(|| target(&data));
                assert!(caught.is_ok(), "{name}: {} fails", path.display());
                seeds += 1;
            }
        }
        assert!(seeds > 0, "{name} has no seeds");
        ran += seeds;
    }
    assert!(ran >= TARGETS.len());
}

/// Pieces answers are made of: entities, the pseudonyms the target's
/// engine issued, their fragments, prose and JSON-hostile characters.
const PIECES: &[&str] = &[
    "a@example.com",
    "[EMAIL_1]",
    "[PHONE_1]",
    "[IP_ADDRESS_1]",
    "[EMAIL_",
    "1]",
    "+1 415 555 0132",
    "10.1.2.3:8080",
    "4111 1111 1111 1111",
    "sk-proj-AbCdEf0123456789xYzAbCdEf01",
    "call me at ",
    " thanks",
    "\n",
    "\"quoted\"",
    "é",
    " ",
    "order 12345678901",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// PII stream hold-back: any split of any answer built from entities
    /// and pseudonyms gives the same text as one piece and as a whole
    /// answer.
    #[test]
    fn pii_stream_any_split(
        parts in proptest::collection::vec(0..PIECES.len(), 0..12),
        splits in proptest::collection::vec(any::<u16>(), 0..8),
    ) {
        let text: String = parts.iter().map(|&i| PIECES[i]).collect();
        let mut data = vec![splits.len() as u8];
        for s in &splits {
            data.extend_from_slice(&s.to_le_bytes());
        }
        data.extend_from_slice(text.as_bytes());
        super::pii_stream(&data);
    }

    /// Budget accounting (memory store): any interleaving of admissions,
    /// settlements, releases and window changes decides as the documented
    /// rule does and keeps spend within the overshoot bound.
    #[test]
    fn budget_any_interleaving(data in proptest::collection::vec(any::<u8>(), 2..200)) {
        super::budget::budget_stores_with(&data, None);
    }
}

/// The Redis store's Lua scripts against the memory store and the model:
/// the seeds and 64 generated scenarios, on a real redis-server.
#[test]
fn budget_redis_agrees_with_memory() {
    let rt = super::budget::runtime();
    let Some(server) = rt.block_on(tollgate_tests::redis::Redis::start()) else {
        return;
    };
    let url = server.url();
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/budget_stores");
    for entry in std::fs::read_dir(seeds).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        super::budget::budget_stores_with(&data, Some(&url));
    }
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(&proptest::collection::vec(any::<u8>(), 2..200), |data| {
            super::budget::budget_stores_with(&data, Some(&url));
            Ok(())
        })
        .unwrap();
}
