//! Getting a queued message ready for the wire: 8BITMIME downgrade when the
//! server lacks it (RFC 6152 §3: 8-bit MIME parts re-encoded as
//! quoted-printable or base64), CRLF line ends only (we never send a bare
//! CR or LF), and dot-stuffing (RFC 5321 §4.5.2). Pure: the SMTP client
//! (faxmta-smtp) sends what [`prepare_body`] returns; DKIM signing comes
//! in through the [`Signer`] trait, which the daemon implements with its
//! keys.

use mail_parser::{Encoding, MessageParser, PartType};

/// Signs outbound mail (DKIM); the daemon implements it with its keys.
pub trait Signer: Send + Sync {
    /// The header field(s) to put on top of `message` — given exactly as
    /// it will be sent (CRLF line ends, no dot-stuffing) — or `None` when
    /// it is not to be signed (no key for its From domain).
    fn sign(&self, message: &[u8]) -> Option<Vec<u8>>;
}

/// The message as it will be sent after `DATA`, final dot not included.
#[derive(Debug)]
pub struct Prepared {
    pub data: Vec<u8>,
    /// Whether it still carries 8-bit octets (then BODY=8BITMIME).
    pub eight_bit: bool,
}

fn has_8bit(bytes: &[u8]) -> bool {
    // (std's ASCII check goes a word at a time.)
    !bytes.is_ascii()
}

/// Prepare `body` for a server that does (`peer_8bit`) or does not offer
/// 8BITMIME, DKIM-signed by `signer` when given. `declared_8bit`: the
/// client declared more than 7 bits (`BODY=8BITMIME` or `BINARYMIME`).
/// `Err` says why the message cannot be sent there.
///
/// The signature is made over the message exactly as it goes on the wire
/// (after any 8-bit conversion, with CRLF line ends), less the
/// dot-stuffing the receiver removes again, so nothing changes the signed
/// octets after signing.
pub fn prepare_body(
    body: &[u8],
    declared_8bit: bool,
    peer_8bit: bool,
    signer: Option<&dyn Signer>,
) -> Result<Prepared, String> {
    let eight_bit = declared_8bit || has_8bit(body);
    let converted;
    let source = if eight_bit && has_8bit(body) && !peer_8bit {
        converted = downgrade(body)?;
        &converted[..]
    } else {
        body
    };
    let signed;
    let source = match signer {
        Some(signer) => {
            let wire = line_ends(source, false);
            match signer.sign(&wire) {
                Some(mut header) => {
                    header.extend_from_slice(&wire);
                    signed = header;
                }
                None => signed = wire,
            }
            &signed[..]
        }
        None => source,
    };
    Ok(Prepared {
        data: stuff(source),
        eight_bit: has_8bit(source) || (eight_bit && peer_8bit && declared_8bit),
    })
}

/// CRLF line ends everywhere, a final CRLF, and a dot doubled at the start
/// of every line.
pub fn stuff(body: &[u8]) -> Vec<u8> {
    line_ends(body, true)
}

/// CRLF line ends everywhere and a final CRLF; with `dots`, a dot doubled
/// at the start of every line as well.
fn line_ends(body: &[u8], dots: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 50 + 2);
    let mut at_line_start = true;
    let mut rest = body;
    // A line at a time: the text up to the next CR or LF is copied whole.
    loop {
        if dots && at_line_start && rest.first() == Some(&b'.') {
            out.push(b'.');
        }
        match memchr::memchr2(b'\r', b'\n', rest) {
            Some(i) => {
                out.extend_from_slice(&rest[..i]);
                out.extend_from_slice(b"\r\n");
                let crlf = rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n');
                rest = &rest[i + if crlf { 2 } else { 1 }..];
                at_line_start = true;
            }
            None => {
                out.extend_from_slice(rest);
                if !rest.is_empty() {
                    at_line_start = false;
                }
                break;
            }
        }
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Re-encode every 8-bit leaf part of a MIME message.
fn downgrade(body: &[u8]) -> Result<Vec<u8>, String> {
    let message = MessageParser::default()
        .parse(body)
        .ok_or("the message could not be parsed as MIME")?;
    let first = message.parts.first().ok_or("the message has no parts")?;
    let top_header = &body[..(first.offset_body as usize).min(body.len())];
    if has_8bit(top_header) {
        return Err("its header contains 8-bit characters".into());
    }
    if !String::from_utf8_lossy(top_header)
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("mime-version:"))
    {
        return Err("the message is not MIME, so it cannot be converted to 7 bits".into());
    }
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for part in &message.parts {
        let (h, b, e) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        if h > b || b > e || e > body.len() || !has_8bit(&body[h..e]) {
            continue;
        }
        match &part.body {
            PartType::Multipart(_) => {
                // Its children are handled one by one; its own header and
                // preamble must be 7-bit.
                if has_8bit(&body[h..b]) {
                    return Err("a MIME part header contains 8-bit characters".into());
                }
            }
            PartType::Message(_) => {
                return Err("an attached message (message/rfc822) contains 8-bit data".into());
            }
            PartType::Text(_)
            | PartType::Html(_)
            | PartType::Binary(_)
            | PartType::InlineBinary(_) => {
                if has_8bit(&body[h..b]) {
                    return Err("a MIME part header contains 8-bit characters".into());
                }
                if part.encoding != Encoding::None {
                    continue; // already QP or base64: its octets are 7-bit
                }
                let text = matches!(part.body, PartType::Text(_) | PartType::Html(_));
                let raw = &body[b..e];
                let (content, tail) = match raw.strip_suffix(b"\r\n") {
                    Some(c) => (c, &b"\r\n"[..]),
                    None => (raw, &b""[..]),
                };
                let (cte, encoded) = if text {
                    ("quoted-printable", quoted_printable(content))
                } else {
                    ("base64", base64_lines(content))
                };
                let mut replacement = with_encoding(&body[h..b], cte);
                replacement.extend_from_slice(&encoded);
                replacement.extend_from_slice(tail);
                edits.push((h, e, replacement));
            }
        }
    }
    edits.sort_by_key(|(start, _, _)| *start);
    let mut out = Vec::with_capacity(body.len() * 2);
    let mut pos = 0;
    for (start, end, replacement) in edits {
        if start < pos {
            return Err("the MIME structure is inconsistent".into());
        }
        out.extend_from_slice(&body[pos..start]);
        out.extend_from_slice(&replacement);
        pos = end;
    }
    out.extend_from_slice(&body[pos..]);
    if has_8bit(&out) {
        return Err("8-bit data remains outside the MIME parts".into());
    }
    Ok(out)
}

