//! Tollgate proxy: an LLM gateway sidecar.
//!
//! Apps in a pod call it instead of their LLM provider; it routes, limits and
//! observes every request, and injects the real provider keys. Start at
//! [`pipeline`] for the path a request takes, and [`app`] for lifecycle.
#![forbid(unsafe_code)]

mod admin;
pub mod api;
pub mod app;
mod body;
pub mod budget;
pub mod cache;
mod credentials;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
pub mod metrics;
pub mod pii;
pub mod pipeline;
mod reload;
pub mod routing;
mod server;
mod shadow;
mod state;
mod trace;
mod upstream;
pub mod workers;

pub use app::{Proxy, StartError};
