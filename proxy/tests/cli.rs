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

/// `calibrate` scores a route's embedder and guard on labelled pairs: the
/// mock's bag-of-words embedder makes "Is 7 prime?" and "Is 8 prime?" 0.8
/// similar, which only the guard refuses. (Multi-threaded: the mock
/// answers while the test waits for the process.)
#[tokio::test(flavor = "multi_thread")]
async fn calibrate_reports_hits_and_false_hits_per_threshold() {
    let mock = tollgate_tests::mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            r#"apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
providers:
  - {{name: openai, type: openai, baseUrl: "{}/v1", passthrough: true, models: [gpt-4o-mini, bag-of-words-1]}}
routing:
  routes:
    - {{name: faq, targets: [{{provider: openai, model: gpt-4o-mini}}]}}
cache:
  semantic:
    embedders: [{{name: bow, provider: openai, model: bag-of-words-1}}]
  routes:
    - {{name: faq, semantic: {{threshold: 0.9}}}}
"#,
            mock.url()
        ),
    )
    .unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    std::fs::write(
        &pairs,
        r#"{"a": "What is a toll road?", "b": "what is a toll road", "same": true, "kind": "paraphrase"}
{"a": "Is 7 a prime number?", "b": "Is 8 a prime number?", "same": false, "kind": "number"}
"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["calibrate", "--route", "faq", "--threshold", "0.75"])
        .arg("--config")
        .arg(&config)
        .arg("--pairs")
        .arg(&pairs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 pairs, 1 the same request, 1 not; threshold 0.90, guard on"),
        "{stdout}"
    );
    // At 0.75 the changed number passes the embedder; the guard refuses it.
    assert!(
        stdout.contains("| 0.75 | off | 100.0% (1/1) | 100.0% (1/1) |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| 0.75 | on | 100.0% (1/1) | 0.0% (0/1) |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| 0.85 | off | 100.0% (1/1) | 0.0% (0/1) |"),
        "{stdout}"
    );
    assert!(stdout.contains("| number | 0.0% (0/1) |"), "{stdout}");
    // The embedder really was asked, in one batch.
    let calls = mock
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/embeddings")
        .count();
    assert_eq!(calls, 1);

    // A route without a semantic cache is a clear error.
    let out = Command::new(BIN)
        .args(["calibrate", "--route", "nope"])
        .arg("--config")
        .arg(&config)
        .arg("--pairs")
        .arg(&pairs)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("route `nope` has no semantic cache"));
}

/// `run` writes only log lines, to stderr: the start with its addresses and
/// its runtime's worker count is logged, and stdout stays empty unless
/// `TOLLGATE_PRINT_ADDRS` asks for the listening line. Workers: one per CPU
/// the process may use (a cgroup quota counts), or `TOKIO_WORKER_THREADS`.
#[test]
fn run_logs_its_start_and_prints_nothing_on_stdout_unless_asked() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nserver: {listen: 127.0.0.1:0}\nadmin: {listen: 127.0.0.1:0}\nlogging: {format: json}\nproviders:\n  - {name: o, type: openai, passthrough: true, models: [m]}\n",
    )
    .unwrap();
    for print in [false, true] {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("TOLLGATE_PRINT_ADDRS")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let workers = if print {
            cmd.env("TOLLGATE_PRINT_ADDRS", "1");
            cmd.env("TOKIO_WORKER_THREADS", "3");
            3
        } else {
            cmd.env_remove("TOKIO_WORKER_THREADS");
            std::thread::available_parallelism().unwrap().get()
        };
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("\"started\"") {
                    let _ = tx.send(line);
                    return;
                }
            }
        });
        let started = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the start is logged");
        let v: serde_json::Value = serde_json::from_str(&started).unwrap();
        assert!(
            v["data"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{started}"
        );
        assert_eq!(v["workers"], workers, "{started}");
        child.kill().unwrap();
        child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        if print {
            assert!(
                out.starts_with("tollgate-proxy listening data=http://127.0.0.1:"),
                "{out:?}"
            );
        } else {
            assert_eq!(out, "", "stdout is for the listening line only when asked");
        }
    }
}
