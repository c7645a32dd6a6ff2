//! The SPF record grammar (RFC 7208 §4.5, §4.6.1, §5, §6 and §12): which
//! TXT records are SPF records, and a record parsed into its directives
//! and modifiers. Any syntax error anywhere makes the whole record a
//! permerror (§4.6), so a record is parsed whole before it is evaluated.
//!
//! ```text
//! record           = version terms *SP
//! version          = "v=spf1"
//! terms            = *( 1*SP ( directive / modifier ) )
//! directive        = [ qualifier ] mechanism
//! qualifier        = "+" / "-" / "?" / "~"
//! mechanism        = ( all / include / a / mx / ptr / ip4 / ip6 / exists )
//! a                = "a"      [ ":" domain-spec ] [ dual-cidr-length ]
//! ip4              = "ip4"      ":" ip4-network   [ ip4-cidr-length ]
//! ip4-cidr-length  = "/" ("0" / %x31-39 0*1DIGIT) ; value range 0-32
//! ip6-cidr-length  = "/" ("0" / %x31-39 0*2DIGIT) ; value range 0-128
//! dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ]
//! modifier         = redirect / explanation / unknown-modifier
//! unknown-modifier = name "=" macro-string
//! name             = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
//! domain-spec      = macro-string domain-end
//! domain-end       = ( "." toplabel [ "." ] ) / macro-expand
//! toplabel         = ( *alphanum ALPHA *alphanum ) /
//!                    ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
//! ```

use crate::macros::{MacroString, Use};
use std::net::{Ipv4Addr, Ipv6Addr};

/// `+`, `-`, `~`, `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

/// A mechanism with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    All,
    Include(MacroString),
    A {
        domain: Option<MacroString>,
        cidr4: u8,
        cidr6: u8,
    },
    Mx {
        domain: Option<MacroString>,
        cidr4: u8,
        cidr6: u8,
    },
    Ptr(Option<MacroString>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(MacroString),
}

impl Mechanism {
    /// Counts toward the limit of 10 DNS-querying terms (§4.6.4).
    pub fn queries_dns(&self) -> bool {
        !matches!(
            self,
            Mechanism::All | Mechanism::Ip4(..) | Mechanism::Ip6(..)
        )
    }
}

/// One directive: qualifier, mechanism, and its text (for reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub qualifier: Qualifier,
    pub mechanism: Mechanism,
    pub text: String,
}

/// A parsed SPF record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub directives: Vec<Directive>,
    pub redirect: Option<MacroString>,
    pub exp: Option<MacroString>,
}

/// Whether a TXT record (its strings joined) is an SPF record: `v=spf1`
/// in any case, then a space or the end (§4.5).
pub fn is_spf_record(txt: &[u8]) -> bool {
    txt.len() >= 6
        && txt[..6].eq_ignore_ascii_case(b"v=spf1")
        && txt.get(6).is_none_or(|&b| b == b' ')
}

impl Record {
    /// Parse an SPF record; the error says what is wrong.
    pub fn parse(txt: &[u8]) -> Result<Record, String> {
        if !is_spf_record(txt) {
            return Err("not an SPF record (no v=spf1)".into());
        }
        if let Some(&b) = txt.iter().find(|&&b| !(0x20..=0x7e).contains(&b)) {
            return Err(format!(
                "character {b:#04x} in the record (only printable ASCII and spaces are allowed)"
            ));
        }
        // Printable ASCII only: a str.
        let text = String::from_utf8_lossy(&txt[6..]).into_owned();
        let mut record = Record {
            directives: Vec::new(),
            redirect: None,
            exp: None,
        };
        for term in text.split(' ').filter(|t| !t.is_empty()) {
            if let Some((name, value)) = modifier(term) {
                let slot = match name.to_ascii_lowercase().as_str() {
                    "redirect" => &mut record.redirect,
                    "exp" => &mut record.exp,
                    _ => {
                        MacroString::parse(value, Use::Modifier)
                            .map_err(|e| format!("modifier {term:?}: {e}"))?;
                        continue;
                    }
                };
                if slot.is_some() {
                    return Err(format!("{name}= given twice (§6)"));
                }
                *slot = Some(domain_spec(value).map_err(|e| format!("{term:?}: {e}"))?);
            } else {
                let directive = directive(term).map_err(|e| format!("{term:?}: {e}"))?;
                record.directives.push(directive);
            }
        }
        Ok(record)
    }
}

