//! SPF (RFC 7208) with mail-auth: the check of a client's MAIL FROM
//! identity (its HELO identity when the reverse path is null), what a
//! result means under a policy, and how it is written into the headers
//! (Received-SPF, and the `spf=` part of Authentication-Results).
//!
//! Every lookup goes to the configured `[dns]` servers: the checker uses
//! the same hickory resolver as mail routing.
//!
//! Before mail-auth evaluates a domain's record, its TXT records are
//! fetched once more to catch what mail-auth lets through: more than one
//! `v=spf1` record (RFC 7208 §4.5: permerror) and a record that does not
//! parse while other TXT records follow it (permerror too); a lookup that
//! fails (SERVFAIL, time-out) is a temperror.

use crate::config::policy::{PermerrorMode, SoftfailMode, SpfMode, SpfPolicy};
use crate::config::Config;
use faxmta_queue::Reply;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfOutput, SpfResult};
use std::net::IpAddr;

/// SPF, DKIM and DMARC checks over the configured resolver.
pub struct Authenticator {
    pub mail_auth: MessageAuthenticator,
    resolver: TokioResolver,
    /// Our name: the authserv-id of Authentication-Results, the receiver
    /// in Received-SPF, `%{r}` in SPF macros.
    pub hostname: String,
}

impl Authenticator {
    /// Over `[dns]` (its nameservers, or the system's when none are given).
    pub fn new(config: &Config) -> Result<Authenticator, String> {
        let dns =
            faxmta_transports::smtp::Dns::new(&config.dns.nameservers, config.dns.timeout.std())?;
        let resolver = dns.resolver().clone();
        Ok(Authenticator {
            mail_auth: MessageAuthenticator(resolver.clone()),
            resolver,
            hostname: config.hostname.clone(),
        })
    }

    /// Check the MAIL FROM identity of `sender` (the HELO identity when it
    /// is empty) for a client at `ip` that said `helo`.
    pub async fn check_spf(&self, ip: IpAddr, helo: &str, sender: &str) -> SpfVerdict {
        let helo_identity = sender.is_empty();
        let domain = if helo_identity {
            helo.to_ascii_lowercase()
        } else {
            sender
                .rsplit_once('@')
                .map_or(String::new(), |(_, d)| d.to_ascii_lowercase())
        };
        let identity = if helo_identity {
            format!("postmaster@{helo}")
        } else {
            sender.to_string()
        };
        let mut verdict = SpfVerdict {
            result: SpfResult::None,
            domain: domain.clone(),
            identity,
            helo_identity,
            ip,
            helo: helo.to_string(),
            explanation: None,
            reason: None,
            output: SpfOutput::new(domain.clone()),
        };
        if !is_domain(&domain) {
            verdict.reason = Some(format!(
                "{domain:?} is not a domain name that SPF can check"
            ));
            return verdict;
        }
        if let Some((result, reason)) = self.precheck(&domain).await {
            verdict.result = result;
            verdict.reason = Some(reason);
            verdict.output = SpfOutput::new(domain).with_result(result);
            return verdict;
        }
        let params = if helo_identity {
            SpfParameters::verify_ehlo(ip, helo, &self.hostname)
        } else {
            SpfParameters::verify_mail_from(ip, helo, &self.hostname, sender)
        };
        let output = self.mail_auth.verify_spf(params).await;
        verdict.result = output.result();
        verdict.explanation = output.explanation().map(clean);
        verdict.output = output;
        verdict
    }

    /// What mail-auth does not tell: several SPF records, a broken one, a
    /// failed lookup. `None`: let mail-auth evaluate.
    async fn precheck(&self, domain: &str) -> Option<(SpfResult, String)> {
        let lookup = match self.resolver.txt_lookup(format!("{domain}.")).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => return None,
            Err(e) => {
                return Some((
                    SpfResult::TempError,
                    format!("DNS lookup of the SPF record of {domain} failed: {e}"),
                ))
            }
        };
        let records: Vec<Vec<u8>> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .flat_map(|s| s.iter().copied())
                        .collect(),
                ),
                _ => None,
            })
            .filter(|r: &Vec<u8>| is_spf1(r))
            .collect();
        match records.as_slice() {
            [] => None,
            [one] => mail_auth::spf::Spf::parse(one).err().map(|_| {
                (
                    SpfResult::PermError,
                    format!("the SPF record of {domain} has a syntax error"),
                )
            }),
            more => Some((
                SpfResult::PermError,
                format!(
                    "{domain} publishes {} SPF records (RFC 7208 section 4.5 allows one)",
                    more.len()
                ),
            )),
        }
    }
}

