//! The `tollgate-mock` binary: the ready line, keys, `--tls-cert-out`, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

struct Mock {
    child: Option<Child>,
    url: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(args: &[&str]) -> Mock {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-mock"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("tollgate-mock starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reads the ready line");
    let url = line
        .trim_end()
        .strip_prefix("tollgate-mock listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Mock {
        child: Some(child),
        url,
    }
}

/// Sends SIGTERM through the `kill` utility and waits for a clean exit,
/// keeping this test's runtime free to answer the mock's goodbyes.
async fn terminate(mut mock: Mock) {
    let status = Command::new("kill")
        .args(["-TERM", &mock.child.as_ref().unwrap().id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut child = mock.child.take().unwrap();
    let exit = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .expect("mock exits on SIGTERM")
    .unwrap()
    .unwrap();
    assert!(exit.success(), "exit status {exit}");
}

#[tokio::test]
async fn prints_its_url_serves_and_exits_on_sigterm() {
    let mock = spawn(&["--openai-key", "sk-bin", "--defaults", r#"{"chunks":3}"#]);
    assert!(mock.url.starts_with("http://127.0.0.1:"));
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let url = format!("{}/v1/chat/completions", mock.url);
    let denied = c
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let v: Value = c
        .post(&url)
        .bearer_auth("sk-bin")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock reply from m: hi"
    );
    let records: Value = c
        .get(format!("{}/__mock/requests", mock.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(records.as_array().unwrap().len(), 2);
    terminate(mock).await;
}

#[tokio::test]
async fn tls_cert_out_writes_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mock = spawn(&["--tls-cert-out", dir.path().to_str().unwrap()]);
    assert!(mock.url.starts_with("https://127.0.0.1:"));
    let pem = std::fs::read(dir.path().join("ca.pem")).expect("ca.pem written");
    let c = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let resp = c
        .get(format!("{}/v1/models", mock.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    terminate(mock).await;
}
