//! Reverse- and forward-paths (`MAIL FROM:<…>`, `RCPT TO:<…>`) parsed by
//! RFC 5321 §4.1.2's grammar, and the command lines that carry them.
//!
//! smtp-proto parses the commands and their parameters, but its address
//! parser drops the quotes of a quoted local part (so `"u@d"@us` would
//! become `u@d@us`), refuses address literals (`u@[192.0.2.1]`) and
//! source routes with them. The path is therefore parsed here, from the
//! raw line, and smtp-proto sees a placeholder in its place.
//!
//! The address we keep is canonical: a source route is dropped (RFC 5321
//! §3.6.1 and appendix C: accepted and ignored), and a quoted local part
//! keeps its quotes only when it needs them (`"alice"@d` is `alice@d`,
//! `"u@d"@us` stays as written) — so no later step can read a different
//! destination out of it. Pure: no I/O, fuzzed by fuzz/ (`smtp_session`,
//! `address`, `route`).

use smtp_proto::{self as sp, Request};

/// Longest path we take, in octets (RFC 5321 §4.5.3.1.3: 256 with the
/// angle brackets).
const MAX_PATH: usize = 256;

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// `local@domain` in canonical form, `""` for the null path `<>`, or
    /// `postmaster` for `<postmaster>`.
    pub address: String,
    /// A source route (`@a,@b:`) was given and dropped.
    pub route: bool,
}

/// What [`parse`] says of anything that is not a valid path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid path (RFC 5321)")]
pub struct BadPath;

/// Whether `b` is `atext` (RFC 5322 §3.2.3; UTF-8 octets for RFC 6531).
fn atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// Whether `s` is a dot-string: atoms of atext joined by single dots.
fn dot_string(s: &[u8]) -> bool {
    !s.is_empty()
        && s.split(|&b| b == b'.')
            .all(|a| !a.is_empty() && a.iter().all(|&b| atext(b)))
}

/// Parse a domain or address literal at the start of `s`; returns its
/// length. A domain is labels of letters, digits, `-`, `_` (and UTF-8)
/// joined by dots, one final dot allowed; a literal is `[IPv4]` or
/// `[IPv6:…]`.
fn domain(s: &[u8]) -> Option<usize> {
    if s.first() == Some(&b'[') {
        let end = s.iter().position(|&b| b == b']')?;
        let inner = std::str::from_utf8(&s[1..end]).ok()?;
        let ok = match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
                inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
        };
        return ok.then_some(end + 1);
    }
    let len = s
        .iter()
        .position(|&b| {
            !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b >= 0x80)
        })
        .unwrap_or(s.len());
    let name = &s[..len];
    let name = name.strip_suffix(b".").unwrap_or(name);
    let valid = !name.is_empty()
        && len <= 255
        && name
            .split(|&b| b == b'.')
            .all(|l| !l.is_empty() && l.len() <= 63);
    valid.then_some(len)
}

