//! Black-box: SIGTERM drain.

mod harness;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::*;

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
    let mut body = stream.next().await.unwrap().unwrap().to_vec();
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
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.expect("the stream is drained, not cut"));
    }
    assert!(String::from_utf8(body)
        .unwrap()
        .trim_end()
        .ends_with("data: [DONE]"));
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
