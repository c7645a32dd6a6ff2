//! RCPT for a fax recipient: the router has already turned the address
//! into a number (a bad one was refused with `550 5.1.3`); here the
//! sender must be allowed to fax it — in the fax user directory, not
//! blocked by an outbound rule, not the null sender — or the recipient is
//! refused with `550 5.7.1` and a text that says why.
//!
//! The sender is the envelope sender (MAIL FROM). On an authenticated
//! session that sender was already checked to belong to the user (unless
//! `[auth] any_sender`); when it is not in the directory, the login name
//! is tried as well (src/policy/fax.rs, `FaxPolicy::may_fax`).

use super::Session;
use crate::policy::fax::{may_fax, Asker};
use crate::policy::spf::{word, SpfVerdict};
use faxmta_fax::directory::FaxTarget;
use faxmta_queue::Reply;

impl Session {
    /// May the transaction's `sender` fax `target`?
    pub(super) fn fax_rcpt(
        &self,
        target: &FaxTarget,
        sender: &str,
        spf: Option<&SpfVerdict>,
    ) -> Result<(), Reply> {
        let login = self.auth_user.as_ref().map(|u| u.name.as_str());
        // SPF of the sender's own domain (not the HELO name of a null
        // sender, who may not fax anyway).
        let spf_pass = spf.is_some_and(|v| !v.helo_identity && word(v.result) == "pass");
        let asker = Asker {
            sender,
            login,
            trusted: self.may_relay(),
            spf_pass,
        };
        let who = may_fax(&self.ctx.router, target, &asker)?;
        tracing::info!(
            client = %self.peer,
            "fax recipient {} (dial {}) for <{sender}> (fax user {})",
            target.number,
            target.dial,
            who.entry
        );
        Ok(())
    }
}
