//! Forged Authentication-Results (RFC 8601 §5): a message that arrives
//! with an Authentication-Results field claiming our own authserv-id
//! (our `hostname`) did not get it from us — we add ours after the data
//! — so a border MTA must remove it before anyone downstream (a filter,
//! a mail client) believes it. Fields with other authserv-ids stay.
//!
//! Only the header section is looked at; a field is removed whole, its
//! continuation lines included.

/// Append `data` to `out` without the Authentication-Results header
/// fields whose authserv-id is `ours` (ASCII case-insensitive); returns
/// how many were left out.
pub fn append_without_ours(out: &mut Vec<u8>, data: &[u8], ours: &str) -> usize {
    let header_len = header_section_len(data);
    let mut removed = 0;
    let mut kept_from = 0;
    let mut pos = 0;
    while pos < header_len {
        let end = field_end(data, pos, header_len);
        if claims(&data[pos..end], ours) {
            out.extend_from_slice(&data[kept_from..pos]);
            kept_from = end;
            removed += 1;
        }
        pos = end;
    }
    out.extend_from_slice(&data[kept_from..]);
    removed
}

/// The length of the header section: up to and including the empty line
/// that ends it, or all of `data` when there is none.
fn header_section_len(data: &[u8]) -> usize {
    let mut pos = 0;
    while pos < data.len() {
        let end = line_end(data, pos);
        if data[pos..end] == *b"\r\n" || data[pos..end] == *b"\n" {
            return pos;
        }
        pos = end;
    }
    data.len()
}

/// The end of the line starting at `pos` (after its LF).
fn line_end(data: &[u8], pos: usize) -> usize {
    data[pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(data.len(), |i| pos + i + 1)
}

/// The end of the field starting at `pos`: its first line and every
/// continuation line (one that starts with a space or a tab).
fn field_end(data: &[u8], pos: usize, limit: usize) -> usize {
    let mut end = line_end(data, pos);
    while end < limit && matches!(data[end], b' ' | b'\t') {
        end = line_end(data, end);
    }
    end.min(limit)
}

/// Whether `field` (a whole header field) is an Authentication-Results
/// field whose authserv-id is `ours`.
fn claims(field: &[u8], ours: &str) -> bool {
    const NAME: &[u8] = b"authentication-results";
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = field[..colon].trim_ascii_end();
    if !name.eq_ignore_ascii_case(NAME) {
        return false;
    }
    let value = skip_cfws(&field[colon + 1..]);
    let id_len = value
        .iter()
        .position(|&b| b == b';' || b == b'(' || b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let id = &value[..id_len];
    // A quoted authserv-id (RFC 8601 allows a quoted-string value).
    let id = id
        .strip_prefix(b"\"")
        .and_then(|s| s.strip_suffix(b"\""))
        .unwrap_or(id);
    let ours = ours.trim_end_matches('.');
    let id = id.strip_suffix(b".").unwrap_or(id);
    id.eq_ignore_ascii_case(ours.as_bytes())
}

/// `s` without leading folding white space and comments (nested
/// comments included).
fn skip_cfws(mut s: &[u8]) -> &[u8] {
    loop {
        s = s.trim_ascii_start();
        if s.first() != Some(&b'(') {
            return s;
        }
        let mut depth = 0usize;
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'\\' => i += 1,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        s = s.get(i + 1..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(data: &str) -> (String, usize) {
        let mut out = b"X-Ours: 1\r\n".to_vec();
        let n = append_without_ours(&mut out, data.as_bytes(), "mx.example.test");
        (String::from_utf8(out).unwrap(), n)
    }

    #[test]
    fn removes_fields_claiming_our_id_and_keeps_the_rest() {
        let (out, n) = strip(
            "Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=a@b\r\n\
             Subject: hi\r\n\
             authentication-results:\r\n (forged) MX.Example.Test.\r\n\tdkim=pass header.d=bank.test\r\n\
             Authentication-Results: other.example; dkim=pass\r\n\
             Authentication-Results: mx.example.test 1; none\r\n\
             Authentication-Results: \"mx.example.test\"; dmarc=pass\r\n\
             Authentication-Results: mx.example.test.evil; dmarc=pass\r\n\
             \r\n\
             Authentication-Results: mx.example.test; in the body\r\n",
        );
        assert_eq!(n, 4, "{out}");
        assert_eq!(
            out,
            "X-Ours: 1\r\nSubject: hi\r\n\
             Authentication-Results: other.example; dkim=pass\r\n\
             Authentication-Results: mx.example.test.evil; dmarc=pass\r\n\
             \r\n\
             Authentication-Results: mx.example.test; in the body\r\n"
        );
    }

    #[test]
    fn a_message_without_such_fields_is_unchanged() {
        for data in [
            "Subject: x\r\n\r\nbody\r\n",
            "",
            "Authentication-Results-Other: mx.example.test; x\r\n",
            "Subject: no body",
            "Authentication-Results: (unclosed comment mx.example.test; x\r\n\r\n",
        ] {
            let (out, n) = strip(data);
            assert_eq!((out, n), (format!("X-Ours: 1\r\n{data}"), 0));
        }
    }
}
