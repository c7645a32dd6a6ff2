//! RFC 7208 case by case: for each section, the DNS data a case needs and
//! the result (and explanation) the RFC's text requires. Written from the
//! RFC; one table, two runners: spf/tests/rfc7208.rs evaluates it over an
//! in-memory resolver, tests/spf_rfc7208.rs through `faxmta check spf`
//! against tests/peers/dns.py.
//!
//! A case's `from` is what `faxmta check spf --from` takes: an address,
//! a bare domain (postmaster@ it), or "" for the HELO identity.

#![allow(dead_code)]

mod sec4;
mod sec5a;
mod sec5b;
mod sec6;
mod sec7;

/// One DNS record (or a name that fails).
pub enum Rr {
    A(&'static str, &'static str),
    Aaaa(&'static str, &'static str),
    /// Name, preference, exchange ("" for a null MX).
    Mx(&'static str, u16, &'static str),
    /// One character-string.
    Txt(&'static str, &'static str),
    /// Several character-strings, as bytes.
    Strings(&'static str, &'static [&'static [u8]]),
    Ptr(&'static str, &'static str),
    Cname(&'static str, &'static str),
    /// Every question for the name is answered SERVFAIL.
    Servfail(&'static str),
}

impl Rr {
    pub fn owner(&self) -> &'static str {
        match self {
            Rr::A(n, _)
            | Rr::Aaaa(n, _)
            | Rr::Mx(n, _, _)
            | Rr::Txt(n, _)
            | Rr::Strings(n, _)
            | Rr::Ptr(n, _)
            | Rr::Cname(n, _)
            | Rr::Servfail(n) => n,
        }
    }
}

/// One check and what it must give.
pub struct Case {
    pub name: &'static str,
    pub ip: &'static str,
    pub helo: &'static str,
    pub from: &'static str,
    pub result: &'static str,
    /// `None`: not looked at; `Some(None)`: there must be none.
    pub explanation: Option<Option<&'static str>>,
}

/// A case whose explanation is not looked at.
pub const fn c(
    name: &'static str,
    ip: &'static str,
    helo: &'static str,
    from: &'static str,
    result: &'static str,
) -> Case {
    Case {
        name,
        ip,
        helo,
        from,
        result,
        explanation: None,
    }
}

/// A case with its explanation (`None`: there must be none).
pub const fn e(
    name: &'static str,
    ip: &'static str,
    from: &'static str,
    result: &'static str,
    explanation: Option<&'static str>,
) -> Case {
    Case {
        name,
        ip,
        helo: "mail.example.test",
        from,
        result,
        explanation: Some(explanation),
    }
}

/// The cases of one section over one zone.
pub struct Section {
    /// The RFC section ("5.6"); a section may have several zones.
    pub id: &'static str,
    pub title: &'static str,
    pub zone: &'static [Rr],
    pub cases: &'static [Case],
}

/// Every section, in the RFC's order.
pub fn sections() -> Vec<&'static Section> {
    let mut all = Vec::new();
    all.extend(sec4::SECTIONS);
    all.extend(sec5a::SECTIONS);
    all.extend(sec5b::SECTIONS);
    all.extend(sec6::SECTIONS);
    all.extend(sec7::SECTIONS);
    all
}

/// The sections (one or more zones) with this id.
pub fn section(id: &str) -> Vec<&'static Section> {
    let found: Vec<_> = sections().into_iter().filter(|s| s.id == id).collect();
    assert!(!found.is_empty(), "no section {id}");
    found
}
