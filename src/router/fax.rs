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
//! sender may fax the number is a policy question, answered in one place:
//! `crate::policy::fax` (`550 5.7.1`).

use super::{Route, Router};
use crate::config::fax::FaxSenders;
use faxmta_fax::address::{self, At};
use faxmta_fax::directory::FaxPolicy;
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
}
