//! SMTP AUTH (RFC 4954) in a session: PLAIN (RFC 4616) and LOGIN, on
//! submission listeners with a users file, over TLS only.
//!
//! Before TLS, AUTH is not announced and gets `530 5.7.0 Must issue a
//! STARTTLS command first`. A failed attempt is answered `535 5.7.8`
//! after a delay that grows with each failure from the client's address
//! (src/policy/limits.rs); the `[auth] max_failures`-th gets `421 4.7.0`
//! and the connection is closed, as does any AUTH from that address
//! (an IPv6 client: its /64) until its failures are older than
//! `failure_window`. An attempt is counted as failed before its password
//! is verified (and given back if it was right), so parallel attempts
//! cannot outrun the limit; at most `[auth] max_verifications` passwords
//! are verified at once (argon2 takes memory). Passwords are never
//! logged.

use super::{Next, Session};
use crate::config::Role;
use crate::server::conn::Line;
use base64::Engine;
use smtp_proto as sp;

/// Why a SASL exchange did not give credentials.
enum Exchange {
    /// The client sent `*`.
    Cancelled,
    /// Not base64, not UTF-8, or not the mechanism's format.
    Malformed,
    /// The connection went away or timed out.
    Lost,
}

/// The user name and password of an exchange.
struct Credentials {
    name: String,
    password: String,
}

fn decode(text: &str) -> Result<Vec<u8>, Exchange> {
    let text = text.trim();
    if text == "*" {
        return Err(Exchange::Cancelled);
    }
    if text == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| Exchange::Malformed)
}

fn utf8(bytes: Vec<u8>) -> Result<String, Exchange> {
    String::from_utf8(bytes).map_err(|_| Exchange::Malformed)
}

/// RFC 4616: `authzid NUL authcid NUL passwd`; an authorization identity,
/// if given, must be the user itself.
fn plain(message: Vec<u8>) -> Result<Credentials, Exchange> {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authz), Some(name), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Exchange::Malformed);
    };
    let (authz, name) = (utf8(authz.to_vec())?, utf8(name.to_vec())?);
    if name.is_empty() || (!authz.is_empty() && authz != name) {
        return Err(Exchange::Malformed);
    }
    Ok(Credentials {
        name,
        password: utf8(password.to_vec())?,
    })
}

impl Session {
    /// Send a `334` challenge and read the client's answer line.
    async fn challenge(&mut self, text: &str) -> Result<String, Exchange> {
        self.conn.queue(&format!("334 {text}\r\n"));
        let max = self.ctx.config.smtp.max_command_line;
        match self.conn.read_line(max, self.timeout()).await {
            Ok(Line::Complete(line)) => {
                utf8(line).map(|l| l.trim_end_matches(['\r', '\n']).to_string())
            }
            Ok(Line::TooLong) => Err(Exchange::Malformed),
            Err(_) => Err(Exchange::Lost),
        }
    }

