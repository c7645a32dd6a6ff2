//! Accounts kept with the queue: the SMTP AUTH users and the HTTP fax
//! API's tokens, for nodes that share a queue in a database, so that
//! every node answers the same (`[accounts] backend = "database"`; files
//! are the default and need none of this). An account is a name, a hash
//! (argon2 for a password, SHA-256 for a token) and the senders it may
//! use; `kind` tells users (`smtp`) from tokens (`api-token`). Names are
//! compared without regard to case.

use crate::error::QueueError;

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub hash: String,
    /// Addresses and `@domain`s, lower case; empty: the kind's default.
    pub senders: Vec<String>,
}

/// The kind of the SMTP AUTH users.
pub const SMTP_USERS: &str = "smtp";
/// The kind of the HTTP fax API's tokens.
pub const API_TOKENS: &str = "api-token";

/// Accounts in the queue's database.
pub trait Accounts: Send + Sync {
    /// The account `name` of `kind` (any case).
    fn account(&self, kind: &str, name: &str) -> Result<Option<Account>, QueueError>;

    /// The account of `kind` whose hash is `hash` (a token's).
    fn account_by_hash(&self, kind: &str, hash: &str) -> Result<Option<Account>, QueueError>;

    /// Add or replace an account.
    fn put_account(&self, kind: &str, account: &Account) -> Result<(), QueueError>;

    /// Delete an account; whether it existed.
    fn delete_account(&self, kind: &str, name: &str) -> Result<bool, QueueError>;

    /// Every account of `kind`, by name.
    fn accounts(&self, kind: &str) -> Result<Vec<Account>, QueueError>;
}
