//! Recognizers end to end: positives with their exact spans, and hard
//! negatives that must stay silent.

use crate::pii::fixtures::{default_engine, engine, found};

fn one(text: &str) -> (String, String) {
    let e = default_engine();
    let f = found(&e, text);
    assert_eq!(f.len(), 1, "{text:?}: {f:?}");
    f.into_iter().next().unwrap()
}

#[test]
fn positives_by_type() {
    let cases = [
        (
            "Mail me at jane.doe@example.com today",
            "email",
            "jane.doe@example.com",
        ),
        (
            "Call me at (415) 555-0132 tonight",
            "phone",
            "(415) 555-0132",
        ),
        (
            "my mobile is +44 20 7946 0958.",
            "phone",
            "+44 20 7946 0958",
        ),
        ("Tel: 01 23 45 67 89", "phone", "01 23 45 67 89"),
        ("phone +49 30 901820", "phone", "+49 30 901820"),
        ("call 555-123-4567x890 please", "phone", "555-123-4567x890"),
        (
            "card 4111 1111 1111 1111 exp 12/29",
            "credit_card",
            "4111 1111 1111 1111",
        ),
        ("amex 3782-822463-10005", "credit_card", "3782-822463-10005"),
        (
            "pay with 5555555555554444",
            "credit_card",
            "5555555555554444",
        ),
        ("SSN 123-45-6789", "us_ssn", "123-45-6789"),
        ("social security number: 123456789", "us_ssn", "123456789"),
        (
            "IBAN: GB82 WEST 1234 5698 7654 32",
            "iban",
            "GB82 WEST 1234 5698 7654 32",
        ),
        (
            "send to DE89370400440532013000 now",
            "iban",
            "DE89370400440532013000",
        ),
        (
            "server at 192.168.10.254 is down",
            "ip_address",
            "192.168.10.254",
        ),
        (
            "host 2001:db8:85a3::8a2e:370:7334 up",
            "ip_address",
            "2001:db8:85a3::8a2e:370:7334",
        ),
        (
            "link-local fe80::1ff:fe23:4567:890a",
            "ip_address",
            "fe80::1ff:fe23:4567:890a",
        ),
        ("mac a4:5e:60:e8:2f:1c", "mac_address", "a4:5e:60:e8:2f:1c"),
        (
            "switch port c6f9.bf11.89e9.",
            "mac_address",
            "c6f9.bf11.89e9",
        ),
        (
            "seen c6f9.bf11.89e9, then gone",
            "mac_address",
            "c6f9.bf11.89e9",
        ),
        ("learned fceb.1f27.6a82.", "mac_address", "fceb.1f27.6a82"),
        (
            "shows acda.0cd6.a585, then",
            "mac_address",
            "acda.0cd6.a585",
        ),
        ("connect to 10.1.2.3:8080 now", "ip_address", "10.1.2.3"),
        ("host=1.2.3.4:443", "ip_address", "1.2.3.4"),
        ("upstream 10.0.0.0/8:53.", "ip_address", "10.0.0.0/8"),
        ("MAC 00-1B-44-11-3A-B7.", "mac_address", "00-1B-44-11-3A-B7"),
        // Digits only, dashed: a MAC, not a phone number.
        (
            "nic 00-14-22-01-23-45 up",
            "mac_address",
            "00-14-22-01-23-45",
        ),
        (
            "device 10-20-30-40-50-60.",
            "mac_address",
            "10-20-30-40-50-60",
        ),
        (
            "value 00-14-22-01-23-45 ok",
            "mac_address",
            "00-14-22-01-23-45",
        ),
        ("I was born on 1985-03-14.", "date_of_birth", "1985-03-14"),
        (
            "date of birth: March 3, 1985",
            "date_of_birth",
            "March 3, 1985",
        ),
        ("DOB 14.03.1985", "date_of_birth", "14.03.1985"),
        (
            "born 3rd of March 1985",
            "date_of_birth",
            "3rd of March 1985",
        ),
        (
            "use redis://app:s3cr3t@cache.internal:6379",
            "url_credentials",
            "redis://app:s3cr3t@cache.internal:6379",
        ),
        (
            "AWS key AKIAIOSFODNN7EXAMPLE",
            "aws_access_key",
            "AKIAIOSFODNN7EXAMPLE",
        ),
    ];
    for (text, ty, value) in cases {
        assert_eq!(one(text), (ty.to_string(), value.to_string()), "{text}");
    }
}

