//! Shadow traffic: how two answers are compared, and the text read from
//! each API's answers.

use super::*;

#[test]
fn agreement_measures() {
    assert_eq!(
        agreement("Paris is the capital.", "paris IS the   capital"),
        (true, 1.0)
    );
    let (exact, f1) = agreement("the cat sat on the mat", "the cat sat");
    assert!(!exact);
    assert!((f1 - 2.0 * 1.0 * 0.5 / 1.5).abs() < 1e-9, "{f1}");
    assert_eq!(agreement("yes", "no"), (false, 0.0));
    assert_eq!(agreement("", ""), (true, 1.0));
}

#[test]
fn texts_of_both_apis() {
    use serde_json::json;
    assert_eq!(
        response_text(
            Family::OpenAi,
            &json!({"choices":[{"message":{"content":"hi"}}]})
        ),
        "hi"
    );
    assert_eq!(
        response_text(
            Family::Anthropic,
            &json!({"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]})
        ),
        "ab"
    );
    assert_eq!(
        event_text(
            Family::OpenAi,
            &json!({"choices":[{"delta":{"content":"x"}}]})
        ),
        Some("x")
    );
    assert_eq!(
        event_text(
            Family::Anthropic,
            &json!({"type":"content_block_delta","delta":{"type":"text_delta","text":"y"}})
        ),
        Some("y")
    );
    assert_eq!(event_text(Family::OpenAi, &json!({"choices": []})), None);
}
