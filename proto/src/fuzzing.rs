//! Entry points for the fuzz targets in fuzz/ that need nothing but this
//! crate (cargo-fuzz, libFuzzer): each takes arbitrary bytes, runs one of
//! the parsers, and checks properties that must hold for any input. A
//! panic is a bug. The unit test at the end replays the corpus kept in
//! fuzz/corpus/, so the findings stay covered on the stable toolchain.
//! (The router and relay control need the daemon: `faxmta::fuzzing`.)

use crate::body::{prepare_body, stuff};
use crate::data::{BareNewline, DataError, DataReader};
use crate::fax_address::{imcea_decode, imcea_encode, parse_local_part, parse_text, At};
use crate::path;

/// Whether `bytes` has a CR not followed by LF or an LF not after a CR.
pub fn has_bare_newline(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || bytes[i - 1] != b'\r',
        _ => false,
    })
}

/// Read `input` as one DATA body, fed in pieces of the given sizes
/// (cycled): where the end was found (octets used) and the result.
fn read_data(
    mode: BareNewline,
    input: &[u8],
    pieces: &[usize],
) -> (Option<usize>, Result<Vec<u8>, DataError>) {
    let mut reader = DataReader::new(mode, 4096, 1000);
    let mut used = 0;
    let mut sizes = pieces.iter().cycle();
    while used < input.len() {
        let n = sizes.next().copied().unwrap_or(input.len()).max(1);
        let piece = &input[used..(used + n).min(input.len())];
        if let Some(k) = reader.feed(piece) {
            return (Some(used + k), reader.finish());
        }
        used += piece.len();
    }
    (None, reader.finish())
}

/// The SMTP session's parsers: the first octet picks the bare-newline
/// mode and how the input is cut into pieces; the rest is parsed as
/// command lines (smtp-proto and the path parser) and read as a DATA
/// body. Properties: the DATA reader finds the same end and body however
/// the input is cut; the end is a `CRLF.CRLF` (or a `.CRLF` at the
/// start); a body has no bare CR or LF and fits the size limit; a path
/// parsed once parses again to itself.
pub fn smtp_session(data: &[u8]) {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    for line in input.split_inclusive(|&b| b == b'\n') {
        if let Ok(smtp_proto::Request::Rcpt { to }) = path::parse_command(line) {
            let again = path::parse(to.address.as_bytes()).map(|p| p.address);
            assert_eq!(again, Ok(to.address.clone()), "{line:?}");
        }
    }
    let mode = match control & 1 {
        0 => BareNewline::Reject,
        _ => BareNewline::Normalize,
    };
    let whole = read_data(mode, input, &[input.len()]);
    let small = usize::from(control >> 1) % 7 + 1;
    let cut = read_data(mode, input, &[small, 1, 3]);
    assert_eq!(whole, cut, "mode {mode:?}, pieces of {small}");
    if let Some(end) = whole.0 {
        let head = &input[..end];
        assert!(
            head == b".\r\n" || head.ends_with(b"\r\n.\r\n"),
            "ended at {head:?}"
        );
    }
    if let (Some(_), Ok(body)) = &whole {
        assert!(!has_bare_newline(body), "{body:?}");
        assert!(body.len() <= 4096);
    }
}

/// The address parsers on their own: a path as a client writes it
/// (RFC 5321 grammar, `path.rs`) parses, once canonical, to itself; the
/// same input goes through the fax address parsers ([`fax_forms`]). What
/// the router and relay control make of a path is the `route` target's
/// (`faxmta::fuzzing::route`).
pub fn address(data: &[u8]) {
    fax_forms(data);
    let Ok(path) = path::parse(data) else {
        return;
    };
    let again = path::parse(path.address.as_bytes()).map(|p| p.address);
    assert_eq!(again.as_ref(), Ok(&path.address));
}

/// The fax address forms on their own, from any text: `number@`, `FAX=`
/// and `IMCEAFAX-` local parts, `fax:`/`tel:` URIs never panic, and the
/// IMCEA encoding decodes back to what was encoded.
fn fax_forms(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_text(&text);
    for at in [At::FaxDomain, At::OwnDomain] {
        if let Ok(Some(parsed)) = parse_local_part(&text, at) {
            assert!(!parsed.number.is_empty(), "{text:?}");
        }
    }
    let encoded = imcea_encode(&text);
    let back = encoded.strip_prefix("IMCEAFAX-").map(imcea_decode);
    assert_eq!(back, Some(Ok(text.clone().into_owned())), "{encoded}");
}

/// Outbound: a stored message prepared for the wire (8BITMIME downgrade
/// for a server without it, CRLF, dot-stuffing) never holds a bare CR or
/// LF, and our own DATA reader reads it back to the end exactly.
pub fn outbound_body(data: &[u8]) {
    let wire = stuff(data);
    assert!(!has_bare_newline(&wire));
    let mut sent = wire.clone();
    sent.extend_from_slice(b".\r\n");
    let mut reader = DataReader::new(BareNewline::Reject, usize::MAX, 0);
    assert_eq!(reader.feed(&sent), Some(sent.len()));
    assert!(reader.finish().is_ok());
    for peer_8bit in [false, true] {
        if let Ok(p) = prepare_body(data, true, peer_8bit, None) {
            assert!(!has_bare_newline(&p.data));
            assert!(peer_8bit || !p.data.iter().any(|&b| b >= 0x80));
        }
    }
}

/// Every input kept in fuzz/corpus/`target`/ (none when it is not
/// there), for the replay tests here and in the daemon. The one function
/// of this crate that reads files: only in its tests and with the
/// feature `corpus` (the daemon's dev-dependency).
#[cfg(any(test, feature = "corpus"))]
pub fn corpus(target: &str) -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let Ok(dir) = std::fs::read_dir(root.join(target)) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| std::fs::read(entry.path()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    /// Replay every input kept in fuzz/corpus/TARGET/.
    #[test]
    fn the_fuzz_corpus_still_passes() {
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 3] = [
            ("smtp_session", super::smtp_session),
            ("address", super::address),
            ("outbound_body", super::outbound_body),
        ];
        let mut n = 0;
        for (name, run) in targets {
            for input in super::corpus(name) {
                run(&input);
                n += 1;
            }
        }
        // Some cases of our own, whether or not a corpus is there.
        super::smtp_session(b"\x01a\nb\r.\n.\r\nMAIL FROM:<\"a b\"@x>\r\n");
        super::address(b"\"u@elsewhere.test\"@example.test");
        super::address(b"@example.test:u%x@branch.test");
        super::address(b"IMCEAFAX-Bob+40+2B1+20(555)+20010-0199@fax.test");
        super::address(b"FAX=+1-555-010-0199/T33S=42@example.test");
        super::address(b"fax:+15550100199;tsub=7");
        super::outbound_body(b".\n.\r\r\n\xff");
        assert!(n > 0, "no corpus in fuzz/corpus/");
        eprintln!("replayed {n} corpus inputs");
    }
}
