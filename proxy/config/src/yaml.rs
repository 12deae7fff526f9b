//! The YAML Tollgate reads and writes: the proxy's config file, and (in the
//! operator) the configs it renders, the CRD it prints and the manifests its
//! dry run reads. One place decides the dialect, so what the operator
//! writes the proxy reads the same way.
//!
//! Parsing is serde-saphyr's, set to YAML 1.2's core schema as the config
//! has always been read: only `true`/`false` are booleans (a `yes` is a
//! string, and a string where a boolean belongs is an error), and in
//! untyped values (`shaping.set`, Kubernetes objects) `0755` and `1_000`
//! stay strings. Duplicate keys are errors.

use serde::Serialize;

pub use serde_saphyr::Error;

/// The parser options every Tollgate YAML input is read with.
pub fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
    }
}

/// An error as one line for a log, a status condition or a CLI message:
/// the message and where it is (`unknown field `x`, expected one of a, b at
/// line 8, column 5`), without a source snippet and without hints meant
/// for the programmer (such as which parser option allows a duplicate key).
pub fn message(e: &Error) -> String {
    e.render_with_options(serde_saphyr::render_options! {
        formatter: &serde_saphyr::UserMessageFormatter,
        snippets: serde_saphyr::SnippetMode::Off,
    })
}

/// `value` as a YAML document. Strings stay on one line unless they hold
/// line breaks (then a literal block), as a reader expects to grep them.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string_with_options(
        value,
        serde_saphyr::ser_options! {
            folded_wrap_chars: usize::MAX,
        },
    )
}

#[cfg(test)]
mod tests;
