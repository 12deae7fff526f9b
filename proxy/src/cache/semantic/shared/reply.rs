//! Stream ids, and what `XRANGE`, `XREAD` and `XINFO STREAM` answer, read
//! from Redis' replies.

use std::collections::HashMap;
use std::fmt;

use redis::{FromRedisValue, Value};

/// A stream entry's id: Redis' clock in milliseconds when it was added,
/// and a sequence number within that millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct StreamId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl StreamId {
    /// Before every entry.
    pub(crate) const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    pub(crate) fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    pub(crate) fn parse(s: &str) -> Option<StreamId> {
        let (ms, seq) = s.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The smallest id after this one (an inclusive `XRANGE` start that
    /// leaves this one out, on any Redis version).
    pub(crate) fn next(self) -> StreamId {
        match self.seq.checked_add(1) {
            Some(seq) => StreamId { ms: self.ms, seq },
            None => StreamId {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry: its id and the value of its field `e`, if it has one.
pub(crate) type Item = (StreamId, Option<Vec<u8>>);

/// An entry as Redis sends it: the id and the fields and values in turn.
pub(crate) type RawEntry = (String, Vec<Vec<u8>>);

/// What `XREAD` answers: entries by stream key, or nil when none arrived.
pub(crate) type RawRead = Option<Vec<(String, Vec<RawEntry>)>>;

/// The entries of an `XRANGE` (or one stream of an `XREAD`) reply, oldest
/// first.
pub(crate) fn entries(raw: Vec<RawEntry>) -> Vec<Item> {
    raw.into_iter()
        .filter_map(|(id, fields)| {
            let value = fields
                .chunks_exact(2)
                .find(|kv| kv[0] == b"e")
                .map(|kv| kv[1].clone());
            Some((StreamId::parse(&id)?, value))
        })
        .collect()
}

/// What `XINFO STREAM` says about a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Info {
    /// The last id ever added (entries since trimmed included).
    pub(crate) last: StreamId,
    /// The oldest entry kept, if any.
    pub(crate) first: Option<StreamId>,
}

impl Info {
    /// From `XINFO STREAM`'s fields; `None` without a last id.
    pub(crate) fn parse(fields: &HashMap<String, Value>) -> Option<Info> {
        let id = |v: &Value| -> Option<StreamId> {
            StreamId::parse(&String::from_redis_value_ref(v).ok()?)
        };
        let first = match fields.get("first-entry") {
            Some(Value::Array(entry)) => entry.first().and_then(id),
            _ => None,
        };
        Some(Info {
            last: id(fields.get("last-generated-id")?)?,
            first,
        })
    }

    /// Whether the stream was trimmed past `cursor`: the entry read last
    /// is gone, and entries after it may have gone unread. (Redis does not
    /// say which were trimmed: `max-deleted-entry-id` follows `XDEL` only.)
    pub(crate) fn trimmed_past(&self, cursor: StreamId) -> bool {
        self.first.is_some_and(|f| f > cursor)
    }
}
