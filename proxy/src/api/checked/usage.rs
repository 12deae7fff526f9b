//! A whole answer's `usage` field read in the check, without a tree: the
//! fields either API's usage type reads, kept as numbers, everything else
//! checked and dropped. Anything a tree and the usage type could read
//! differently (a known field of another type, a list or a scalar for the
//! object) marks the read `unsure`, and the caller reads the answer again
//! with the tree.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Checked;

/// The usage fields of both APIs, the last of repeated keys kept (as a
/// tree keeps them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UsageFields {
    /// `usage` was `null`.
    pub null: bool,
    /// The fields below may not be what the usage type reads from a tree.
    pub unsure: bool,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
}

/// One known field's value.
enum Field {
    Number(u64),
    Null,
    /// Another type, checked.
    Other,
}

impl Field {
    /// A count that may be `null` (`Option<u64>` in the usage type).
    fn optional(self, unsure: &mut bool) -> Option<u64> {
        match self {
            Field::Number(n) => Some(n),
            Field::Null => None,
            Field::Other => {
                *unsure = true;
                None
            }
        }
    }

    /// A count that must be a number when present (`u64`).
    fn required(self, unsure: &mut bool) -> Option<u64> {
        match self {
            Field::Number(n) => Some(n),
            _ => {
                *unsure = true;
                None
            }
        }
    }
}

/// The rest of a list, checked.
fn check_rest<'de, A: SeqAccess<'de>>(a: A) -> Result<(), A::Error> {
    Checked::seq(a).map(|_| ())
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Field, E> {
                Ok(Field::Number(n))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Field, E> {
                Ok(Field::Null)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Field, A::Error> {
                while a.next_key::<super::IsUsage>()?.is_some() {
                    a.next_value::<Checked>()?;
                }
                Ok(Field::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Field, A::Error> {
                check_rest(a)?;
                Ok(Field::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A usage key, decoded (as a tree's keys are) and named.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    PromptTokens,
    CompletionTokens,
    PromptDetails,
    CompletionDetails,
    CachedTokens,
    ReasoningTokens,
    InputTokens,
    OutputTokens,
    CacheCreation,
    CacheRead,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct K;
        impl<'de> Visitor<'de> for K {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "prompt_tokens" => Key::PromptTokens,
                    "completion_tokens" => Key::CompletionTokens,
                    "prompt_tokens_details" => Key::PromptDetails,
                    "completion_tokens_details" => Key::CompletionDetails,
                    "cached_tokens" => Key::CachedTokens,
                    "reasoning_tokens" => Key::ReasoningTokens,
                    "input_tokens" => Key::InputTokens,
                    "output_tokens" => Key::OutputTokens,
                    "cache_creation_input_tokens" => Key::CacheCreation,
                    "cache_read_input_tokens" => Key::CacheRead,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(K)
    }
}

/// `prompt_tokens_details` or `completion_tokens_details`: the counts
/// read from either (`None`: null or absent), or another shape (`None`
/// for the whole).
struct Details(Option<(Option<u64>, Option<u64>)>);

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Details, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Details;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Details, E> {
                Ok(Details(Some((None, None))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Details, A::Error> {
                let mut unsure = false;
                let (mut cached, mut reasoning) = (None, None);
                while let Some(k) = a.next_key::<Key>()? {
                    match k {
                        Key::CachedTokens => {
                            cached = a.next_value::<Field>()?.optional(&mut unsure);
                        }
                        Key::ReasoningTokens => {
                            reasoning = a.next_value::<Field>()?.optional(&mut unsure);
                        }
                        _ => {
                            a.next_value::<Checked>()?;
                        }
                    }
                }
                Ok(Details((!unsure).then_some((cached, reasoning))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Details, A::Error> {
                check_rest(a)?;
                Ok(Details(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Details, E> {
                Ok(Details(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Details, E> {
                Ok(Details(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Details, E> {
                Ok(Details(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Details, E> {
                Ok(Details(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Details, E> {
                Ok(Details(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for UsageFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UsageFields, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UsageFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<UsageFields, E> {
                Ok(UsageFields {
                    null: true,
                    ..UsageFields::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<UsageFields, A::Error> {
                let mut u = UsageFields::default();
                let unsure = &mut u.unsure;
                while let Some(k) = a.next_key::<Key>()? {
                    match k {
                        Key::PromptTokens => {
                            u.prompt_tokens = a.next_value::<Field>()?.required(unsure);
                        }
                        Key::CompletionTokens => {
                            u.completion_tokens = a.next_value::<Field>()?.required(unsure);
                        }
                        Key::InputTokens => {
                            u.input_tokens = a.next_value::<Field>()?.optional(unsure);
                        }
                        Key::OutputTokens => {
                            u.output_tokens = a.next_value::<Field>()?.optional(unsure);
                        }
                        Key::CacheCreation => {
                            u.cache_creation_input_tokens =
                                a.next_value::<Field>()?.optional(unsure);
                        }
                        Key::CacheRead => {
                            u.cache_read_input_tokens = a.next_value::<Field>()?.optional(unsure);
                        }
                        Key::PromptDetails => match a.next_value::<Details>()?.0 {
                            Some((cached, _)) => u.cached_tokens = cached,
                            None => *unsure = true,
                        },
                        Key::CompletionDetails => match a.next_value::<Details>()?.0 {
                            Some((_, reasoning)) => u.reasoning_tokens = reasoning,
                            None => *unsure = true,
                        },
                        _ => {
                            a.next_value::<Checked>()?;
                        }
                    }
                }
                Ok(u)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<UsageFields, A::Error> {
                check_rest(a)?;
                Ok(UsageFields::unsure())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<UsageFields, E> {
                Ok(UsageFields::unsure())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<UsageFields, E> {
                Ok(UsageFields::unsure())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<UsageFields, E> {
                Ok(UsageFields::unsure())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<UsageFields, E> {
                Ok(UsageFields::unsure())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<UsageFields, E> {
                Ok(UsageFields::unsure())
            }
        }
        d.deserialize_any(V)
    }
}

impl UsageFields {
    fn unsure() -> UsageFields {
        UsageFields {
            unsure: true,
            ..UsageFields::default()
        }
    }
}
