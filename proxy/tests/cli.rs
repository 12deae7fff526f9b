//! The CLI: `check` and `schema`, and the shipped example configs.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate-proxy");

fn examples() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_example_config_checks_clean() {
    let examples = examples();
    assert!(!examples.is_empty());
    for path in examples {
        let out = Command::new(BIN)
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid (hash "));
    }
}

#[test]
fn check_lists_every_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nserver: {maxRequestBody: lots}\nproviders:\n  - {name: o, type: openai, models: []}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.maxRequestBody: `lots` is not a size"),
        "{err}"
    );
    assert!(
        err.contains("providers[0].credentials: required unless"),
        "{err}"
    );
    assert!(
        err.contains("providers[0].models: list at least one model"),
        "{err}"
    );

    std::fs::write(
        &path,
        "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nprovider: []\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `provider`"));

    let out = Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
}

#[test]
fn run_refuses_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "apiVersion: v1\nkind: ProxyConfig\nproviders: []\n").unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apiVersion") && err.contains("providers"),
        "{err}"
    );
}

#[test]
fn schema_is_json_schema_of_the_config() {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "ProxyConfig");
    assert!(v["properties"]["providers"].is_object());
    assert_eq!(v["additionalProperties"], false);
}
