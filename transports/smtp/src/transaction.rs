//! One SMTP (or LMTP) transaction on an open [`Connection`]: what the
//! message needs of the server (SMTPUTF8, 8BITMIME, SIZE), the MAIL and
//! RCPT commands with their DSN parameters, pipelined when offered, the
//! data, and one result per recipient.

use super::body::{prepare_body, Prepared};
use super::client::Connection;
use faxmta_queue::{Envelope, Notify, Reply, Ret};
use faxmta_transport::{JobRecipient, Status};
use smtp_proto::{EXT_8BIT_MIME, EXT_DSN, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8};

/// One recipient's result within a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptResult {
    pub index: usize,
    pub status: Status,
    pub reply: Reply,
}

/// Whether an address has a character no command line may carry (CR,
/// LF, NUL or another control character): it would end the command and
/// start one of its own at the next hop.
fn unsendable(address: &str) -> bool {
    address.chars().any(|c| c.is_control())
}

impl Connection {
    /// One transaction for `rcpts`. Results come back for every recipient;
    /// `Err` means the whole transaction failed before any recipient was
    /// accepted at MAIL time (the caller may try another host when it is
    /// temporary).
    ///
    /// An address with a CR, LF, NUL (any control character) is never
    /// put on the wire: such a sender fails the whole message (553
    /// 5.1.7), such a recipient fails alone (553 5.1.3).
    pub async fn send(
        &mut self,
        env: &Envelope,
        body: &[u8],
        rcpts: &[JobRecipient],
    ) -> Result<Vec<RcptResult>, Reply> {
        let who = self.who();
        if unsendable(&env.sender) {
            let reply = Reply::new(
                553,
                "5.1.7",
                format!(
                    "the sender {:?} has a control character (CR, LF, NUL …): not sent to host {who}",
                    env.sender
                ),
            );
            return Ok(rcpts
                .iter()
                .map(|r| RcptResult {
                    index: r.index,
                    status: Status::Failed,
                    reply: reply.clone(),
                })
                .collect());
        }
        let (bad, good): (Vec<&JobRecipient>, Vec<&JobRecipient>) =
            rcpts.iter().partition(|r| unsendable(&r.address));
        let mut refused: Vec<RcptResult> = bad
            .iter()
            .map(|r| RcptResult {
                index: r.index,
                status: Status::Failed,
                reply: Reply::new(
                    553,
                    "5.1.3",
                    format!(
                        "the address {:?} has a control character (CR, LF, NUL …): not sent to host {who}",
                        r.address
                    ),
                ),
            })
            .collect();
        if refused.is_empty() {
            return self.transaction(env, body, rcpts).await;
        }
        if good.is_empty() {
            return Ok(refused);
        }
        let good: Vec<JobRecipient> = good.into_iter().cloned().collect();
        let mut results = self.transaction(env, body, &good).await?;
        results.append(&mut refused);
        Ok(results)
    }

