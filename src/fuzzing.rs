//! Entry points for the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer):
//! each takes arbitrary bytes, runs one of the parsers that read what
//! clients send, and checks properties that must hold for any input. A
//! panic is a bug. The unit test at the end replays the corpus kept in
//! fuzz/corpus/, so the findings stay covered on the stable toolchain.
#![doc(hidden)]

use crate::config::{BareNewline, Config};
use crate::policy::relay;
use crate::router::{Route, Router};
use crate::server::data::{DataError, DataReader};
use crate::server::path;
use std::sync::OnceLock;

/// Whether `bytes` has a CR not followed by LF or an LF not after a CR.
fn has_bare_newline(bytes: &[u8]) -> bool {
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

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let text = r#"hostname = "mx.example.test"
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:/var/mail/{domain}/{user}"
[[domain]]
name = "users.test"
kind = "local"
deliver = "maildir:/var/mail/{domain}/{user}"
users = ["alice", "bob"]
[[domain]]
name = "branch.test"
kind = "relay"
hosts = ["127.0.0.5:25"]
[[domain]]
name = "partner.test"
kind = "backup-mx"
[[domain]]
name = "customer.test"
kind = "etrn"
release_from = ["127.0.0.6/32"]
hosts = ["127.0.0.6"]
[[domain]]
name = "fax.test"
kind = "fax"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
outside_line = "9"
[[fax.user]]
address = "*@example.test"
"#;
        match Config::parse(std::path::Path::new("fuzz.toml"), text) {
            Ok(c) => Router::new(&c),
            Err(e) => panic!("the fuzz configuration: {e}"),
        }
    })
}

/// The address parsers: a path as a client writes it (RFC 5321 grammar,
/// src/server/path.rs), then the router and relay control on it, as a
/// client that may not relay and one that may. Properties: a canonical
/// address parses to itself; a client that may not relay never gets a
/// route that relays; no accepted address in our domains carries a route
/// of its own (`%`, `!`, quoted `@`); a Maildir path never leaves its
/// domain's directory; a fax route is an E.164 number and a dial string of
/// digits. The same input also goes through the fax address parsers on
/// their own ([`fax_forms`]).
pub fn address(data: &[u8]) {
    fax_forms(data);
    let Ok(path) = path::parse(data) else {
        return;
    };
    let address = path.address;
    let again = path::parse(address.as_bytes()).map(|p| p.address);
    assert_eq!(again.as_ref(), Ok(&address));
    let router = router();
    let _ = router.resolve(&address);
    for may_relay in [false, true] {
        let Ok(route) = relay::check(router, may_relay, &address) else {
            continue;
        };
        assert!(may_relay || !route.is_relay(), "{address} relayed");
        if !route.is_relay() {
            assert!(!relay::has_routing(&address), "{address} routed");
        }
        if let Route::Fax(target) = &route {
            // A fax route is a number and digits to dial, nothing else.
            let number = target.number.as_str();
            assert!(number.starts_with('+'), "{address}: {number}");
            assert!(number[1..].bytes().all(|b| b.is_ascii_digit()), "{address}");
            assert!(number.len() <= 16, "{address}: {number}");
            assert!(
                target.dial.bytes().all(|b| b.is_ascii_digit() || b == b'+'),
                "{address}: dial {}",
                target.dial
            );
        }
        if let Route::Maildir { mailbox } = &route {
            let base = std::path::Path::new("/var/mail");
            assert!(mailbox.starts_with(base), "{address}: {mailbox:?}");
            assert!(
                mailbox.components().all(|c| matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::RootDir
                )),
                "{address}: {mailbox:?}"
            );
            assert!(mailbox.components().count() == 5, "{address}: {mailbox:?}");
        }
    }
}