/// Parse a path: the text between `<` and `>`. `Err` for anything that
/// is not a valid path.
pub fn parse(path: &[u8]) -> Result<Path, BadPath> {
    if path.is_empty() {
        return Ok(Path {
            address: String::new(),
            route: false,
        });
    }
    if path.eq_ignore_ascii_case(b"postmaster") {
        return Ok(Path {
            address: "postmaster".into(),
            route: false,
        });
    }
    let mut i = 0;
    let mut route = false;
    // A-d-l: "@" domain *( "," "@" domain ) ":"
    if path.first() == Some(&b'@') {
        route = true;
        loop {
            if path.get(i) != Some(&b'@') {
                return Err(BadPath);
            }
            i += 1;
            i += domain(&path[i..]).ok_or(BadPath)?;
            match path.get(i) {
                Some(b',') => i += 1,
                Some(b':') => {
                    i += 1;
                    break;
                }
                _ => return Err(BadPath),
            }
        }
    }
    // Local part: a quoted string or a dot-string.
    let rest = &path[i..];
    let (local, used) = if rest.first() == Some(&b'"') {
        let mut content = Vec::new();
        let mut j = 1;
        loop {
            match rest.get(j) {
                None => return Err(BadPath),
                Some(b'"') => break,
                Some(b'\\') => {
                    let &c = rest.get(j + 1).ok_or(BadPath)?;
                    if c < 32 || c == 127 {
                        return Err(BadPath);
                    }
                    content.push(c);
                    j += 2;
                }
                Some(&c) if c < 32 || c == 127 => return Err(BadPath),
                Some(&c) => {
                    content.push(c);
                    j += 1;
                }
            }
        }
        (quote_if_needed(&content), j + 1)
    } else {
        let end = rest.iter().position(|&b| b == b'@').ok_or(BadPath)?;
        if !dot_string(&rest[..end]) {
            return Err(BadPath);
        }
        (rest[..end].to_vec(), end)
    };
    let rest = &rest[used..];
    if rest.first() != Some(&b'@') || local.is_empty() {
        return Err(BadPath);
    }
    let d = &rest[1..];
    if domain(d) != Some(d.len()) {
        return Err(BadPath);
    }
    let mut address = local;
    address.push(b'@');
    address.extend_from_slice(d);
    let address = String::from_utf8(address).map_err(|_| BadPath)?;
    Ok(Path { address, route })
}

/// Check an address that comes from outside an SMTP session (the HTTP
/// fax API, `faxmta fax send`, a mail fetched by the POP3 gateway, the
/// configuration) before it goes into an envelope: it must be a path by
/// the same grammar as `MAIL FROM`/`RCPT TO` (so no CR, LF, NUL or other
/// control character can ever reach a command line to the next hop), no
/// longer than a path may be, without a source route. `""` (the null
/// sender) only when `null_ok`. The error says what was wrong, with the
/// address escaped.
pub fn check_address(address: &str, null_ok: bool) -> Result<(), String> {
    if address.is_empty() {
        return if null_ok {
            Ok(())
        } else {
            Err("an empty address".into())
        };
    }
    if address.len() > MAX_PATH - 2 {
        return Err(format!(
            "{:?}: longer than {} octets",
            truncate_escaped(address),
            MAX_PATH - 2
        ));
    }
    match parse(address.as_bytes()) {
        Ok(Path { route: false, .. }) => Ok(()),
        Ok(Path { route: true, .. }) => Err(format!(
            "{:?}: a source route is not taken here",
            truncate_escaped(address)
        )),
        Err(BadPath) => Err(format!(
            "{:?} is not a valid address (RFC 5321)",
            truncate_escaped(address)
        )),
    }
}

/// The first 300 characters of `s` (for messages).
fn truncate_escaped(s: &str) -> String {
    s.chars().take(300).collect()
}

/// A quoted local part's content, quoted again only if it is not a
/// dot-string (with `"` and `\` escaped).
fn quote_if_needed(content: &[u8]) -> Vec<u8> {
    if dot_string(content) {
        return content.to_vec();
    }
    let mut out = vec![b'"'];
    for &c in content {
        if c == b'"' || c == b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
    out
}

/// Where the path of a MAIL or RCPT line is: the range of the octets
/// between `<` and `>` (or of the bare address when a client left the
/// brackets out), and the range to replace with a placeholder.
fn locate(line: &[u8], keyword: &[u8]) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let head = line.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let mut start = keyword.len();
    while line.get(start) == Some(&b' ') {
        start += 1;
    }
    if line.get(start) != Some(&b'<') {
        let len = line[start..]
            .iter()
            .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
            .unwrap_or(line.len() - start);
        return Some((start..start + len, start..start + len));
    }
    // Find the closing '>' outside quotes.
    let mut quoted = false;
    let mut j = start + 1;
    while j < line.len() {
        match line[j] {
            b'\\' if quoted => j += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some((start + 1..j, start..j + 1)),
            b'\r' | b'\n' => return None,
            _ => {}
        }
        j += 1;
    }
    None
}

