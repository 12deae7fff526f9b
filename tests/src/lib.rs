//! Test support for Tollgate's black-box suites.
//!
//! The centrepiece is [`mock`]: a fake OpenAI + Anthropic provider that the
//! proxy's integration tests, the Python end-to-end suite and the benchmarks
//! all point the proxy at. It runs in-process ([`mock::MockServer`]) or as the
//! `tollgate-mock` binary.

#![forbid(unsafe_code)]

/// A loopback port free at the time of asking (for a child server to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

pub mod jaeger;
pub mod mock;
pub mod pki;
pub mod redis;
