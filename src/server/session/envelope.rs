//! The envelope commands of an inbound session: EHLO/HELO (the
//! extensions offered), MAIL FROM (limits, the sender's rights, SPF) and
//! RCPT TO (the recipient's route and policy, DSN parameters).

use super::{Next, Session, Transaction, NO_ROOM, TOO_BIG};
use crate::config::fax::FaxSenders;
use crate::router::Route;
use faxmta_queue::{BodyType, Etrn, NewRecipient, Notify, Reply, Ret};
use smtp_proto as sp;

impl Session {
    /// A recipient refused by policy or routing: logged the way Postfix
    /// logs it (`NOQUEUE: reject: RCPT`), and answered.
    fn refuse_rcpt(&mut self, rcpt: &str, reply: &Reply) -> Next {
        tracing::info!(
            client = %self.peer, rcpt = %rcpt,
            "NOQUEUE: reject: RCPT from [{}]: {reply}",
            self.peer.ip()
        );
        self.error(reply.code, &reply.status, &reply.text)
    }

    pub(super) fn hello(&mut self, host: String, esmtp: bool) -> Next {
        self.tx = None;
        self.helo = Some(host.clone());
        self.esmtp = esmtp;
        let name = self.ctx.config.hostname.clone();
        if !esmtp {
            self.reply(250, "", &name);
            return Next::Continue;
        }
        let mut lines = vec![
            name,
            "PIPELINING".into(),
            format!("SIZE {}", self.ctx.config.smtp.max_message_size.0),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
            "SMTPUTF8".into(),
            "DSN".into(),
            "CHUNKING".into(),
            "ETRN".into(),
            "VRFY".into(),
            "HELP".into(),
        ];
        if self.offers_starttls() {
            lines.push("STARTTLS".into());
        }
        if self.tls.is_some() {
            // RFC 8689 §4: only over TLS.
            lines.push("REQUIRETLS".into());
        }
        if self.offers_auth() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        let last = lines.len() - 1;
        for (i, l) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.conn.queue(&format!("250{sep}{l}\r\n"));
        }
        Next::Continue
    }

    pub(super) async fn mail(&mut self, from: sp::MailFrom<String>) -> Next {
        if self.helo.is_none() {
            return self.error(503, "5.5.1", "Error: send HELO/EHLO first");
        }
        if self.tx.is_some() {
            return self.error(503, "5.5.1", "Error: nested MAIL command");
        }
        let limit = self.ctx.config.smtp.max_messages_per_connection;
        if limit > 0 && self.messages >= limit {
            tracing::info!(client = %self.peer, "NOQUEUE: reject: MAIL from [{}]: {limit} messages in one session", self.peer.ip());
            self.count_limit("messages");
            self.count_reject(421, "4.7.0");
            self.conn
                .queue("421 4.7.0 Error: too many messages in one session, closing connection\r\n");
            return Next::Close;
        }
        // An authenticated user sends as itself (src/policy/users.rs).
        if let Some(user) = &self.auth_user {
            if !self.ctx.config.auth.any_sender && !user.may_send_as(&from.address) {
                let text = format!(
                    "<{}>: Sender address rejected: not owned by user {}",
                    from.address, user.name
                );
                tracing::info!(client = %self.peer, "NOQUEUE: reject: MAIL from [{}]: 553 5.7.1 {text}", self.peer.ip());
                return self.error(553, "5.7.1", &text);
            }
        }
        let max = self.ctx.config.smtp.max_message_size.0;
        if from.size as u64 > max {
            let (code, status, text) = TOO_BIG;
            return self.error(code, status, text);
        }
        let reserve = self.ctx.config.queue.min_free.0;
        if let Err(e) = self.ctx.store.check_room(reserve, from.size as u64) {
            tracing::warn!(client = %self.peer, "NOQUEUE: reject: MAIL from [{}]: 452 4.3.1 {e}", self.peer.ip());
            return self.error(452, "4.3.1", NO_ROOM);
        }
        if from.flags & sp::MAIL_BODY_BINARYMIME != 0 {
            return self.error(555, "5.5.4", "BODY=BINARYMIME is not supported");
        }
        let smtputf8 = from.flags & sp::MAIL_SMTPUTF8 != 0;
        if !from.address.is_ascii() && !smtputf8 {
            return self.error(553, "5.6.7", "Sender address needs SMTPUTF8");
        }
        let requiretls = from.flags & sp::MAIL_REQUIRETLS != 0;
        if requiretls && self.tls.is_none() {
            return self.error(
                530,
                "5.7.10",
                "REQUIRETLS needs a TLS session (STARTTLS first)",
            );
        }
        let body_type = if from.flags & sp::MAIL_BODY_8BITMIME != 0 {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        };
        let ret = if from.flags & sp::MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & sp::MAIL_RET_HDRS != 0 {
            Some(Ret::Hdrs)
        } else {
            None
        };
        // SPF once per transaction; each RCPT applies its own policy.
        let ip = self.peer.ip();
        let trusted = self.may_relay();
        // Also when SPF decides who may fax (`[fax] senders = "spf-pass"`).
        let for_fax = !trusted && self.ctx.router.fax_senders() == FaxSenders::SpfPass;
        let spf = match &self.ctx.auth {
            Some(auth) if self.ctx.policy.wants_spf(&self.checks, trusted) || for_fax => {
                let helo = self.helo.clone().unwrap_or_default();
                let v = auth.check_spf(ip, &helo, &from.address).await;
                tracing::info!(
                    client = %self.peer,
                    "SPF {} for {} from [{ip}]: {}",
                    crate::policy::spf::word(v.result),
                    v.identity,
                    v.comment()
                );
                Some(v)
            }
            _ => None,
        };
        self.tx = Some(Transaction {
            spf,
            spam_flag: false,
            sender: from.address,
            body_type,
            smtputf8,
            requiretls,
            ret,
            envid: from.env_id,
            recipients: Vec::new(),
            incoming: None,
            chunk_error: None,
        });
        self.messages += 1;
        self.reply(250, "2.1.0", "Ok");
        Next::Continue
    }

    pub(super) async fn rcpt(&mut self, to: sp::RcptTo<String>) -> Next {
        let max = self.ctx.config.smtp.max_recipients;
        let ip = self.peer.ip();
        let Some(tx) = self.tx.as_ref() else {
            return self.error(503, "5.5.1", "Error: need MAIL command");
        };
        if tx.recipients.len() >= max {
            // RFC 5321 §4.5.3.1.10: a temporary reply, the client sends
            // the rest in another transaction.
            self.count_limit("recipients");
            return self.error(452, "4.5.3", "Error: too many recipients");
        }
        if !to.address.is_ascii() && !tx.smtputf8 {
            return self.error(553, "5.6.7", "Recipient address needs SMTPUTF8");
        }
        // The domain's allow_from, then SPF under the strictest policy
        // that covers this recipient.
        let policy = &self.ctx.policy;
        let spf = policy.spf_for(self.checks.spf, &to.address);
        let allowed = policy
            .allow_from(ip, &to.address)
            .and_then(|()| match &tx.spf {
                Some(v) => crate::policy::spf::decide(spf, v),
                None => Ok(false),
            });
        let flag = match allowed {
            Ok(flag) => flag,
            Err(reply) => return self.refuse_rcpt(&to.address, &reply),
        };
        let may_relay = self.may_relay();
        let checked =
            match self
                .ctx
                .policy
                .check_recipient(&self.ctx.router, may_relay, &to.address)
            {
                Ok(Route::BackupMx(backup)) => {
                    crate::policy::verify_backup(&self.ctx.callout, &backup, &to.address)
                        .await
                        .map(|()| (Some(backup.lifetime), None))
                }
                // Held until a client in its release_from sends ETRN.
                Ok(Route::Etrn(etrn)) => Ok((etrn.lifetime, Some(Etrn::Held))),
                Ok(Route::Fax(fax)) => self
                    .fax_rcpt(&fax, &tx.sender, tx.spf.as_ref())
                    .map(|()| (None, None)),
                Ok(_) => Ok((None, None)),
                Err(reply) => Err(reply),
            };
        let (lifetime, etrn) = match checked {
            Ok(kept) => kept,
            Err(reply) => return self.refuse_rcpt(&to.address, &reply),
        };
        let notify = (to.flags
            & (sp::RCPT_NOTIFY_NEVER
                | sp::RCPT_NOTIFY_SUCCESS
                | sp::RCPT_NOTIFY_FAILURE
                | sp::RCPT_NOTIFY_DELAY)
            != 0)
            .then_some(Notify {
                never: to.flags & sp::RCPT_NOTIFY_NEVER != 0,
                success: to.flags & sp::RCPT_NOTIFY_SUCCESS != 0,
                failure: to.flags & sp::RCPT_NOTIFY_FAILURE != 0,
                delay: to.flags & sp::RCPT_NOTIFY_DELAY != 0,
            });
        let orcpt = to.orcpt.map(|o| {
            if o.contains(';') {
                o
            } else {
                format!("rfc822;{o}")
            }
        });
        if let Some(tx) = self.tx.as_mut() {
            tx.spam_flag |= flag;
            tx.recipients.push(NewRecipient {
                address: to.address,
                orcpt,
                notify,
                lifetime,
                etrn,
            });
        }
        self.reply(250, "2.1.5", "Ok");
        Next::Continue
    }
}