/// The fax address forms on their own, from any text: `number@`, `FAX=`
/// and `IMCEAFAX-` local parts, `fax:`/`tel:` URIs never panic, and the
/// IMCEA encoding decodes back to what was encoded.
fn fax_forms(data: &[u8]) {
    use faxmta_fax::address::{imcea_decode, imcea_encode, parse_local_part, parse_text, At};
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
    use faxmta_smtp::{prepare_body, stuff};
    let wire = stuff(data);
    assert!(!has_bare_newline(&wire));
    let mut sent = wire.clone();
    sent.extend_from_slice(b".\r\n");
    let mut reader = DataReader::new(BareNewline::Reject, usize::MAX, 0);
    assert_eq!(reader.feed(&sent), Some(sent.len()));
    assert!(reader.finish().is_ok());
    for peer_8bit in [false, true] {
        if let Ok(p) = prepare_body(data, faxmta_queue::BodyType::EightBitMime, peer_8bit, None) {
            assert!(!has_bare_newline(&p.data));
            assert!(peer_8bit || !p.data.iter().any(|&b| b >= 0x80));
        }
    }
}

/// An SPF record as a domain publishes it in DNS (crate faxmta-spf): the
/// record parser never panics; a record it accepts is an SPF record
/// (`v=spf1` then a space or the end) of printable ASCII; every
/// domain-spec in it expands, for an IPv4 and an IPv6 client, into
/// printable ASCII; the same bytes as an explanation text parse or not
/// without a panic, and expand likewise.
pub fn spf_record(data: &[u8]) {
    use faxmta_spf::macros::{MacroString, Use, Vars};
    use faxmta_spf::parse::{is_spf_record, Mechanism, Record};
    let vars = |ip: &str| Vars {
        sender: "first-second+x@example.test".into(),
        domain: "example.test".into(),
        ip: ip.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        helo: "mail.example.test".into(),
        receiver: "mx.example.test".into(),
        now: 1_700_000_000,
    };
    let both = [vars("192.0.2.1"), vars("2001:db8::cb01")];
    let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    if let Ok(record) = Record::parse(data) {
        assert!(is_spf_record(data));
        assert!(data.iter().all(|b| (0x20..0x7f).contains(b)));
        let mut specs: Vec<&MacroString> = record.redirect.iter().chain(&record.exp).collect();
        for d in &record.directives {
            match &d.mechanism {
                Mechanism::Include(s) | Mechanism::Exists(s) => specs.push(s),
                Mechanism::A { domain, .. } | Mechanism::Mx { domain, .. } => specs.extend(domain),
                Mechanism::Ptr(domain) => specs.extend(domain),
                Mechanism::All | Mechanism::Ip4(..) | Mechanism::Ip6(..) => {}
            }
        }
        for spec in specs {
            for v in &both {
                assert!(printable(&spec.expand(v, Some("ptr.example.test"))));
            }
        }
    }
    if let Ok(exp) = MacroString::parse(&String::from_utf8_lossy(data), Use::Explanation) {
        for v in &both {
            assert!(printable(&exp.expand(v, None)));
        }
    }
}

#[cfg(test)]
mod tests {
    /// Replay every input kept in fuzz/corpus/TARGET/.
    #[test]
    fn the_fuzz_corpus_still_passes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 4] = [
            ("smtp_session", super::smtp_session),
            ("address", super::address),
            ("outbound_body", super::outbound_body),
            ("spf_record", super::spf_record),
        ];
        let mut n = 0;
        for (name, run) in targets {
            let Ok(dir) = std::fs::read_dir(root.join(name)) else {
                continue;
            };
            for entry in dir.flatten() {
                run(&std::fs::read(entry.path()).unwrap());
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
        super::spf_record(
            b"v=spf1 a:%{L}.%{ir}.%{v}/24//64 exists:%{p}.x.test -all exp=%{d2}.e.test",
        );
        super::spf_record(b"v=spf1 a:%{l99999999999999999999r-+,/_=}.x.test redirect=%%.%_.%-");
        eprintln!("replayed {n} corpus inputs");
    }
}
