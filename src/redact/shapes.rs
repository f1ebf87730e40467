//! Secrets found by their shape rather than by a name: PEM private keys,
//! URL userinfo passwords, long base64 blobs, and AWS validation errors
//! quoting a value.

use super::REDACTED;
use super::names::{Class, classify};
use memchr::memmem;

/// PEM private keys (`-----BEGIN … PRIVATE KEY-----` to `-----END …-----`),
/// whole; without an END (a cut tail) to the closing quote or the end of the
/// text; an END without its BEGIN (a tail cut at the front) back over the
/// base64 lines.
pub(super) fn scan_pem(b: &[u8], ranges: &mut Vec<(usize, usize)>) {
    if memmem::find(b, b"PRIVATE KEY").is_none() {
        return;
    }
    // The end of the `-----` that closes the marker starting at `at`, if the
    // marker says PRIVATE KEY.
    let marker_end = |at: usize, skip: usize| -> Option<usize> {
        let from = at + skip;
        let tail = b.get(from..)?;
        let close = tail.get(..100).unwrap_or(tail);
        let off = memmem::find(close, b"-----")?;
        memmem::find(close.get(..off)?, b"PRIVATE KEY")?;
        Some(from + off + 5)
    };
    let mut covered = 0;
    for begin in memmem::find_iter(b, b"-----BEGIN") {
        if begin < covered {
            continue;
        }
        let Some(body) = marker_end(begin, 10) else {
            continue;
        };
        let end = match b.get(body..).and_then(|t| memmem::find(t, b"-----END")) {
            Some(off) => {
                let e = body + off;
                marker_end(e, 8)
                    .or_else(|| {
                        b.get(e + 8..)
                            .and_then(|t| memmem::find(t, b"-----"))
                            .map(|o| e + 8 + o + 5)
                    })
                    .unwrap_or(b.len())
            }
            None => b
                .get(body..)
                .and_then(|t| memchr::memchr2(b'"', b'\'', t))
                .map_or(b.len(), |o| body + o),
        };
        ranges.push((begin, end));
        covered = end;
    }
    for e in memmem::find_iter(b, b"-----END") {
        if e < covered {
            continue;
        }
        let Some(end) = marker_end(e, 8) else {
            continue;
        };
        let mut j = e;
        loop {
            match (
                j.checked_sub(2).and_then(|k| b.get(k)),
                j.checked_sub(1).and_then(|k| b.get(k)),
            ) {
                (Some(b'\\'), Some(b'n' | b'r')) => j -= 2,
                (_, Some(&c))
                    if c.is_ascii_alphanumeric()
                        || matches!(c, b'+' | b'/' | b'=' | b'\n' | b'\r') =>
                {
                    j -= 1
                }
                _ => break,
            }
        }
        // Keep the line break in front of the first base64 line.
        loop {
            match (b.get(j), b.get(j + 1)) {
                (Some(b'\n' | b'\r'), _) => j += 1,
                (Some(b'\\'), Some(b'n' | b'r')) => j += 2,
                _ => break,
            }
        }
        ranges.push((j, end));
        covered = end;
    }
}

/// The password of URL userinfo: `https://user:pass@host` →
/// `https://user:[REDACTED]@host`, `redis://:pass@host`; a user part alone
/// when it is a long token (`https://ghp_…@github.com`).
pub(super) fn scan_urls(b: &[u8], ranges: &mut Vec<(usize, usize)>) {
    if memchr::memchr(b'@', b).is_none() {
        return;
    }
    for pos in memmem::find_iter(b, b"://") {
        if !pos
            .checked_sub(1)
            .and_then(|k| b.get(k))
            .is_some_and(u8::is_ascii_alphanumeric)
        {
            continue;
        }
        let a = pos + 3;
        let mut j = a;
        let mut at = None;
        while let Some(&c) = b.get(j) {
            if j - a > 1024
                || c.is_ascii_whitespace()
                || matches!(
                    c,
                    b'/' | b'?' | b'#' | b'\\' | b'"' | b'\'' | b'<' | b'>' | b'`'
                )
            {
                break;
            }
            if c == b'@' {
                at = Some(j);
            }
            j += 1;
        }
        let Some(at) = at else { continue };
        let Some(info) = b.get(a..at) else { continue };
        if let Some(colon) = memchr::memchr(b':', info) {
            let p = a + colon + 1;
            if p < at
                && !b
                    .get(p..)
                    .is_some_and(|r| r.starts_with(REDACTED.as_bytes()))
            {
                ranges.push((p, at));
            }
        } else if info.len() >= 20
            && info
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
            && info.iter().any(u8::is_ascii_digit)
        {
            ranges.push((a, at));
        }
    }
}

/// Bare base64 blobs: 200 characters or more (an ECR login password, a
/// session token), or exactly 88 with `==` (an Azure account key in table
/// output); with upper case, lower case and digits.
pub(super) fn scan_blobs(b: &[u8], ranges: &mut Vec<(usize, usize)>) {
    if b.len() < 88 {
        return;
    }
    let is_b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let mut i = 0;
    while i < b.len() {
        if !b.get(i).copied().is_some_and(is_b64) {
            i += 1;
            continue;
        }
        let start = i;
        let (mut upper, mut lower, mut digit) = (false, false, false);
        while let Some(&c) = b.get(i).filter(|c| is_b64(**c)) {
            upper |= c.is_ascii_uppercase();
            lower |= c.is_ascii_lowercase();
            digit |= c.is_ascii_digit();
            i += 1;
        }
        let mut end = i;
        while end - i < 2 && b.get(end) == Some(&b'=') {
            end += 1;
        }
        let len = i - start;
        let mixed = upper && lower && digit;
        let edge = |k: Option<&u8>| k.is_some_and(|c| matches!(c, b'-' | b'_' | b'.'));
        let account_key = len == 86
            && end - i == 2
            && !edge(start.checked_sub(1).and_then(|k| b.get(k)))
            && !edge(b.get(end));
        if mixed && (len >= 200 || account_key) {
            ranges.push((start, end));
        }
        i = end.max(i);
    }
}

/// AWS validation errors quote the value before naming its field:
/// `Value 'hunter22' at 'masterUserPassword' failed to satisfy constraint`.
pub(super) fn scan_validation_errors(b: &[u8], ranges: &mut Vec<(usize, usize)>) {
    for pos in memmem::find_iter(b, b"alue '") {
        if !pos
            .checked_sub(1)
            .and_then(|k| b.get(k))
            .is_some_and(|c| matches!(c, b'v' | b'V'))
        {
            continue;
        }
        let start = pos + 6;
        let Some(rest) = b.get(start..) else { continue };
        let Some(off) = memmem::find(rest, b"' at '") else {
            continue;
        };
        let name_start = start + off + 6;
        let Some(name_len) = b.get(name_start..).and_then(|t| memchr::memchr(b'\'', t)) else {
            continue;
        };
        let field = b
            .get(name_start..name_start + name_len)
            .and_then(|n| std::str::from_utf8(n).ok())
            .unwrap_or_default();
        let last = field.rsplit('.').next().unwrap_or(field);
        if classify(last) != Class::Plain && off > 0 {
            ranges.push((start, start + off));
        }
    }
}
