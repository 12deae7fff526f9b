//! Checksums and structural rules that turn "looks like" into "is": Luhn
//! for payment cards, ISO 7064 mod 97-10 and country lengths for IBANs, the
//! SSA's never-issued ranges for US social security numbers.

/// Luhn checksum over the ASCII digits of `s` (other bytes are skipped).
pub(super) fn luhn(s: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut n = 0;
    for &b in s.iter().rev().filter(|b| b.is_ascii_digit()) {
        let mut d = u32::from(b - b'0');
        if n % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        n += 1;
    }
    n >= 2 && sum.is_multiple_of(10)
}

/// ISO 7064 mod 97-10 as IBANs use it: the first four characters move to
/// the end, letters count 10..35, the number mod 97 must be 1. Spaces are
/// skipped; anything else fails.
pub(super) fn mod97(s: &[u8]) -> bool {
    let chars: Vec<u8> = s.iter().copied().filter(|b| *b != b' ').collect();
    if chars.len() < 5 {
        return false;
    }
    let mut rem = 0u32;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            b'a'..=b'z' => u32::from(c - b'a') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// IBAN length by country (SWIFT registry), for the countries that issue them.
pub(super) fn iban_length(country: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], u8)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BI", 27),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DJ", 27),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FK", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"LY", 25),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MN", 20),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NI", 28),
        (b"NL", 18),
        (b"NO", 15),
        (b"OM", 23),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"RU", 33),
        (b"SA", 24),
        (b"SC", 31),
        (b"SD", 18),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"SO", 23),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
        (b"YE", 30),
    ];
    TABLE
        .iter()
        .find(|(c, _)| c.as_slice() == country)
        .map(|(_, n)| usize::from(*n))
}

/// US SSN area/group/serial rules: area not 000, 666 or 900-999; group not
/// 00; serial not 0000; and not one of the numbers published in ads.
pub(super) fn ssn(area: u32, group: u32, serial: u32) -> bool {
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // Woolworth's wallet card and the 1962 ad number, both widely misused.
    !matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999))
}

/// How well 12-19 digits fit a card brand: 2 for a known issuer range and
/// length, 1 for a plausible major-industry digit and length, 0 for none.
pub(super) fn card_fit(digits: &[u8]) -> u8 {
    if card_brand(digits) {
        return 2;
    }
    let n = digits.len();
    let plausible = match digits[0] {
        b'3' => (14..=19).contains(&n),
        b'4' => matches!(n, 13 | 16 | 19),
        // Maestro and other debit ranges run from 12 digits.
        b'5' | b'6' => (12..=19).contains(&n),
        b'2' => n == 16,
        _ => false,
    };
    u8::from(plausible)
}

/// Maestro issuer ranges, whose cards may have as few as 12 digits.
pub(super) fn maestro(digits: &[u8]) -> bool {
    let p = |k: usize| {
        digits[..k]
            .iter()
            .fold(0u32, |a, d| a * 10 + u32::from(d - b'0'))
    };
    matches!(
        p(4),
        5018 | 5020 | 5038 | 5893 | 6304 | 6390 | 6759 | 6761..=6763
    ) || (56..=58).contains(&p(2))
}

/// Payment-card brand prefixes and lengths (Visa, Mastercard, Amex,
/// Discover, JCB, Diners, UnionPay, Maestro).
pub(super) fn card_brand(digits: &[u8]) -> bool {
    let n = digits.len();
    let p = |k: usize| -> u32 {
        digits[..k]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    if n < 13 {
        return false;
    }
    match digits[0] {
        b'4' => matches!(n, 13 | 16 | 19),
        b'5' => ((51..=55).contains(&p(2)) && n == 16) || p(2) == 50 || (56..=58).contains(&p(2)),
        b'2' => (2221..=2720).contains(&p(4)) && n == 16,
        b'3' => {
            (matches!(p(2), 34 | 37) && n == 15)
                || ((3528..=3589).contains(&p(4)) && (16..=19).contains(&n))
                || (((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39))
                    && (14..=19).contains(&n))
        }
        b'6' => {
            (p(4) == 6011
                || p(2) == 65
                || (644..=649).contains(&p(3))
                || p(2) == 62
                || p(2) == 67
                || p(2) == 63)
                && (16..=19).contains(&n)
        }
        _ => false,
    }
}

/// Shannon entropy in bits per byte.
pub(super) fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(luhn(b"378282246310005"));
        assert!(luhn(b"6011-1111-1111-1117"));
        assert!(!luhn(b"4111 1111 1111 1112"));
        assert!(!luhn(b"1234567812345678"));
    }

    #[test]
    fn mod97_known_values() {
        assert!(mod97(b"GB82 WEST 1234 5698 7654 32"));
        assert!(mod97(b"DE89370400440532013000"));
        assert!(mod97(b"FR1420041010050500013M02606"));
        assert!(!mod97(b"GB82 WEST 1234 5698 7654 33"));
        assert!(!mod97(b"DE8937040044053201300!"));
        assert_eq!(iban_length(b"DE"), Some(22));
        assert_eq!(iban_length(b"US"), None);
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn(123, 45, 6780));
        for (a, g, s) in [
            (0, 12, 3456),
            (666, 12, 3456),
            (901, 12, 3456),
            (123, 0, 3456),
            (123, 45, 0),
            (78, 5, 1120),
        ] {
            assert!(!ssn(a, g, s), "{a}-{g}-{s}");
        }
    }

    #[test]
    fn brands() {
        assert!(card_brand(b"4111111111111111"));
        assert!(card_brand(b"378282246310005"));
        assert!(card_brand(b"5555555555554444"));
        assert!(card_brand(b"2223003122003222"));
        assert!(!card_brand(b"9111111111111111"));
        assert!(!card_brand(b"37828224631000"));
    }

    #[test]
    fn entropy_orders_randomness() {
        assert!(entropy(b"aaaaaaaaaaaaaaaa") < 0.1);
        assert!(entropy(b"9fQ2xL7pZ0bK4mW8") > 3.5);
    }
}
