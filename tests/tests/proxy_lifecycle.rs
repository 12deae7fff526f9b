//! Black-box: SIGTERM drain.

mod harness;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::*;

/// Reads a stream (begun with `body`) to its end, which must be the SSE
/// `[DONE]`: drained, not cut.
async fn read_to_done(
    mut stream: impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
    mut body: Vec<u8>,
) {
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.expect("the stream is drained, not cut"));
    }
    assert!(String::from_utf8(body)
        .unwrap()
        .trim_end()
        .ends_with("data: [DONE]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_serving_for_the_delay_then_drains_streams_and_exits_zero() {
    let mock = mock().await;
    let cfg = config(&mock.url(), "", "").replace("drainDelay: 0s", "drainDelay: 1500ms");
    let mut proxy = ProxyProc::start(&cfg);
    let c = client();
    let resp = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-chunks", "15")
        .header("x-mock-chunk-interval-ms", "150")
        .json(&chat("gpt-4o-mini", "drain me", true))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let body = stream.next().await.unwrap().unwrap().to_vec();
    let sent = Instant::now();
    proxy.sigterm();
    wait_for(
        "readyz to report draining",
        Duration::from_secs(5),
        || async {
            let r = reqwest::get(format!("{}/readyz", proxy.admin)).await.ok()?;
            (r.status() == 503).then_some(())
        },
    )
    .await;
    // Still accepting during the delay: the app beside us may be finishing.
    let late = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("gpt-4o-mini", "late", false))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 200);
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "test too slow to prove the delay"
    );
    read_to_done(stream, body).await;
    let status = proxy
        .wait_exit(Duration::from_secs(15))
        .expect("the proxy exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        sent.elapsed() >= Duration::from_millis(1500),
        "exited before the drain delay"
    );
    assert!(
        c.get(format!("{}/v1/models", proxy.url))
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn drain_deadline_bounds_shutdown() {
    let mock = mock().await;
    let cfg = config(&mock.url(), "", "").replace("drainTimeout: 10s", "drainTimeout: 300ms");
    let mut proxy = ProxyProc::start(&cfg);
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-chunks", "100")
        .header("x-mock-chunk-interval-ms", "200")
        .json(&chat("gpt-4o-mini", "endless", true))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    let sent = Instant::now();
    proxy.sigterm();
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("the proxy exits at the deadline");
    assert!(status.success(), "exit status {status:?}\n{}", proxy.log());
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert!(proxy.log().contains("drain deadline reached"));
}

/// The SIGTERM handler is in place before the proxy says it listens: a
/// SIGTERM the moment it is up (a pod deleted right after it became ready)
/// drains it and exits 0 instead of killing it. Several rounds, since the
/// window it closes was narrow.
#[tokio::test]
async fn sigterm_right_after_start_drains() {
    let mock = mock().await;
    let cfg = config(&mock.url(), "", "");
    for round in 0..5 {
        let mut proxy = ProxyProc::start(&cfg);
        proxy.sigterm();
        let status = proxy
            .wait_exit(Duration::from_secs(10))
            .expect("the proxy exits");
        assert!(status.success(), "round {round}: exit status {status:?}");
        assert!(
            proxy.log().contains("SIGTERM received"),
            "round {round}: {}",
            proxy.log()
        );
    }
}

/// The perCore runtime (the default) with three workers: each accepts on a
/// `SO_REUSEPORT` listener of its own, so connections spread over all
/// three (the kernel hashes each connection; 40 connections miss one of
/// three workers with odds of about 3·(2/3)^40 ≈ 3e-7), and on SIGTERM
/// every worker drains its own streams to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_core_workers_spread_connections_and_drain_their_own_streams() {
    const STREAMS: usize = 40;
    let mock = mock().await;
    let cfg = config(&mock.url(), "", "");
    let mut proxy = ProxyProc::start_env(&cfg, &[("TOKIO_WORKER_THREADS", "3")]);
    let started = wait_for("the started line", Duration::from_secs(5), || async {
        let log = proxy.log();
        log.contains(" started ").then_some(log)
    })
    .await;
    assert!(
        started.contains("workers=3") && started.contains("runtime=\"perCore\""),
        "{started}"
    );
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        // A client of its own: a connection of its own.
        let resp = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .header("x-mock-chunks", "8")
            .header("x-mock-chunk-interval-ms", "100")
            .json(&chat("gpt-4o-mini", &format!("stream {i}"), true))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut stream = resp.bytes_stream();
        let first = stream.next().await.unwrap().unwrap().to_vec();
        streams.push((stream, first));
    }
    let text = proxy.metrics().await;
    let open: Vec<f64> = (0..3)
        .map(|w| {
            metric(
                &text,
                "tollgate_connections_open",
                &[("worker", &w.to_string())],
            )
            .unwrap_or(0.0)
        })
        .collect();
    assert_eq!(open.iter().sum::<f64>(), STREAMS as f64, "{open:?}");
    assert!(
        open.iter().all(|n| *n >= 1.0),
        "a worker got no connection: {open:?}"
    );
    assert_eq!(
        metric(&text, "tollgate_connections_open", &[("worker", "3")]),
        None,
        "only workers 0..3"
    );
    proxy.sigterm();
    for (stream, body) in streams {
        read_to_done(stream, body).await;
    }
    let status = proxy
        .wait_exit(Duration::from_secs(15))
        .expect("the proxy exits");
    assert!(status.success(), "exit status {status:?}\n{}", proxy.log());
}