/// `v=spf1` followed by a space or nothing (RFC 7208 §4.5).
fn is_spf1(record: &[u8]) -> bool {
    record.len() >= 6
        && record[..6].eq_ignore_ascii_case(b"v=spf1")
        && record.get(6).is_none_or(|&b| b == b' ')
}

/// A host name SPF can check: dot-separated labels of letters, digits,
/// `-` and `_`, at least two of them.
fn is_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Text from DNS or a client, made safe for a reply line or a header:
/// printable ASCII only, at most 300 characters.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(300)
        .collect()
}

/// The result of one SPF check, kept for the transaction.
#[derive(Debug, Clone)]
pub struct SpfVerdict {
    pub result: SpfResult,
    /// The domain checked.
    pub domain: String,
    /// The address checked: the sender, or postmaster@HELO.
    pub identity: String,
    /// The HELO identity was checked (null reverse path).
    pub helo_identity: bool,
    pub ip: IpAddr,
    pub helo: String,
    /// The domain's own explanation (`exp=`) of a fail.
    pub explanation: Option<String>,
    /// Why a permerror or temperror (or none) came about, when we know.
    pub reason: Option<String>,
    /// mail-auth's output, for DMARC.
    pub output: SpfOutput,
}

/// The result's name in headers and replies.
pub fn word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

impl SpfVerdict {
    /// One sentence on the result, as spfquery and Postfix's policyd-spf
    /// put it.
    pub fn comment(&self) -> String {
        let (who, ip) = (clean(&self.identity), self.ip);
        let reason = self.reason.as_deref().map(clean);
        match self.result {
            SpfResult::Pass => format!("domain of {who} designates {ip} as permitted sender"),
            SpfResult::Fail => {
                format!("domain of {who} does not designate {ip} as permitted sender")
            }
            SpfResult::SoftFail => {
                format!("domain of transitioning {who} does not designate {ip} as permitted sender")
            }
            SpfResult::Neutral => {
                format!("{ip} is neither permitted nor denied by domain of {who}")
            }
            SpfResult::None => {
                reason.unwrap_or_else(|| format!("domain of {who} does not provide an SPF record"))
            }
            SpfResult::TempError => reason.unwrap_or_else(|| {
                format!(
                    "temporary error while looking up the SPF record of {}",
                    self.domain
                )
            }),
            SpfResult::PermError => reason.unwrap_or_else(|| {
                format!("the SPF record of {} could not be evaluated", self.domain)
            }),
        }
    }

    /// The `Received-SPF:` header field (RFC 7208 §9.1), CRLF-terminated.
    pub fn received_spf(&self, hostname: &str) -> String {
        let identity = if self.helo_identity {
            "helo"
        } else {
            "mailfrom"
        };
        let envelope_from = if self.helo_identity {
            String::new()
        } else {
            clean(&self.identity).replace(['"', '\\'], "?")
        };
        format!(
            "Received-SPF: {} ({hostname}: {})\r\n\treceiver={hostname}; client-ip={}; \
             envelope-from=\"{envelope_from}\"; helo={}; identity={identity};\r\n",
            word(self.result),
            self.comment().replace(['(', ')'], ""),
            self.ip,
            token(&self.helo),
        )
    }

    /// The `spf=` method of Authentication-Results (RFC 8601 §2.7.2).
    pub fn auth_result(&self) -> String {
        let property = if self.helo_identity {
            format!("smtp.helo={}", token(&self.helo))
        } else {
            format!("smtp.mailfrom={}", token(&self.identity))
        };
        format!(
            "spf={} ({}) {property}",
            word(self.result),
            self.comment().replace(['(', ')'], "")
        )
    }
}

/// A value for a header: itself when it is a plain token (letters,
/// digits and `.-_@+=`), else quoted with anything odd replaced.
fn token(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@+=".contains(&b));
    if plain {
        value.to_string()
    } else {
        format!("\"{}\"", clean(value).replace(['"', '\\'], "?"))
    }
}

