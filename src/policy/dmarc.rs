//! After the data: DKIM verification of inbound mail and DMARC (RFC 7489)
//! with mail-auth, and the Authentication-Results header field (RFC 8601)
//! that records them with the SPF result. The authserv-id is `hostname`.
//!
//! A body that no longer matches its signature's body hash is
//! `dkim=fail` (RFC 6376 §6.1.3 calls it a PERMFAIL; mail-auth reports it
//! as neutral).

use super::spf::{clean, Authenticator, SpfVerdict};
use crate::config::policy::DmarcMode;
use faxmta_queue::Reply;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, Error, SpfOutput};

/// One DKIM signature's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSummary {
    /// pass, fail, neutral, temperror, permerror, policy
    pub result: &'static str,
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub reason: Option<String>,
}

/// What the checks after the data found.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// `None`: DKIM was not verified. Empty: no signature (dkim=none).
    pub dkim: Option<Vec<DkimSummary>>,
    /// `dmarc=…` with its comment and property, when DMARC was evaluated.
    pub dmarc: Option<String>,
    /// The refusal when `dmarc = "reject"` and the domain said p=reject.
    pub reject: Option<Reply>,
    /// p=quarantine failed: mark the message `X-Spam-Flag: YES`.
    pub quarantine: bool,
}

fn dkim_summary(result: &DkimResult) -> (&'static str, Option<String>) {
    match result {
        DkimResult::Pass => ("pass", None),
        DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            ("fail", Some("body hash did not verify".into()))
        }
        DkimResult::Neutral(e) => ("neutral", Some(e.to_string())),
        DkimResult::Fail(e) => ("fail", Some(e.to_string())),
        DkimResult::PermError(e) => ("permerror", Some(e.to_string())),
        DkimResult::TempError(e) => ("temperror", Some(e.to_string())),
        DkimResult::None => ("none", None),
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn policy_word(p: Policy) -> &'static str {
    match p {
        Policy::None | Policy::Unspecified => "none",
        Policy::Quarantine => "quarantine",
        Policy::Reject => "reject",
    }
}

impl Authenticator {
    /// Verify the DKIM signatures of `message` (as received) when `dkim`,
    /// and evaluate DMARC unless `dmarc` is off. `spf`: the transaction's
    /// SPF verdict; `mail_from_domain`: the MAIL FROM domain, or the HELO
    /// name for the null sender. `body_hashes`: when `message` is the
    /// header section alone, the body's DKIM hashes computed as it
    /// streamed in ([`super::dkim_body`]).
    pub async fn after_data(
        &self,
        message: &[u8],
        body_hashes: Option<&[super::dkim_body::BodyHash]>,
        dkim: bool,
        dmarc: DmarcMode,
        spf: Option<&SpfVerdict>,
        mail_from_domain: &str,
    ) -> Evaluation {
        let mut eval = Evaluation::default();
        let Some(mut parsed) = AuthenticatedMessage::parse(message) else {
            if dkim || dmarc != DmarcMode::Off {
                eval.dkim = Some(Vec::new());
            }
            return eval;
        };
        if let Some(hashes) = body_hashes {
            super::dkim_body::apply(&mut parsed, hashes);
        }
        let outputs = if dkim || dmarc != DmarcMode::Off {
            self.mail_auth.verify_dkim(&parsed).await
        } else {
            Vec::new()
        };
        if dkim || dmarc != DmarcMode::Off {
            eval.dkim = Some(
                outputs
                    .iter()
                    .map(|o| {
                        let (result, reason) = dkim_summary(o.result());
                        DkimSummary {
                            result,
                            domain: o.signature().map(|s| s.d.to_ascii_lowercase()),
                            selector: o.signature().map(|s| s.s.clone()),
                            reason,
                        }
                    })
                    .collect(),
            );
        }
        if dmarc == DmarcMode::Off {
            return eval;
        }
        let none = SpfOutput::new(mail_from_domain.to_string());
        let spf_output = spf.map_or(&none, |v| &v.output);
        let params = DmarcParameters::new(&parsed, &outputs, mail_from_domain, spf_output);
        let out = self.mail_auth.verify_dmarc(params).await;
        let result = out.result();
        let word = dmarc_word(&result);
        let domain = out.domain().to_string();
        if domain.is_empty() {
            eval.dmarc = Some("dmarc=none (no single author domain in From)".into());
            return eval;
        }
        let policy = out.policy();
        let failed = matches!(result, DmarcResult::Fail(_));
        let disposition = match (failed, policy) {
            (true, Policy::Reject) if dmarc == DmarcMode::Reject => "reject",
            (true, Policy::Reject | Policy::Quarantine) => "quarantine",
            _ => "none",
        };
        let record = out.dmarc_record().is_some();
        eval.dmarc = Some(if record {
            format!(
                "dmarc={word} (p={} dis={disposition}) header.from={}",
                policy_word(policy),
                clean(&domain)
            )
        } else {
            format!("dmarc={word} header.from={}", clean(&domain))
        });
        if disposition == "reject" {
            eval.reject = Some(Reply::new(
                550,
                "5.7.1",
                format!(
                    "Message rejected: DMARC policy of {} (p=reject): neither an aligned SPF \
                     pass nor an aligned DKIM signature",
                    clean(&domain)
                ),
            ));
        }
        eval.quarantine = disposition == "quarantine";
        eval
    }
}

