//! Recognizers seeded by `@`: email addresses and URLs that carry
//! credentials (`https://user:password@host`).

use tollgate_config::Builtin;

use super::Enabled;
use crate::pii::finding::Finding;

fn local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// Both recognizers at the `@` at `p`.
pub(super) fn at_sign(text: &str, p: usize, on: &Enabled, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let mut de = p + 1;
    while de < b.len() && domain_char(b[de]) {
        de += 1;
    }
    while de > p + 1 && matches!(b[de - 1], b'.' | b'-') {
        de -= 1;
    }
    let domain = &b[p + 1..de];

    if on.url_credentials {
        if let Some(start) = url_with_userinfo(b, p) {
            if host_ok(domain) {
                let mut end = de;
                // Port.
                if b.get(end) == Some(&b':') {
                    let n = b[end + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    if (1..=5).contains(&n) {
                        end += 1 + n;
                    }
                }
                out.push(Finding::new(start, end, Builtin::UrlCredentials, 0.9));
                return;
            }
        }
    }
    if !on.email {
        return;
    }
    let mut ls = p;
    while ls > 0 && local_char(b[ls - 1]) {
        ls -= 1;
    }
    while ls < p && matches!(b[ls], b'.' | b'-') {
        ls += 1;
    }
    let local = &b[ls..p];
    if local.is_empty()
        || local.len() > 64
        || local.ends_with(b".")
        || local.windows(2).any(|w| w == b"..")
    {
        return;
    }
    if !domain_ok(domain) {
        return;
    }
    out.push(Finding::new(ls, de, Builtin::Email, 0.95));
}

/// Start of `scheme://userinfo` ending at the `@` at `p`, when the
/// userinfo holds a password (`user:pass`) or a long token.
fn url_with_userinfo(b: &[u8], p: usize) -> Option<usize> {
    let lo = p.saturating_sub(512);
    let mut k = p;
    while k > lo
        && !b[k - 1].is_ascii_whitespace()
        && !matches!(b[k - 1], b'"' | b'\'' | b'<' | b'(' | b'`')
    {
        k -= 1;
    }
    let token = &b[k..p];
    let sep = token.windows(3).rposition(|w| w == b"://")?;
    let userinfo = &token[sep + 3..];
    if userinfo.is_empty() || userinfo.contains(&b'/') || userinfo.contains(&b'@') {
        return None;
    }
    let has_password = userinfo
        .iter()
        .position(|&c| c == b':')
        .is_some_and(|i| i > 0 && i + 1 < userinfo.len());
    if !has_password && userinfo.len() < 16 {
        return None;
    }
    // The scheme: letters, digits, `+.-`, starting with a letter.
    let scheme_end = k + sep;
    let mut s = scheme_end;
    while s > k && (b[s - 1].is_ascii_alphanumeric() || matches!(b[s - 1], b'+' | b'.' | b'-')) {
        s -= 1;
    }
    (s < scheme_end && b[s].is_ascii_alphabetic()).then_some(s)
}

/// A hostname with at least one dot and an alphabetic TLD.
fn domain_ok(d: &[u8]) -> bool {
    if d.len() < 4 || d.len() > 253 {
        return false;
    }
    let mut labels = 0;
    for label in d.split(|&c| c == b'.') {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return false;
        }
        labels += 1;
    }
    let tld = d.rsplit(|&c| c == b'.').next().unwrap_or_default();
    labels >= 2
        && tld.len() >= 2
        && (tld.iter().all(u8::is_ascii_alphabetic) || tld.starts_with(b"xn--"))
}

/// A URL host: a domain, an IPv4 address or `localhost`-style name.
fn host_ok(d: &[u8]) -> bool {
    !d.is_empty() && d.iter().all(|&c| domain_char(c)) && d[0].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(t: &str) -> Vec<(Builtin, &str)> {
        let mut out = Vec::new();
        for (p, _) in t.match_indices('@') {
            at_sign(t, p, &Enabled::all(), &mut out);
        }
        out.iter()
            .map(|f| match f.entity {
                crate::pii::finding::Entity::Builtin(b) => (b, &t[f.start..f.end]),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn emails() {
        assert_eq!(
            find("mail jane.doe+tag@mail.example.co.uk."),
            [(Builtin::Email, "jane.doe+tag@mail.example.co.uk")]
        );
        assert_eq!(find("<a.b@x-y.io>"), [(Builtin::Email, "a.b@x-y.io")]);
        for neg in [
            "@mention here",
            "user@localhost",
            "pkg@1.2.3",
            "a@b.c",
            "write to us at support (at) example.com",
            "x..y@example.com",
        ] {
            assert!(find(neg).is_empty(), "{neg}");
        }
    }

    #[test]
    fn urls_with_credentials() {
        assert_eq!(
            find("db: postgres://app:s3cr3t@db.internal:5432/prod"),
            [(
                Builtin::UrlCredentials,
                "postgres://app:s3cr3t@db.internal:5432"
            )]
        );
        assert_eq!(
            find("https://ghp_abcdefghij0123456789@github.com/x"),
            [(
                Builtin::UrlCredentials,
                "https://ghp_abcdefghij0123456789@github.com"
            )]
        );
        // A bare user name is not a credential; it is not an email either (no TLD after it).
        assert_eq!(
            find("ssh://git@github.com/x"),
            [(Builtin::Email, "git@github.com")]
        );
    }
}
