//! Recording, waiting, stream accounting and the `/__mock/*` control plane.

mod mock_common;

use std::time::Duration;

use futures_util::StreamExt;
use mock_common::*;
use serde_json::{json, Value};

fn slow_stream() -> (Value, [(&'static str, &'static str); 2]) {
    (
        json!({"model": "gpt-4o", "stream": true,
               "messages": [{"role": "user", "content": "keep talking"}]}),
        [("x-mock-chunks", "500"), ("x-mock-chunk-interval-ms", "10")],
    )
}

#[tokio::test]
async fn wait_for_requests_wakes_on_arrival() {
    let mock = open_mock().await;
    let url = mock.url();
    let sender = tokio::spawn(async move {
        for i in 0..3 {
            client()
                .post(format!("{url}/v1/embeddings?try={i}"))
                .json(&json!({"model": "text-embedding-3-small", "input": format!("n{i}")}))
                .send()
                .await
                .unwrap();
        }
    });
    let seen = mock.wait_for_requests(3, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].query.as_deref(), Some("try=2"));
    assert_eq!(seen[1].json()["input"], "n1");
    sender.await.unwrap();

    // A timeout returns what is there.
    let seen = mock.wait_for_requests(10, Duration::from_millis(20)).await;
    assert_eq!(seen.len(), 3);
    mock.clear();
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn client_disconnect_counts_a_cancelled_stream() {
    let mock = open_mock().await;
    let (body, switches) = slow_stream();
    let resp = openai(&mock, "/v1/chat/completions", &body, &switches).await;
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    assert_eq!(mock.active_streams(), 1);
    drop(stream);
    let gone = mock
        .wait_for(Duration::from_secs(10), |m| {
            m.cancelled_streams() == 1 && m.active_streams() == 0
        })
        .await;
    assert!(
        gone,
        "active {} cancelled {}",
        mock.active_streams(),
        mock.cancelled_streams()
    );
    assert_eq!(mock.completed_streams(), 0);
}

#[tokio::test]
async fn http2_stream_reset_counts_a_cancel_too() {
    let mock = open_mock().await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let (body, switches) = slow_stream();
    let resp = c
        .post(format!("{}/v1/chat/completions", mock.url()))
        .headers(headers(&switches))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    assert!(
        mock.wait_for(Duration::from_secs(10), |m| m.cancelled_streams() == 1)
            .await
    );
    // The connection itself lives on and serves the next request.
    let resp = c
        .post(format!("{}/v1/chat/completions", mock.url()))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn completed_streams_are_counted() {
    let mock = open_mock().await;
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    openai(&mock, "/v1/chat/completions", &body, &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        mock.wait_for(Duration::from_secs(5), |m| m.completed_streams() == 1)
            .await
    );
    assert_eq!(mock.active_streams(), 0);
    assert_eq!(mock.cancelled_streams(), 0);
}

#[tokio::test]
async fn control_endpoints_for_out_of_process_tests() {
    let mock = open_mock().await;
    let c = client();
    let base = mock.url();
    openai(
        &mock,
        "/v1/chat/completions",
        &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        &[("x-extra", "1")],
    )
    .await;
    c.post(format!("{base}/v1/embeddings"))
        .body(vec![0xffu8, 0x00])
        .send()
        .await
        .unwrap();

    let records: Value = c
        .get(format!("{base}/__mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2, "control calls are not recorded");
    assert_eq!(records[0]["method"], "POST");
    assert_eq!(records[0]["path"], "/v1/chat/completions");
    assert_eq!(records[0]["bodyEncoding"], "utf8");
    let sent: Value = serde_json::from_str(records[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["model"], "m");
    assert!(records[0]["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["x-extra", "1"])));
    assert_eq!(records[1]["bodyEncoding"], "base64");
    assert_eq!(records[1]["body"], "/wA=");

    let stats: Value = c
        .get(format!("{base}/__mock/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["totalRequests"], 2);
    assert_eq!(stats["recordedRequests"], 2);
    assert_eq!(stats["activeStreams"], 0);
    assert_eq!(stats["cancelledStreams"], 0);

    let resp = c
        .put(format!("{base}/__mock/defaults"))
        .json(&json!({"reply": "from defaults", "chunks": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let defaults: Value = c
        .get(format!("{base}/__mock/defaults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(defaults, json!({"reply": "from defaults", "chunks": 2}));
    let v: Value = openai(
        &mock,
        "/v1/chat/completions",
        &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "from defaults");

    let resp = c
        .put(format!("{base}/__mock/defaults"))
        .json(&json!({"chunkz": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = c
        .delete(format!("{base}/__mock/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(mock.requests().is_empty());
    assert_eq!(
        c.get(format!("{base}/__mock/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn recording_can_be_switched_off() {
    let mock = open_mock().await;
    mock.set_recording(false);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let resp = openai(&mock, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(mock.requests().is_empty());
    let stats: Value = client()
        .get(format!("{}/__mock/stats", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["totalRequests"], 1);
    mock.set_recording(true);
    openai(&mock, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let mock = open_mock().await;
    let url = mock.url();
    mock.shutdown().await;
    let err = client().get(format!("{url}/v1/models")).send().await;
    assert!(err.is_err());
}