#[test]
fn hard_negatives_stay_silent() {
    let e = default_engine();
    let negatives = [
        "Card ending 4111 1111 1111 1112 failed Luhn",
        "order #4532015112830367 shipped",
        "IBAN GB82 WEST 1234 5698 7654 33 is wrong",
        "version 1.2.3 and build 2024.06.01",
        "released v1.2.3.4 yesterday",
        "the meeting is at 12:30:45 UTC on 2024-06-01",
        "timestamp 2024-06-01T12:30:45Z",
        "order id 1234567890",
        "invoice 20240601-0042",
        "pi is 3.14159 and e is 2.71828",
        "we sold 1,234,567 units",
        "population 1 234 567",
        "SSN 000-12-3456 is invalid",
        "SSN 666-12-3456 is invalid",
        "contact us via the email form; write to support at example dot com",
        "use user@localhost for tests",
        "let x = arr[3] + 42; // 7 items",
        "std::vector<int> v; a::b::c",
        "Rust 1.85, Python 3.11, Node 20",
        "ISBN 978-3-16-148410-0",
        "tracking number 1Z999AA10123456784",
        "the year 1985 was good",
        "sha 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "the date 14.03.1985 in the log",
        "ratio 1.2.3.4:567890 in the table",
        "hex c6f9.bf11.89e9.ab12 is longer",
    ];
    for n in negatives {
        assert!(found(&e, n).is_empty(), "{n:?}: {:?}", found(&e, n));
    }
}

#[test]
fn context_words_raise_and_lower_confidence() {
    let e = default_engine();
    // A bare digit run is a phone only with a phone word near it.
    assert!(found(&e, "ref 4155550132").is_empty());
    assert_eq!(found(&e, "call me: 4155550132")[0].0, "phone");
    // Negative context sinks a weak shape.
    assert!(found(&e, "order number 0123 456 789").is_empty());
    assert_eq!(found(&e, "reach me on 0123 456 789")[0].0, "phone");
    // Nine digits are an SSN only with SSN words.
    assert!(found(&e, "code 123456789").is_empty());
}

#[test]
fn types_can_be_switched_off_and_thresholds_raised() {
    let e = engine("  entities:\n    email: {enabled: false}\n    phone: {minScore: 0.9}");
    assert!(found(&e, "a@example.com").is_empty());
    assert!(
        found(&e, "call (415) 555-0132").len() == 1,
        "context 0.7+0.35"
    );
    assert!(found(&e, "(415) 555-0132").is_empty(), "0.7 < 0.9");
}

#[test]
fn custom_recognizers_join_the_scan() {
    let e = engine(
        "  custom:\n    - {name: employee_id, regex: 'EMP-[0-9]{6}'}\n    - {name: codename, terms: [Bluebird]}",
    );
    assert_eq!(
        found(&e, "EMP-123456 works on bluebird, mail x@example.org"),
        [
            ("employee_id".to_string(), "EMP-123456".to_string()),
            ("codename".to_string(), "bluebird".to_string()),
            ("email".to_string(), "x@example.org".to_string()),
        ]
    );
}

#[test]
fn non_ascii_text_is_safe() {
    let e = default_engine();
    let t = "Grüße, schreib an jörg@example.de oder ruf +49 30 901820 an — 🎉 ok";
    let f = found(&e, t);
    assert!(
        f.iter()
            .any(|(ty, v)| ty == "phone" && v == "+49 30 901820"),
        "{f:?}"
    );
}

#[test]
fn a_platform_key_under_a_secret_name_is_its_own_type() {
    assert_eq!(
        one("HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"),
        (
            "huggingface_token".to_string(),
            "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh".to_string()
        )
    );
    assert_eq!(
        one("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").0,
        "aws_secret_key"
    );
}

#[test]
fn a_number_named_as_something_else_is_not_a_phone() {
    let e = default_engine();
    for benign in [
        "Your order number is 555 123 4567",
        "ticket 415-555-0132 closed",
        "invoice (415) 555-0132 paid",
    ] {
        assert!(
            found(&e, benign).is_empty(),
            "{benign:?}: {:?}",
            found(&e, benign)
        );
    }
    // With a phone word too, it still is one.
    assert_eq!(found(&e, "order line: call (415) 555-0132")[0].0, "phone");
}

#[test]
fn my_number_is_still_a_phone() {
    let e = default_engine();
    assert_eq!(found(&e, "my number is 4155550132")[0].0, "phone");
    assert_eq!(found(&e, "my number is 555 123 4567")[0].0, "phone");
}

proptest::proptest! {
    /// The eight-bytes-at-a-time skip finds the same next seed as a byte
    /// loop, on bytes around the range it tests (`/`, `0`-`9`, `:`-`@`, `A`)
    /// and any others.
    #[test]
    fn next_seed_finds_what_a_byte_loop_finds(
        b in proptest::collection::vec(proptest::prop_oneof![
            proptest::sample::select(b"/09:?@A a.\xc3\xa9\x80\xff\x7f".to_vec()),
            proptest::num::u8::ANY,
        ], 0..64),
        from in 0usize..64,
    ) {
        let from = from.min(b.len());
        let plain = (from..b.len()).find(|&j| super::SEED[b[j] as usize] != 0).unwrap_or(b.len());
        proptest::prop_assert_eq!(super::next_seed(&b, from), plain);
    }
}
