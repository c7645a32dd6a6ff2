//! Envelope types: what the queue keeps about a message besides its body.
//!
//! An [`Envelope`] is written when the message is accepted and rewritten
//! after every delivery attempt; each [`Recipient`] carries its own state,
//! attempt count, next attempt time and last reply, so one message can be
//! delivered to some recipients, deferred for others and failed for a third.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A queue id: upper-case hex, sortable by arrival, unique in one queue.
pub type QueueId = String;

/// The body type declared with `MAIL FROM … BODY=` (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    /// No BODY parameter, or `BODY=7BIT`.
    #[default]
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
    /// `BODY=BINARYMIME` (only with CHUNKING).
    BinaryMime,
}

/// DSN `RET=` (RFC 3461 §4.3): what a report returns of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ret {
    Full,
    Hdrs,
}

/// DSN `NOTIFY=` (RFC 3461 §4.1). `None` in a recipient means "not given",
/// which reports failures (and delays) as if `NOTIFY=FAILURE,DELAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// Whether a failure report is wanted for a recipient with this NOTIFY.
    pub fn wants_failure(notify: Option<Notify>) -> bool {
        notify.is_none_or(|n| !n.never && n.failure)
    }

    /// Whether a delay report is wanted.
    pub fn wants_delay(notify: Option<Notify>) -> bool {
        notify.is_none_or(|n| !n.never && n.delay)
    }

    /// Whether a success report is wanted (only when asked for).
    pub fn wants_success(notify: Option<Notify>) -> bool {
        notify.is_some_and(|n| !n.never && n.success)
    }
}

impl fmt::Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.never {
            return f.write_str("NEVER");
        }
        let mut parts = Vec::new();
        if self.success {
            parts.push("SUCCESS");
        }
        if self.failure {
            parts.push("FAILURE");
        }
        if self.delay {
            parts.push("DELAY");
        }
        f.write_str(&parts.join(","))
    }
}

/// An SMTP-style reply (code, enhanced status, text), defined in
/// faxmta-proto and re-exported here: the queue's public surface is
/// unchanged.
pub use faxmta_proto::Reply;

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RcptState {
    /// Not tried yet.
    Pending,
    /// Tried, failed temporarily; retried at `next_attempt`.
    Deferred,
    /// Delivered (final).
    Delivered,
    /// Failed permanently or expired; the report, if any, is queued (final).
    Failed,
}

impl RcptState {
    /// Still to be delivered?
    pub fn is_active(self) -> bool {
        matches!(self, RcptState::Pending | RcptState::Deferred)
    }
}

impl fmt::Display for RcptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RcptState::Pending => "pending",
            RcptState::Deferred => "deferred",
            RcptState::Delivered => "delivered",
            RcptState::Failed => "failed",
        })
    }
}

/// Where a recipient in an ETRN domain (RFC 1985) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Etrn {
    /// Waiting for a client to release its domain with ETRN: never
    /// attempted; its `next_attempt` is its expiry time, so it is looked
    /// at only then (and fails with the usual report).
    Held,
    /// Released by ETRN (or the administrator): delivered and retried
    /// like any other recipient.
    Released,
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The forward path as given in RCPT TO (without angle brackets).
    pub address: String,
    /// DSN `ORCPT=` as given (`addr-type;xtext`), if any.
    pub orcpt: Option<String>,
    /// DSN `NOTIFY=`, if given.
    pub notify: Option<Notify>,
    pub state: RcptState,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt (meaningful while active).
    pub next_attempt: u64,
    /// Unix seconds of the last attempt, 0 if none.
    pub last_attempt: u64,
    /// The last reply from the transport (or why it could not be tried).
    pub last_reply: Option<Reply>,
    /// The host or mailbox the last attempt went to.
    pub relay: Option<String>,
    /// Whether a delay warning was already sent for this recipient.
    pub delay_warned: bool,
    /// This recipient's lifetime in seconds, overriding the message's
    /// ([`Envelope::lifetime`]) and the queue's, if set: a message whose
    /// recipients need different lifetimes (a backup MX domain beside
    /// others) keeps each one's here.
    #[serde(default)]
    pub lifetime: Option<u64>,
    /// Set for a recipient in an ETRN domain: held, or released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etrn: Option<Etrn>,
    /// Set for a fax recipient once a call was tried: what the line did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fax: Option<FaxProgress>,
    /// Its final failure is decided (`last_reply`, `relay` and `fax` hold
    /// it) but the failure report could not be queued yet: the recipient
    /// stays active only for the report, which is tried again; it is never
    /// delivered (or dialled) again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub report_pending: bool,
}

