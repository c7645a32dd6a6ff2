//! Who may fax a number: the one place that answers it, for every way a
//! fax arrives — an SMTP session at RCPT, the scheduler again at delivery
//! (the directory may have changed; a report may go to a fax address),
//! the HTTP fax API, `faxmta fax send` and the POP3 gateway.
//!
//! Two questions, in order:
//! 1. Is the sender believed? `[fax] senders`: by default only clients
//!    that may relay (authenticated users, `[relay] allow` networks);
//!    `spf-pass` also senders whose domain's SPF passes for the client;
//!    `any` everyone. An envelope sender alone is never proof.
//! 2. May that sender fax that number? The fax user directory and the
//!    outbound rules ([`faxmta_fax::directory::FaxPolicy::may_fax`]).
//!
//! Either refusal is `550 5.7.1` with the reason.

use crate::config::fax::FaxSenders;
use crate::router::{Route, Router};
use faxmta_fax::directory::{FaxSender, FaxTarget};
use faxmta_queue::Reply;

/// Who asks to send a fax.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// The envelope sender (MAIL FROM).
    pub sender: &'a str,
    /// The SMTP AUTH user, if any (tried when the sender is not in the
    /// directory).
    pub login: Option<&'a str>,
    /// The client may relay (authenticated, or in `[relay] allow`).
    pub trusted: bool,
    /// SPF passed for the sender's domain and the client.
    pub spf_pass: bool,
}

impl<'a> Asker<'a> {
    /// A sender vouched for by the way it reached us: the CLI, the HTTP
    /// API (a token), the POP3 gateway (its mailbox), the scheduler (the
    /// session was checked at RCPT).
    pub fn trusted(sender: &'a str, login: Option<&'a str>) -> Asker<'a> {
        Asker {
            sender,
            login,
            trusted: true,
            spf_pass: false,
        }
    }
}

/// Whether `asker` may fax `target`: the sender's directory entry, or the
/// `550 5.7.1` that refuses the recipient.
pub fn may_fax(router: &Router, target: &FaxTarget, asker: &Asker<'_>) -> Result<FaxSender, Reply> {
    let believed = match router.fax_senders() {
        FaxSenders::Trusted => asker.trusted,
        FaxSenders::SpfPass => asker.trusted || asker.spf_pass,
        FaxSenders::Any => true,
    };
    if !believed {
        let or_spf = match router.fax_senders() {
            FaxSenders::SpfPass => " and senders whose domain's SPF passes for the client",
            _ => "",
        };
        return Err(Reply::new(
            550,
            "5.7.1",
            format!(
                "Fax to {} is accepted only from authenticated users and trusted networks{or_spf}",
                target.number
            ),
        ));
    }
    router
        .fax_policy()
        .may_fax(asker.sender, asker.login, &target.number)
        .map_err(|refusal| Reply::new(550, "5.7.1", refusal.to_string()))
}

/// Whether `asker` may fax the recipient address `to`: [`may_fax`] for a
/// fax address, `550 5.1.3` for what is not a good fax address.
pub fn may_fax_address(router: &Router, asker: &Asker<'_>, to: &str) -> Result<FaxSender, Reply> {
    match router.resolve(to)? {
        Route::Fax(target) => may_fax(router, &target, asker),
        _ => Err(Reply::new(
            550,
            "5.1.3",
            format!("<{to}> is not a fax address"),
        )),
    }
}
