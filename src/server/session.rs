//! One inbound SMTP session (RFC 5321): the command state machine.
//!
//! Commands are parsed by smtp-proto; this module decides what each one
//! means in the current state and answers it. Replies are queued and sent
//! when the session next waits for input, which gives PIPELINING for free.
//! A message is acknowledged only after [`faxmta_queue::Store::enqueue`]
//! returned, that is after it was synced to disk (invariant 1).

use super::conn::{Conn, Line, ReadError};
use super::data::{DataError, DataReader};
use super::received::{protocol_name, received_header};
use super::ServerContext;
use crate::config::{ListenerConfig, Role, TlsMode};
use faxmta_queue::{BodyType, ClientInfo, NewMessage, NewRecipient, Notify, Ret};
use smtp_proto::{self as sp, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The envelope being collected between MAIL and the end of data.
struct Transaction {
    sender: String,
    body_type: BodyType,
    smtputf8: bool,
    ret: Option<Ret>,
    envid: Option<String>,
    recipients: Vec<NewRecipient>,
    /// BDAT chunks received so far.
    chunks: Vec<u8>,
    /// Set when a BDAT chunk spoiled the message; later chunks are read
    /// and dropped, and each gets this reply.
    chunk_error: Option<StaticReply>,
}

/// TLS facts for the Received header.
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

/// A reply with fixed texts: code, enhanced status, text.
type StaticReply = (u16, &'static str, &'static str);

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
}

impl Session {
    pub fn new(
        ctx: Arc<ServerContext>,
        listener: ListenerConfig,
        peer: SocketAddr,
        conn: Conn,
        tls: Option<TlsInfo>,
    ) -> Self {
        Session {
            ctx,
            listener,
            peer,
            conn,
            helo: None,
            esmtp: false,
            tls,
            tx: None,
            errors: 0,
        }
    }

    fn timeout(&self) -> Duration {
        self.ctx.config.smtp.command_timeout.std()
    }