/// A part header with its Content-Transfer-Encoding replaced by `cte`.
fn with_encoding(header: &[u8], cte: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(header);
    let mut out = String::new();
    let mut skipping = false;
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    // The empty line that ends the header, if the range includes it.
    let separator = match lines.last() {
        Some(l) if l.trim_end_matches(['\r', '\n']).is_empty() => lines.pop(),
        _ => None,
    };
    for line in lines {
        let continuation = line.starts_with([' ', '\t']);
        if continuation && skipping {
            continue;
        }
        skipping = line
            .to_ascii_lowercase()
            .starts_with("content-transfer-encoding:");
        if !skipping {
            out.push_str(line);
        }
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Transfer-Encoding: {cte}\r\n"));
    out.push_str(separator.unwrap_or("\r\n"));
    out.into_bytes()
}

/// Quoted-printable (RFC 2045 §6.7) keeping the text's line breaks.
fn quoted_printable(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() * 3 / 2);
    for (n, line) in content.split(|&b| b == b'\n').enumerate() {
        if n > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let plain = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece_len = if plain { 1 } else { 3 };
            if width + piece_len > 75 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            if plain {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            width += piece_len;
        }
    }
    out
}

/// Base64 (RFC 4648 §4, with padding) on one line: for AUTH (RFC 4954)
/// and, cut into lines, for MIME.
pub fn base64(content: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(content)
}

