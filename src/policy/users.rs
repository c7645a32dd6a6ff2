//! The users of SMTP AUTH: the users file (`[auth] users_file`), their
//! passwords (argon2id hashes in PHC form) and the envelope senders each
//! may use.
//!
//! The file has one user per line, `NAME:HASH` or `NAME:HASH:SENDERS`,
//! where SENDERS is a comma-separated list of addresses and `@domain`s
//! (any address in that domain); `#` starts a comment line. Without a
//! list, a user whose name is an address may send as any address in its
//! domain; any other user only with the null sender (or with `[auth]
//! any_sender = true`). `faxmta user add|passwd|del` edits it
//! (src/cli/user.rs); the server rereads it when it changes. The file
//! itself (its format, reading it) is src/config/users.rs, so that the
//! configuration checks it without this module.

pub use crate::config::users::{load, parse, valid_name, valid_sender, User};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use faxmta_queue::{Accounts, SMTP_USERS};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// An argon2id hash of `password` (PHC string, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches `hash`. Costs the hash's work either way.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash no password matches, checked for unknown users so that a
/// wrong name takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: String = (0..24)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect();
        hash_password(&random).unwrap_or_default()
    })
}

impl User {
    /// Whether the account is disabled: its hash starts with `!` (as in
    /// /etc/shadow; no password matches it, and `faxmta user` or the
    /// portal can enable it again by taking the `!` away).
    pub fn disabled(&self) -> bool {
        self.hash.starts_with('!')
    }

    /// Whether this user may use `sender` as the envelope sender.
    pub fn may_send_as(&self, sender: &str) -> bool {
        if sender.is_empty() {
            return true;
        }
        let sender = sender.to_lowercase();
        let Some((_, sender_domain)) = sender.rsplit_once('@') else {
            return false;
        };
        let own;
        let list: &[String] = if self.senders.is_empty() {
            own = match self.name.rsplit_once('@') {
                Some((_, d)) => vec![format!("@{}", d.to_lowercase())],
                None => Vec::new(),
            };
            &own
        } else {
            &self.senders
        };
        list.iter().any(|entry| match entry.strip_prefix('@') {
            Some(domain) => domain == sender_domain,
            None => *entry == sender,
        })
    }
}

/// The users as the server sees them: the users file, reread when it
/// changes on disk (`faxmta user add` needs no restart; a file that no
/// longer parses keeps the last good list, and is logged), or the
/// accounts in the queue's database (`[accounts] backend = "database"`),
/// asked at each AUTH.
pub struct UserDb {
    source: Source,
    /// Places for password verifications at once (argon2 takes memory:
    /// ~19 MiB each with the default parameters).
    verifications: Arc<tokio::sync::Semaphore>,
}

enum Source {
    File { path: PathBuf, cache: Mutex<Cache> },
    Database(Arc<dyn Accounts>),
}

#[derive(Default)]
struct Cache {
    /// Modification time and length of the file last read.
    stamp: Option<(Option<SystemTime>, u64)>,
    users: Arc<HashMap<String, User>>,
}

impl UserDb {
    /// The users in `path`; a password is verified only with a place of
    /// `verifications` (`[auth] max_verifications`, shared by every
    /// session, across reloads).
    pub fn new(path: PathBuf, verifications: Arc<tokio::sync::Semaphore>) -> UserDb {
        UserDb {
            source: Source::File {
                path,
                cache: Mutex::new(Cache::default()),
            },
            verifications,
        }
    }

    /// The users kept in the queue's database.
    pub fn database(
        accounts: Arc<dyn Accounts>,
        verifications: Arc<tokio::sync::Semaphore>,
    ) -> UserDb {
        UserDb {
            source: Source::Database(accounts),
            verifications,
        }
    }

    /// The accounts in the queue's database, when the users are kept
    /// there (`None`: the users file).
    pub fn accounts(&self) -> Option<Arc<dyn Accounts>> {
        match &self.source {
            Source::File { .. } => None,
            Source::Database(accounts) => Some(accounts.clone()),
        }
    }

