//! SPF macros (RFC 7208 §7): the grammar of a macro-string and of an
//! explain-string, and their expansion for one check.
//!
//! ```text
//! macro-string  = *( macro-expand / macro-literal )
//! macro-expand  = ( "%{" macro-letter transformers *delimiter "}" )
//!                 / "%%" / "%_" / "%-"
//! macro-literal = %x21-24 / %x26-7E        ; visible characters except "%"
//! macro-letter  = "s" / "l" / "o" / "d" / "i" / "p" / "h" /
//!                 "c" / "r" / "t" / "v"
//! transformers  = *DIGIT [ "r" ]
//! delimiter     = "." / "-" / "+" / "," / "/" / "_" / "="
//! explain-string = *( macro-string / SP )
//! ```

use std::net::IpAddr;

/// One piece of a macro-string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text (`%%`, `%_` and `%-` already turned into `%`, a space
    /// and `%20`).
    Text(String),
    /// `%{…}`.
    Macro(Macro),
}

/// `%{` letter transformers delimiters `}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macro {
    /// The letter, lower case.
    pub letter: u8,
    /// Written in upper case: the value is URL-escaped (§7.3).
    pub escape: bool,
    /// Keep this many right-hand parts (`None`: all).
    pub keep: Option<usize>,
    /// `r`: reverse the parts first.
    pub reverse: bool,
    /// The delimiters to split on (`.` when none are given).
    pub delimiters: Vec<u8>,
}

/// A parsed macro-string (or explain-string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroString {
    pub pieces: Vec<Piece>,
    /// The last token is a macro-expand (`%{…}`, `%%`, `%_` or `%-`).
    pub ends_in_macro: bool,
}

/// Where a macro-string stands: the letters `c`, `r` and `t` are allowed
/// only in explanation text (§7.1); an explain-string may hold spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A domain-spec (mechanism target, `redirect=`, `exp=`).
    Domain,
    /// The value of an unknown modifier: any letter, never expanded.
    Modifier,
    /// The TXT record an `exp=` names.
    Explanation,
}

impl MacroString {
    /// Parse `text` for `usage`; the error says what is wrong.
    pub fn parse(text: &str, usage: Use) -> Result<MacroString, String> {
        let b = text.as_bytes();
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        let mut ends_in_macro = false;
        while i < b.len() {
            let c = b[i];
            ends_in_macro = c == b'%';
            if c == b'%' {
                match b.get(i + 1) {
                    Some(b'%') => lit.push('%'),
                    Some(b'_') => lit.push(' '),
                    Some(b'-') => lit.push_str("%20"),
                    Some(b'{') => {
                        let end = b[i + 2..]
                            .iter()
                            .position(|&x| x == b'}')
                            .ok_or_else(|| format!("unterminated macro in {text:?}"))?;
                        let m = parse_macro(&b[i + 2..i + 2 + end], usage)
                            .map_err(|e| format!("{e} in {text:?}"))?;
                        if !lit.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut lit)));
                        }
                        pieces.push(Piece::Macro(m));
                        i += 3 + end;
                        continue;
                    }
                    _ => {
                        return Err(format!(
                            "a '%' not followed by '{{', '%', '_' or '-' in {text:?}"
                        ))
                    }
                }
                i += 2;
                continue;
            }
            let ok = (0x21..=0x7e).contains(&c) || (c == b' ' && usage == Use::Explanation);
            if !ok {
                return Err(format!("character {c:#04x} not allowed in {text:?}"));
            }
            lit.push(c as char);
            i += 1;
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(MacroString {
            pieces,
            ends_in_macro,
        })
    }

    /// The literal text after the last `%{…}` (all of it when there is
    /// none).
    pub fn tail(&self) -> &str {
        match self.pieces.last() {
            Some(Piece::Text(t)) => t,
            _ => "",
        }
    }

    /// Expand with `vars`; `%{p}` is asked of `vars` only when used.
    pub fn expand(&self, vars: &Vars, ptr_name: Option<&str>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Macro(m) => {
                    let value = vars.value(m.letter, ptr_name);
                    let value = transform(&value, m);
                    if m.escape {
                        out.push_str(&url_escape(&value));
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }

    /// Whether `%{p}` is used (it costs DNS lookups).
    pub fn uses_ptr(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Macro(m) if m.letter == b'p'))
    }
}

/// The inside of `%{` … `}`.
fn parse_macro(body: &[u8], usage: Use) -> Result<Macro, String> {
    let (&first, rest) = body
        .split_first()
        .ok_or_else(|| "an empty macro".to_string())?;
    let letter = first.to_ascii_lowercase();
    if !b"slodiphcrtv".contains(&letter) {
        return Err(format!("unknown macro letter {:?}", first as char));
    }
    if b"crt".contains(&letter) && usage == Use::Domain {
        return Err(format!(
            "macro letter {:?} is allowed only in explanations",
            first as char
        ));
    }
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let keep = if digits > 0 {
        let n: usize = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        if n == 0 {
            return Err("a macro keeping zero parts".to_string());
        }
        Some(n)
    } else {
        None
    };
    let mut rest = &rest[digits..];
    let reverse = matches!(rest.first(), Some(b'r' | b'R'));
    if reverse {
        rest = &rest[1..];
    }
    if let Some(bad) = rest.iter().find(|c| !b".-+,/_=".contains(c)) {
        return Err(format!("{:?} is not a macro delimiter", *bad as char));
    }
    Ok(Macro {
        letter,
        escape: first.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters: rest.to_vec(),
    })
}