/// `server.runtime: workStealing`: one runtime whose workers share every
/// connection, all counted as worker 0.
#[tokio::test]
async fn work_stealing_runtime_serves_every_connection_as_one_worker() {
    let mock = mock().await;
    let cfg = config(&mock.url(), "  runtime: workStealing", "");
    let proxy = ProxyProc::start_env(&cfg, &[("TOKIO_WORKER_THREADS", "3")]);
    let started = wait_for("the started line", Duration::from_secs(5), || async {
        let log = proxy.log();
        log.contains(" started ").then_some(log)
    })
    .await;
    assert!(
        started.contains("workers=3") && started.contains("runtime=\"workStealing\""),
        "{started}"
    );
    for i in 0..6 {
        let resp = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&chat("gpt-4o-mini", &format!("hello {i}"), false))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let text = proxy.metrics().await;
    assert_eq!(
        metric(&text, "tollgate_connections_total", &[("worker", "0")]),
        Some(6.0)
    );
    assert_eq!(
        metric(&text, "tollgate_connections_total", &[("worker", "1")]),
        None
    );
}

/// The per-core workers share their port through `SO_REUSEPORT`, which
/// must not let a second proxy started on the same port join them (and
/// take half the traffic): it refuses to start, naming the address.
#[tokio::test]
async fn a_second_proxy_on_a_taken_port_refuses_to_start() {
    let mock = mock().await;
    let port = tollgate_tests::free_port();
    let cfg = config(&mock.url(), "", "").replacen(
        "listen: 127.0.0.1:0",
        &format!("listen: 127.0.0.1:{port}"),
        1,
    );
    let first = ProxyProc::start_env(&cfg, &[("TOKIO_WORKER_THREADS", "2")]);
    assert!(first.url.ends_with(&format!(":{port}")), "{}", first.url);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        cfg.replace("KEYDIR", first.key_dir().to_str().unwrap()),
    )
    .unwrap();
    let log = dir.path().join("second.log");
    let mut second = std::process::Command::new(proxy_bin())
        .args(["run", "--config"])
        .arg(&path)
        .env("TOKIO_WORKER_THREADS", "2")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // It exits at once; one that shares the port instead keeps running.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!(
                "a second proxy started on a taken port:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (server.listen)"
        )),
        "{stderr}"
    );
    // The first keeps serving.
    let r = client()
        .post(format!("{}/v1/chat/completions", first.url))
        .json(&chat("gpt-4o-mini", "still here", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
