//! Server-sent events framing.
//!
//! [`EventSplitter`] re-frames an upstream byte stream so that every frame
//! the proxy forwards ends on an event boundary: complete events go out as
//! soon as their last byte arrives, and at most one partial event is held.
//! [`events`] iterates the events inside such a frame; [`split`] gives
//! them as [`Event`]s that share the frame's buffer, and [`join`] writes
//! what the pipeline made of them back into one frame.

use bytes::{Bytes, BytesMut};

use super::event::Event;

/// Holds back the unfinished tail of an event stream.
#[derive(Debug, Default)]
pub struct EventSplitter {
    buf: BytesMut,
    /// Bytes of `buf` already scanned for a boundary.
    scanned: usize,
}

impl EventSplitter {
    /// Adds upstream bytes; returns the complete events now available (as
    /// one frame), or `None` if the data ends mid-event.
    pub fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        // Fast path: nothing held and the chunk is whole events.
        if self.buf.is_empty() {
            if let Some(end) = last_boundary(&chunk, 0) {
                if end == chunk.len() {
                    return Some(chunk);
                }
                let mut chunk = chunk;
                let head = chunk.split_to(end);
                self.buf.extend_from_slice(&chunk);
                self.scanned = 0;
                return Some(head);
            }
            self.buf.extend_from_slice(&chunk);
            self.scanned = self.buf.len().saturating_sub(3);
            return None;
        }
        self.buf.extend_from_slice(&chunk);
        match last_boundary(&self.buf, self.scanned) {
            Some(end) => {
                let head = self.buf.split_to(end).freeze();
                self.scanned = 0;
                Some(head)
            }
            None => {
                self.scanned = self.buf.len().saturating_sub(3);
                None
            }
        }
    }

    /// Whatever is left when the upstream ends (an unterminated event).
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }

    /// Bytes currently held back.
    pub fn held(&self) -> usize {
        self.buf.len()
    }
}

/// End offset (exclusive) of the last event boundary at or after `from`.
fn last_boundary(buf: &[u8], from: usize) -> Option<usize> {
    let mut found = None;
    let mut i = from;
    while i < buf.len() {
        match buf[i] {
            b'\n' if buf.get(i + 1) == Some(&b'\n') => {
                found = Some(i + 2);
                i += 2;
                continue;
            }
            b'\r'
                if buf.get(i + 1) == Some(&b'\n')
                    && buf.get(i + 2) == Some(&b'\r')
                    && buf.get(i + 3) == Some(&b'\n') =>
            {
                found = Some(i + 4);
                i += 4;
                continue;
            }
            b'\r' if buf.get(i + 1) == Some(&b'\r') => {
                found = Some(i + 2);
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// One event's fields: its `event:` name and its `data:` lines joined by `\n`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fields<'a> {
    pub name: Option<&'a str>,
    pub data: std::borrow::Cow<'a, [u8]>,
}

/// Iterates the complete events in a frame produced by [`EventSplitter`]
/// (tests and fuzz targets read what the proxy wrote).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn events(frame: &[u8]) -> impl Iterator<Item = Fields<'_>> {
    blocks(frame).filter_map(|(_, ev)| ev)
}

/// Iterates the blocks of a frame: each one's bytes as received, its
/// terminating blank line included, with the event it holds (`None` for a
/// comment-only block). Dropping a block from the output drops exactly
/// that event.
pub(crate) fn blocks(frame: &[u8]) -> impl Iterator<Item = (&[u8], Option<Fields<'_>>)> {
    let mut rest = frame;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (block, next) = match last_boundary_first(rest) {
            Some((end, next)) => (&rest[..end], next),
            None => (rest, rest.len()),
        };
        let raw = &rest[..next];
        rest = &rest[next..];
        Some((raw, parse_block(block)))
    })
}

/// First boundary: (end of block, start of next block).
fn last_boundary_first(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' && buf.get(i + 1) == Some(&b'\n') {
            return Some((i, i + 2));
        }
        if buf[i] == b'\r'
            && buf.get(i + 1) == Some(&b'\n')
            && buf.get(i + 2) == Some(&b'\r')
            && buf.get(i + 3) == Some(&b'\n')
        {
            return Some((i, i + 4));
        }
        if buf[i] == b'\r' && buf.get(i + 1) == Some(&b'\r') {
            return Some((i, i + 2));
        }
        i += 1;
    }
    None
}

fn parse_block(block: &[u8]) -> Option<Fields<'_>> {
    let mut name = None;
    let mut data: Option<std::borrow::Cow<'_, [u8]>> = None;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &line[line.len()..]),
        };
        match field {
            b"event" => name = std::str::from_utf8(value).ok(),
            b"data" => {
                data = Some(match data {
                    None => std::borrow::Cow::Borrowed(value),
                    Some(prev) => {
                        let mut v = prev.into_owned();
                        v.push(b'\n');
                        v.extend_from_slice(value);
                        std::borrow::Cow::Owned(v)
                    }
                })
            }
            _ => {}
        }
    }
    if name.is_none() && data.is_none() {
        return None;
    }
    Some(Fields {
        name,
        data: data.unwrap_or(std::borrow::Cow::Borrowed(&[])),
    })
}

