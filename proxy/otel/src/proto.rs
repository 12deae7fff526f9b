//! OTLP's trace request (`ExportTraceServiceRequest`, opentelemetry-proto
//! `trace/v1` and `collector/trace/v1`), written in protobuf's wire format
//! straight from the SDK's finished spans.
//!
//! The exporter crate converts every span into a tree of generated message
//! structs (copying each name and attribute into new strings, grouping
//! spans in hash maps) and then encodes that tree: about 25 k instructions
//! per span, more than the request it describes. Writing the bytes from
//! the spans directly costs a few thousand. The resource is encoded once.
//! `tests` checks the bytes against the generated messages and the
//! exporter crate's own conversion.

use std::time::SystemTime;

use opentelemetry::trace::{SpanKind, Status, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// `SpanFlags`: the low byte is the W3C trace flags; these say whether the
/// parent was remote (the context knows, so the first bit is always set).
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// Writes export requests for one process: its resource is encoded once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Encoder {
    /// The `Resource` message's body.
    resource: Vec<u8>,
    resource_schema: Option<String>,
}

impl Encoder {
    pub(crate) fn new(resource: &Resource) -> Encoder {
        let mut body = Vec::new();
        for (k, v) in resource.iter() {
            attribute(&mut body, 1, k.as_str(), v);
        }
        Encoder {
            resource: body,
            resource_schema: resource.schema_url().map(str::to_owned),
        }
    }

    /// Appends the `ExportTraceServiceRequest` for `spans` to `out`: one
    /// `ResourceSpans`, one `ScopeSpans` per instrumentation scope.
    pub(crate) fn request(&self, spans: &[SpanData], out: &mut Vec<u8>) {
        // A server span with its attributes is about 700 bytes, a phase's 150.
        out.reserve(spans.len() * 512 + self.resource.len() + 64);
        message(out, 1, |rs| {
            message(rs, 1, |r| r.extend_from_slice(&self.resource));
            let mut scopes: Vec<&InstrumentationScope> = Vec::new();
            for span in spans {
                let scope = &span.instrumentation_scope;
                if scopes.contains(&scope) {
                    continue;
                }
                scopes.push(scope);
                message(rs, 2, |ss| {
                    message(ss, 1, |s| instrumentation_scope(s, scope));
                    for span in spans.iter().filter(|s| &s.instrumentation_scope == scope) {
                        message(ss, 2, |s| self::span(s, span));
                    }
                    if let Some(url) = scope.schema_url() {
                        string(ss, 3, url);
                    }
                });
            }
            if let Some(url) = &self.resource_schema {
                string(rs, 3, url);
            }
        });
    }
}

fn instrumentation_scope(b: &mut Vec<u8>, scope: &InstrumentationScope) {
    string(b, 1, scope.name());
    if let Some(v) = scope.version() {
        string(b, 2, v);
    }
    for kv in scope.attributes() {
        attribute(b, 3, kv.key.as_str(), &kv.value);
    }
}

fn span(b: &mut Vec<u8>, s: &SpanData) {
    let cx = &s.span_context;
    bytes(b, 1, &cx.trace_id().to_bytes());
    bytes(b, 2, &cx.span_id().to_bytes());
    trace_state(b, 3, cx.trace_state());
    if s.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes(b, 4, &s.parent_span_id.to_bytes());
    }
    string(b, 5, &s.name);
    uint(b, 6, kind(&s.span_kind));
    fixed64(b, 7, nanos(s.start_time));
    fixed64(b, 8, nanos(s.end_time));
    attributes(b, 9, &s.attributes);
    uint(b, 10, s.dropped_attributes_count.into());
    for e in s.events.iter() {
        message(b, 11, |b| {
            fixed64(b, 1, nanos(e.timestamp));
            string(b, 2, &e.name);
            attributes(b, 3, &e.attributes);
            uint(b, 4, e.dropped_attributes_count.into());
        });
    }
    uint(b, 12, s.events.dropped_count.into());
    for l in s.links.iter() {
        message(b, 13, |b| {
            let cx = &l.span_context;
            bytes(b, 1, &cx.trace_id().to_bytes());
            bytes(b, 2, &cx.span_id().to_bytes());
            trace_state(b, 3, cx.trace_state());
            attributes(b, 4, &l.attributes);
            uint(b, 5, l.dropped_attributes_count.into());
            fixed32(b, 6, flags(cx.trace_flags().to_u8(), cx.is_remote()));
        });
    }
    uint(b, 14, s.links.dropped_count.into());
    message(b, 15, |b| {
        // `Status`: field 1 is reserved.
        let code = match &s.status {
            Status::Unset => 0,
            Status::Ok => 1,
            Status::Error { description } => {
                string(b, 2, description);
                2
            }
        };
        uint(b, 3, code);
    });
    fixed32(
        b,
        16,
        flags(cx.trace_flags().to_u8(), s.parent_span_is_remote),
    );
}

