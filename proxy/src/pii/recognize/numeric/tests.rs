use super::*;

#[test]
fn phone_shapes() {
    fn p(s: &str) -> Option<(&str, f32)> {
        phone(s.as_bytes(), 0).map(|(e, sc)| (&s[..e], sc))
    }
    assert_eq!(p("+1 415 555 0132").unwrap().0, "+1 415 555 0132");
    assert_eq!(p("(415) 555-0132").unwrap().1, 0.7);
    assert_eq!(p("+44(0)1632 960 123").unwrap().0, "+44(0)1632 960 123");
    assert_eq!(p("001-408-555-1234").unwrap().1, 0.6);
    assert!(p("2024-06-01").is_none(), "a date");
    assert!(p("123-45-6789").is_none(), "an SSN shape");
    assert!(p("10.0.0.1").is_none(), "an IPv4 shape");
    assert!(p("1.234.567").is_none(), "thousands");
    assert!(p("12345").is_none(), "too few digits");
    assert!(p("+1 2345 6789 0123 4567").is_none(), "too many digits");
}

#[test]
fn cards_pick_the_longest_valid_prefix() {
    let b = b"4111111111111111 2030";
    assert_eq!(card(b, 0), Some((16, 0.85)));
    assert_eq!(card(b"4111-1111-1111-1111", 0), Some((19, 0.85)));
    assert_eq!(card(b"4111 1111-1111 1111", 0), None, "mixed separators");
}

#[test]
fn iban_lengths_are_exact() {
    assert_eq!(iban(b"DE89 3704 0044 0532 0130 00", 0), Some(27));
    assert_eq!(iban(b"DE89 3704 0044 0532 0130 001", 0), None);
    assert_eq!(iban(b"XX89 3704 0044 0532 0130 00", 0), None);
}

#[test]
fn ipv4_bounds() {
    assert_eq!(ipv4(b"10.0.0.1/24 x", 0), Some(11));
    assert_eq!(ipv4(b"256.0.0.1", 0), None);
    assert_eq!(ipv4(b"1.2.3.4.5", 0), None);
}
