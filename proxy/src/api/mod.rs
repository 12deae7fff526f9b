//! The wire APIs the proxy speaks: which endpoint a request is, the few
//! request fields the pipeline needs, usage reported by providers, the SSE
//! framing of streamed responses, and the [`Event`] (an SSE event or a whole
//! body, parsed at most once) that the response pipeline passes along.

pub mod checked;
pub(crate) mod endpoint;
pub(crate) mod event;
pub mod request;
pub mod sse;
pub mod translate;
pub mod usage;

pub(crate) use endpoint::Endpoint;
pub use endpoint::Operation;
pub use event::Event;
pub use tollgate_config::ApiFamily as Family;
