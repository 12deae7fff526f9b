//! Request bodies: OpenAI chat completion ⇄ Anthropic message.
//!
//! Each direction refuses what its target cannot take, naming the field,
//! and carries every value with the type both APIs give it
//! ([`values`]), so a translated request is one the other direction
//! accepts again (the `translate_request` fuzz target's round trip).

use super::{plain_text, Defaults, TranslateError};

mod to_anthropic;
mod to_openai;
mod tools;
mod values;

pub use to_anthropic::openai_to_anthropic_request;
pub use to_openai::anthropic_to_openai_request;

type Result<T> = std::result::Result<T, TranslateError>;
