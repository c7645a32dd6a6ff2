//! SMTP AUTH (RFC 4954) on an open [`Connection`], after EHLO and TLS:
//! PLAIN (RFC 4616) when the server offers it, else LOGIN. Credentials go
//! only over TLS unless TLS was configured off, and appear in no error or
//! log line: the errors quote the server, never the commands we sent.

use super::body::base64;
use super::client::{Connection, HopError};
use super::tls::TlsPolicy;
use faxmta_queue::Reply;
use faxmta_transport::Credentials;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN, EXT_AUTH};

impl Connection {
    /// AUTH (RFC 4954) after EHLO: PLAIN when offered, else LOGIN. The
    /// credentials go only over TLS unless the policy is `Off`; they
    /// appear in no error (the replies quote the server, never us).
    pub(super) async fn authenticate(
        &mut self,
        credentials: &Credentials,
        policy: TlsPolicy,
    ) -> Result<(), HopError> {
        let t = self.settings.timeouts;
        if self.tls.is_none() && policy != TlsPolicy::Off {
            return Err(HopError::temp(format!(
                "will not send credentials to host {} without TLS (it did not offer \
                 STARTTLS); tls = \"off\" would allow it",
                self.who()
            )));
        }
        let mechanisms = match &self.ehlo {
            Some(e) if e.has_capability(EXT_AUTH) => e.auth_mechanisms,
            _ => 0,
        };
        let user = &credentials.user;
        let Some(password) = credentials.password() else {
            return Err(HopError::temp(format!(
                "cannot log in to host {} as {user}: the password (password_file) was not read",
                self.who()
            )));
        };
        let reply = if mechanisms & AUTH_PLAIN != 0 {
            // authzid, authcid and password, NUL-separated (RFC 4616).
            let token = base64(format!("\0{user}\0{password}").as_bytes());
            self.command(&format!("AUTH PLAIN {token}\r\n"), t.command)
                .await
        } else if mechanisms & AUTH_LOGIN != 0 {
            self.login(user, password).await
        } else {
            let what = if !self.has(EXT_AUTH) {
                "does not offer AUTH"
            } else {
                "offers neither AUTH PLAIN nor AUTH LOGIN"
            };
            return Err(HopError::temp(format!(
                "cannot log in to host {} as {user}: it {what}",
                self.who()
            )));
        }
        .map_err(|e| HopError::temp(e.text))?;
        if reply.code != 235 {
            return Err(self.hop_error(&reply, "AUTH"));
        }
        self.authenticated = Some(credentials.clone());
        Ok(())
    }

    /// AUTH LOGIN: the user name and the password, each in reply to a
    /// 334 challenge; the reply that is not a 334 ends it.
    async fn login(&mut self, user: &str, password: &str) -> Result<Reply, Reply> {
        let t = self.settings.timeouts;
        let reply = self.command("AUTH LOGIN\r\n", t.command).await?;
        if reply.code != 334 {
            return Ok(reply);
        }
        let reply = self
            .command(&format!("{}\r\n", base64(user.as_bytes())), t.command)
            .await?;
        if reply.code != 334 {
            return Ok(reply);
        }
        self.command(&format!("{}\r\n", base64(password.as_bytes())), t.command)
            .await
    }
}
