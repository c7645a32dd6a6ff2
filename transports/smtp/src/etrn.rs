//! The client side of ETRN (RFC 1985): ask a server that holds mail for
//! us to start delivering it — connect, EHLO (STARTTLS as the policy
//! says), `ETRN node`, QUIT. The mail itself then arrives as ordinary
//! SMTP, on our own listener.

use super::client::{parse_reply, ClientSettings, Connection, Security};
use super::TlsPolicy;
use faxmta_queue::Reply;
use smtp_proto::EXT_ETRN;
use std::net::SocketAddr;

/// The server's answer to ETRN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtrnAnswer {
    /// The reply, parsed.
    pub reply: Reply,
    /// The reply as the server sent it (its lines joined with `\n`).
    pub raw: String,
    /// Whether the server announced ETRN in its EHLO reply.
    pub announced: bool,
    /// The TLS version, when the session was encrypted.
    pub tls: Option<String>,
}

impl EtrnAnswer {
    /// 250–253: the server started (or had nothing to start).
    pub fn ok(&self) -> bool {
        self.reply.code / 10 == 25
    }
}

/// Send `ETRN node` to the server at `addr` (`host` names it in messages
/// and for TLS). `Err`: the conversation failed before an answer, and why.
pub async fn etrn(
    addr: SocketAddr,
    host: &str,
    settings: &ClientSettings,
    tls: TlsPolicy,
    node: &str,
) -> Result<EtrnAnswer, Reply> {
    if node.is_empty() || node.contains(['\r', '\n', ' ']) {
        return Err(Reply::new(
            501,
            "5.5.4",
            format!("{node:?} is no ETRN argument"),
        ));
    }
    let mut conn = Connection::open(addr, host, settings, Security::starttls(tls))
        .await
        .map_err(|e| e.reply)?;
    let announced = conn.has(EXT_ETRN);
    let lines = conn
        .exchange(&format!("ETRN {node}\r\n"), settings.timeouts.command)
        .await?;
    let answer = EtrnAnswer {
        reply: parse_reply(&lines),
        raw: lines.join("\n"),
        announced,
        tls: conn.tls.as_ref().map(|t| t.version.clone()),
    };
    if conn.usable {
        conn.quit().await;
    }
    Ok(answer)
}
