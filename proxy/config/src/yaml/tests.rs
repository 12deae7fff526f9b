use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Flags {
    on: bool,
}

fn parse<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, String> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| message(&e))
}

#[test]
fn yaml_1_2_booleans_only() {
    assert!(parse::<Flags>("on: true\n").unwrap().on);
    let e = parse::<Flags>("on: yes\n").unwrap_err();
    assert_eq!(
        e,
        "invalid boolean (true or false expected) at line 1, column 5"
    );
    let v: Value = parse("{a: yes, b: off, c: true}").unwrap();
    assert_eq!(v, json!({"a": "yes", "b": "off", "c": true}));
}

#[test]
fn untyped_numbers_as_written() {
    let v: Value = parse("{a: 0755, b: 1_000, c: 0x1F, d: 1e3, e: 12, f: ~}").unwrap();
    assert_eq!(
        v,
        json!({"a": "0755", "b": "1_000", "c": 31, "d": 1000.0, "e": 12, "f": null})
    );
}

#[test]
fn messages_are_one_line_with_the_position() {
    let e = parse::<Value>("a: 1\na: 2\n").unwrap_err();
    assert_eq!(
        e,
        "duplicate mapping key `a` is not allowed here at line 2, column 1"
    );
    let e = parse::<Value>("a: [1, 2\n").unwrap_err();
    assert!(!e.contains('\n'), "{e}");
    assert!(e.ends_with("at line 1, column 4"), "{e}");
}

#[test]
fn anchors_and_merge_keys() {
    let v: Value = parse("base: &b {x: 1}\nuse: *b\nmerged: {<<: *b, y: 2}\n").unwrap();
    assert_eq!(v["use"], json!({"x": 1}));
    assert_eq!(v["merged"], json!({"x": 1, "y": 2}));
}

#[test]
fn writes_long_strings_on_one_line_and_reads_back() {
    let long = "word ".repeat(40).trim_end().to_string();
    let doc = BTreeMap::from([
        ("long", long.clone()),
        ("multi", "line one\nline two\n".to_string()),
        ("answer", "yes".to_string()),
        ("number", "0755".to_string()),
    ]);
    let text = to_string(&doc).unwrap();
    assert!(text.contains(&format!("long: {long}\n")), "{text}");
    assert!(
        text.contains("multi: |\n  line one\n  line two\n"),
        "{text}"
    );
    // Strings another reader (YAML 1.1, as Kubernetes' Go tools) would
    // take for a boolean or a number are quoted.
    assert!(text.contains("answer: \"yes\"\n"), "{text}");
    assert!(text.contains("number: \"0755\"\n"), "{text}");
    let back: BTreeMap<String, String> = parse(&text).unwrap();
    assert_eq!(back, doc.into_iter().map(|(k, v)| (k.into(), v)).collect());
}
