//! Bodies: reading up to a limit, frames forwarded as the very buffers
//! that arrived, events re-framed, and the one `End` a filter hears.

use std::sync::{Arc, Mutex};

use super::*;

fn chunked(
    parts: &[&'static str],
) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin + Send + 'static {
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = parts
        .iter()
        .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
        .collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(frames))
}

/// Passes events on; records the frames sent and how the body ended.
#[derive(Clone, Default)]
struct Record(Arc<Mutex<(Vec<Bytes>, Vec<End>)>>);

impl Filter for Record {
    fn event(&mut self, ev: Event, out: &mut Vec<Event>) {
        out.push(ev);
    }
    fn finish(&mut self, _out: &mut Vec<Event>) {}
    fn sent(&mut self, data: &Bytes) {
        self.0.lock().unwrap().0.push(data.clone());
    }
    fn end(&mut self, end: End) {
        self.0.lock().unwrap().1.push(end);
    }
    fn error_event(&self, message: &str) -> Bytes {
        Bytes::from(format!("data: {message}\n\n"))
    }
}

fn limits() -> Limits {
    Limits {
        idle: Duration::from_secs(60),
        deadline: Instant::now() + Duration::from_secs(60),
    }
}

#[tokio::test]
async fn reads_whole_bodies_of_unknown_length_up_to_a_limit() {
    let mut small = chunked(&["{\"usage\":", "{}}"]);
    let Ok(Read::Whole(b)) = read_up_to(&mut small, 100).await else {
        panic!("whole")
    };
    assert_eq!(b, "{\"usage\":{}}");
    let mut big = chunked(&["aaaa", "bbbb", "cccc"]);
    let Ok(Read::Prefix(p)) = read_up_to(&mut big, 5).await else {
        panic!("prefix")
    };
    assert_eq!(p, "aaaabbbb");
    let rest = http_body_util::BodyExt::collect(big)
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "cccc", "the rest stays in the body");
}

#[tokio::test]
async fn forwards_the_very_buffers_that_arrived() {
    let parts = ["data: {\"a\":1}\n\n", "data: [DONE]\n\n"];
    for stream in [false, true] {
        let rec = Record::default();
        let body = upstream_body(chunked(&parts));
        let mut b = if stream {
            ResponseBody::stream(body, None, limits(), Box::new(rec.clone()))
        } else {
            ResponseBody::raw(body, None, Box::new(rec.clone()))
        };
        let mut got = Vec::new();
        while let Some(f) = b.frame().await {
            got.push(f.unwrap().into_data().unwrap());
        }
        drop(b);
        let (sent, ends) = rec.0.lock().unwrap().clone();
        assert_eq!(got.len(), 2);
        for (g, p) in got.iter().zip(parts) {
            assert_eq!(g.as_ptr(), p.as_ptr(), "stream {stream}: the same buffer");
        }
        assert_eq!(sent, got);
        assert_eq!(ends, [End::Completed], "stream {stream}: one end");
    }
}

#[tokio::test]
async fn events_split_across_reads_are_sent_whole_and_a_cut_stream_closes() {
    let rec = Record::default();
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
        Ok(Frame::data(Bytes::from_static(b"data: {\"a\""))),
        Ok(Frame::data(Bytes::from_static(b":1}\n\ndata: {"))),
        Err("reset".into()),
    ];
    let body = upstream_body(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )));
    let mut b = ResponseBody::stream(body, None, limits(), Box::new(rec.clone()));
    let mut got = Vec::new();
    while let Some(f) = b.frame().await {
        got.push(f.unwrap().into_data().unwrap());
    }
    assert_eq!(
        got,
        [
            &b"data: {\"a\":1}\n\n"[..],
            b"data: the provider's stream ended abruptly\n\n"
        ]
    );
    drop(b);
    let ends = rec.0.lock().unwrap().1.clone();
    assert_eq!(
        ends,
        [End::Failed {
            reason: "upstream_reset",
            closed: true
        }]
    );
}

#[tokio::test]
async fn a_body_dropped_before_its_end_was_left() {
    let rec = Record::default();
    let body = upstream_body(chunked(&["data: 1\n\n", "data: 2\n\n"]));
    let mut b = ResponseBody::stream(body, None, limits(), Box::new(rec.clone()));
    b.frame().await.unwrap().unwrap();
    drop(b);
    assert_eq!(rec.0.lock().unwrap().1, [End::Gone]);
}