    async fn exchange(&mut self, mechanism: u64, initial: &str) -> Result<Credentials, Exchange> {
        if mechanism == sp::AUTH_PLAIN {
            let response = match initial {
                "" => self.challenge("").await?,
                given => given.to_string(),
            };
            return plain(decode(&response)?);
        }
        // LOGIN: "Username:", then "Password:" (an initial response is
        // the user name).
        let name = match initial {
            "" => self.challenge("VXNlcm5hbWU6").await?,
            given => given.to_string(),
        };
        let name = utf8(decode(&name)?)?;
        let password = utf8(decode(&self.challenge("UGFzc3dvcmQ6").await?)?)?;
        if name.is_empty() {
            return Err(Exchange::Malformed);
        }
        Ok(Credentials { name, password })
    }

    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) -> Next {
        if self.listener.role != Role::Submission || self.ctx.users.is_none() {
            return self.error(503, "5.5.1", "Error: authentication not enabled");
        }
        if self.tls.is_none() {
            return self.error(530, "5.7.0", "Must issue a STARTTLS command first");
        }
        if !self.esmtp {
            return self.error(503, "5.5.1", "Error: send EHLO first");
        }
        if self.auth_user.is_some() {
            return self.error(503, "5.5.1", "Error: already authenticated");
        }
        if self.tx.is_some() {
            return self.error(503, "5.5.1", "Error: MAIL transaction in progress");
        }
        let ip = self.peer.ip();
        if self.ctx.limits.auth_blocked(ip) {
            return self.auth_blocked();
        }
        let mech = match mechanism {
            sp::AUTH_PLAIN => "PLAIN",
            sp::AUTH_LOGIN => "LOGIN",
            _ => {
                return self.error(
                    504,
                    "5.5.4",
                    "Error: unsupported authentication mechanism (PLAIN and LOGIN are offered)",
                )
            }
        };
        let creds = match self.exchange(mechanism, &initial).await {
            Ok(c) => c,
            Err(Exchange::Cancelled) => return self.error(501, "5.7.0", "Authentication aborted"),
            Err(Exchange::Malformed) => {
                return self.error(501, "5.5.2", "Error: malformed authentication response")
            }
            Err(Exchange::Lost) => return Next::Close,
        };
        // Counted as failed before the password is verified: attempts
        // in parallel from one client cannot all pass the check above.
        let Some(attempt) = self.ctx.limits.auth_attempt(ip) else {
            return self.auth_blocked();
        };
        let user = match &self.ctx.users {
            Some(db) => {
                self.ctx.metrics.auth_verifications.inc();
                db.authenticate(&creds.name, &creds.password).await
            }
            None => None,
        };
        let name: String = creds.name.chars().filter(|c| !c.is_control()).collect();
        let Some(user) = user else {
            return self.auth_failed(mech, &name, attempt).await;
        };
        self.ctx.limits.auth_succeeded(&attempt);
        tracing::info!(client = %self.peer, "AUTH {mech} as {} from [{ip}]", user.name);
        self.ctx
            .metrics
            .auth
            .with_label_values(&[mech, "success"])
            .inc();
        self.auth_user = Some(user);
        self.reply(235, "2.7.0", "Authentication successful");
        Next::Continue
    }

    /// A failed attempt: counted, answered late, the last one with 421.
    async fn auth_failed(
        &mut self,
        mech: &str,
        name: &str,
        attempt: crate::policy::limits::AuthAttempt,
    ) -> Next {
        let ip = self.peer.ip();
        self.ctx
            .metrics
            .auth
            .with_label_values(&[mech, "failure"])
            .inc();
        let (delay, last) = (attempt.delay, attempt.last);
        tracing::warn!(client = %self.peer, "AUTH {mech} failed for {name:?} from [{ip}] (answered after {delay:?})");
        tokio::time::sleep(delay).await;
        if last {
            self.count_reject(535, "5.7.8");
            self.conn
                .queue("535 5.7.8 Error: authentication failed\r\n");
            return self.auth_blocked();
        }
        self.error(535, "5.7.8", "Error: authentication failed")
    }

    /// 421 and close: the client's address has used up its failures.
    fn auth_blocked(&mut self) -> Next {
        let ip = crate::policy::lists::canonical(self.peer.ip());
        self.count_limit("auth_failures");
        self.count_reject(421, "4.7.0");
        tracing::info!(client = %self.peer, "too many failed AUTH attempts from [{ip}], disconnecting");
        self.conn.queue(&format!(
            "421 4.7.0 Error: too many failed authentication attempts from [{ip}], try again later\r\n"
        ));
        Next::Close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages() {
        let ok = plain(b"\0alice\0pw".to_vec()).ok().unwrap();
        assert_eq!((ok.name.as_str(), ok.password.as_str()), ("alice", "pw"));
        assert!(plain(b"alice\0alice\0pw".to_vec()).is_ok());
        for bad in [
            &b"bob\0alice\0pw"[..],
            b"\0alice",
            b"\0\0pw",
            b"\0a\0b\0c",
            b"\0\xff\0pw",
        ] {
            assert!(plain(bad.to_vec()).is_err(), "{bad:?}");
        }
        assert!(matches!(decode("*"), Err(Exchange::Cancelled)));
        assert!(matches!(decode("!!"), Err(Exchange::Malformed)));
        assert_eq!(decode("=").ok(), Some(Vec::new()));
        assert_eq!(decode("AGEAYg==").ok(), Some(b"\0a\0b".to_vec()));
    }
}
