//! An SPF evaluator written from RFC 7208: the record grammar
//! ([`parse`]), macro expansion ([`macros`]) and the check_host()
//! function with its processing limits (`eval`), over any DNS resolver
//! that implements [`Resolver`] (hickory's `TokioResolver` does, in
//! `hickory`).
//!
//! ```ignore
//! let request = Request::mail_from(ip, "user@example.org", "mx.example.org", "us.example.net");
//! let outcome = faxmta_spf::check(&resolver, &request).await;
//! ```
//!
//! What the RFC leaves to the implementation, and what is done here:
//! a target name that is no usable DNS name after macro expansion (an
//! empty label, a label over 63 octets) is a permerror, never looked up;
//! a name over 253 octets is cut from the left (§7.3); `ptr` and `%{p}`
//! look at no more than 10 names; the whole check is given 20 seconds
//! (§4.6.4), then it is a temperror.

mod eval;
#[doc(hidden)]
pub mod fuzzing;
mod hickory;
pub mod macros;
pub mod parse;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use eval::check;

/// The result of check_host() (RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// The result's name, as in Received-SPF and Authentication-Results.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

/// A lookup that failed for another reason than "no such name" or "no
/// such record" (both of which are an empty answer): SERVFAIL, REFUSED,
/// a time-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsError(pub String);

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The DNS lookups SPF needs. Names come without a trailing dot and are
/// absolute; an empty `Vec` is NXDOMAIN or NODATA (a "void lookup").
pub trait Resolver: Sync {
    /// The TXT records of `name`, each one's strings joined.
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<Vec<u8>>, DnsError>> + Send;
    /// The A records of `name`.
    fn a(&self, name: &str) -> impl Future<Output = Result<Vec<Ipv4Addr>, DnsError>> + Send;
    /// The AAAA records of `name`.
    fn aaaa(&self, name: &str) -> impl Future<Output = Result<Vec<Ipv6Addr>, DnsError>> + Send;
    /// The exchange names of `name`'s MX records (without the trailing
    /// dot; empty for a null MX).
    fn mx(&self, name: &str) -> impl Future<Output = Result<Vec<String>, DnsError>> + Send;
    /// The names the PTR records of `ip` give (without the trailing dot).
    fn ptr(&self, ip: IpAddr) -> impl Future<Output = Result<Vec<String>, DnsError>> + Send;
}

/// The identity to check and the facts check_host() uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client's address (an IPv4-mapped IPv6 address is checked as
    /// the IPv4 address, §5).
    pub ip: IpAddr,
    /// `<sender>`: local-part@domain.
    pub sender: String,
    /// The HELO/EHLO name (`%{h}`).
    pub helo: String,
    /// Our own host name (`%{r}`).
    pub receiver: String,
}

impl Request {
    /// The MAIL FROM identity (§2.4): `sender` is an address or a bare
    /// domain; an empty or missing local part becomes `postmaster` (§4.3).
    pub fn mail_from(ip: IpAddr, sender: &str, helo: &str, receiver: &str) -> Request {
        let sender = match sender.rsplit_once('@') {
            Some(("", domain)) => format!("postmaster@{domain}"),
            Some(_) => sender.to_string(),
            None => format!("postmaster@{sender}"),
        };
        Request {
            ip,
            sender,
            helo: helo.to_string(),
            receiver: receiver.to_string(),
        }
    }

    /// The HELO identity (§2.3): `postmaster@` the HELO name.
    pub fn helo(ip: IpAddr, helo: &str, receiver: &str) -> Request {
        Request {
            ip,
            sender: format!("postmaster@{helo}"),
            helo: helo.to_string(),
            receiver: receiver.to_string(),
        }
    }

    /// `<domain>`: the sender's domain.
    pub fn domain(&self) -> &str {
        self.sender.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// What check_host() found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: SpfResult,
    /// The domain's explanation of a fail (`exp=`, §6.2), expanded.
    pub explanation: Option<String>,
    /// Why a temperror or permerror came about, or a none other than
    /// the plain one (the domain publishes no SPF record).
    pub reason: Option<String>,
    /// The directive that matched (`-all`, `include:…`), if one did.
    pub mechanism: Option<String>,
    /// DNS-querying terms evaluated and void lookups met (§4.6.4).
    pub lookups: u32,
    pub void_lookups: u32,
}
