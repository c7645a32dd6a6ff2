//! One inbound SMTP session (RFC 5321): the command state machine.
//!
//! Commands are parsed by smtp-proto; this module decides what each one
//! means in the current state and answers it. Replies are queued and sent
//! when the session next waits for input, which gives PIPELINING for free.
//! A message is acknowledged only after [`faxmta_queue::QueueStore::enqueue_body`]
//! returned, that is after it was synced to disk (invariant 1); the
//! message content (DATA, BDAT) and that commit are in `session/message.rs`
//! (streamed into the queue's body file by `session/incoming.rs`),
//! EHLO, MAIL and RCPT in `session/envelope.rs`,
//! SMTP AUTH in `session/auth.rs`, ETRN and STARTTLS in
//! `session/handover.rs`. NOOP, RSET, VRFY and ETRN past
//! `max_junk_commands` count as errors (Postfix's junk command limit).

use super::conn::{Conn, Deadline, Line, ReadError};
use super::ServerContext;

mod auth;
mod envelope;
mod fax;
mod handover;
mod incoming;
mod message;
use crate::config::policy::ListenerChecks;
use crate::config::{ListenerConfig, Role, TlsMode};
use crate::policy::limits::{Permit, Refusal};
use crate::policy::spf::SpfVerdict;
use crate::policy::users::User;
use faxmta_queue::{BodyType, NewRecipient, Ret};
use smtp_proto::{self as sp, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The envelope being collected between MAIL and the end of data.
struct Transaction {
    sender: String,
    body_type: BodyType,
    smtputf8: bool,
    /// MAIL FROM … REQUIRETLS (RFC 8689).
    requiretls: bool,
    ret: Option<Ret>,
    envid: Option<String>,
    recipients: Vec<NewRecipient>,
    /// The message being received by BDAT chunks (streaming into the
    /// queue).
    incoming: Option<incoming::Incoming>,
    /// Set when a BDAT chunk spoiled the message; later chunks are read
    /// and dropped, and each gets this reply.
    chunk_error: Option<StaticReply>,
    /// The SPF verdict, checked at MAIL (when any policy wants it).
    spf: Option<SpfVerdict>,
    /// An accepted recipient's policy marks the message `X-Spam-Flag: YES`
    /// (SPF softfail with `softfail = "tag"`).
    spam_flag: bool,
}

/// TLS facts for the Received header.
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

/// A reply with fixed texts: code, enhanced status, text.
type StaticReply = (u16, &'static str, &'static str);

/// The text of 452 4.3.1 when the queue's filesystem is (nearly) full.
const NO_ROOM: &str = "Insufficient system storage, try again later";

/// A header section larger than [`incoming::MAX_HEADER`].
const HEADER_TOO_BIG: StaticReply = (
    552,
    "5.3.4",
    "Message header size exceeds fixed maximum size",
);

const TOO_BIG: StaticReply = (
    552,
    "5.3.4",
    "Message size exceeds fixed maximum message size",
);

enum Next {
    Continue,
    Close,
}

pub struct Session {
    ctx: Arc<ServerContext>,
    listener: ListenerConfig,
    peer: SocketAddr,
    conn: Conn,
    helo: Option<String>,
    esmtp: bool,
    tls: Option<TlsInfo>,
    tx: Option<Transaction>,
    errors: u32,
    /// NOOP, RSET, VRFY and ETRN commands so far (`max_junk_commands`).
    junk: usize,
    /// The listener's SPF, DKIM and DMARC settings.
    checks: ListenerChecks,
    /// The user who logged in with AUTH.
    auth_user: Option<User>,
    /// Transactions started (MAIL accepted) in this session.
    messages: usize,
}

impl Session {
    pub fn new(
        ctx: Arc<ServerContext>,
        listener: ListenerConfig,
        peer: SocketAddr,
        conn: Conn,
        tls: Option<TlsInfo>,
    ) -> Self {
        let checks = ctx.config.policy.for_listener(&listener);
        Session {
            checks,
            ctx,
            listener,
            peer,
            conn,
            helo: None,
            esmtp: false,
            tls,
            tx: None,
            errors: 0,
            junk: 0,
            auth_user: None,
            messages: 0,
        }
    }

    fn timeout(&self) -> Duration {
        self.ctx.config.smtp.command_timeout.std()
    }

    /// Whether the client may relay: authenticated, or in `[relay] allow`.
    fn may_relay(&self) -> bool {
        self.ctx
            .policy
            .may_relay(self.peer.ip(), self.auth_user.is_some())
    }

    /// Count a limit hit in faxmta_smtp_limits_total.
    fn count_limit(&self, limit: &str) {
        self.ctx.metrics.limits.with_label_values(&[limit]).inc();
    }

    /// Run the session to its end. `admission`: the connection limits'
    /// verdict, taken when the connection was accepted.
    pub async fn run(mut self, admission: Result<Permit, Refusal>) {
        let ip = self.peer.ip();
        let refused = match (self.ctx.policy.connect(&self.listener, ip), &admission) {
            (Err(reply), _) => Some(reply),
            (Ok(()), Err(limit)) => {
                self.count_limit(limit.label());
                Some(limit.reply(ip))
            }
            (Ok(()), Ok(_)) => None,
        };
        if let Some(reply) = refused {
            tracing::info!(client = %self.peer, "NOQUEUE: reject: CONNECT from [{ip}]: {reply}");
            self.count_reject(reply.code, &reply.status);
            self.reply(reply.code, &reply.status, &reply.text);
            let _ = self.conn.flush_by(&Deadline::new(self.timeout())).await;
            return;
        }
        let _permit = admission;
        let greeting = format!("220 {} ESMTP faxmta\r\n", self.ctx.config.hostname);
        self.conn.queue(&greeting);
        let mut shutdown = self.ctx.shutdown.clone();
        let max_line = self.ctx.config.smtp.max_command_line;
        let timeout = self.timeout();
        loop {
            if self.ctx.shutting_down() {
                self.conn
                    .queue("421 4.3.2 Server shutting down, closing connection\r\n");
                break;
            }
            let read = tokio::select! {
                read = self.conn.read_line(max_line, timeout) => read,
                _ = shutdown.changed() => {
                    self.conn.queue("421 4.3.2 Server shutting down, closing connection\r\n");
                    break;
                }
            };
            let line = match read {
                Ok(Line::Complete(line)) => line,
                Ok(Line::TooLong) => {
                    if let Next::Close = self.error(500, "5.5.2", "Error: line too long") {
                        break;
                    }
                    continue;
                }
                Err(ReadError::Timeout) => {
                    tracing::info!(client = %self.peer, "timeout waiting for a command from [{ip}]");
                    self.count_limit("command_timeout");
                    self.conn
                        .queue("421 4.4.2 Error: timeout exceeded, closing connection\r\n");
                    break;
                }
                Err(ReadError::Closed) => {
                    tracing::debug!(client = %self.peer, "client went away");
                    return;
                }
                Err(ReadError::Io(e)) => {
                    tracing::info!(client = %self.peer, "connection lost: {e}");
                    return;
                }
            };
            // Boxed: the futures of the commands (SPF, callouts, the
            // queue commit …) are large, and an idle session would carry
            // room for them all while it waits for its next line.
            match Box::pin(self.command(&line)).await {
                Next::Continue => {}
                Next::Close => break,
            }
        }
        // Bounded: a client that reads nothing cannot hold the session.
        let _ = self.conn.flush_by(&Deadline::new(self.timeout())).await;
    }

    /// Queue a reply; `code` decides nothing else.
    fn reply(&mut self, code: u16, status: &str, text: &str) {
        if status.is_empty() {
            self.conn.queue(&format!("{code} {text}\r\n"));
        } else {
            self.conn.queue(&format!("{code} {status} {text}\r\n"));
        }
    }

    /// Count a refusal in faxmta_smtp_rejects_total.
    fn count_reject(&self, code: u16, status: &str) {
        let class = if code >= 500 { "5xx" } else { "4xx" };
        self.ctx
            .metrics
            .rejects
            .with_label_values(&[class, status])
            .inc();
    }

    /// Queue an error reply and count it; after too many, close.
    fn error(&mut self, code: u16, status: &str, text: &str) -> Next {
        self.errors += 1;
        self.count_reject(code, status);
        if self.errors >= self.ctx.config.smtp.max_errors {
            tracing::info!(client = %self.peer, errors = self.errors, "too many errors, disconnecting");
            self.count_limit("errors");
            self.conn.queue(&format!("{code} {status} {text}\r\n"));
            self.conn
                .queue("421 4.7.0 Error: too many errors, closing connection\r\n");
            return Next::Close;
        }
        self.reply(code, status, text);
        Next::Continue
    }

    async fn command(&mut self, line: &[u8]) -> Next {
        let request = match super::path::parse_command(line) {
            Ok(r) => r,
            Err(e) => return self.parse_error(e),
        };
        if matches!(
            request,
            Request::Noop { .. } | Request::Rset | Request::Vrfy { .. } | Request::Etrn { .. }
        ) {
            if let Next::Close = self.junk() {
                return Next::Close;
            }
        }
        match request {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Lhlo { .. } => self.error(500, "5.5.1", "Error: LHLO is for LMTP"),
            Request::Mail { from } => self.mail(from).await,
            Request::Rcpt { to } => self.rcpt(to).await,
            Request::Data => self.data().await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last).await,
            Request::Rset => {
                self.tx = None;
                self.reply(250, "2.0.0", "Ok");
                Next::Continue
            }
            Request::Noop { .. } => {
                self.reply(250, "2.0.0", "Ok");
                Next::Continue
            }
            Request::Vrfy { .. } => {
                self.reply(
                    252,
                    "2.5.2",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                );
                Next::Continue
            }
            Request::Expn { .. } => self.error(502, "5.5.1", "Error: EXPN is not supported"),
            Request::Help { .. } => {
                self.conn
                    .queue("214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP\r\n");
                self.reply(214, "2.0.0", "VRFY HELP QUIT STARTTLS ETRN; see RFC 5321");
                Next::Continue
            }
            Request::Quit => {
                self.reply(221, "2.0.0", "Bye");
                Next::Close
            }
            Request::StartTls => self.starttls().await,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response).await,
            Request::Etrn { name } => self.etrn(&name).await,
            Request::Atrn { .. } | Request::Burl { .. } => {
                self.error(502, "5.5.1", "Error: command not implemented")
            }
        }
    }

    /// Count a junk command (Postfix's `smtpd_junk_command_limit`): past
    /// `max_junk_commands` each one counts as an error too, so that a
    /// client cannot hold its session with NOOPs within the timeouts. The
    /// count starts over after each message queued.
    fn junk(&mut self) -> Next {
        self.junk += 1;
        let limit = self.ctx.config.smtp.max_junk_commands;
        if limit == 0 || self.junk <= limit {
            return Next::Continue;
        }
        self.errors += 1;
        if self.errors >= self.ctx.config.smtp.max_errors {
            tracing::info!(client = %self.peer, junk = self.junk, "too many junk commands, disconnecting");
            self.count_limit("junk_commands");
            self.conn
                .queue("421 4.7.0 Error: too many errors, closing connection\r\n");
            return Next::Close;
        }
        Next::Continue
    }

    fn parse_error(&mut self, e: sp::Error) -> Next {
        match e {
            sp::Error::UnknownCommand => self.error(500, "5.5.2", "Error: command not recognized"),
            sp::Error::InvalidSenderAddress => {
                self.error(501, "5.1.7", "Bad sender address syntax")
            }
            sp::Error::InvalidRecipientAddress => {
                self.error(501, "5.1.3", "Bad recipient address syntax")
            }
            sp::Error::SyntaxError { syntax } => {
                self.error(501, "5.5.4", &format!("Syntax: {syntax}"))
            }
            sp::Error::InvalidParameter { param } => self.error(
                501,
                "5.5.4",
                &format!("Invalid value for parameter {param}"),
            ),
            sp::Error::UnsupportedParameter { param } => {
                self.error(555, "5.5.4", &format!("Unsupported parameter {param}"))
            }
            _ => self.error(500, "5.5.2", "Error: syntax error"),
        }
    }

    fn offers_starttls(&self) -> bool {
        self.tls.is_none() && self.listener.tls == TlsMode::Starttls && self.ctx.tls.is_some()
    }

    /// AUTH is offered on submission listeners with a users file, over
    /// TLS only.
    fn offers_auth(&self) -> bool {
        self.listener.role == Role::Submission && self.ctx.users.is_some() && self.tls.is_some()
    }
}