/// Where a fax recipient stands after its calls so far: the fax
/// transport reads it to go on (resend the missing pages, count busy
/// tries), the reports print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FaxProgress {
    /// The number in E.164.
    pub number: String,
    /// Calls placed (every try, busy ones too).
    pub calls: u32,
    /// Tries in a row that found the line busy, unanswered or without a
    /// fax machine (retried `[fax] retries` times).
    pub unreached: u32,
    /// Pages in the document (cover page included).
    pub pages_total: u32,
    /// Pages the remote confirmed, over all calls.
    pub pages_sent: u32,
    /// The remote's CSID, once a call got through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_csid: Option<String>,
    /// Time on the line, over all calls, in milliseconds.
    pub line_ms: u64,
    /// The signalling rate of the last call, bits per second.
    #[serde(default)]
    pub bit_rate: u32,
    /// What the last call did, as a word: `sent`, `busy`, `no-answer`,
    /// `no-fax-tone`, `partial`, `error`, `render-failed`, `refused`.
    pub last: String,
    /// Its reason in words (T.30 completion text, render error …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Render workers that died on this message without a verdict (a
    /// crash that is not one of the limits: the message is tried again,
    /// and quarantined after `[fax] render_crash_limit` of them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub render_crashes: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Recipient {
    /// Whether it waits for an ETRN release.
    pub fn etrn_held(&self) -> bool {
        self.etrn == Some(Etrn::Held) && self.state.is_active()
    }
}

/// How the message reached us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClientInfo {
    /// Client IP address, or a name such as `local` for internal sources.
    pub addr: String,
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// The authenticated user, if any.
    pub auth_user: Option<String>,
    /// `ESMTP`, `ESMTPS`, `ESMTPSA`, `local` …
    pub protocol: String,
    /// The client may relay (or the message was made here, a report):
    /// its mail is ours to DKIM-sign on the way out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trusted: bool,
}

/// A queued message's envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: QueueId,
    /// The reverse path; empty for the null sender `<>`.
    pub sender: String,
    /// Unix seconds of arrival.
    pub arrival: u64,
    /// Size of the stored message (headers we added included), in octets.
    pub size: u64,
    pub client: ClientInfo,
    pub body_type: BodyType,
    pub smtputf8: bool,
    /// The client asked for REQUIRETLS (RFC 8689): onward only over TLS
    /// that is verified (DANE, MTA-STS or PKIX) to a server that offers
    /// REQUIRETLS itself, else a 5.7.30 report.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requiretls: bool,
    pub ret: Option<Ret>,
    /// DSN `ENVID=` as given (xtext).
    pub envid: Option<String>,
    /// Held by the administrator: not delivered until released.
    pub held: bool,
    /// Per-message lifetime in seconds, overriding the queue's, if set
    /// (a recipient's own [`Recipient::lifetime`] overrides it in turn).
    pub lifetime: Option<u64>,
    pub recipients: Vec<Recipient>,
    /// Header fields the receiver put above the client's data (its
    /// Received, Authentication-Results, Received-SPF): the stored
    /// message is this, then the body file (see [`crate::QueueStore::body`]).
    /// Kept here so that the client's data streams into the body file
    /// as it arrives, before these are known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub head: String,
}

impl Envelope {
    /// Whether the sender is the null reverse path (reports must not be
    /// answered with reports).
    pub fn null_sender(&self) -> bool {
        self.sender.is_empty()
    }

    /// Recipients still to be delivered.
    pub fn active(&self) -> impl Iterator<Item = (usize, &Recipient)> {
        self.recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state.is_active())
    }

    /// True once every recipient reached a final state.
    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| !r.state.is_active())
    }

    /// The lifetime of recipient `i`: its own, else the message's; `None`
    /// means the queue's.
    pub fn lifetime_of(&self, i: usize) -> Option<u64> {
        self.recipients
            .get(i)
            .and_then(|r| r.lifetime)
            .or(self.lifetime)
    }

    /// When the scheduler should next look at this message: the earliest
    /// next attempt of an active recipient; `None` when held or done.
    pub fn due(&self) -> Option<u64> {
        if self.held {
            return None;
        }
        self.active().map(|(_, r)| r.next_attempt).min()
    }
}

/// A recipient as accepted by the SMTP server (or any other source).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NewRecipient {
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: Option<Notify>,
    /// Its own lifetime (see [`Recipient::lifetime`]).
    pub lifetime: Option<u64>,
    /// `Some(Etrn::Held)`: in an ETRN domain, held until released.
    pub etrn: Option<Etrn>,
}

impl NewRecipient {
    pub fn new(address: impl Into<String>) -> Self {
        NewRecipient {
            address: address.into(),
            ..Default::default()
        }
    }
}

/// What a source hands to [`crate::QueueStore::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NewMessage {
    pub sender: String,
    pub recipients: Vec<NewRecipient>,
    pub client: ClientInfo,
    pub body_type: BodyType,
    pub smtputf8: bool,
    /// MAIL FROM … REQUIRETLS (RFC 8689).
    #[serde(default)]
    pub requiretls: bool,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// Enqueue held (not delivered until released).
    pub held: bool,
    pub lifetime: Option<u64>,
}