/// `name=value` when `term` is a modifier: a name of ALPHA then ALPHA,
/// DIGIT, `-`, `_` or `.`, immediately followed by `=`.
fn modifier(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let mut chars = name.bytes();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)))
        .then_some((name, value))
}

fn directive(term: &str) -> Result<Directive, String> {
    let (qualifier, rest) = match term.as_bytes().first() {
        Some(b'+') => (Qualifier::Pass, &term[1..]),
        Some(b'-') => (Qualifier::Fail, &term[1..]),
        Some(b'~') => (Qualifier::SoftFail, &term[1..]),
        Some(b'?') => (Qualifier::Neutral, &term[1..]),
        _ => (Qualifier::Pass, term),
    };
    let split = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, args) = rest.split_at(split);
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if args.is_empty() => Mechanism::All,
        "all" => return Err("all takes no argument".into()),
        "include" => Mechanism::Include(required_domain(args)?),
        "exists" => Mechanism::Exists(required_domain(args)?),
        "ptr" => Mechanism::Ptr(match args {
            "" => None,
            _ => Some(required_domain(args)?),
        }),
        "a" | "mx" => {
            let (domain, cidr4, cidr6) = domain_and_dual_cidr(args)?;
            if name.eq_ignore_ascii_case("a") {
                Mechanism::A {
                    domain,
                    cidr4,
                    cidr6,
                }
            } else {
                Mechanism::Mx {
                    domain,
                    cidr4,
                    cidr6,
                }
            }
        }
        "ip4" => {
            let arg = args.strip_prefix(':').ok_or("ip4 needs an address")?;
            let (net, len) = match arg.split_once('/') {
                Some((net, len)) => (net, cidr(len, 32)?),
                None => (arg, 32),
            };
            Mechanism::Ip4(ip4_network(net)?, len)
        }
        "ip6" => {
            let arg = args.strip_prefix(':').ok_or("ip6 needs an address")?;
            let (net, len) = match arg.split_once('/') {
                Some((net, len)) => (net, cidr(len, 128)?),
                None => (arg, 128),
            };
            let addr = net
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("{net:?} is not an IPv6 address"))?;
            Mechanism::Ip6(addr, len)
        }
        "" => return Err("no mechanism".into()),
        other => return Err(format!("unknown mechanism {other:?}")),
    };
    Ok(Directive {
        qualifier,
        mechanism,
        text: term.to_string(),
    })
}

/// `":" domain-spec`, not empty.
fn required_domain(args: &str) -> Result<MacroString, String> {
    let spec = args.strip_prefix(':').ok_or("needs \":domain\"")?;
    domain_spec(spec)
}

/// `[ ":" domain-spec ] [ dual-cidr-length ]` of a and mx. A domain-spec
/// never ends in `/` and digits (its domain-end is a top label or a
/// macro), so trailing `/N` and `//N` are the prefix lengths.
fn domain_and_dual_cidr(args: &str) -> Result<(Option<MacroString>, u8, u8), String> {
    let mut rest = args;
    let mut cidr6 = 128;
    let mut cidr4 = 32;
    if let Some((head, len)) = trailing_length(rest) {
        if let Some(head6) = head.strip_suffix('/') {
            cidr6 = cidr(len, 128)?;
            rest = head6;
            if let Some((head4, len4)) = trailing_length(rest) {
                cidr4 = cidr(len4, 32)?;
                rest = head4;
            }
        } else {
            cidr4 = cidr(len, 32)?;
            rest = head;
        }
    }
    let domain = match rest {
        "" => None,
        _ => Some(required_domain(rest)?),
    };
    Ok((domain, cidr4, cidr6))
}

/// `text` as (before "/", digits) when it ends in "/" and digits.
fn trailing_length(text: &str) -> Option<(&str, &str)> {
    let (head, len) = text.rsplit_once('/')?;
    (!len.is_empty() && len.bytes().all(|b| b.is_ascii_digit())).then_some((head, len))
}