/// Base64 in lines of 76 characters.
fn base64_lines(content: &[u8]) -> Vec<u8> {
    let encoded = base64(content);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 38);
    for (i, line) in encoded.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc_4648() {
        // RFC 4648 §10's test vectors.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        // RFC 4954 §4's AUTH PLAIN example: authzid empty, then NULs.
        assert_eq!(
            base64(b"\0tim\0tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
    }

    /// Records what it was given and answers with a fixed header.
    struct Recorder(std::sync::Mutex<Vec<u8>>);
    impl Signer for Recorder {
        fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
            *self.0.lock().unwrap() = message.to_vec();
            Some(b"DKIM-Signature: v=1; test\r\n".to_vec())
        }
    }

    #[test]
    fn the_signature_covers_the_octets_sent_after_conversion() {
        let msg = "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n.Grüße\n";
        let signer = Recorder(Default::default());
        let p = prepare_body(msg.as_bytes(), true, false, Some(&signer)).unwrap();
        let signed = signer.0.lock().unwrap().clone();
        // The signer saw the converted message with CRLF line ends, not
        // dot-stuffed; on the wire it follows the header, dot-stuffed.
        let signed_text = String::from_utf8(signed.clone()).unwrap();
        assert!(
            signed_text.contains("quoted-printable\r\n\r\n.Gr=C3=BC=C3=9Fe\r\n"),
            "{signed_text}"
        );
        let mut expected = b"DKIM-Signature: v=1; test\r\n".to_vec();
        expected.extend_from_slice(&stuff(&signed));
        assert_eq!(p.data, expected);
        assert!(String::from_utf8(p.data).unwrap().contains("\r\n..Gr=C3"));
    }

    /// The byte-at-a-time form of `line_ends`, which the line-at-a-time
    /// one must agree with.
    fn line_ends_bytewise(body: &[u8], dots: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at_line_start = true;
        let mut i = 0;
        while i < body.len() {
            let b = body[i];
            if dots && at_line_start && b == b'.' {
                out.push(b'.');
            }
            match b {
                b'\r' | b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    if b == b'\r' && body.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    at_line_start = true;
                }
                _ => {
                    out.push(b);
                    at_line_start = false;
                }
            }
            i += 1;
        }
        if !at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn line_ends_agree_with_the_bytewise_form() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 48) as usize;
            let input: Vec<u8> = (0..len)
                .map(|k| [b'\r', b'\n', b'.', b'a', 0xC3][((seed >> (k % 60)) % 5) as usize])
                .collect();
            for dots in [false, true] {
                assert_eq!(
                    line_ends(&input, dots),
                    line_ends_bytewise(&input, dots),
                    "{input:?} dots={dots}"
                );
            }
        }
    }

    #[test]
    fn stuffing_and_line_ends() {
        assert_eq!(stuff(b".a\r\nb\n.c\rd"), b"..a\r\nb\r\n..c\r\nd\r\n");
        assert_eq!(stuff(b""), b"");
        assert_eq!(stuff(b"x\r\n"), b"x\r\n");
    }

    /// Whatever the stored message holds (bare CRs and LFs, lone dots),
    /// what goes on the wire has only CRLF line ends, and undoing the
    /// dot-stuffing line by line gives the message back with CRLF ends.
    #[test]
    fn never_a_bare_cr_or_lf_on_the_wire() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| [b'\r', b'\n', b'.', b'a', 0][(next() % 5) as usize])
                .collect();
            let out = stuff(&input);
            for (i, &b) in out.iter().enumerate() {
                match b {
                    b'\r' => assert_eq!(out.get(i + 1), Some(&b'\n'), "{input:?} -> {out:?}"),
                    b'\n' => assert!(i > 0 && out[i - 1] == b'\r', "{input:?} -> {out:?}"),
                    _ => {}
                }
            }
            assert!(out.is_empty() || out.ends_with(b"\r\n"), "{input:?}");
            // No line is a lone dot (the end of data) before the real end.
            assert!(
                !out.split(|&b| b == b'\n').any(|l| l == b".\r"),
                "{input:?} -> {out:?}"
            );
            let unstuffed: Vec<u8> = out
                .split_inclusive(|&b| b == b'\n')
                .flat_map(|l| l.strip_prefix(b".").unwrap_or(l).to_vec())
                .collect();
            assert_eq!(unstuffed, line_ends(&input, false), "{input:?}");
        }
    }

    #[test]
    fn eight_bit_text_part_becomes_quoted_printable() {
        let msg = "MIME-Version: 1.0\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße = gut\r\nzwei\r\n";
        let p = prepare_body(msg.as_bytes(), true, false, None).unwrap();
        let text = String::from_utf8(p.data).unwrap();
        assert!(!p.eight_bit);
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable\r\n\r\n"),
            "{text}"
        );
        assert!(!text.contains("8bit"), "{text}");
        assert!(
            text.contains("Gr=C3=BC=C3=9Fe =3D gut\r\nzwei\r\n"),
            "{text}"
        );
        // Decoded back by a real MIME parser, the text is the same.
        let parsed = MessageParser::default().parse(text.as_bytes()).unwrap();
        assert_eq!(
            parsed.body_text(0).unwrap().trim_end(),
            "Grüße = gut\r\nzwei"
        );
    }

    #[test]
    fn multipart_binary_part_becomes_base64() {
        let msg = b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n\xff\xfe\x00ab\r\n--b--\r\n";
        let p = prepare_body(msg, true, false, None).unwrap();
        assert!(!has_8bit(&p.data));
        let text = String::from_utf8(p.data.clone()).unwrap();
        assert!(
            text.contains("Content-Transfer-Encoding: base64\r\n\r\n//4AYWI=\r\n--b"),
            "{text}"
        );
        let parsed = MessageParser::default().parse(&p.data[..]).unwrap();
        let attachment = parsed.attachment(0).unwrap();
        assert_eq!(attachment.contents(), b"\xff\xfe\x00ab");
    }

    #[test]
    fn what_cannot_be_converted_says_why() {
        let not_mime = "Subject: x\r\n\r\nGrüße\r\n";
        assert!(prepare_body(not_mime.as_bytes(), true, false, None)
            .unwrap_err()
            .contains("not MIME"));
        let header = "MIME-Version: 1.0\r\nSubject: Grüße\r\n\r\nx\r\n";
        assert!(prepare_body(header.as_bytes(), true, false, None)
            .unwrap_err()
            .contains("header"));
        // With 8BITMIME at the peer nothing is converted.
        let p = prepare_body(not_mime.as_bytes(), true, true, None).unwrap();
        assert!(p.eight_bit);
        assert_eq!(p.data, not_mime.as_bytes());
    }

    #[test]
    fn qp_soft_breaks_long_lines() {
        let long = vec![b'a'; 200];
        let out = quoted_printable(&long);
        assert!(out.split(|&b| b == b'\n').all(|l| l.len() <= 77));
        assert_eq!(out.iter().filter(|&&b| b == b'a').count(), 200);
        assert_eq!(quoted_printable(b"end "), b"end=20");
    }
}