impl NewMessage {
    /// A message made on this host (a report, the command line, the fax
    /// service, the HTTP API) from `sender` to `recipients`: a trusted
    /// local client named `helo` (ours to sign), the body type from its
    /// octets.
    pub fn local(sender: &str, recipients: &[String], helo: &str, body: &[u8]) -> NewMessage {
        NewMessage {
            sender: sender.to_string(),
            recipients: recipients
                .iter()
                .map(|r| NewRecipient::new(r.clone()))
                .collect(),
            client: ClientInfo {
                addr: "local".into(),
                helo: helo.to_string(),
                auth_user: None,
                protocol: "local".into(),
                trusted: true,
            },
            body_type: if body.iter().any(|&b| b >= 0x80) {
                BodyType::EightBitMime
            } else {
                BodyType::SevenBit
            },
            ..Default::default()
        }
    }

    /// The first address of the message that no SMTP command may carry:
    /// one with a control character (CR, LF, NUL …). The sources check
    /// addresses by the RFC 5321 grammar; this is the queue's own last
    /// line, so that no such address is ever stored.
    pub fn unsafe_address(&self) -> Option<&str> {
        std::iter::once(self.sender.as_str())
            .chain(self.recipients.iter().map(|r| r.address.as_str()))
            .find(|a| a.chars().any(|c| c.is_control()))
    }

    /// Build the envelope this message starts its life in the queue with.
    pub fn into_envelope(self, id: QueueId, size: u64, arrival: u64) -> Envelope {
        Envelope {
            id,
            sender: self.sender,
            arrival,
            size,
            client: self.client,
            body_type: self.body_type,
            smtputf8: self.smtputf8,
            requiretls: self.requiretls,
            ret: self.ret,
            envid: self.envid,
            held: self.held,
            lifetime: self.lifetime,
            head: String::new(),
            recipients: self
                .recipients
                .into_iter()
                .map(|r| Recipient {
                    address: r.address,
                    orcpt: r.orcpt,
                    notify: r.notify,
                    state: RcptState::Pending,
                    attempts: 0,
                    next_attempt: arrival,
                    last_attempt: 0,
                    last_reply: None,
                    relay: None,
                    delay_warned: false,
                    lifetime: r.lifetime,
                    etrn: r.etrn,
                    fax: None,
                    report_pending: false,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_defaults_follow_rfc3461() {
        assert!(Notify::wants_failure(None));
        assert!(Notify::wants_delay(None));
        assert!(!Notify::wants_success(None));
        let never = Notify {
            never: true,
            ..Default::default()
        };
        assert!(!Notify::wants_failure(Some(never)));
        let success = Notify {
            success: true,
            ..Default::default()
        };
        assert!(Notify::wants_success(Some(success)));
        assert!(!Notify::wants_failure(Some(success)));
        assert_eq!(success.to_string(), "SUCCESS");
    }

    #[test]
    fn due_is_earliest_active_unless_held() {
        let msg = NewMessage {
            sender: "a@b".into(),
            recipients: vec![NewRecipient::new("x@y"), NewRecipient::new("z@y")],
            ..Default::default()
        };
        let mut env = msg.into_envelope("ID".into(), 10, 100);
        env.recipients[0].next_attempt = 500;
        env.recipients[1].next_attempt = 300;
        assert_eq!(env.due(), Some(300));
        env.recipients[1].state = RcptState::Delivered;
        assert_eq!(env.due(), Some(500));
        env.held = true;
        assert_eq!(env.due(), None);
        env.held = false;
        env.recipients[0].state = RcptState::Failed;
        assert_eq!(env.due(), None);
        assert!(env.is_done());
    }

    #[test]
    fn a_recipient_lifetime_overrides_the_message_one() {
        let msg = NewMessage {
            sender: "a@b".into(),
            recipients: vec![
                NewRecipient::new("x@y"),
                NewRecipient {
                    lifetime: Some(30),
                    ..NewRecipient::new("z@backup")
                },
            ],
            ..Default::default()
        };
        let mut env = msg.into_envelope("ID".into(), 10, 100);
        assert_eq!((env.lifetime_of(0), env.lifetime_of(1)), (None, Some(30)));
        env.lifetime = Some(20);
        assert_eq!(
            (env.lifetime_of(0), env.lifetime_of(1)),
            (Some(20), Some(30))
        );
        // Envelopes stored before recipients had a lifetime still read.
        let mut json = serde_json::to_value(&env).unwrap();
        json["recipients"][0]
            .as_object_mut()
            .unwrap()
            .remove("lifetime");
        let old: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(old.recipients[0].lifetime, None);
    }
}
