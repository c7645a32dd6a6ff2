//! How a SIP call's end becomes a fax [`SendResult`]: the final response
//! to our INVITE (486/600 busy, 480/408 no answer, 404/484/604 a bad
//! number, 5xx temporary …) or, once answered, T.30's completion and the
//! pages confirmed; and whether the next trunk is worth trying.

use super::super::spandsp::modem::{self, T30_ERR_OK, T30_ERR_T0_EXPIRED};
use super::super::SendResult;
use super::media::MediaEnd;
use std::time::Duration;

/// A final response to our INVITE that was not 2xx, with what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// The reason phrase.
    pub phrase: String,
    /// The Q.850 cause of a `Reason: Q.850;cause=N` header, if any.
    pub cause: Option<u16>,
}

impl Refusal {
    /// `SIP 486 Busy Here (Q.850 cause 17)`: for reports and logs.
    pub fn describe(&self) -> String {
        let mut text = format!("SIP {} {}", self.status, self.phrase.trim());
        if let Some(cause) = self.cause {
            text.push_str(&format!(" (Q.850 cause {cause})"));
        }
        text
    }
}

/// What a refusal means for the fax, and whether another trunk may do
/// better (a trunk's own trouble: overload, authentication, media) or not
/// (the number itself is busy, unanswered or wrong).
pub fn refused(refusal: &Refusal) -> (SendResult, bool) {
    let reason = refusal.describe();
    match refusal.status {
        486 | 600 => (
            SendResult::Busy {
                detail: Some(reason),
            },
            false,
        ),
        480 | 408 | 487 => (
            SendResult::NoAnswer {
                detail: Some(reason),
            },
            false,
        ),
        404 | 484 | 604 | 410 | 485 | 416 => (
            SendResult::Error {
                reason: format!("bad number: {reason}"),
                retry: false,
            },
            false,
        ),
        603 | 606 => (
            SendResult::Error {
                reason: format!("the call was declined: {reason}"),
                retry: false,
            },
            false,
        ),
        // The trunk's trouble: authentication refused, not acceptable
        // media, overload and server errors. Another trunk may take it,
        // and the fax schedule tries again.
        _ => (
            SendResult::Error {
                reason,
                retry: true,
            },
            true,
        ),
    }
}

/// The Q.850 cause of a `Reason` header value (`Q.850;cause=16;text="…"`).
pub fn q850_cause(reason_header: &str) -> Option<u16> {
    let mut parts = reason_header.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("q.850") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("cause")
            .then(|| v.trim().trim_matches('"').parse().ok())
            .flatten()
    })
}

/// The fax result of an answered call that was to send `expected`
/// pages. `hung_up` says the far end sent BYE before T.30 ended (the
/// media session was stopped). Every page confirmed is a fax sent, even
/// if the call was cut before our side's T.30 said goodbye.
pub fn answered(end: &MediaEnd, duration: Duration, hung_up: bool, expected: u32) -> SendResult {
    let pages = end.stats.pages_tx;
    let csid = end.remote_ident.clone();
    let all = pages > 0 && pages >= expected;
    match end.completion {
        Some(T30_ERR_OK) => SendResult::Sent {
            pages,
            duration,
            remote_csid: csid,
            bit_rate: end.stats.bit_rate,
        },
        _ if all => SendResult::Sent {
            pages,
            duration,
            remote_csid: csid,
            bit_rate: end.stats.bit_rate,
        },
        Some(T30_ERR_T0_EXPIRED) if pages == 0 => SendResult::NoFaxTone,
        completion => {
            let reason = match (completion, hung_up) {
                (_, true) => "the far end hung up (SIP BYE) during the fax".to_string(),
                (Some(code), false) => modem::completion_text(code),
                (None, false) => "the call ended before the fax did".to_string(),
            };
            if pages > 0 {
                SendResult::Partial {
                    pages_sent: pages,
                    duration,
                    remote_csid: csid,
                    reason,
                }
            } else {
                let retry = completion.is_none_or(modem::completion_retryable);
                SendResult::Error { reason, retry }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spandsp::modem::Stats;

    fn refusal(status: u16) -> Refusal {
        Refusal {
            status,
            phrase: "Phrase".into(),
            cause: None,
        }
    }

    #[test]
    fn sip_refusals_map_to_fax_outcomes_and_failover() {
        let busy = |d: &str| SendResult::Busy {
            detail: Some(d.into()),
        };
        assert_eq!(refused(&refusal(486)), (busy("SIP 486 Phrase"), false));
        assert_eq!(refused(&refusal(600)), (busy("SIP 600 Phrase"), false));
        assert!(matches!(
            refused(&refusal(480)),
            (SendResult::NoAnswer { detail: Some(d) }, false) if d == "SIP 480 Phrase"
        ));
        assert!(matches!(
            refused(&refusal(408)),
            (SendResult::NoAnswer { .. }, false)
        ));
        for bad in [404, 484, 604] {
            let (result, failover) = refused(&refusal(bad));
            assert!(
                matches!(&result, SendResult::Error { retry: false, reason } if reason.contains(&format!("SIP {bad}"))),
                "{bad}: {result:?}"
            );
            assert!(!failover);
        }
        for temporary in [503, 500, 403, 488] {
            let (result, failover) = refused(&refusal(temporary));
            assert!(
                matches!(result, SendResult::Error { retry: true, .. }),
                "{temporary}"
            );
            assert!(failover, "{temporary}");
        }
    }

    #[test]
    fn reason_headers_give_the_q850_cause() {
        assert_eq!(q850_cause("Q.850;cause=17;text=\"User busy\""), Some(17));
        assert_eq!(q850_cause("q.850 ; cause = 1"), Some(1));
        assert_eq!(q850_cause("SIP;cause=486"), None);
        assert_eq!(q850_cause("Q.850"), None);
        let r = Refusal {
            status: 486,
            phrase: "Busy Here".into(),
            cause: Some(17),
        };
        assert_eq!(r.describe(), "SIP 486 Busy Here (Q.850 cause 17)");
    }

    fn end(completion: Option<i32>, pages: u32) -> MediaEnd {
        MediaEnd {
            completion,
            stats: Stats {
                pages_tx: pages,
                bit_rate: 14_400,
                ..Stats::default()
            },
            remote_ident: "REMOTE".into(),
            packets_sent: 0,
            packets_received: 0,
            packets_lost: 0,
            packets_late: 0,
        }
    }

    #[test]
    fn an_answered_call_ends_sent_partial_or_without_fax_tone() {
        let d = Duration::from_secs(30);
        assert!(matches!(
            answered(&end(Some(T30_ERR_OK), 2), d, false, 2),
            SendResult::Sent { pages: 2, .. }
        ));
        // BYE after page 2 of 4: the two confirmed pages count, the rest
        // is resent.
        assert!(matches!(
            answered(&end(None, 2), d, true, 4),
            SendResult::Partial { pages_sent: 2, ref reason, .. } if reason.contains("BYE")
        ));
        // Cut after the last page was confirmed: sent.
        assert!(matches!(
            answered(&end(None, 4), d, true, 4),
            SendResult::Sent { pages: 4, .. }
        ));
        assert_eq!(
            answered(&end(Some(T30_ERR_T0_EXPIRED), 0), d, false, 1),
            SendResult::NoFaxTone
        );
        assert!(matches!(
            answered(&end(None, 0), d, true, 1),
            SendResult::Error { retry: true, .. }
        ));
    }
}