/// The Authentication-Results header field (RFC 8601), CRLF-terminated;
/// `None` when nothing was checked.
pub fn authentication_results(
    hostname: &str,
    spf: Option<&SpfVerdict>,
    eval: &Evaluation,
) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(v) = spf {
        parts.push(v.auth_result());
    }
    match &eval.dkim {
        Some(list) if list.is_empty() => parts.push("dkim=none (no signature)".into()),
        Some(list) => {
            for d in list {
                let mut part = format!("dkim={}", d.result);
                if let Some(reason) = &d.reason {
                    part.push_str(&format!(" ({})", clean(reason).replace(['(', ')'], "")));
                }
                if let Some(domain) = &d.domain {
                    part.push_str(&format!(" header.d={}", clean(domain).replace(' ', "")));
                }
                if let Some(selector) = &d.selector {
                    part.push_str(&format!(" header.s={}", clean(selector).replace(' ', "")));
                }
                parts.push(part);
            }
        }
        None => {}
    }
    if let Some(d) = &eval.dmarc {
        parts.push(d.clone());
    }
    if parts.is_empty() {
        return None;
    }
    let mut header = format!("Authentication-Results: {hostname}");
    for p in parts {
        header.push_str(";\r\n\t");
        header.push_str(&p);
    }
    header.push_str("\r\n");
    Some(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_in_one_header() {
        let eval = Evaluation {
            dkim: Some(vec![DkimSummary {
                result: "fail",
                domain: Some("example.org".into()),
                selector: Some("s1".into()),
                reason: Some("body hash did not verify".into()),
            }]),
            dmarc: Some("dmarc=fail (p=reject dis=reject) header.from=example.org".into()),
            ..Default::default()
        };
        let h = authentication_results("mx.example.test", None, &eval).unwrap();
        assert_eq!(
            h,
            "Authentication-Results: mx.example.test;\r\n\tdkim=fail (body hash did not \
             verify) header.d=example.org header.s=s1;\r\n\tdmarc=fail (p=reject dis=reject) \
             header.from=example.org\r\n"
        );
        let none = Evaluation {
            dkim: Some(vec![]),
            ..Default::default()
        };
        let h = authentication_results("mx", None, &none).unwrap();
        assert!(h.contains("dkim=none"), "{h}");
        assert!(authentication_results("mx", None, &Evaluation::default()).is_none());
    }
}