    /// The user `name` (any case), if there is one.
    pub fn find(&self, name: &str) -> Option<User> {
        match &self.source {
            Source::File { path, cache } => {
                Self::users(path, cache).get(&name.to_lowercase()).cloned()
            }
            Source::Database(accounts) => match accounts.account(SMTP_USERS, name) {
                Ok(found) => found.map(|a| User {
                    name: a.name,
                    hash: a.hash,
                    senders: a.senders,
                }),
                Err(e) => {
                    tracing::error!("cannot read the SMTP users: {e}");
                    None
                }
            },
        }
    }

    fn users(path: &std::path::Path, cache: &Mutex<Cache>) -> Arc<HashMap<String, User>> {
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        let mut cache = match cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cache.stamp.is_none() || cache.stamp != stamp {
            match load(path) {
                Ok(list) => {
                    cache.users = Arc::new(
                        list.into_iter()
                            .map(|u| (u.name.to_lowercase(), u))
                            .collect(),
                    );
                    cache.stamp = stamp;
                }
                Err(e) => tracing::error!("{e}; keeping the users read before"),
            }
        }
        cache.users.clone()
    }

    /// Check a name and password (argon2, on a blocking thread): the user
    /// when they match. Names are matched without regard to case.
    pub async fn authenticate(&self, name: &str, password: &str) -> Option<User> {
        let user = self.find(name);
        let hash = match &user {
            Some(u) => u.hash.clone(),
            None => dummy_hash().to_string(),
        };
        let password = password.to_string();
        // Waits for a place; the semaphore is never closed.
        let _place = self.verifications.acquire().await.ok()?;
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        user.filter(|_| ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_and_the_hashes() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "s3cret"));
        assert!(!verify_password(&hash, "s3cret "));
        assert!(!verify_password("plain", "plain"));
        let text = format!(
            "# users\n\nalice@example.test:{hash}\nrelay-bot:{hash}:bot@example.test, @Branch.test\n"
        );
        let users = parse(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].senders, ["bot@example.test", "@branch.test"]);
        for (bad, why) in [
            ("alice\n", "expected NAME:HASH"),
            ("alice:secret\n", "not an argon2 hash"),
            ("a:{h}\nA:{h}\n", "listed twice"),
            ("a:{h}:nobody\n", "neither an address"),
        ] {
            let e = parse(&bad.replace("{h}", &hash)).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // A disabled account: `!` in front of its hash; no password matches.
        let users = parse(&format!("off:!{hash}\n")).unwrap();
        assert!(users[0].disabled());
        assert!(!verify_password(&users[0].hash, "s3cret"));
        assert!(parse("off:!plain\n").is_err());
        let e = parse(&format!("# c\nok:{hash}\nbad line\n")).unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
    }

    #[test]
    fn who_may_send_as_whom() {
        let user = |name: &str, senders: &[&str]| User {
            name: name.into(),
            hash: String::new(),
            senders: senders.iter().map(|s| s.to_string()).collect(),
        };
        let alice = user("alice@Example.test", &[]);
        assert!(alice.may_send_as("alice@example.test"));
        assert!(alice.may_send_as("Bob@EXAMPLE.test"));
        assert!(alice.may_send_as(""));
        assert!(!alice.may_send_as("alice@evil.test"));
        assert!(!alice.may_send_as("alice@sub.example.test"));
        let bot = user("bot", &["bot@example.test", "@branch.test"]);
        assert!(bot.may_send_as("BOT@example.test"));
        assert!(bot.may_send_as("x@branch.test"));
        assert!(!bot.may_send_as("alice@example.test"));
        assert!(!user("plain", &[]).may_send_as("plain@example.test"));
    }

    #[tokio::test]
    async fn a_password_is_verified_only_with_a_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let hash = hash_password("s3cret").unwrap();
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        let places = Arc::new(tokio::sync::Semaphore::new(1));
        let db = UserDb::new(path, places.clone());
        // Every place taken: the verification waits.
        let held = places.clone().acquire_owned().await.unwrap();
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            db.authenticate("alice", "s3cret"),
        )
        .await;
        assert!(waiting.is_err(), "verified without a place");
        drop(held);
        assert!(db.authenticate("alice", "s3cret").await.is_some());
        assert!(db.authenticate("alice", "wrong").await.is_none());
        assert_eq!(places.available_permits(), 1);
    }
}
