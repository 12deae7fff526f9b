//! Black-box: config and credential hot reload under traffic.

mod harness;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::*;

/// Sends requests on `n` tasks until stopped; counts successes and failures.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(url: &str, n: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let tasks = (0..n)
            .map(|i| {
                let (stop, ok, failed, url) =
                    (stop.clone(), ok.clone(), failed.clone(), url.to_string());
                tokio::spawn(async move {
                    let c = reqwest::Client::new();
                    let mut k = 0;
                    while !stop.load(Ordering::Relaxed) && k < 100_000 {
                        k += 1;
                        let stream = (i + k) % 2 == 0;
                        let r = c
                            .post(format!("{url}/v1/chat/completions"))
                            .json(&chat("gpt-4o-mini", "steady traffic", stream))
                            .send()
                            .await;
                        let good = match r {
                            Ok(r) if r.status() == 200 => r.text().await.is_ok(),
                            _ => false,
                        };
                        if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

async fn status_of(url: &str, model: &str) -> u16 {
    client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat(model, "hi", false))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_reload_applies_and_invalid_is_refused_under_traffic() {
    let mock = mock().await;
    let base = config(&mock.url(), "", "");
    let proxy = ProxyProc::start(&base);
    let first = proxy.config_hash().await;
    assert_eq!(status_of(&proxy.url, "gpt-4o").await, 404);
    let traffic = Traffic::start(&proxy.url, 4);

    // A valid change: a new model appears.
    proxy.write_config(&base.replace("models: [gpt-4o-mini,", "models: [gpt-4o, gpt-4o-mini,"));
    let second = wait_for("the new config", Duration::from_secs(10), || async {
        let h = proxy.config_hash().await;
        (h != first).then_some(h)
    })
    .await;
    assert_eq!(status_of(&proxy.url, "gpt-4o").await, 200);

    // An invalid change: refused, counted, last good config keeps serving.
    proxy.write_config(&base.replace("type: anthropic", "type: antropic"));
    let m = wait_for("the reload failure", Duration::from_secs(10), || async {
        let m = proxy.metrics().await;
        metric(
            &m,
            "tollgate_config_reloads_total",
            &[("result", "failure")],
        )
        .map(|_| m)
    })
    .await;
    assert_eq!(
        metric(&m, "tollgate_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric(&m, "tollgate_config_info", &[("hash", &second)]),
        Some(1.0)
    );
    assert_eq!(proxy.config_hash().await, second);
    assert_eq!(status_of(&proxy.url, "gpt-4o").await, 200);
    assert!(
        proxy.log().contains("antropic"),
        "the log says what was wrong"
    );

    // The bad edit reverted: the file again holds the active config, so the
    // last reload ended valid and the alert's gauge clears.
    proxy.write_config(&base.replace("models: [gpt-4o-mini,", "models: [gpt-4o, gpt-4o-mini,"));
    wait_for("the gauge back to 1", Duration::from_secs(10), || async {
        let m = proxy.metrics().await;
        (metric(&m, "tollgate_config_last_reload_successful", &[]) == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(proxy.config_hash().await, second);

    let (ok, failed) = traffic.finish().await;
    assert!(ok > 20, "traffic ran: {ok}");
    assert_eq!(failed, 0, "no request failed across reloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_is_picked_up() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let keydir = dir.path().to_str().unwrap().to_string();
    std::fs::write(dir.path().join("openai-key"), OPENAI_KEY).unwrap();
    std::fs::write(dir.path().join("anthropic-key"), ANTHROPIC_KEY).unwrap();
    let base = config(&mock.url(), "", "").replace("KEYDIR", &keydir);
    // The kubelet's layout: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>.
    let v1 = dir.path().join("..2026_11_28_00_00_00.1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("config.yaml"), &base).unwrap();
    std::os::unix::fs::symlink("..2026_11_28_00_00_00.1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", dir.path().join("config.yaml")).unwrap();
    let path = dir.path().join("config.yaml");
    let proxy = ProxyProc::start_at(dir, path);
    let first = proxy.config_hash().await;
    let traffic = Traffic::start(&proxy.url, 2);

    let root = proxy.key_dir().to_path_buf();
    let v2 = root.join("..2026_11_28_00_01_00.2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(
        v2.join("config.yaml"),
        base.replace("models: [gpt-4o-mini,", "models: [gpt-4o, gpt-4o-mini,"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_28_00_01_00.2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_11_28_00_00_00.1")).unwrap();

    wait_for("the swapped config", Duration::from_secs(10), || async {
        (proxy.config_hash().await != first).then_some(())
    })
    .await;
    assert_eq!(status_of(&proxy.url, "gpt-4o").await, 200);
    let (ok, failed) = traffic.finish().await;
    assert!(ok > 0);
    assert_eq!(failed, 0);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_config_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "tollgate_config_reloads_total",
            &[("result", "failure")]
        ),
        None
    );
}

#[tokio::test]
async fn rotated_credential_files_are_reread() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let proxy = ProxyProc::start(&config(&mock.url(), "", ""));
    assert_eq!(status_of(&proxy.url, "gpt-4o-mini").await, 200);
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    std::fs::write(proxy.key_dir().join("openai-key"), "sk-rotated").unwrap();
    wait_for(
        "the rotated key upstream",
        Duration::from_secs(10),
        || async {
            mock.clear();
            assert_eq!(status_of(&proxy.url, "gpt-4o-mini").await, 200);
            (mock.requests()[0].header("authorization") == Some("Bearer sk-rotated")).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn readiness_follows_credentials() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config(&mock.url(), "", ""));
    std::fs::remove_file(proxy.key_dir().join("anthropic-key")).unwrap();
    let body = wait_for("not ready", Duration::from_secs(10), || async {
        let r = reqwest::get(format!("{}/readyz", proxy.admin))
            .await
            .unwrap();
        (r.status() == 503).then_some(r.text().await.unwrap())
    })
    .await;
    assert!(body.contains("provider `anthropic`"), "{body}");
    let r = client()
        .post(format!("{}/v1/messages", proxy.url))
        .json(&messages("claude-sonnet-4-5", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("credentials for provider `anthropic`"));
    assert!(!v.to_string().contains(ANTHROPIC_KEY));
    // The OpenAI side keeps working meanwhile.
    assert_eq!(status_of(&proxy.url, "gpt-4o-mini").await, 200);
    std::fs::write(proxy.key_dir().join("anthropic-key"), ANTHROPIC_KEY).unwrap();
    wait_for("ready again", Duration::from_secs(10), || async {
        let r = reqwest::get(format!("{}/readyz", proxy.admin))
            .await
            .unwrap();
        (r.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn admin_config_is_redacted_and_secrets_stay_out_of_logs() {
    let mock = mock().await;
    let cfg = config(&mock.url(), "", "").replace(
        "    models: [claude-sonnet-4-5]",
        "    models: [claude-sonnet-4-5]\n    headers: {x-gateway-token: very-secret-value}",
    );
    let proxy = ProxyProc::start(&cfg);
    let r = client()
        .post(format!("{}/v1/messages", proxy.url))
        .json(&messages(
            "claude-sonnet-4-5",
            "my email is jane@example.com",
            false,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        mock.requests()[0].header("x-gateway-token"),
        Some("very-secret-value")
    );
    let text = reqwest::get(format!("{}/config", proxy.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("very-secret-value"));
    assert!(text.contains("claude-sonnet-4-5"));
    let metrics = proxy.metrics().await;
    let log = proxy.log();
    for (what, hay) in [("config", &text), ("metrics", &metrics), ("log", &log)] {
        for secret in [
            OPENAI_KEY,
            ANTHROPIC_KEY,
            "very-secret-value",
            "jane@example.com",
        ] {
            assert!(!hay.contains(secret), "{secret} leaked into {what}");
        }
    }
    assert!(
        log.contains("tollgate::access"),
        "access log present: {log}"
    );
}
