//! The wire APIs the proxy speaks: which endpoint a request is, the few
//! request fields the pipeline needs, usage reported by providers, and the
//! SSE framing of streamed responses.

pub mod endpoint;
pub mod request;
pub mod sse;
pub mod translate;
pub mod usage;

pub use endpoint::{Endpoint, Operation};
pub use tollgate_config::ApiFamily as Family;