fn flags(trace_flags: u8, remote: bool) -> u32 {
    let mut f = u32::from(trace_flags) | CONTEXT_HAS_IS_REMOTE;
    if remote {
        f |= CONTEXT_IS_REMOTE;
    }
    f
}

fn kind(k: &SpanKind) -> u64 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn trace_state(b: &mut Vec<u8>, field: u32, state: &TraceState) {
    if state != &TraceState::NONE {
        string(b, field, &state.header());
    }
}

fn attributes(b: &mut Vec<u8>, field: u32, kvs: &[KeyValue]) {
    for kv in kvs {
        attribute(b, field, kv.key.as_str(), &kv.value);
    }
}

/// A `KeyValue` field. A scalar's sizes are known before writing, so its
/// lengths are written first (most attributes); an array goes through
/// [`message`].
fn attribute(b: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    // `AnyValue`'s member, its wire type and its encoded size.
    let (field_no, wire, scalar) = match value {
        Value::String(s) => (1, LEN, s.as_str().len()),
        Value::Bool(_) => (2, VARINT, 1),
        Value::I64(v) => (3, VARINT, varint_len(*v as u64)),
        Value::F64(_) => (4, FIXED64, 8),
        _ => return message(b, field, |b| key_value(b, key, value)),
    };
    let any =
        1 + if wire == LEN {
            varint_len(scalar as u64)
        } else {
            0
        } + scalar;
    let kv = 1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(any as u64) + any;
    tag(b, field, LEN);
    varint(b, kv as u64);
    tag(b, 1, LEN);
    len_prefixed(b, key.as_bytes());
    tag(b, 2, LEN);
    varint(b, any as u64);
    tag(b, field_no, wire);
    match value {
        Value::String(s) => len_prefixed(b, s.as_str().as_bytes()),
        Value::Bool(v) => varint(b, u64::from(*v)),
        Value::I64(v) => varint(b, *v as u64),
        Value::F64(v) => b.extend_from_slice(&v.to_bits().to_le_bytes()),
        _ => unreachable!("arrays went through message()"),
    }
}

fn varint_len(v: u64) -> usize {
    // 7 bits a byte; 0 still takes one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// `KeyValue { key = 1; AnyValue value = 2 }`.
fn key_value(b: &mut Vec<u8>, key: &str, value: &Value) {
    string(b, 1, key);
    message(b, 2, |b| any_value(b, value));
}

/// `AnyValue`'s oneof: a member is written even when it holds its default.
fn any_value(b: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => {
            tag(b, 1, LEN);
            len_prefixed(b, s.as_str().as_bytes());
        }
        Value::Bool(v) => {
            tag(b, 2, VARINT);
            varint(b, u64::from(*v));
        }
        Value::I64(v) => {
            tag(b, 3, VARINT);
            varint(b, *v as u64);
        }
        Value::F64(v) => {
            tag(b, 4, FIXED64);
            b.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        Value::Array(a) => message(b, 5, |b| match a {
            Array::Bool(vs) => each(b, vs, |v| Value::Bool(*v)),
            Array::I64(vs) => each(b, vs, |v| Value::I64(*v)),
            Array::F64(vs) => each(b, vs, |v| Value::F64(*v)),
            Array::String(vs) => each(b, vs, |v| Value::String(v.clone())),
            // A kind of array added to the API later: written as its text.
            other => message(b, 1, |b| {
                any_value(b, &Value::String(other.to_string().into()))
            }),
        }),
        // A kind of value added to the API later: written as its text.
        other => {
            tag(b, 1, LEN);
            len_prefixed(b, other.as_str().as_bytes());
        }
    }
}

/// `ArrayValue { repeated AnyValue values = 1 }`.
fn each<T>(b: &mut Vec<u8>, vs: &[T], f: impl Fn(&T) -> Value) {
    for v in vs {
        message(b, 1, |b| any_value(b, &f(v)));
    }
}

// === the wire format ===

fn tag(b: &mut Vec<u8>, field: u32, wire: u8) {
    varint(b, u64::from(field << 3 | u32::from(wire)));
}

pub(crate) fn varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn len_prefixed(b: &mut Vec<u8>, data: &[u8]) {
    varint(b, data.len() as u64);
    b.extend_from_slice(data);
}

/// A scalar field at its default is not written (proto3).
fn uint(b: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(b, field, VARINT);
        varint(b, v);
    }
}

