//! IPv4, IPv6 and MAC addresses.

use tollgate_config::Builtin;

use super::{boundary_after, digits_at, num, Enabled, IP_CTX, MAC_CTX};
use crate::pii::finding::Finding;
use crate::pii::recognize::context::adjust;

pub(super) fn ipv4(b: &[u8], s: usize) -> Option<usize> {
    let mut j = s;
    for part in 0..4 {
        let n = digits_at(b, j);
        if n == 0 || n > 3 || num(&b[j..j + n]) > 255 {
            return None;
        }
        j += n;
        if part < 3 {
            if b.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
    }
    // CIDR suffix.
    if b.get(j) == Some(&b'/') {
        let n = digits_at(b, j + 1);
        if (1..=2).contains(&n) && num(&b[j + 1..j + 1 + n]) <= 32 {
            j += 1 + n;
        }
    }
    // A port (`10.1.2.3:8080`): the address is the finding, the port stays.
    if b.get(j) == Some(&b':') {
        let n = digits_at(b, j + 1);
        if (1..=5).contains(&n) && num(&b[j + 1..j + 1 + n]) <= 65535 {
            return boundary_after(b, j + 1 + n).then_some(j);
        }
    }
    boundary_after(b, j).then_some(j)
}

/// MAC (`aa:bb:cc:dd:ee:ff`, dashes, or `aabb.ccdd.eeff`) or IPv6 at `s`.
pub(super) fn hex_addr(text: &str, s: usize, on: &Enabled, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    if on.mac {
        if let Some(end) = mac(b, s) {
            let score = adjust(text, s, end, 0.7, MAC_CTX, &[]);
            out.push(Finding::new(s, end, Builtin::MacAddress, score));
            return;
        }
    }
    if !on.ip {
        return;
    }
    let len = b[s..]
        .iter()
        .take(45)
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
        .count();
    let mut end = s + len;
    while end > s && b[end - 1] == b'.' || (end > s + 1 && b[end - 1] == b':' && b[end - 2] != b':')
    {
        end -= 1;
    }
    let span = &text[s..end];
    if span.bytes().filter(|&c| c == b':').count() < 2 || !span.bytes().any(|c| c.is_ascii_digit())
    {
        return;
    }
    if span.parse::<std::net::Ipv6Addr>().is_err() {
        return;
    }
    // Prefix length.
    if b.get(end) == Some(&b'/') {
        let n = digits_at(b, end + 1);
        if (1..=3).contains(&n) {
            end += 1 + n;
        }
    }
    if !boundary_after(b, end) && b.get(end) != Some(&b'%') {
        return;
    }
    let score = adjust(text, s, end, 0.7, IP_CTX, &[]);
    out.push(Finding::new(s, end, Builtin::IpAddress, score));
}

pub(super) fn mac(b: &[u8], s: usize) -> Option<usize> {
    let hex2 = |j: usize| {
        b.get(j..j + 2)
            .is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit))
    };
    if hex2(s) {
        if let Some(&sep @ (b':' | b'-')) = b.get(s + 2) {
            let ok =
                (0..6).all(|k| hex2(s + 3 * k) && (k == 5 || b.get(s + 3 * k + 2) == Some(&sep)));
            let end = s + 17;
            if ok
                && !b
                    .get(end)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == sep)
            {
                return Some(end);
            }
        }
    }
    let hex4 = |j: usize| {
        b.get(j..j + 4)
            .is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit))
    };
    // Not the tail of a longer dotted hex run (`c6f9.bf11.89e9.ab12`).
    let inside = s >= 2 && b[s - 1] == b'.' && b[s - 2].is_ascii_hexdigit();
    let cisco = !inside
        && hex4(s)
        && b.get(s + 4) == Some(&b'.')
        && hex4(s + 5)
        && b.get(s + 9) == Some(&b'.')
        && hex4(s + 10);
    // A full stop ends it unless another group follows (`....89e9.` ends a
    // sentence; `....89e9.ab` is something longer).
    let continues = match b.get(s + 14) {
        Some(c) if c.is_ascii_alphanumeric() => true,
        Some(b'.') => b.get(s + 15).is_some_and(u8::is_ascii_alphanumeric),
        _ => false,
    };
    (cisco && !continues).then_some(s + 14)
}
