//! Where Tollgate's budget spend lives in Redis, for everyone who reads or
//! writes it: the key layout, the windows a counter belongs to, the one
//! way to connect, and reading a budget's spend. The proxy's budget engine
//! writes through these; the operator reads through them for
//! `LlmPolicy` status. Keeping them here, free of the proxy's HTTP stack,
//! PII engine and embedder, means the two agree by construction and the
//! operator depends on nothing of the data plane.
#![forbid(unsafe_code)]

pub mod keys;
mod read;
pub mod redis_auth;
pub mod redis_conn;
pub mod window;

pub use keys::Identity;
pub use read::{read_spend, spend_key, ReadError, WindowSpend};
pub use redis_auth::{RedisSecrets, SecretError};
pub use window::Span;
