//! Starts real `tollgate-proxy` processes for black-box tests.
//!
//! The binary comes from `TOLLGATE_PROXY_BIN`, or the workspace's
//! `target/{debug,release}`; `cargo test --workspace` builds it (the proxy
//! crate has integration tests, which makes cargo build its binary first).
//! A binary older than the proxy's sources fails the test with the command
//! that rebuilds it, rather than testing stale code.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub(crate) use tollgate_tests::mock::{MockConfig, MockServer};

pub(crate) const OPENAI_KEY: &str = "sk-test-openai-real";
pub(crate) const ANTHROPIC_KEY: &str = "sk-ant-test-real";

/// Path of the proxy binary under test.
pub(crate) fn proxy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TOLLGATE_PROXY_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(root.join("target"));
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("tollgate-proxy");
        if p.exists() {
            // Once per test binary: every proxy a suite starts is this one.
            static FRESH: std::sync::OnceLock<()> = std::sync::OnceLock::new();
            FRESH.get_or_init(|| fresh_or_panic(&p, &root));
            return p;
        }
    }
    panic!("tollgate-proxy binary not found under {}; run `cargo build -p tollgate-proxy` (or `make test`)", target.display());
}

/// A binary older than the proxy's sources would test yesterday's code
/// (`cargo test -p tollgate-tests` does not rebuild it, and cargo holds the
/// build lock while tests run, so they cannot either): say so and stop.
fn fresh_or_panic(bin: &Path, root: &Path) {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).unwrap();
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut visit = vec![
        root.join("proxy/src"),
        root.join("proxy/config/src"),
        root.join("proxy/spend/src"),
        root.join("proxy/otel/src"),
        root.join("proxy/Cargo.toml"),
    ];
    while let Some(p) = visit.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            visit.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(m) = meta.modified() {
            if newest.as_ref().is_none_or(|(t, _)| m > *t) {
                newest = Some((m, p));
            }
        }
    }
    if let Some((changed, path)) = newest {
        assert!(
            changed <= built,
            "{} is older than {}: run `cargo build -p tollgate-proxy` first (or set TOLLGATE_PROXY_BIN)",
            bin.display(),
            path.display()
        );
    }
}

/// A mock with keys required, so tests can see exactly which key arrived.
pub(crate) async fn mock() -> MockServer {
    MockServer::start(MockConfig {
        openai_key: Some(OPENAI_KEY.into()),
        anthropic_key: Some(ANTHROPIC_KEY.into()),
        ..Default::default()
    })
    .await
    .expect("mock starts")
}

/// A config with an OpenAI and an Anthropic provider on `mock_url`, keys
/// from files in the proxy's directory; `extra` is appended verbatim (top
/// level YAML), `server_extra` goes inside `server:`.
pub(crate) fn config(mock_url: &str, server_extra: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
metadata: {{name: test}}
server:
  listen: 127.0.0.1:0
  drainDelay: 0s
  drainTimeout: 10s
{server_extra}
admin: {{listen: 127.0.0.1:0}}
upstream: {{credentialRefreshInterval: 1s}}
providers:
  - name: openai
    type: openai
    baseUrl: {mock_url}/v1
    credentials: {{file: KEYDIR/openai-key}}
    models: [gpt-4o-mini, text-embedding-3-small, gpt-3.5-turbo-instruct, "ft:*"]
  - name: anthropic
    type: anthropic
    baseUrl: {mock_url}
    credentials: {{file: KEYDIR/anthropic-key}}
    models: [claude-sonnet-4-5]
{extra}
"#
    )
}

/// `routing:` and `cache:` (top level): one route, `faq`, on the semantic
/// cache (the mock's `bag-of-words-1` embeddings, shared through Redis
/// unless `semantic_extra` says otherwise) with its exact answers in the
/// Redis `store` (a `redis:` block); `semantic_extra` goes inside
/// `cache.semantic`.
pub(crate) fn semantic_on_redis(store: &str, semantic_extra: &str) -> String {
    format!(
        r#"routing:
  routes:
    - name: faq
      targets: [{{provider: openai, model: gpt-4o-mini}}]
cache:
  store: {{type: redis, redis: {store}}}
  semantic:
    embedders:
      - {{name: bow, provider: openai, model: bag-of-words-1, timeout: 2s}}
    threshold: 0.6
    verify: {{share: 0}}
{semantic_extra}  routes:
    - {{name: faq, semantic: {{embedder: bow}}}}
"#
    )
}

/// A running proxy process with its own directory (config and key files).
pub(crate) struct ProxyProc {
    child: Child,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub admin: String,
}

impl ProxyProc {
    /// Writes `config` (with `KEYDIR` replaced) and the two key files, then starts.
    pub(crate) fn start(config: &str) -> ProxyProc {
        Self::start_env(config, &[])
    }

    /// [`ProxyProc::start`] with extra environment variables.
    pub(crate) fn start_env(config: &str, env: &[(&str, &str)]) -> ProxyProc {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("openai-key"), format!("{OPENAI_KEY}\n")).unwrap();
        std::fs::write(dir.path().join("anthropic-key"), ANTHROPIC_KEY).unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            config.replace("KEYDIR", dir.path().to_str().unwrap()),
        )
        .unwrap();
        Self::start_at_env(dir, path, env)
    }

    /// Starts on an existing config path inside `dir`.
    pub(crate) fn start_at(dir: tempfile::TempDir, config_path: PathBuf) -> ProxyProc {
        Self::start_at_env(dir, config_path, &[])
    }

    fn start_at_env(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        env: &[(&str, &str)],
    ) -> ProxyProc {
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let mut child = Command::new(proxy_bin())
            .args(["run", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "info")
            // The listening line on stdout, which this harness reads.
            .env("TOLLGATE_PRINT_ADDRS", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("proxy spawns");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let parse = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(str::to_string)
        };
        let (Some(url), Some(admin)) = (parse("data="), parse("admin=")) else {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.path().join("proxy.log")).unwrap_or_default();
            panic!("proxy did not start; stdout {line:?}; log:\n{log}");
        };
        ProxyProc {
            child,
            dir,
            config_path,
            url,
            admin,
        }
    }

    pub(crate) fn key_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the config in place (KEYDIR substituted).
    pub(crate) fn write_config(&self, config: &str) {
        let text = config.replace("KEYDIR", self.dir.path().to_str().unwrap());
        let tmp = self.config_path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (polling its status, bounded).
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The active config hash from `/config`.
    pub(crate) async fn config_hash(&self) -> String {
        let v: serde_json::Value = reqwest::get(format!("{}/config", self.admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["hash"].as_str().unwrap().to_string()
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns Some, or panics after `within`.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Value of the first sample of `name` whose labels contain every `labels` pair.
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

pub(crate) fn chat(model: &str, text: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}], "stream": stream})
}

pub(crate) fn messages(model: &str, text: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}], "stream": stream})
}
