//! A mock LLM provider speaking the OpenAI and Anthropic wire formats.
//!
//! Start it with [`MockServer::start`], point a client at [`MockServer::url`],
//! and read back what it received with [`MockServer::requests`]. Per-request
//! behaviour (latency, errors, stream shape, resets…) is chosen with
//! `x-mock-*` headers or server-wide [`Switches`]; see [`switches`].
//!
//! # Endpoints
//! OpenAI: `POST /v1/chat/completions`, `POST /v1/completions`,
//! `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{id}`.
//! Anthropic: `POST /v1/messages`, `POST /v1/messages/count_tokens`.
//! Control (never recorded): `GET|DELETE /__mock/requests`,
//! `GET|PUT /__mock/defaults`, `GET /__mock/stats`.
//!
//! # Deterministic replies
//! The reply text is a pure function of the requested model, the last user
//! message and the switches:
//!
//! `"Mock reply from <model>: <first 12 words of the last user text>"`
//!
//! Words are whitespace-separated and re-joined with single spaces. The last
//! user text is the last `role: "user"` message, its text parts joined with a
//! space (legacy completions: the first prompt). When the `chunks` switch is
//! set (header or default) to more than the reply's word count, the filler
//! words `lorem ipsum dolor sit amet consectetur adipiscing elit` (cycled)
//! are appended until the reply has exactly that many words; when it is not
//! set nothing is padded. `x-mock-reply` replaces the text verbatim and is
//! never padded. Finally `max_tokens` (or `max_completion_tokens`) keeps the
//! first that many words and reports a `length` / `max_tokens` stop.
//!
//! # Token counting
//! One token is one whitespace-separated word:
//! * prompt / input tokens = words of every text in the input (all message
//!   contents, text parts, Anthropic `system` and `tool_result` texts,
//!   completion prompts, embedding inputs; a token-id array counts its
//!   length), at least 1;
//! * completion / output tokens = words of the final (truncated) reply,
//!   times `n` for OpenAI; for a tool call, words of the tool name plus words
//!   of the arguments JSON (compact, so usually 1 + 1).
//!
//! Streamed and whole responses report the same numbers. Embedding vectors
//! are deterministic too: see [`embedding`].
//!
//! # Streams
//! The reply is cut at word boundaries into `chunks` content deltas (default
//! 5; fewer if the reply has fewer words), so the deltas concatenate to the
//! reply exactly; tool-call arguments are cut likewise at character
//! boundaries. Each SSE event is its own body frame, generated only when the
//! connection asks for more (backpressure), and a client that goes away is
//! counted in [`MockServer::cancelled_streams`].

mod anthropic;
mod body;
mod config;
mod control;
mod error;
mod ids;
mod listener;
mod openai;
mod record;
mod reply;
mod router;
mod server;
mod sse;
mod state;
pub mod switches;
mod tls;
mod tokens;
mod tools;

pub use config::MockConfig;
pub use openai::embeddings::embedding;
pub use record::RecordedRequest;
pub use server::MockServer;
pub use switches::{ErrorSwitch, Switches};