/// The blocks of a frame as [`Event`]s: slices of the frame's buffer (the
/// data of a multi-line event is joined into its own).
pub fn split(frame: &Bytes) -> impl Iterator<Item = Event> + '_ {
    blocks(frame).map(move |(raw, fields)| {
        let (name, data) = match fields {
            None => (None, None),
            Some(f) => (
                f.name.map(|n| frame.slice_ref(n.as_bytes())),
                Some(match f.data {
                    std::borrow::Cow::Borrowed(d) => frame.slice_ref(d),
                    std::borrow::Cow::Owned(d) => Bytes::from(d),
                }),
            ),
        };
        Event::received(frame.slice_ref(raw), name, data)
    })
}

/// One frame of `events` (drained): `frame` itself when they are its
/// blocks, in order and unchanged; otherwise their bytes joined. `None`
/// when there is nothing to send.
pub(crate) fn join(frame: &Bytes, events: &mut Vec<Event>) -> Option<Bytes> {
    let base = frame.as_ptr() as usize;
    let mut at = 0;
    let whole = events.iter().all(|ev| {
        let Some(b) = ev.received_bytes() else {
            return false;
        };
        let here = b.as_ptr() as usize == base + at;
        at += b.len();
        here
    });
    if whole && at == frame.len() && !frame.is_empty() {
        events.clear();
        return Some(frame.clone());
    }
    match events.len() {
        0 => None,
        1 => events.pop().map(|mut ev| ev.to_bytes()),
        _ => {
            let mut out = BytesMut::new();
            for mut ev in events.drain(..) {
                out.extend_from_slice(&ev.to_bytes());
            }
            Some(out.freeze())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\ndata: 2}\n\ndata: [DONE]\n\n";

    fn split_all(chunks: &[&[u8]]) -> Vec<Bytes> {
        let mut s = EventSplitter::default();
        let mut out: Vec<Bytes> = chunks
            .iter()
            .filter_map(|c| s.push(Bytes::copy_from_slice(c)))
            .collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn every_split_point_yields_whole_events() {
        for cut in 0..=STREAM.len() {
            let frames = split_all(&[&STREAM[..cut], &STREAM[cut..]]);
            let joined: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
            assert_eq!(joined, STREAM, "cut at {cut}");
            for f in &frames {
                assert!(
                    f.ends_with(b"\n\n"),
                    "frame not on a boundary at cut {cut}: {f:?}"
                );
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
        let frames = split_all(&chunks);
        assert_eq!(
            frames.len(),
            4,
            "one frame per event, including the comment"
        );
    }

    #[test]
    fn blocks_keep_their_bytes_and_parse_their_event() {
        let frame = b"data: 1\n\n: ping\n\nevent: e\r\ndata: 2\r\n\r\ndata: 3";
        let got: Vec<(&[u8], Option<String>)> = blocks(frame)
            .map(|(raw, ev)| {
                (
                    raw,
                    ev.map(|e| String::from_utf8_lossy(&e.data).into_owned()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (&b"data: 1\n\n"[..], Some("1".into())),
                (&b": ping\n\n"[..], None),
                (&b"event: e\r\ndata: 2\r\n\r\n"[..], Some("2".into())),
                (&b"data: 3"[..], Some("3".into())),
            ]
        );
        let joined: Vec<u8> = blocks(frame).flat_map(|(raw, _)| raw.to_vec()).collect();
        assert_eq!(joined, frame, "the blocks are the frame");
    }

    #[test]
    fn holds_only_the_partial_tail() {
        let mut s = EventSplitter::default();
        let out = s.push(Bytes::from_static(b"data: 1\n\ndata: 2")).unwrap();
        assert_eq!(&out[..], b"data: 1\n\n");
        assert_eq!(s.held(), 7);
        assert_eq!(
            &s.push(Bytes::from_static(b"\n\n")).unwrap()[..],
            b"data: 2\n\n"
        );
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn crlf_boundaries() {
        let mut s = EventSplitter::default();
        assert_eq!(
            &s.push(Bytes::from_static(b"data: x\r\n\r\ndata: y\r\n"))
                .unwrap()[..],
            b"data: x\r\n\r\n"
        );
        assert_eq!(
            &s.push(Bytes::from_static(b"\r\n")).unwrap()[..],
            b"data: y\r\n\r\n"
        );
    }

    #[test]
    fn split_and_join_give_back_the_very_frame() {
        let frame = Bytes::from_static(STREAM);
        let mut evs: Vec<Event> = split(&frame).collect();
        assert_eq!(evs.len(), 4, "the comment block too");
        assert_eq!(evs[0].name(), Some("message_start"));
        assert_eq!(evs[2].data(), b"{\"b\":\n2}");
        assert!(evs[1].is_comment());
        let out = join(&frame, &mut evs).unwrap();
        assert_eq!(out.as_ptr(), frame.as_ptr(), "unchanged: the same buffer");
        let mut evs: Vec<Event> = split(&frame).collect();
        evs.remove(1);
        let out = join(&frame, &mut evs).unwrap();
        assert_eq!(
            out,
            &b"event: message_start\ndata: {\"a\":1}\n\ndata: {\"b\":\ndata: 2}\n\ndata: [DONE]\n\n"[..]
        );
        assert_eq!(join(&frame, &mut Vec::new()), None);
    }

    #[test]
    fn parses_events() {
        let evs: Vec<_> = events(STREAM).collect();
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].name, Some("message_start"));
        assert_eq!(&evs[0].data[..], b"{\"a\":1}");
        assert_eq!(&evs[1].data[..], b"{\"b\":\n2}");
        assert_eq!(&evs[2].data[..], b"[DONE]");
    }
}