/// What the result means for one recipient under `policy`: `Ok(true)`
/// accepted and to be marked `X-Spam-Flag: YES`, `Ok(false)` accepted,
/// `Err` the refusal.
pub fn decide(policy: SpfPolicy, v: &SpfVerdict) -> Result<bool, Reply> {
    if policy.spf == SpfMode::Off {
        return Ok(false);
    }
    let enforce = policy.spf == SpfMode::RejectFail;
    let refuse = |code, status: &str| {
        let mut text = format!(
            "<{}>: Sender address rejected: SPF {}: {}",
            clean(&v.identity),
            word(v.result),
            v.comment()
        );
        if let Some(exp) = &v.explanation {
            text.push_str(&format!("; explanation: {exp}"));
        }
        Err(Reply::new(code, status, text))
    };
    match v.result {
        SpfResult::Fail if enforce => refuse(550, "5.7.23"),
        SpfResult::SoftFail if enforce && policy.softfail == SoftfailMode::Reject => {
            refuse(550, "5.7.23")
        }
        SpfResult::SoftFail => Ok(policy.softfail == SoftfailMode::Tag),
        // RFC 7372 §3.2: X.7.24 "SPF validation error".
        SpfResult::TempError if enforce => refuse(451, "4.4.3"),
        SpfResult::PermError if enforce && policy.permerror == PermerrorMode::Reject => {
            refuse(550, "5.7.24")
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(result: SpfResult) -> SpfVerdict {
        SpfVerdict {
            result,
            domain: "example.org".into(),
            identity: "a@example.org".into(),
            helo_identity: false,
            ip: "192.0.2.1".parse().unwrap(),
            helo: "client\r\nX: y".into(),
            explanation: Some("not from there".into()),
            reason: None,
            output: SpfOutput::new("example.org".into()),
        }
    }

    fn policy(spf: SpfMode, softfail: SoftfailMode, permerror: PermerrorMode) -> SpfPolicy {
        SpfPolicy {
            spf,
            softfail,
            permerror,
        }
    }

    #[test]
    fn results_under_policies() {
        use PermerrorMode as P;
        use SoftfailMode as S;
        use SpfMode as M;
        let strict = policy(M::RejectFail, S::Reject, P::Reject);
        let lenient = policy(M::RejectFail, S::Accept, P::Accept);
        let tag = policy(M::Tag, S::Reject, P::Reject);
        let code = |p, r| decide(p, &verdict(r)).map_err(|e| (e.code, e.status));
        assert_eq!(code(strict, SpfResult::Fail), Err((550, "5.7.23".into())));
        assert_eq!(
            code(strict, SpfResult::SoftFail),
            Err((550, "5.7.23".into()))
        );
        assert_eq!(
            code(strict, SpfResult::TempError),
            Err((451, "4.4.3".into()))
        );
        assert_eq!(
            code(strict, SpfResult::PermError),
            Err((550, "5.7.24".into()))
        );
        for r in [SpfResult::Pass, SpfResult::Neutral, SpfResult::None] {
            assert_eq!(code(strict, r), Ok(false));
        }
        assert_eq!(code(lenient, SpfResult::Fail), Err((550, "5.7.23".into())));
        assert_eq!(code(lenient, SpfResult::SoftFail), Ok(false));
        assert_eq!(code(lenient, SpfResult::PermError), Ok(false));
        assert_eq!(code(tag, SpfResult::Fail), Ok(false), "tag refuses nothing");
        assert_eq!(code(tag, SpfResult::TempError), Ok(false));
        assert_eq!(code(tag, SpfResult::SoftFail), Ok(false));
        let marks = policy(M::Tag, S::Tag, P::Accept);
        assert_eq!(code(marks, SpfResult::SoftFail), Ok(true));
        let off = policy(M::Off, S::Reject, P::Reject);
        assert_eq!(code(off, SpfResult::Fail), Ok(false));

        let refused = decide(strict, &verdict(SpfResult::Fail)).unwrap_err();
        assert_eq!(
            refused.text,
            "<a@example.org>: Sender address rejected: SPF fail: domain of a@example.org does \
             not designate 192.0.2.1 as permitted sender; explanation: not from there"
        );
    }

    #[test]
    fn headers_stay_single_lines_and_name_the_identity() {
        let v = verdict(SpfResult::SoftFail);
        let h = v.received_spf("mx.example.test");
        assert!(
            h.starts_with("Received-SPF: softfail (mx.example.test: domain of "),
            "{h}"
        );
        assert!(
            h.contains(
                "envelope-from=\"a@example.org\"; helo=\"client??X: y\"; identity=mailfrom;"
            ),
            "{h}"
        );
        assert_eq!(h.matches("\r\n").count(), 2, "{h}");
        assert!(
            v.auth_result().starts_with("spf=softfail ("),
            "{}",
            v.auth_result()
        );
        assert!(v.auth_result().ends_with(" smtp.mailfrom=a@example.org"));
        assert!(is_spf1(b"v=spf1 -all") && is_spf1(b"V=SPF1") && !is_spf1(b"v=spf10"));
        assert!(is_domain("a.example") && !is_domain("[192.0.2.1]") && !is_domain("localhost"));
    }
}
