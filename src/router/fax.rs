//! Fax recipients in the router.
//!
//! Which addresses are fax numbers:
//! - at a domain of `kind = "fax"`, every local part but `postmaster`
//!   (which goes to the postmaster of our main local domain): `number@`,
//!   `FAX=…@`, `IMCEAFAX-…@`;
//! - at one of our local domains, the `FAX=…` (RFC 3192) and `IMCEAFAX-…`
//!   (Exchange) forms only — checked before any mailbox, so a fax address
//!   never becomes a Maildir path;
//! - never at a domain we relay (relay, backup-mx, etrn, smarthost) or a
//!   remote one: there `FAX=…@domain` is an address like any other, and
//!   sending to it is relaying.
//!
//! A fax form whose number the dial plan cannot make sense of is refused
//! at RCPT with `550 5.1.3 Bad fax number <address>: why`. Whether the
//! sender may fax the number is the session's question, answered by
//! [`Router::fax_permit`] (`550 5.7.1`).

use super::{Route, Router};
use crate::config::fax::FaxSenders;
use faxmta_fax::address::{self, At};
use faxmta_fax::directory::{FaxPolicy, FaxSender, FaxTarget};
use faxmta_queue::Reply;

impl Router {
    /// The fax route of `address` (local part `user`, domain `bare`, lower
    /// case, no trailing dot); `Ok(None)`: not a fax address.
    pub(super) fn fax_route(
        &self,
        address: &str,
        user: &str,
        bare: &str,
    ) -> Result<Option<Route>, Reply> {
        let at = if self.fax_domains.contains(bare) {
            if user.eq_ignore_ascii_case("postmaster") {
                return self.resolve("postmaster").map(Some);
            }
            At::FaxDomain
        } else if self.local.contains_key(bare) {
            At::OwnDomain
        } else {
            return Ok(None);
        };
        let bad = |why: address::BadNumber| {
            Reply::new(550, "5.1.3", format!("Bad fax number <{address}>: {why}"))
        };
        let Some(parsed) = address::parse_local_part(user, at).map_err(bad)? else {
            return Ok(None);
        };
        let target = self.fax.target(&parsed).map_err(bad)?;
        Ok(Some(Route::Fax(target)))
    }

    /// Who may give us fax recipients over SMTP (`[fax] senders`).
    pub fn fax_senders(&self) -> FaxSenders {
        self.fax_senders
    }

    /// The dial plan, outbound rules and fax user directory.
    pub fn fax_policy(&self) -> &FaxPolicy {
        &self.fax
    }

    /// Whether `sender` (MAIL FROM; `login`: the SMTP AUTH user, if any)
    /// may fax `target`; `trusted`: the client may relay (authenticated or
    /// in `[relay] allow`); `spf_pass`: SPF passed for the sender's domain
    /// and the client. The sender's directory entry, or the `550 5.7.1`
    /// that refuses the recipient.
    pub fn fax_permit(
        &self,
        target: &FaxTarget,
        sender: &str,
        login: Option<&str>,
        trusted: bool,
        spf_pass: bool,
    ) -> Result<FaxSender, Reply> {
        let believed = match self.fax_senders {
            FaxSenders::Trusted => trusted,
            FaxSenders::SpfPass => trusted || spf_pass,
            FaxSenders::Any => true,
        };
        if !believed {
            let or_spf = match self.fax_senders {
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
        self.fax
            .authorise(sender, login, &target.number)
            .map_err(|refusal| Reply::new(550, "5.7.1", refusal.to_string()))
    }
}

impl Router {
    /// The number (E.164) of a fax address; `None`: not one (or not a
    /// good one).
    pub fn fax_number(&self, address: &str) -> Option<String> {
        match self.resolve(address) {
            Ok(Route::Fax(target)) => Some(target.number.to_string()),
            _ => None,
        }
    }

    /// Whether `sender` may fax the recipient address `to`, as at RCPT
    /// from a trusted client (the CLI, the HTTP API): the sender's
    /// directory entry, or the reply that refuses it (`5.1.3` for what is
    /// not a good fax address, `5.7.1` for a sender that may not).
    pub fn authorize_fax(&self, sender: &str, to: &str) -> Result<FaxSender, Reply> {
        match self.resolve(to)? {
            Route::Fax(target) => self.fax_permit(&target, sender, None, true, false),
            _ => Err(Reply::new(
                550,
                "5.1.3",
                format!("<{to}> is not a fax address"),
            )),
        }
    }
}