/// Split on the delimiters, reverse, keep the right-hand parts, join with
/// dots (§7.3).
fn transform(value: &str, m: &Macro) -> String {
    if m.keep.is_none() && !m.reverse && m.delimiters.is_empty() {
        return value.to_string();
    }
    let delims: &[u8] = if m.delimiters.is_empty() {
        b"."
    } else {
        &m.delimiters
    };
    let mut parts: Vec<&str> = value.split(|c: char| delims.contains(&(c as u8))).collect();
    if m.reverse {
        parts.reverse();
    }
    if let Some(n) = m.keep {
        if n < parts.len() {
            parts.drain(..parts.len() - n);
        }
    }
    parts.join(".")
}

/// URL-escape all but the unreserved characters (RFC 3986).
fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The values the macro letters stand for in one check_host().
#[derive(Debug, Clone)]
pub struct Vars {
    /// `<sender>`: local-part@domain (local part `postmaster` when empty).
    pub sender: String,
    /// `<domain>`, the current one.
    pub domain: String,
    /// `<ip>` (an IPv4-mapped address already made IPv4).
    pub ip: IpAddr,
    /// The HELO/EHLO name.
    pub helo: String,
    /// The receiver's host name (`%{r}`).
    pub receiver: String,
    /// Seconds since the epoch (`%{t}`).
    pub now: u64,
}

impl Vars {
    fn value(&self, letter: u8, ptr_name: Option<&str>) -> String {
        let (local, domain) = self
            .sender
            .rsplit_once('@')
            .unwrap_or(("postmaster", &self.sender));
        match letter {
            b's' => self.sender.clone(),
            b'l' => local.to_string(),
            b'o' => domain.to_string(),
            b'd' => self.domain.clone(),
            b'i' => dotted(self.ip),
            b'p' => ptr_name.unwrap_or("unknown").to_string(),
            b'h' => self.helo.clone(),
            b'c' => self.ip.to_string(),
            b'r' => self.receiver.clone(),
            b't' => self.now.to_string(),
            b'v' => match self.ip {
                IpAddr::V4(_) => "in-addr".to_string(),
                IpAddr::V6(_) => "ip6".to_string(),
            },
            _ => String::new(),
        }
    }
}

/// `%{i}`: dotted quad, or the 32 nibbles of an IPv6 address separated by
/// dots (§7.3).
pub fn dotted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .flat_map(|b| [b >> 4, b & 0xf])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            sender: "strong-bad@email.example.com".into(),
            domain: "email.example.com".into(),
            ip: "192.0.2.3".parse().unwrap(),
            helo: "mx.example.org".into(),
            receiver: "mx.receiver.test".into(),
            now: 1_000_000_000,
        }
    }

    fn expand(text: &str, usage: Use, v: &Vars) -> String {
        MacroString::parse(text, usage)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .expand(v, None)
    }

    /// RFC 7208 §7.4, the examples.
    #[test]
    fn section_7_4_examples() {
        let v = vars();
        let table = [
            ("%{s}", "strong-bad@email.example.com"),
            ("%{o}", "email.example.com"),
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{l}", "strong-bad"),
            ("%{l-}", "strong.bad"),
            ("%{lr}", "strong-bad"),
            ("%{lr-}", "bad.strong"),
            ("%{l1r-}", "strong"),
            (
                "%{ir}.%{v}._spf.%{d2}",
                "3.2.0.192.in-addr._spf.example.com",
            ),
            ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
            (
                "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
                "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
            ),
            (
                "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
                "3.2.0.192.in-addr.strong.lp._spf.example.com",
            ),
            (
                "%{d2}.trusted-domains.example.net",
                "example.com.trusted-domains.example.net",
            ),
        ];
        for (text, want) in table {
            assert_eq!(expand(text, Use::Domain, &v), want, "{text}");
        }
        let v6 = Vars {
            ip: "2001:db8::cb01".parse().unwrap(),
            ..vars()
        };
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", Use::Domain, &v6),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
    }

    /// §7.1 and §7.3: escapes, upper-case letters, explanation-only letters.
    #[test]
    fn section_7_1_grammar_and_7_3_escaping() {
        let v = Vars {
            sender: "~jack&jill=up-a_b3.c@example.com".into(),
            ..vars()
        };
        assert_eq!(
            expand("why.html?l=%{L}", Use::Explanation, &v),
            "why.html?l=~jack%26jill%3Dup-a_b3.c"
        );
        assert_eq!(
            expand("macro%%percent%_%_space%-url", Use::Domain, &v),
            "macro%percent  space%20url"
        );
        assert_eq!(
            expand("%{c} at %{r} %{t}", Use::Explanation, &vars()),
            "192.0.2.3 at mx.receiver.test 1000000000"
        );
        let v6 = Vars {
            ip: "CAFE:BABE::1".parse().unwrap(),
            ..vars()
        };
        assert_eq!(expand("%{c}", Use::Explanation, &v6), "cafe:babe::1");
        assert_eq!(expand("%{p}", Use::Domain, &v6), "unknown");
        assert_eq!(
            expand(
                "%{l2r+-}",
                Use::Domain,
                &Vars {
                    sender: "foo-bar+zip+quux@x.test".into(),
                    ..vars()
                }
            ),
            "bar.foo"
        );
        for bad in [
            "%(ir).sbl.test",
            "foo%.sbl.test",
            "%",
            "%{x}",
            "%{d0}",
            "%{d2x}",
            "%{d",
            "%{}",
            "%{r}.test",
            "%{c}",
            "%{t}",
            "a b",
            "caf\u{e9}",
        ] {
            assert!(MacroString::parse(bad, Use::Domain).is_err(), "{bad:?}");
        }
        assert!(MacroString::parse("%{r} %{c} %{T}", Use::Explanation).is_ok());
        assert!(MacroString::parse("The %{x}-files.", Use::Explanation).is_err());
        assert!(MacroString::parse("%{c}", Use::Modifier).is_ok());
    }
}
