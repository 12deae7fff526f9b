//! Reply text, padding, truncation and splitting.

use super::*;

fn sw(chunks: u32) -> Switches {
    Switches {
        chunks: Some(chunks),
        ..Switches::default()
    }
}

#[test]
fn echoes_the_first_twelve_words() {
    let r = Reply::build(
        "gpt-4o",
        "one two  three four five six seven eight nine ten eleven twelve thirteen",
        &sw(1),
        None,
    );
    assert_eq!(
        r.text,
        "Mock reply from gpt-4o: one two three four five six seven eight nine ten eleven twelve"
    );
    assert_eq!(r.tokens(), 16);
    assert!(!r.truncated);
}

#[test]
fn pads_with_filler_to_the_chunk_count() {
    let r = Reply::build("m", "hi", &sw(8), None);
    assert_eq!(r.text, "Mock reply from m: hi lorem ipsum dolor");
    assert_eq!(r.tokens(), 8);
    // Without an explicit chunk count nothing is padded.
    let r = Reply::build("m", "", &Switches::default(), None);
    assert_eq!(r.text, "Mock reply from m:");
}

#[test]
fn verbatim_reply_is_not_padded() {
    let s = Switches {
        reply: Some("just this".into()),
        chunks: Some(10),
        ..Switches::default()
    };
    assert_eq!(Reply::build("m", "x", &s, None).text, "just this");
}

#[test]
fn max_tokens_truncates_at_a_word() {
    let r = Reply::build("m", "a b c", &sw(1), Some(5));
    assert_eq!(r.text, "Mock reply from m: a");
    assert!(r.truncated);
    let r = Reply::build("m", "a", &sw(1), Some(5));
    assert_eq!(r.text, "Mock reply from m: a");
    assert!(!r.truncated);
    let r = Reply::build("m", "a", &sw(1), Some(0));
    assert_eq!(r.text, "");
    assert!(r.truncated);
}

#[test]
fn splits_by_words_without_losing_text() {
    let text = "Mock reply from m: a b c";
    for n in 1..10 {
        let p = Pieces::by_words(text, n);
        assert_eq!(p.len(), n.min(7));
        let joined: String = (0..p.len()).map(|i| p.get(text, i)).collect();
        assert_eq!(joined, text);
    }
    let p = Pieces::by_words(text, 3);
    let parts: Vec<&str> = (0..3).map(|i| p.get(text, i)).collect();
    assert_eq!(parts, ["Mock reply ", "from m: ", "a b c"]);
    assert_eq!(Pieces::by_words("", 4).len(), 1);
}

#[test]
fn splits_by_chars_on_boundaries() {
    let text = "{\"city\":\"Zürich\"}";
    for n in 1..30 {
        let p = Pieces::by_chars(text, n);
        assert_eq!(p.len(), n.min(text.chars().count()));
        let joined: String = (0..p.len()).map(|i| p.get(text, i)).collect();
        assert_eq!(joined, text);
    }
}