fn fixed64(b: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(b, field, FIXED64);
        b.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed32(b: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        tag(b, field, FIXED32);
        b.extend_from_slice(&v.to_le_bytes());
    }
}

fn bytes(b: &mut Vec<u8>, field: u32, data: &[u8]) {
    if !data.is_empty() {
        tag(b, field, LEN);
        len_prefixed(b, data);
    }
}

fn string(b: &mut Vec<u8>, field: u32, s: &str) {
    bytes(b, field, s.as_bytes());
}

/// An embedded message: written in place after a one-byte length, which is
/// widened afterwards when the message outgrew it (a memmove of the
/// message, cheaper than sizing every message twice).
fn message(b: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    tag(b, field, LEN);
    let at = b.len();
    b.push(0);
    body(b);
    let len = b.len() - at - 1;
    if len < 0x80 {
        b[at] = len as u8;
        return;
    }
    let mut prefix = Vec::with_capacity(10);
    varint(&mut prefix, len as u64);
    b.splice(at..at + 1, prefix);
}

/// The `rejected_spans` of an `ExportTraceServiceResponse`'s
/// `partial_success` (field 1: `{ int64 rejected_spans = 1; string
/// error_message = 2 }`); 0 when absent or unreadable.
pub(crate) fn rejected_spans(response: &[u8]) -> u64 {
    fields(response)
        .find(|(f, _)| *f == 1)
        .and_then(|(_, v)| match v {
            Field::Len(partial) => fields(partial).find_map(|(f, v)| match (f, v) {
                (1, Field::Varint(n)) => Some(n),
                _ => None,
            }),
            Field::Varint(_) => None,
        })
        .unwrap_or(0)
}

enum Field<'a> {
    Varint(u64),
    Len(&'a [u8]),
}

/// The top-level fields of a message, stopping at anything malformed.
fn fields(mut b: &[u8]) -> impl Iterator<Item = (u32, Field<'_>)> {
    std::iter::from_fn(move || {
        let key = read_varint(&mut b)?;
        let field = (key >> 3) as u32;
        let v = match key & 7 {
            0 => Field::Varint(read_varint(&mut b)?),
            2 => {
                let n = usize::try_from(read_varint(&mut b)?).ok()?;
                let (v, rest) = (b.get(..n)?, b.get(n..)?);
                b = rest;
                Field::Len(v)
            }
            1 => {
                b = b.get(8..)?;
                Field::Varint(0)
            }
            5 => {
                b = b.get(4..)?;
                Field::Varint(0)
            }
            _ => return None,
        };
        Some((field, v))
    })
}

