//! SSE framing and the pacing/damage rules of [`SseStream`].

use super::*;
use serde_json::json;
use std::future::poll_fn;

/// `count` events `data: {"i":N}`.
struct Numbers {
    next: usize,
    count: usize,
}

impl EventSource for Numbers {
    fn next_event(&mut self, buf: &mut Vec<u8>) -> bool {
        if self.next == self.count {
            return false;
        }
        data_event(buf, &json!({ "i": self.next }));
        self.next += 1;
        true
    }
    fn len(&self) -> usize {
        self.count
    }
    fn malformed(&self) -> &'static [u8] {
        b"data: {\"i\":\n\n"
    }
}

fn stream(count: usize, pacing: Pacing, stats: &Arc<Stats>) -> SseStream {
    SseStream::new(Box::new(Numbers { next: 0, count }), pacing, stats)
}

async fn drain(s: &mut SseStream) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    loop {
        match poll_fn(|cx| s.poll_event(cx)).await {
            Some(Ok(b)) => out.push(String::from_utf8(b.to_vec()).unwrap()),
            Some(Err(BodyError::Reset)) => return (out, true),
            None => return (out, false),
        }
    }
}

#[test]
fn frames_data_and_named_events() {
    let mut buf = Vec::new();
    data_event(&mut buf, &json!({"a": 1}));
    assert_eq!(buf, b"data: {\"a\":1}\n\n");
    buf.clear();
    named_event(&mut buf, "ping", &json!({"type": "ping"}));
    assert_eq!(buf, b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

#[tokio::test]
async fn emits_every_event_then_counts_completion() {
    let stats = Arc::new(Stats::default());
    let mut s = stream(3, Pacing::default(), &stats);
    assert_eq!(stats.active.load(Ordering::SeqCst), 1);
    let (events, reset) = drain(&mut s).await;
    assert!(!reset);
    assert_eq!(
        events,
        [
            "data: {\"i\":0}\n\n",
            "data: {\"i\":1}\n\n",
            "data: {\"i\":2}\n\n"
        ]
    );
    assert!(s.is_done());
    drop(s);
    assert_eq!(stats.active.load(Ordering::SeqCst), 0);
    assert_eq!(stats.completed.load(Ordering::SeqCst), 1);
    assert_eq!(stats.cancelled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_event_goes_mid_stream() {
    let stats = Arc::new(Stats::default());
    let pacing = Pacing {
        malformed: true,
        ..Pacing::default()
    };
    let (events, _) = drain(&mut stream(4, pacing, &stats)).await;
    assert_eq!(events.len(), 5);
    assert_eq!(events[2], "data: {\"i\":\n\n");
    assert_eq!(events[3], "data: {\"i\":2}\n\n");
}

#[test]
fn spaced_style_is_pythons_json_dumps() {
    let event = b"event: x\ndata: {\"z\":[],\"a\":{\"b\":1,\"c\":[1,2]}}\n\n";
    let out = restyle_event(event);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "event: x\ndata: {\"a\": {\"b\": 1, \"c\": [1, 2]}, \"z\": []}\n\n"
    );
    assert_eq!(restyle_event(b"data: [DONE]\n\n"), b"data: [DONE]\n\n");
}

#[tokio::test]
async fn reset_after_n_events_fails_the_body() {
    let stats = Arc::new(Stats::default());
    let pacing = Pacing {
        reset_after: Some(2),
        ..Pacing::default()
    };
    let mut s = stream(5, pacing, &stats);
    let (events, reset) = drain(&mut s).await;
    assert!(reset);
    assert_eq!(events.len(), 2);
    drop(s);
    assert_eq!(stats.aborted.load(Ordering::SeqCst), 1);
    assert_eq!(stats.cancelled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn dropping_early_counts_a_cancel() {
    let stats = Arc::new(Stats::default());
    let mut s = stream(5, Pacing::default(), &stats);
    assert!(poll_fn(|cx| s.poll_event(cx)).await.is_some());
    drop(s);
    assert_eq!(stats.active.load(Ordering::SeqCst), 0);
    assert_eq!(stats.cancelled.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn waits_ttft_then_the_interval() {
    let stats = Arc::new(Stats::default());
    let pacing = Pacing {
        ttft: Duration::from_millis(500),
        interval: Duration::from_millis(100),
        ..Pacing::default()
    };
    let start = Instant::now();
    let mut s = stream(3, pacing, &stats);
    let mut at = Vec::new();
    while let Some(Ok(_)) = poll_fn(|cx| s.poll_event(cx)).await {
        at.push((Instant::now() - start).as_millis());
    }
    assert_eq!(at, [500, 600, 700]);
}
