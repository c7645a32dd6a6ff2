//! SPF (RFC 7208): the check of a client's MAIL FROM identity (its HELO
//! identity when the reverse path is null) with our own evaluator (crate
//! faxmta-spf, written from the RFC), what a result means under a
//! policy, and how it is written into the headers (Received-SPF, and the
//! `spf=` part of Authentication-Results).
//!
//! Every lookup goes to the configured `[dns]` servers: the checker uses
//! the same hickory resolver as mail routing. mail-auth stays for DKIM
//! and DMARC; DMARC is handed the SPF result as mail-auth's `SpfOutput`.

use crate::config::policy::{PermerrorMode, SoftfailMode, SpfMode, SpfPolicy};
use crate::config::Config;
use faxmta_queue::Reply;
use faxmta_spf::Request;
use hickory_resolver::TokioResolver;
use mail_auth::{MessageAuthenticator, SpfOutput, SpfResult};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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
        Authenticator::over(
            &config.dns.nameservers,
            config.dns.timeout.std(),
            &config.hostname,
        )
    }

    /// Over `nameservers` (the system's when empty), for `hostname`.
    pub fn over(
        nameservers: &[SocketAddr],
        timeout: Duration,
        hostname: &str,
    ) -> Result<Authenticator, String> {
        let dns = faxmta_smtp::Dns::new(nameservers, timeout)?;
        let resolver = dns.resolver().clone();
        Ok(Authenticator {
            mail_auth: MessageAuthenticator(resolver.clone()),
            resolver,
            hostname: hostname.to_string(),
        })
    }

    /// Check the MAIL FROM identity of `sender` (the HELO identity when it
    /// is empty) for a client at `ip` that said `helo`. A sender without
    /// `@` is a domain: `postmaster@` it, as spfquery does.
    pub async fn check_spf(&self, ip: IpAddr, helo: &str, sender: &str) -> SpfVerdict {
        let helo_identity = sender.is_empty();
        let request = if helo_identity {
            Request::helo(ip, helo, &self.hostname)
        } else {
            Request::mail_from(ip, sender, helo, &self.hostname)
        };
        let outcome = faxmta_spf::check(&self.resolver, &request).await;
        let result = convert(outcome.result);
        let domain = request.domain().to_ascii_lowercase();
        SpfVerdict {
            result,
            identity: request.sender.clone(),
            helo_identity,
            ip,
            helo: helo.to_string(),
            explanation: outcome.explanation.as_deref().map(clean),
            reason: outcome.reason,
            mechanism: outcome.mechanism,
            lookups: (outcome.lookups, outcome.void_lookups),
            output: SpfOutput::new(domain.clone()).with_result(result),
            domain,
        }
    }
}

/// Our evaluator's result as mail-auth's (for DMARC and the policy).
fn convert(r: faxmta_spf::SpfResult) -> SpfResult {
    use faxmta_spf::SpfResult as R;
    match r {
        R::None => SpfResult::None,
        R::Neutral => SpfResult::Neutral,
        R::Pass => SpfResult::Pass,
        R::Fail => SpfResult::Fail,
        R::SoftFail => SpfResult::SoftFail,
        R::TempError => SpfResult::TempError,
        R::PermError => SpfResult::PermError,
    }
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
    /// The directive that matched (`-all`, `ip4:…`), when one did.
    pub mechanism: Option<String>,
    /// DNS-querying terms evaluated and void lookups met (RFC 7208
    /// §4.6.4 allows 10 and 2).
    pub lookups: (u32, u32),
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
            mechanism: Some("-all".into()),
            lookups: (0, 0),
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
    }
}
