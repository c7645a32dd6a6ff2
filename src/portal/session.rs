//! Portal logins: the session table and its cookie.
//!
//! A session id is 32 random octets sent to the browser in a cookie that
//! is `Secure; HttpOnly; SameSite=Strict; Path=/` with no Domain (the
//! `__Host-` prefix makes the browser insist on all that). The table
//! keeps only the id's SHA-256, so a copy of it logs nobody in. Each
//! session has its own CSRF token, an idle limit and an absolute one
//! (`[portal] session_idle`, `session_lifetime`). A login always gets a
//! new id (a session id planted before the login is worth nothing), and
//! logout, a password reset or disabling the user ends the session.
//!
//! The table lives in the process: a node of a cluster keeps its own
//! logins (a browser behind a load balancer needs it to stick to one
//! node, or logs in again).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie.
pub const COOKIE: &str = "__Host-faxmta-session";
/// The cookie that pairs the login form with its browser (login CSRF).
pub const LOGIN_COOKIE: &str = "__Host-faxmta-login";

/// A random token (32 octets, URL-safe base64 without padding).
pub fn token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether two secrets are equal, in time that does not depend on
/// where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// One login.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user's name, as the users file or database spells it.
    pub user: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    created: Instant,
    seen: Instant,
}

/// The sessions of this process.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        match self.table.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A new session for `user`: returns its id (for the cookie).
    pub fn open(&self, user: &str) -> String {
        let id = token();
        let now = Instant::now();
        let session = Session {
            user: user.to_string(),
            csrf: token(),
            created: now,
            seen: now,
        };
        self.lock().insert(key(&id), session);
        id
    }

    /// The session of cookie value `id` if it is still valid (within
    /// `idle` of its last use and `lifetime` of its start); using it
    /// counts as activity. An expired one is removed.
    pub fn find(&self, id: &str, idle: Duration, lifetime: Duration) -> Option<Session> {
        let mut table = self.lock();
        let k = key(id);
        let now = Instant::now();
        let session = table.get_mut(&k)?;
        if now.duration_since(session.seen) > idle || now.duration_since(session.created) > lifetime
        {
            table.remove(&k);
            return None;
        }
        session.seen = now;
        Some(session.clone())
    }

    /// End the session of cookie value `id`.
    pub fn close(&self, id: &str) {
        self.lock().remove(&key(id));
    }

    /// End every session of `user` (a password reset, a disabled or
    /// deleted user); returns how many.
    pub fn close_user(&self, user: &str) -> usize {
        let mut table = self.lock();
        let before = table.len();
        table.retain(|_, s| !s.user.eq_ignore_ascii_case(user));
        before - table.len()
    }

    /// Forget the expired sessions.
    pub fn sweep(&self, idle: Duration, lifetime: Duration) {
        let now = Instant::now();
        self.lock().retain(|_, s| {
            now.duration_since(s.seen) <= idle && now.duration_since(s.created) <= lifetime
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn a_session_is_found_by_its_id_only_and_ends_at_close() {
        let sessions = Sessions::default();
        let id = sessions.open("alice@example.com");
        let other = sessions.open("alice@example.com");
        assert_ne!(id, other, "every login gets a new id");
        let s = sessions.find(&id, LONG, LONG).unwrap();
        assert_eq!(s.user, "alice@example.com");
        assert_ne!(s.csrf, sessions.find(&other, LONG, LONG).unwrap().csrf);
        assert!(sessions.find("forged", LONG, LONG).is_none());
        sessions.close(&id);
        assert!(sessions.find(&id, LONG, LONG).is_none());
        assert!(sessions.find(&other, LONG, LONG).is_some());
        assert_eq!(sessions.close_user("ALICE@example.com"), 1);
        assert!(sessions.find(&other, LONG, LONG).is_none());
    }

    #[test]
    fn an_idle_or_old_session_is_gone() {
        let sessions = Sessions::default();
        let id = sessions.open("bob@example.com");
        assert!(sessions.find(&id, Duration::ZERO, LONG).is_none());
        let id = sessions.open("bob@example.com");
        assert!(sessions.find(&id, LONG, Duration::ZERO).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