/// Parse one command line (terminator included). MAIL and RCPT are
/// parsed by smtp-proto with their path replaced by a placeholder, and
/// the path itself by [`parse`]; everything else by smtp-proto alone.
///
/// smtp-proto decides which command a line is; a MAIL or RCPT line must
/// then start with exactly `MAIL FROM:` or `RCPT TO:` (any case), or it
/// is a syntax error — smtp-proto's own leniency there (`RCPT TO?:<…>`)
/// must never let its address parser decide a path.
pub fn parse_command(line: &[u8]) -> Result<Request<String>, sp::Error> {
    const MAIL_SYNTAX: &str = "MAIL FROM:<reverse-path> [parameters]";
    const RCPT_SYNTAX: &str = "RCPT TO:<forward-path> [parameters]";
    let first = Request::parse(&mut line.iter()).map(|r| r.into_owned());
    let mail = match &first {
        Ok(Request::Mail { .. }) | Err(sp::Error::InvalidSenderAddress) => true,
        Ok(Request::Rcpt { .. }) | Err(sp::Error::InvalidRecipientAddress) => false,
        Err(sp::Error::SyntaxError { syntax }) if *syntax == MAIL_SYNTAX => true,
        Err(sp::Error::SyntaxError { syntax }) if *syntax == RCPT_SYNTAX => false,
        _ => return first,
    };
    let (keyword, placeholder, invalid, syntax): (&[u8], &[u8], sp::Error, &'static str) = if mail {
        (
            b"MAIL FROM:",
            b"<>",
            sp::Error::InvalidSenderAddress,
            MAIL_SYNTAX,
        )
    } else {
        (
            b"RCPT TO:",
            b"<x@x.invalid>",
            sp::Error::InvalidRecipientAddress,
            RCPT_SYNTAX,
        )
    };
    let Some((path, replace)) = locate(line, keyword) else {
        return Err(sp::Error::SyntaxError { syntax });
    };
    let parsed = if path.len() > MAX_PATH {
        Err(BadPath)
    } else {
        parse(&line[path])
    };
    let mut substitute = line[..replace.start].to_vec();
    substitute.extend_from_slice(placeholder);
    substitute.extend_from_slice(&line[replace.end..]);
    let request = Request::parse(&mut substitute.iter())?.into_owned();
    let Ok(path) = parsed else {
        return Err(invalid);
    };
    match request {
        Request::Mail { mut from } if mail => {
            from.address = path.address;
            Ok(Request::Mail { from })
        }
        Request::Rcpt { mut to } if !mail && !path.address.is_empty() => {
            to.address = path.address;
            Ok(Request::Rcpt { to })
        }
        Request::Rcpt { .. } if !mail => Err(invalid),
        _ => Err(sp::Error::SyntaxError { syntax }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Result<String, BadPath> {
        parse(s.as_bytes()).map(|p| p.address)
    }

    #[test]
    fn paths_are_canonical() {
        assert_eq!(addr("a@b.test"), Ok("a@b.test".into()));
        assert_eq!(addr(""), Ok("".into()));
        assert_eq!(addr("PostMaster"), Ok("postmaster".into()));
        assert_eq!(addr("\"alice\"@b.test"), Ok("alice@b.test".into()));
        assert_eq!(
            addr("\"u@d.test\"@us.test"),
            Ok("\"u@d.test\"@us.test".into())
        );
        assert_eq!(
            addr("\"a b\\\"c\"@us.test"),
            Ok("\"a b\\\"c\"@us.test".into())
        );
        assert_eq!(addr("u%d.test@us.test"), Ok("u%d.test@us.test".into()));
        assert_eq!(addr("d.test!u@us.test"), Ok("d.test!u@us.test".into()));
        assert_eq!(addr("u@[192.0.2.1]"), Ok("u@[192.0.2.1]".into()));
        assert_eq!(
            addr("u@[IPv6:2001:db8::1]"),
            Ok("u@[IPv6:2001:db8::1]".into())
        );
        assert_eq!(addr("zoë@exämple.test"), Ok("zoë@exämple.test".into()));
        assert_eq!(addr("a@b.test."), Ok("a@b.test.".into()));
        let p = parse(b"@us.test,@[192.0.2.1]:u@d.test").unwrap();
        assert_eq!((p.address.as_str(), p.route), ("u@d.test", true));
        for bad in [
            "a",
            "\"u@d.test\"",
            "u@d@us.test",
            "a..b@c.test",
            ".a@c.test",
            "a@",
            "@",
            "a@b..c",
            "a@[300.1.1.1]",
            "a@[IPv6:nope]",
            "a@[1.2.3.4",
            "@us.test:",
            "@us.test",
            "a b@c.test",
            "\"a\nb\"@c.test",
            "\"open@c.test",
            "a@b c",
        ] {
            assert!(addr(bad).is_err(), "{bad:?} accepted as {:?}", addr(bad));
        }
    }

    #[test]
    fn addresses_from_outside_smtp_are_checked() {
        assert_eq!(check_address("alice@example.test", false), Ok(()));
        assert_eq!(check_address("+15551234@fax.test", false), Ok(()));
        assert_eq!(
            check_address("FAX=+1555/T33S=12@example.test", false),
            Ok(())
        );
        assert_eq!(check_address("", true), Ok(()));
        assert!(check_address("", false).is_err());
        for bad in [
            "a@b.test\r\nRCPT TO:<x@y.test>",
            "a@b.test\r\n",
            "a@b.test\n",
            "a@b\0.test",
            "\"a\r\nb\"@c.test",
            "a@b.test> RCPT TO:<x@y.test",
            "@r.test:a@b.test",
            "a b@c.test",
        ] {
            let e = check_address(bad, true).unwrap_err();
            assert!(!e.contains('\r') && !e.contains('\n'), "{e}");
        }
        let long = format!("{}@b.test", "a".repeat(300));
        assert!(check_address(&long, false).is_err());
    }

    fn command(line: &str) -> Result<Request<String>, sp::Error> {
        parse_command(line.as_bytes())
    }

    #[test]
    fn commands_keep_parameters_and_the_real_path() {
        match command("MAIL FROM:<\"x y\"@a.test> SIZE=100 BODY=8BITMIME\r\n") {
            Ok(Request::Mail { from }) => {
                assert_eq!(from.address, "\"x y\"@a.test");
                assert_eq!(from.size, 100);
                assert!(from.flags & sp::MAIL_BODY_8BITMIME != 0);
            }
            other => panic!("{other:?}"),
        }
        match command("rcpt to:<@us.test:u@[127.0.0.1]> NOTIFY=NEVER\r\n") {
            Ok(Request::Rcpt { to }) => {
                assert_eq!(to.address, "u@[127.0.0.1]");
                assert!(to.flags & sp::RCPT_NOTIFY_NEVER != 0);
            }
            other => panic!("{other:?}"),
        }
        match command("MAIL FROM:<>\r\n") {
            Ok(Request::Mail { from }) => assert_eq!(from.address, ""),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            command("RCPT TO:<>\r\n"),
            Err(sp::Error::InvalidRecipientAddress)
        ));
        assert!(matches!(
            command("RCPT TO:<u@d@us.test>\r\n"),
            Err(sp::Error::InvalidRecipientAddress)
        ));
        assert!(matches!(
            command("MAIL FROM:<a@b.test> FOO=1\r\n"),
            Err(sp::Error::UnsupportedParameter { .. })
        ));
        // The quotes of a > inside a quoted local part do not end the path.
        match command("RCPT TO:<\"a>b\"@us.test>\r\n") {
            Ok(Request::Rcpt { to }) => assert_eq!(to.address, "\"a>b\"@us.test"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(command("NOOP\r\n"), Ok(Request::Noop { .. })));
        // smtp-proto takes these for RCPT and MAIL; we do not let its
        // address parser read the path (it would drop the quotes).
        for lenient in [
            "RCPT TO\u{ea}:<\"x@l.test\"@example.test>\r\n",
            "RCPT TO?:<a@b.test>\r\n",
            "  MAIL FROM:<a@b.test>\r\n",
        ] {
            assert!(
                matches!(command(lenient), Err(sp::Error::SyntaxError { .. })),
                "{lenient:?}: {:?}",
                command(lenient)
            );
        }
    }
}