fn read_varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *b = &b[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use opentelemetry::trace::{Event, Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message;

    use super::*;

    fn context(trace: u128, span: u64, remote: bool, state: TraceState) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            state,
        )
    }

    fn scope(name: &'static str) -> InstrumentationScope {
        InstrumentationScope::builder(name)
            .with_version("1.2.3")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .with_attributes([KeyValue::new("scope.attr", 7)])
            .build()
    }

    /// Spans using every part of the format: kinds, parents local and
    /// remote, every value type (and empty ones), events, links, statuses,
    /// trace state, two scopes, messages longer than 127 and 16 383 bytes.
    fn spans() -> Vec<SpanData> {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
        let state = TraceState::from_key_value([("vendor", "abc")]).unwrap();
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "retry",
            t0 + Duration::from_millis(5),
            vec![KeyValue::new("reason", "timeout")],
            1,
        ));
        events.dropped_count = 2;
        let mut links = SpanLinks::default();
        links.links.push(Link::new(
            context(7, 8, true, TraceState::NONE),
            vec![KeyValue::new("link", true)],
            4,
        ));
        links.dropped_count = 5;
        let server = SpanData {
            span_context: context(
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                false,
                state.clone(),
            ),
            parent_span_id: SpanId::from(0x1122334455667788),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed("chat gpt-4o-mini"),
            start_time: t0,
            end_time: t0 + Duration::from_millis(120),
            attributes: vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.usage.input_tokens", 1234_i64),
                KeyValue::new("tollgate.cost_usd", 0.000_123_4),
                KeyValue::new("tollgate.stream", false),
                KeyValue::new("zero", 0_i64),
                KeyValue::new("negative", -5_i64),
                KeyValue::new("empty", ""),
                KeyValue::new("long", "x".repeat(20_000)),
                KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    Value::Array(Array::String(vec!["stop".into(), "length".into()])),
                ),
                KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
                KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, 300]))),
                KeyValue::new("floats", Value::Array(Array::F64(vec![0.5, -2.0]))),
            ],
            dropped_attributes_count: 3,
            events,
            links,
            status: Status::error("upstream_error"),
            instrumentation_scope: scope("tollgate-proxy"),
        };
        let child = SpanData {
            span_context: context(
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                9,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::from(0x00f067aa0ba902b7),
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Owned("attempt".to_string()),
            start_time: t0,
            end_time: t0 + Duration::from_millis(100),
            attributes: vec![],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Ok,
            instrumentation_scope: scope("tollgate-proxy"),
        };
        let mut others = Vec::new();
        for (i, k) in [SpanKind::Internal, SpanKind::Producer, SpanKind::Consumer]
            .into_iter()
            .enumerate()
        {
            others.push(SpanData {
                span_kind: k,
                span_context: context(5, 10 + i as u64, false, TraceState::NONE),
                parent_span_id: SpanId::INVALID,
                parent_span_is_remote: false,
                status: Status::Unset,
                instrumentation_scope: InstrumentationScope::builder("other").build(),
                ..child.clone()
            });
        }
        let mut all = vec![server, child.clone()];
        all.extend(others);
        all.push(SpanData {
            span_context: context(6, 20, false, TraceState::NONE),
            ..child
        });
        all
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_service_name("tollgate-proxy")
            .with_attributes([
                KeyValue::new("k8s.pod.name", "app-1"),
                KeyValue::new("k8s.pod.uid", "u"),
            ])
            .with_schema_url([], "https://opentelemetry.io/schemas/1.30.0")
            .build()
    }

    fn sorted(mut r: ExportTraceServiceRequest) -> ExportTraceServiceRequest {
        for rs in &mut r.resource_spans {
            if let Some(res) = &mut rs.resource {
                res.attributes.sort_by(|a, b| a.key.cmp(&b.key));
            }
            rs.scope_spans.sort_by(|a, b| {
                let name = |s: &opentelemetry_proto::tonic::trace::v1::ScopeSpans| {
                    s.scope.as_ref().map(|s| s.name.clone())
                };
                name(a).cmp(&name(b))
            });
            for ss in &mut rs.scope_spans {
                ss.spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
            }
        }
        r
    }

    #[test]
    fn the_bytes_decode_to_what_the_exporter_crate_would_send() {
        let spans = spans();
        let resource = resource();
        let mut ours = Vec::new();
        Encoder::new(&resource).request(&spans, &mut ours);
        let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).expect("valid protobuf");

        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans.clone(),
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(sorted(decoded.clone()), sorted(theirs));

        // One ResourceSpans; a ScopeSpans per scope, spans kept in order.
        assert_eq!(decoded.resource_spans.len(), 1);
        let rs: &ResourceSpans = &decoded.resource_spans[0];
        assert_eq!(rs.schema_url, "https://opentelemetry.io/schemas/1.30.0");
        let counts: Vec<usize> = rs.scope_spans.iter().map(|s| s.spans.len()).collect();
        assert_eq!(counts, vec![3, 3]);
        let server = &rs.scope_spans[0].spans[0];
        assert_eq!(server.flags, 0x301, "sampled, parent known remote");
        assert_eq!(rs.scope_spans[0].spans[1].flags, 0x101);
    }

    #[test]
    fn an_empty_batch_is_a_valid_request() {
        let mut out = Vec::new();
        Encoder::new(&Resource::builder_empty().build()).request(&[], &mut out);
        let decoded = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
        assert_eq!(decoded.resource_spans.len(), 1);
        assert!(decoded.resource_spans[0].scope_spans.is_empty());
    }

    #[test]
    fn varints_round_trip_at_their_edges() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(varint_len(v), b.len(), "{v}");
            let mut s = b.as_slice();
            assert_eq!(read_varint(&mut s), Some(v));
            assert!(s.is_empty());
        }
        assert_eq!(read_varint(&mut [0x80u8, 0x80].as_slice()), None);
    }

    #[test]
    fn a_partial_success_names_the_rejected_spans() {
        let response = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 42,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(rejected_spans(&response.encode_to_vec()), 42);
        assert_eq!(
            rejected_spans(&ExportTraceServiceResponse::default().encode_to_vec()),
            0
        );
        assert_eq!(rejected_spans(b""), 0);
        assert_eq!(rejected_spans(&[0x0a, 0x05, 0x08]), 0, "truncated");
    }
}