/// A prefix length: "0" or digits without a leading zero, at most `max`.
fn cidr(len: &str, max: u8) -> Result<u8, String> {
    let syntax = !len.is_empty()
        && len.len() <= 3
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'));
    match len.parse::<u8>() {
        Ok(n) if syntax && n <= max => Ok(n),
        _ => Err(format!("/{len} is not a prefix length (0 to {max})")),
    }
}

/// `qnum "." qnum "." qnum "." qnum`, no leading zeros.
fn ip4_network(text: &str) -> Result<Ipv4Addr, String> {
    let bad = || format!("{text:?} is not an IPv4 address");
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4 {
        return Err(bad());
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        let ok = !p.is_empty()
            && p.len() <= 3
            && p.bytes().all(|b| b.is_ascii_digit())
            && (*p == "0" || !p.starts_with('0'));
        *o = p.parse().ok().filter(|_| ok).ok_or_else(bad)?;
    }
    Ok(Ipv4Addr::from(octets))
}

/// A domain-spec: a macro-string ending in a macro or in `.` toplabel
/// (an optional final dot after it).
pub fn domain_spec(text: &str) -> Result<MacroString, String> {
    if text.is_empty() {
        return Err("empty domain".into());
    }
    let spec = MacroString::parse(text, Use::Domain)?;
    if spec.ends_in_macro {
        return Ok(spec);
    }
    let tail = spec.tail();
    let tail = tail.strip_suffix('.').unwrap_or(tail);
    match tail.rsplit_once('.') {
        Some((_, top)) if is_toplabel(top) => Ok(spec),
        _ => Err(format!(
            "{text:?} does not end in a top label (letters, digits, inner '-'; not all digits) or a macro"
        )),
    }
}

