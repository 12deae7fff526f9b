//! Needs the model files: `TOLLGATE_MINILM_DIR` names a folder with
//! all-MiniLM-L6-v2 (`scripts/test-all.sh` fetches it from PyPI). Without
//! it these tests pass vacuously, unless `TOLLGATE_REQUIRE_MODEL=1`.

use super::*;

fn model() -> Option<LocalEmbedder> {
    let Ok(dir) = std::env::var("TOLLGATE_MINILM_DIR") else {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_MODEL").is_err(),
            "TOLLGATE_REQUIRE_MODEL is set but TOLLGATE_MINILM_DIR is not"
        );
        eprintln!("TOLLGATE_MINILM_DIR not set: skipped");
        return None;
    };
    Some(LocalEmbedder::load(Path::new(&dir), 256).expect("model loads"))
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn padding_is_off_and_long_texts_are_cut() {
    let Some(m) = model() else { return };
    // [CLS] a man is eating food . [SEP]: not padded to the 128 that the
    // shipped tokenizer.json asks for.
    assert_eq!(m.token_ids("A man is eating food.").unwrap().len(), 8);
    let long = "word ".repeat(1000);
    assert_eq!(m.token_ids(&long).unwrap().len(), 256);
}

#[test]
fn matches_the_reference_embedding() {
    let Some(m) = model() else { return };
    let v = &m.embed(&["A man is eating food.".to_string()]).unwrap()[0];
    assert_eq!(v.len(), 384);
    assert!((cos(v, v) - 1.0).abs() < 1e-5);
    // First components from an independent NumPy implementation of the
    // same model (tests/semantic/reference.py).
    for (i, want) in REFERENCE.iter().enumerate() {
        assert!(
            (v[i] - want).abs() < 1e-4,
            "component {i}: {} vs {want}",
            v[i]
        );
    }
}

#[test]
fn paraphrases_are_closer_than_unrelated_texts() {
    let Some(m) = model() else { return };
    let texts: Vec<String> = [
        "How do I reverse a list in Python?",
        "What is the way to reverse a Python list?",
        "What is the boiling point of water?",
    ]
    .map(String::from)
    .to_vec();
    let v = m.embed(&texts).unwrap();
    assert!(cos(&v[0], &v[1]) > 0.8, "{}", cos(&v[0], &v[1]));
    assert!(cos(&v[0], &v[2]) < 0.3, "{}", cos(&v[0], &v[2]));
}

#[test]
fn a_bad_folder_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalEmbedder::load(dir.path(), 256).err().expect("fails");
    assert!(err.to_string().contains("config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let err = LocalEmbedder::load(dir.path(), 256).err().expect("fails");
    assert!(err.to_string().contains("config.json"), "{err}");
}

const REFERENCE: [f32; 8] = [
    0.033242, 0.004406, -0.006277, 0.048379, -0.138702, -0.033617, 0.101128, -0.054385,
];