    /// Run the session to its end.
    pub async fn run(mut self) {
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
            match self.command(&line).await {
                Next::Continue => {}
                Next::Close => break,
            }
        }
        let _ = self.conn.flush().await;
    }

    /// Queue a reply; `code` decides nothing else.
    fn reply(&mut self, code: u16, status: &str, text: &str) {
        if status.is_empty() {
            self.conn.queue(&format!("{code} {text}\r\n"));
        } else {
            self.conn.queue(&format!("{code} {status} {text}\r\n"));
        }
    }

    /// Queue an error reply and count it; after too many, close.
    fn error(&mut self, code: u16, status: &str, text: &str) -> Next {
        self.errors += 1;
        let class = if code >= 500 { "5xx" } else { "4xx" };
        self.ctx
            .metrics
            .rejects
            .with_label_values(&[class, status])
            .inc();
        if self.errors >= self.ctx.config.smtp.max_errors {
            tracing::info!(client = %self.peer, errors = self.errors, "too many errors, disconnecting");
            self.conn.queue(&format!("{code} {status} {text}\r\n"));
            self.conn
                .queue("421 4.7.0 Error: too many errors, closing connection\r\n");
            return Next::Close;
        }
        self.reply(code, status, text);
        Next::Continue
    }

    async fn command(&mut self, line: &[u8]) -> Next {
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r.into_owned(),
            Err(e) => return self.parse_error(e),
        };
        match request {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Lhlo { .. } => self.error(500, "5.5.1", "Error: LHLO is for LMTP"),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
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
                self.reply(214, "2.0.0", "VRFY HELP QUIT STARTTLS; see RFC 5321");
                Next::Continue
            }
            Request::Quit => {
                self.reply(221, "2.0.0", "Bye");
                Next::Close
            }
            Request::StartTls => self.starttls().await,
            Request::Auth { .. } => self.error(503, "5.5.1", "Error: authentication not enabled"),
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.error(502, "5.5.1", "Error: command not implemented")
            }
        }
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

    fn hello(&mut self, host: String, esmtp: bool) -> Next {
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
            "VRFY".into(),
            "HELP".into(),
        ];
        if self.offers_starttls() {
            lines.push("STARTTLS".into());
        }
        let last = lines.len() - 1;
        for (i, l) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.conn.queue(&format!("250{sep}{l}\r\n"));
        }
        Next::Continue
    }

    fn mail(&mut self, from: sp::MailFrom<String>) -> Next {
        if self.helo.is_none() {
            return self.error(503, "5.5.1", "Error: send HELO/EHLO first");
        }
        if self.tx.is_some() {
            return self.error(503, "5.5.1", "Error: nested MAIL command");
        }
        let max = self.ctx.config.smtp.max_message_size.0;
        if from.size as u64 > max {
            let (code, status, text) = TOO_BIG;
            return self.error(code, status, text);
        }
        if from.flags & sp::MAIL_BODY_BINARYMIME != 0 {
            return self.error(555, "5.5.4", "BODY=BINARYMIME is not supported");
        }
        let smtputf8 = from.flags & sp::MAIL_SMTPUTF8 != 0;
        if !from.address.is_ascii() && !smtputf8 {
            return self.error(553, "5.6.7", "Sender address needs SMTPUTF8");
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
        self.tx = Some(Transaction {
            sender: from.address,
            body_type,
            smtputf8,
            ret,
            envid: from.env_id,
            recipients: Vec::new(),
            chunks: Vec::new(),
            chunk_error: None,
        });
        self.reply(250, "2.1.0", "Ok");
        Next::Continue
    }

    fn rcpt(&mut self, to: sp::RcptTo<String>) -> Next {
        let max = self.ctx.config.smtp.max_recipients;
        let ip = self.peer.ip();
        let Some(tx) = self.tx.as_ref() else {
            return self.error(503, "5.5.1", "Error: need MAIL command");
        };
        if tx.recipients.len() >= max {
            // RFC 5321 §4.5.3.1.10: a temporary reply, the client sends
            // the rest in another transaction.
            return self.error(452, "4.5.3", "Error: too many recipients");
        }
        if !to.address.is_ascii() && !tx.smtputf8 {
            return self.error(553, "5.6.7", "Recipient address needs SMTPUTF8");
        }
        if let Err(reply) = self
            .ctx
            .policy
            .check_recipient(&self.ctx.router, ip, &to.address)
        {
            tracing::info!(
                client = %self.peer, rcpt = %to.address,
                "NOQUEUE: reject: RCPT from [{ip}]: {reply}"
            );
            return self.error(reply.code, &reply.status, &reply.text);
        }
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
            tx.recipients.push(NewRecipient {
                address: to.address,
                orcpt,
                notify,
            });
        }
        self.reply(250, "2.1.5", "Ok");
        Next::Continue
    }

    async fn data(&mut self) -> Next {
        match &self.tx {
            None => return self.error(503, "5.5.1", "Error: need MAIL command"),
            Some(tx) if tx.recipients.is_empty() => {
                return self.error(554, "5.5.1", "Error: no valid recipients")
            }
            Some(tx) if !tx.chunks.is_empty() || tx.chunk_error.is_some() => {
                return self.error(503, "5.5.1", "Error: DATA after BDAT")
            }
            Some(_) => {}
        }
        self.reply(354, "", "End data with <CR><LF>.<CR><LF>");
        let smtp = &self.ctx.config.smtp;
        let mut reader = DataReader::new(
            smtp.bare_newline,
            smtp.max_message_size.0 as usize,
            smtp.max_data_line,
        );
        let timeout = smtp.data_timeout.std();
        loop {
            if let Some(n) = reader.feed(self.conn.buffered()) {
                self.conn.consume(n);
                break;
            }
            let all = self.conn.buffered().len();
            self.conn.consume(all);
            match self.conn.fill(timeout).await {
                Ok(()) => {}
                Err(ReadError::Timeout) => {
                    // Nothing was acknowledged: the partial message is dropped.
                    self.conn
                        .queue("421 4.4.2 Error: timeout exceeded, closing connection\r\n");
                    return Next::Close;
                }
                Err(_) => {
                    tracing::info!(client = %self.peer, "lost connection after DATA; message dropped, not acknowledged");
                    self.tx = None;
                    return Next::Close;
                }
            }
        }
        match reader.finish() {
            Ok(body) => self.finish_message(body).await,
            Err(e) => {
                self.tx = None;
                let (code, status, text) = match e {
                    DataError::TooBig => TOO_BIG,
                    DataError::LineTooLong => (
                        554,
                        "5.6.0",
                        "Message refused: a text line is longer than RFC 5321 allows",
                    ),
                    DataError::BareNewline => (
                        554,
                        "5.6.0",
                        "Message refused: bare CR or LF in message text (only CRLF line ends are allowed)",
                    ),
                };
                tracing::info!(client = %self.peer, "NOQUEUE: reject: DATA from [{}]: {code} {status} {text}", self.peer.ip());
                self.error(code, status, text)
            }
        }
    }

    async fn bdat(&mut self, size: usize, last: bool) -> Next {
        // The chunk must be read whatever happens, or its bytes would be
        // taken for commands.
        let max = self.ctx.config.smtp.max_message_size.0 as usize;
        let mut chunk_error = None;
        let keep = match &self.tx {
            None => {
                chunk_error = Some((503, "5.5.1", "Error: need MAIL command"));
                false
            }
            Some(tx) if tx.recipients.is_empty() => {
                chunk_error = Some((554, "5.5.1", "Error: no valid recipients"));
                false
            }
            Some(tx) => tx.chunk_error.is_none() && tx.chunks.len().saturating_add(size) <= max,
        };
        let mut left = size;
        let timeout = self.ctx.config.smtp.data_timeout.std();
        loop {
            let take = left.min(self.conn.buffered().len());
            if keep {
                if let Some(tx) = self.tx.as_mut() {
                    tx.chunks.extend_from_slice(&self.conn.buffered()[..take]);
                }
            }
            self.conn.consume(take);
            left -= take;
            if left == 0 {
                break;
            }
            if let Err(e) = self.conn.fill(timeout).await {
                if let ReadError::Timeout = e {
                    self.conn
                        .queue("421 4.4.2 Error: timeout exceeded, closing connection\r\n");
                }
                self.tx = None;
                return Next::Close;
            }
        }
        if let Some((code, status, text)) = chunk_error {
            return self.error(code, status, text);
        }
        let Some(tx) = self.tx.as_mut() else {
            return self.error(503, "5.5.1", "Error: need MAIL command");
        };
        if !keep && tx.chunk_error.is_none() {
            tx.chunk_error = Some(TOO_BIG);
            tx.chunks = Vec::new();
        }
        if let Some((code, status, text)) = tx.chunk_error {
            if last {
                self.tx = None;
            }
            return self.error(code, status, text);
        }
        if !last {
            self.reply(250, "2.0.0", &format!("{size} octets received"));
            return Next::Continue;
        }
        let body = std::mem::take(&mut tx.chunks);
        self.finish_message(body).await
    }

    /// Store the message durably, then answer 250 (or a 4xx if the store
    /// failed: the client keeps the message and tries again).
    async fn finish_message(&mut self, data: Vec<u8>) -> Next {
        let Some(tx) = self.tx.take() else {
            return self.error(503, "5.5.1", "Error: need MAIL command");
        };
        let store = &self.ctx.store;
        let id = match store.new_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot allocate a queue id");
                self.reply(451, "4.3.0", "Error: queue file write error");
                return Next::Continue;
            }
        };
        let protocol = protocol_name(self.esmtp, tx.smtputf8, self.tls.is_some(), false);
        let helo = self.helo.clone().unwrap_or_default();
        let for_rcpt = (tx.recipients.len() == 1).then(|| tx.recipients[0].address.as_str());
        let mut body = received_header(
            &helo,
            self.peer.ip(),
            &self.ctx.config.hostname,
            protocol,
            &id,
            self.tls.as_ref(),
            for_rcpt,
        );
        body.extend_from_slice(&data);
        let nrcpt = tx.recipients.len();
        let sender = tx.sender.clone();
        let message = NewMessage {
            sender: tx.sender,
            recipients: tx.recipients,
            client: ClientInfo {
                addr: self.peer.ip().to_string(),
                helo,
                auth_user: None,
                protocol: protocol.to_string(),
            },
            body_type: tx.body_type,
            smtputf8: tx.smtputf8,
            ret: tx.ret,
            envid: tx.envid,
            held: false,
            lifetime: None,
        };
        match store.enqueue(id.clone(), message, &body).await {
            Ok(env) => {
                tracing::info!(
                    "{id}: from=<{sender}>, size={}, nrcpt={nrcpt}, client={}[{}], proto={protocol}",
                    env.size,
                    env.client.helo,
                    self.peer.ip()
                );
                self.reply(250, "2.0.0", &format!("Ok: queued as {id}"));
                let source = match self.listener.role {
                    Role::Mx => "mx",
                    Role::Submission => "submission",
                };
                self.ctx.metrics.received.with_label_values(&[source]).inc();
            }
            Err(e) => {
                tracing::error!(error = %e, "{id}: cannot store message from <{sender}>");
                let (code, status) = if e.is_disk_full() {
                    (452, "4.3.1")
                } else {
                    (451, "4.3.0")
                };
                self.reply(
                    code,
                    status,
                    "Error: queue file write error, try again later",
                );
            }
        }
        Next::Continue
    }

    async fn starttls(&mut self) -> Next {
        if self.tls.is_some() {
            return self.error(503, "5.5.1", "Error: TLS already active");
        }
        let Some(acceptor) = self.ctx.tls.clone().filter(|_| self.offers_starttls()) else {
            return self.error(502, "5.5.1", "Error: STARTTLS not offered here");
        };
        self.reply(220, "2.0.0", "Ready to start TLS");
        if let Err(e) = self.conn.flush().await {
            tracing::debug!(client = %self.peer, error = %e, "lost connection before TLS");
            return Next::Close;
        }
        // CVE-2011-0411: what the client pipelined after STARTTLS arrived
        // in plaintext and must not be taken as commands.
        let discarded = self.conn.discard_input();
        if discarded > 0 {
            tracing::warn!(client = %self.peer, bytes = discarded, "discarded plaintext pipelined after STARTTLS");
        }
        if let Err(e) = self.conn.upgrade(&acceptor, self.timeout()).await {
            tracing::info!(client = %self.peer, error = %e, "TLS handshake failed");
            return Next::Close;
        }
        if let super::conn::Stream::Tls(s) = &self.conn.stream {
            let (version, cipher) = super::tls::describe(s.get_ref().1);
            tracing::info!(client = %self.peer, "TLS established: {version} with cipher {cipher}");
            self.ctx
                .metrics
                .tls
                .with_label_values(&["in", &version])
                .inc();
            self.tls = Some(TlsInfo { version, cipher });
        }
        // RFC 3207 §4.2: forget everything learned before TLS.
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        Next::Continue
    }
}
