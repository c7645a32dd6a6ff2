//! The accounts (SMTP AUTH users, API tokens) on PostgreSQL
//! ([`crate::Accounts`]): the `account` table, keyed by kind and the
//! lower-case name.

use super::PgStore;
use crate::accounts::{Account, Accounts};
use crate::error::QueueError;

fn account(row: &tokio_postgres::Row) -> Account {
    Account {
        name: row.get(0),
        hash: row.get(1),
        senders: row.get(2),
    }
}

impl Accounts for PgStore {
    fn account(&self, kind: &str, name: &str) -> Result<Option<Account>, QueueError> {
        let rows = self.query(
            "reading an account",
            "SELECT name, hash, senders FROM account WHERE kind = $1 AND key = $2",
            vec![Box::new(kind.to_string()), Box::new(name.to_lowercase())],
        )?;
        Ok(rows.first().map(account))
    }

    fn account_by_hash(&self, kind: &str, hash: &str) -> Result<Option<Account>, QueueError> {
        let rows = self.query(
            "reading an account",
            "SELECT name, hash, senders FROM account WHERE kind = $1 AND hash = $2",
            vec![Box::new(kind.to_string()), Box::new(hash.to_string())],
        )?;
        Ok(rows.first().map(account))
    }

    fn put_account(&self, kind: &str, a: &Account) -> Result<(), QueueError> {
        self.change(
            "writing an account",
            "INSERT INTO account (kind, key, name, hash, senders) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kind, key) DO UPDATE SET name = EXCLUDED.name, hash = EXCLUDED.hash, \
             senders = EXCLUDED.senders",
            vec![
                Box::new(kind.to_string()),
                Box::new(a.name.to_lowercase()),
                Box::new(a.name.clone()),
                Box::new(a.hash.clone()),
                Box::new(a.senders.clone()),
            ],
        )?;
        // Accounts are changed by hand: durable at once.
        self.sync_blocking()
    }

    fn delete_account(&self, kind: &str, name: &str) -> Result<bool, QueueError> {
        let n = self.change(
            "deleting an account",
            "DELETE FROM account WHERE kind = $1 AND key = $2",
            vec![Box::new(kind.to_string()), Box::new(name.to_lowercase())],
        )?;
        self.sync_blocking()?;
        Ok(n > 0)
    }

    fn accounts(&self, kind: &str) -> Result<Vec<Account>, QueueError> {
        let rows = self.query(
            "reading the accounts",
            "SELECT name, hash, senders FROM account WHERE kind = $1 ORDER BY key",
            vec![Box::new(kind.to_string())],
        )?;
        Ok(rows.iter().map(account).collect())
    }
}