    /// [`Connection::send`] for recipients whose addresses may be sent.
    async fn transaction(
        &mut self,
        env: &Envelope,
        body: &[u8],
        rcpts: &[JobRecipient],
    ) -> Result<Vec<RcptResult>, Reply> {
        let t = self.settings.timeouts;
        let all = |status: Status, reply: Reply| -> Vec<RcptResult> {
            rcpts
                .iter()
                .map(|r| RcptResult {
                    index: r.index,
                    status,
                    reply: reply.clone(),
                })
                .collect()
        };
        let who = self.who();

        // What the message needs of the server.
        let needs_utf8 =
            env.smtputf8 || !env.sender.is_ascii() || rcpts.iter().any(|r| !r.address.is_ascii());
        if needs_utf8 && !self.has(EXT_SMTP_UTF8) {
            return Ok(all(
                Status::Failed,
                Reply::new(
                    553,
                    "5.6.7",
                    format!("SMTPUTF8 is required, but was not offered by host {who}"),
                ),
            ));
        }
        // Only mail from trusted clients (and our own reports) is signed,
        // never what arrived from the Internet (a forged From would
        // come out signed); not over LMTP (local delivery).
        let signer = self
            .settings
            .signer
            .as_deref()
            .filter(|_| env.client.trusted && !self.settings.lmtp);
        let prepared = match prepare_body(body, env.body_type, self.has(EXT_8BIT_MIME), signer) {
            Ok(p) => p,
            Err(why) => {
                return Ok(all(
                    Status::Failed,
                    Reply::new(
                        554,
                        "5.6.3",
                        format!("host {who} does not accept 8-bit mail and {why}"),
                    ),
                ))
            }
        };
        let Prepared { data, eight_bit } = prepared;
        let size = data.len();
        let limit = self.ehlo.as_ref().map(|e| e.size).unwrap_or(0);
        if self.has(EXT_SIZE) && limit > 0 && size > limit {
            return Ok(all(
                Status::Failed,
                Reply::new(
                    552,
                    "5.3.4",
                    format!("message size {size} exceeds size limit {limit} of server {who}"),
                ),
            ));
        }

        let mut mail = format!("MAIL FROM:<{}>", env.sender);
        if self.has(EXT_SIZE) {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if eight_bit && self.has(EXT_8BIT_MIME) {
            mail.push_str(" BODY=8BITMIME");
        }
        if needs_utf8 {
            mail.push_str(" SMTPUTF8");
        }
        if env.requiretls {
            // Only reached on a connection that offered REQUIRETLS over
            // verified TLS (client.rs checks it when the session opens).
            mail.push_str(" REQUIRETLS");
        }
        let dsn = self.has(EXT_DSN);
        if dsn {
            match env.ret {
                Some(Ret::Full) => mail.push_str(" RET=FULL"),
                Some(Ret::Hdrs) => mail.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = &env.envid {
                mail.push_str(&format!(" ENVID={}", xtext(envid)));
            }
        }
        mail.push_str("\r\n");
        let mut rcpt_lines = Vec::new();
        for r in rcpts {
            let mut line = format!("RCPT TO:<{}>", r.address);
            if dsn {
                let rec = env.recipients.get(r.index);
                if let Some(n) = rec.and_then(|x| x.notify) {
                    line.push_str(&format!(" NOTIFY={}", notify_param(n)));
                }
                if let Some(o) = rec.and_then(|x| x.orcpt.as_deref()) {
                    // Stored decoded as "type;address": the address goes
                    // out as xtext again.
                    let (kind, addr) = o.split_once(';').unwrap_or(("rfc822", o));
                    line.push_str(&format!(" ORCPT={kind};{}", xtext(addr)));
                }
            }
            line.push_str("\r\n");
            rcpt_lines.push(line);
        }

        // Each command alone: joined for pipelining, a CR LF inside one
        // could no longer be told from the end of a command.
        super::client::check_line(mail.as_bytes())?;
        for l in &rcpt_lines {
            super::client::check_line(l.as_bytes())?;
        }
        let pipelining = self.has(EXT_PIPELINING);
        let mail_reply;
        let mut rcpt_replies = Vec::new();
        let data_reply;
        if pipelining {
            let mut batch = mail.clone();
            for l in &rcpt_lines {
                batch.push_str(l);
            }
            batch.push_str("DATA\r\n");
            self.write(batch.as_bytes(), t.command).await?;
            mail_reply = self.read_reply(t.command).await?;
            if mail_reply.code == 421 {
                // The server is closing: no more replies will come.
                let text = format!("host {who} said: {mail_reply} (in reply to MAIL FROM command)");
                return Err(Reply::new(421, &mail_reply.status, text));
            }
            self.awaiting("RCPT TO");
            for _ in &rcpt_lines {
                rcpt_replies.push(self.read_reply(t.command).await?);
            }
            self.awaiting("DATA");
            data_reply = self.read_reply(t.data_init).await?;
        } else {
            mail_reply = self.command(&mail, t.command).await?;
            if mail_reply.code / 100 == 2 {
                for l in &rcpt_lines {
                    rcpt_replies.push(self.command(l, t.command).await?);
                }
            }
            data_reply = if rcpt_replies.iter().any(|r| r.code / 100 == 2) {
                self.command("DATA\r\n", t.data_init).await?
            } else {
                Reply::new(554, "5.5.1", "no recipient accepted")
            };
        }

        if mail_reply.code / 100 != 2 {
            if pipelining && data_reply.code == 354 {
                // A server that pipelined us into DATA anyway: end it empty.
                self.write(b".\r\n", t.data_block).await?;
                let _ = self.read_reply(t.data_end).await;
            }
            if self.usable {
                let _ = self.reset().await;
            }
            let text = format!("host {who} said: {mail_reply} (in reply to MAIL FROM command)");
            let reply = Reply::new(mail_reply.code, &mail_reply.status, text);
            return Err(reply);
        }

        let mut results = Vec::new();
        let mut accepted = Vec::new();
        for (r, reply) in rcpts.iter().zip(&rcpt_replies) {
            if reply.code / 100 == 2 {
                accepted.push(r.index);
            } else {
                let status = if reply.is_permanent() {
                    Status::Failed
                } else {
                    Status::Deferred
                };
                let text = format!("host {who} said: {reply} (in reply to RCPT TO command)");
                results.push(RcptResult {
                    index: r.index,
                    status,
                    reply: Reply::new(reply.code, &reply.status, text),
                });
            }
        }
        if accepted.is_empty() {
            if data_reply.code == 354 {
                self.write(b".\r\n", t.data_block).await?;
                let _ = self.read_reply(t.data_end).await;
            }
            let _ = self.reset().await;
            return Ok(results);
        }
        if data_reply.code != 354 {
            let status = if data_reply.is_permanent() {
                Status::Failed
            } else {
                Status::Deferred
            };
            let text = format!("host {who} said: {data_reply} (in reply to DATA command)");
            for &i in &accepted {
                results.push(RcptResult {
                    index: i,
                    status,
                    reply: Reply::new(data_reply.code, &data_reply.status, text.clone()),
                });
            }
            let _ = self.reset().await;
            return Ok(results);
        }

        for chunk in data.chunks(64 * 1024) {
            self.write(chunk, t.data_block).await?;
        }
        self.write(b".\r\n", t.data_block).await?;
        if !self.settings.lmtp {
            // SMTP: one reply for the message.
            let reply = self.read_reply(t.data_end).await?;
            for &i in &accepted {
                results.push(end_of_data(&who, i, &reply));
            }
            return Ok(results);
        }
        // LMTP (RFC 2033 §4.2): one reply per accepted recipient, in RCPT
        // order. Should the connection break halfway, the recipients
        // answered so far keep their replies and the rest are deferred.
        let mut broken: Option<Reply> = None;
        for &i in &accepted {
            if let Some(lost) = &broken {
                results.push(RcptResult {
                    index: i,
                    status: Status::Deferred,
                    reply: lost.clone(),
                });
                continue;
            }
            match self.read_reply(t.data_end).await {
                Ok(reply) => results.push(end_of_data(&who, i, &reply)),
                Err(lost) => {
                    results.push(RcptResult {
                        index: i,
                        status: Status::Deferred,
                        reply: lost.clone(),
                    });
                    broken = Some(lost);
                }
            }
        }
        Ok(results)
    }
}

/// A recipient's result from a reply to the end of the data.
fn end_of_data(who: &str, index: usize, reply: &Reply) -> RcptResult {
    let status = match reply.code / 100 {
        2 => Status::Delivered,
        5 => Status::Failed,
        _ => Status::Deferred,
    };
    let text = if status == Status::Delivered {
        format!("{who}: {reply}")
    } else {
        format!("host {who} said: {reply} (in reply to end of DATA command)")
    };
    RcptResult {
        index,
        status,
        reply: Reply::new(reply.code, &reply.status, text),
    }
}

fn notify_param(n: Notify) -> String {
    n.to_string()
}

/// xtext (RFC 3461 §4): `+`, `=`, controls, space and non-ASCII octets
/// as `+XX`. ENVID and ORCPT are kept decoded in the queue.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_parameters_are_xtext() {
        assert_eq!(xtext("env two"), "env+20two");
        assert_eq!(xtext("a+b=c@x.test"), "a+2Bb+3Dc@x.test");
        assert_eq!(xtext("j\u{f6}rg"), "j+C3+B6rg");
    }
}
