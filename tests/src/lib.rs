//! Test support for Tollgate's black-box suites.
//!
//! The centrepiece is [`mock`]: a fake OpenAI + Anthropic provider that the
//! proxy's integration tests, the Python end-to-end suite and the benchmarks
//! all point the proxy at. It runs in-process ([`mock::MockServer`]) or as the
//! `tollgate-mock` binary.

#![forbid(unsafe_code)]

/// A loopback port free at the time of asking (for a child server to bind),
/// and never handed out before in this process: tests running in parallel
/// start servers between asking and binding, and two of them given the
/// same port would meet each other's server.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a loopback port")
            .local_addr()
            .expect("its address")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub mod jaeger;
pub mod mock;
pub mod pki;
pub mod redis;
