//! A whole answer read as JSON without building its tree: checked as a
//! full parse into a [`Value`] would check it (strings decoded and their
//! UTF-8 validated, numbers parsed, nesting limited), with its `usage`
//! field alone kept.
//!
//! The cache keeps a whole answer only when it is JSON, and with the usage
//! it reports; with nothing else reading the answer, this one read tells
//! both for a fraction of the cost of a tree (one allocation per string and
//! key, a map insert per field).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

mod usage;

pub use usage::UsageFields;

/// Every scalar is accepted as it comes: the deserializer has decoded it
/// (a string's escapes and UTF-8, a number's range) before the visit.
macro_rules! scalars {
    ($out:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            Checked::deserialize(d)?;
            Ok($out)
        }
    };
}

/// A whole answer, checked to be JSON; `usage` is its top-level `usage`
/// field (the last one, as a parse into a `Value` keeps), `None` when it
/// has none or is not an object: a tree, or its counts alone
/// ([`UsageFields`]).
#[derive(Debug, Default)]
pub struct CheckedBody<U = Value> {
    pub usage: Option<U>,
}

impl<'de, U: Deserialize<'de> + Default> Deserialize<'de> for CheckedBody<U> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CheckedBody<U>, D::Error> {
        struct Top<U>(std::marker::PhantomData<U>);
        impl<'de, U: Deserialize<'de> + Default> Visitor<'de> for Top<U> {
            type Value = CheckedBody<U>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<CheckedBody<U>, A::Error> {
                let mut usage = None;
                while let Some(is_usage) = a.next_key::<IsUsage>()? {
                    if is_usage.0 {
                        usage = Some(a.next_value::<U>()?);
                    } else {
                        a.next_value::<Checked>()?;
                    }
                }
                Ok(CheckedBody { usage })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<CheckedBody<U>, A::Error> {
                Checked::seq(a)?;
                Ok(CheckedBody { usage: None })
            }
            scalars!(CheckedBody { usage: None });
        }
        d.deserialize_any(Top(std::marker::PhantomData))
    }
}

/// A JSON value checked and dropped.
struct Checked;

impl Checked {
    fn seq<'de, A: SeqAccess<'de>>(mut a: A) -> Result<Checked, A::Error> {
        while a.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
}

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Checked, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Checked;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Checked, A::Error> {
                while a.next_key::<IsUsage>()?.is_some() {
                    a.next_value::<Checked>()?;
                }
                Ok(Checked)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Checked, A::Error> {
                Checked::seq(a)
            }
            scalars!(Checked);
        }
        d.deserialize_any(V)
    }
}

/// An object key, decoded as a string (as a `Value`'s keys are), compared
/// with `usage` without being kept.
struct IsUsage(bool);

impl<'de> Deserialize<'de> for IsUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IsUsage, D::Error> {
        struct K;
        impl<'de> Visitor<'de> for K {
            type Value = IsUsage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<IsUsage, E> {
                Ok(IsUsage(k == "usage"))
            }
        }
        d.deserialize_str(K)
    }
}

#[cfg(test)]
mod tests;