/// `toplabel`: letters, digits and inner hyphens; not all digits.
pub fn is_toplabel(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().any(|c| !c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(record: &str) -> Record {
        Record::parse(record.as_bytes()).unwrap_or_else(|e| panic!("{record}: {e}"))
    }

    fn mech(term: &str) -> Mechanism {
        ok(&format!("v=spf1 {term}")).directives.remove(0).mechanism
    }

    /// §4.5: selecting records.
    #[test]
    fn section_4_5_spf_records() {
        for yes in ["v=spf1", "v=spf1 -all", "V=SpF1 ~all", "v=spf1 a  -all "] {
            assert!(is_spf_record(yes.as_bytes()), "{yes}");
        }
        for no in [
            "v=spf10",
            "v=spf1mx",
            "spf1 -all",
            "v=spf2 -all",
            "",
            "\u{96}",
        ] {
            assert!(!is_spf_record(no.as_bytes()), "{no}");
        }
    }

    /// Records that parse, and what they hold (§4.6.1, §5, §6, §12).
    #[test]
    fn valid_records() {
        assert_eq!(ok("v=spf1").directives.len(), 0);
        assert_eq!(ok("v=spf1 a  -all ").directives.len(), 2);
        let r = ok("v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all default=+");
        assert_eq!(r.directives.len(), 2);
        assert!(ok("v=spf1 redirect=t5.example.com ~all").redirect.is_some());
        assert!(ok("v=spf1 -all exp=%{d}.example.com").exp.is_some());
        assert_eq!(
            mech("a:foo:bar/baz.example.com"),
            Mechanism::A {
                domain: Some(domain_spec("foo:bar/baz.example.com").unwrap()),
                cidr4: 32,
                cidr6: 128
            }
        );
        assert_eq!(
            mech("a/24//64"),
            Mechanism::A {
                domain: None,
                cidr4: 24,
                cidr6: 64
            }
        );
        assert_eq!(
            mech("mx:foo.example.com/24"),
            Mechanism::Mx {
                domain: Some(domain_spec("foo.example.com").unwrap()),
                cidr4: 24,
                cidr6: 128
            }
        );
        assert_eq!(
            mech("a//0"),
            Mechanism::A {
                domain: None,
                cidr4: 32,
                cidr6: 0
            }
        );
        assert_eq!(
            mech("ip4:1.1.1.1/0"),
            Mechanism::Ip4([1, 1, 1, 1].into(), 0)
        );
        assert_eq!(
            mech("ip6:Cafe:Babe:8000::/33"),
            Mechanism::Ip6("cafe:babe:8000::".parse().unwrap(), 33)
        );
        assert_eq!(
            mech("ip6:::1.1.1.1/0"),
            Mechanism::Ip6("::1.1.1.1".parse().unwrap(), 0)
        );
        for good in [
            "a:foo.example.xn--zckzah",
            "a:macro%%percent%_%_space%-url-space.example.com",
            "a:%{H}",
            "a:%{d}.bar",
            "include:o.spf.example.com.",
            "exists:%{i}.%{l2r-}.user.%{d2}",
            "ptr",
            "ptr:example.Com",
            "a:123-456.example.123-456",
        ] {
            ok(&format!("v=spf1 {good}"));
        }
    }

    /// Records that are permerrors, each for one rule of the grammar.
    #[test]
    fn syntax_errors() {
        for bad in [
            "v=spf1 ip4:1.2.3.4 -all moo",        // unknown mechanism (§4.6.1)
            "v=spf1 moo.cow/far_out=man:dog/cat", // '=' not right after the name
            "v=spf1 moo.cow:far_out=man:dog/cat", // likewise
            "v=spf1 1up=foo",                     // a name starts with ALPHA
            "v=spf1 =all",                        // an empty name
            "v=spf1 redirect:t2.example.com",     // redirect is a modifier
            "v=spf1 a:foo-bar -all",              // no top label
            "v=spf1 -all.",                       // all = "all"
            "v=spf1 -all:foobar",
            "v=spf1 -all/8",
            "v=spf1 ptr/0 -all",   // ptr has no prefix length
            "v=spf1 ptr:",         // empty domain-spec
            "v=spf1 a//33 a//129", // 33 is fine for ip6, 129 is not
            "v=spf1 a/33 -all",
            "v=spf1 a/24/64 -all", // ip6 length needs "//"
            "v=spf1 a:example.com:8080",
            "v=spf1 a:111.222.33.44", // numeric top label
            "v=spf1 a:abc.123",
            "v=spf1 a:museum", // a top label alone
            "v=spf1 a:museum.",
            "v=spf1 a:example.-com", // leading '-'
            "v=spf1 a:",
            "v=spf1 include",
            "v=spf1 include:",
            "v=spf1 include:ip5.example.com/24",
            "v=spf1 mx:abc.123",
            "v=spf1 mx: -all",
            "v=spf1 exists",
            "v=spf1 exists:",
            "v=spf1 exists:mail.example.com/24",
            "v=spf1 ip4:1.2.3.4/33",
            "v=spf1 ip4:1.2.3.4/032",
            "v=spf1 ip4",
            "v=spf1 ip4:1.2.3.4//32",
            "v=spf1 ip4:1.2.3.4:8080",
            "v=spf1 ip4:1.2.3",
            "v=spf1 ip4:01.2.3.4",
            "v=spf1 -all ip6",
            "v=spf1 ip6:::1.1.1.1/129",
            "v=spf1 ip6:::1.1.1.1//33",
            "v=spf1 ip6::CAFE::BABE",
            "v=spf1 exp= -all", // empty exp (erratum)
            "v=spf1 exp=-all",
            "v=spf1 redirect=-all ?all",
            "v=spf1 ?all redirect=",
            "v=spf1 exp=a.test -all exp=b.test", // twice (§6)
            "v=spf1 redirect=a.test redirect=a.test",
            "v=spf1 -all foo=%abc", // bad macro in a modifier
            "v=spf1 -exists:%(ir).sbl.example.com ?all",
            "v=spf1 exists:foo%.sbl.example.com",
            "v=spf1 -all exp=%{r}.example.com", // r only in explanations
            "v=spf1 a:%{a}.example.com -all",   // no such letter
            "v=spf1 a:ctrl.example.com\rptr -all", // control characters
            "v=spf1 ip4:192.0.2.5\n include:x.test ~all",
            "v=spf1 a:foo.example.com\0",
        ] {
            assert!(Record::parse(bad.as_bytes()).is_err(), "{bad:?} parsed");
        }
        // Non-ASCII anywhere.
        for bad in [
            &b"v=spf1 a:\xEF\xBB\xBFgarbage.example.net -all"[..],
            b"v=spf1 \x80a:example.net -all",
            b"v=spf1 a:example.net \x96all",
        ] {
            assert!(Record::parse(bad).is_err());
        }
    }
}
