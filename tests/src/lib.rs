//! Test support for Tollgate's black-box suites.
//!
//! The centrepiece is [`mock`]: a fake OpenAI + Anthropic provider that the
//! proxy's integration tests, the Python end-to-end suite and the benchmarks
//! all point the proxy at. It runs in-process ([`mock::MockServer`]) or as the
//! `tollgate-mock` binary.

#![forbid(unsafe_code)]

pub mod jaeger;
pub mod mock;
pub mod redis;
