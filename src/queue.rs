//! Opening the queue the configuration names (`[queue] backend`): sled
//! in `[queue] path`, or the PostgreSQL database of `[queue] url` (the
//! password from `password_file`, never logged) with `path` as this
//! node's local spool. The server, the CLI and `faxmta queue migrate`
//! all open it here.

use crate::config::{secret_from_file, Config, QueueBackend};
use faxmta_queue::{Accounts, PgSettings, Store};
use std::path::PathBuf;
use std::sync::Arc;

/// Who opens the queue: the server keeps the node's spool; a CLI command
/// gets a spool of its own (the server may be running, holding that one)
/// and removes it when done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    Server,
    Cli,
}

/// The PostgreSQL settings of `config` (its `[queue]` says `postgres`).
pub fn pg_settings(config: &Config, opener: Opener) -> Result<PgSettings, String> {
    let q = &config.queue;
    let url = q
        .url
        .as_deref()
        .ok_or("queue.backend = \"postgres\" needs queue.url")?;
    let spool: PathBuf = match opener {
        Opener::Server => q.path.join("spool"),
        Opener::Cli => q.path.join(format!("cli.{}", std::process::id())),
    };
    let mut settings = PgSettings::new(url, &spool);
    settings.passive = opener == Opener::Cli;
    settings.node_ttl = std::time::Duration::from_secs(q.lease_time.0);
    settings.tls_ca = q.tls_ca.clone();
    settings.pool_size = match opener {
        Opener::Server => q.pool_size,
        Opener::Cli => 2,
    };
    if let Some(node) = &q.node {
        settings.node = node.clone();
    }
    if let Some(file) = &q.password_file {
        settings.password = Some(secret_from_file("queue.password_file", file)?);
    }
    Ok(settings)
}

/// Open the configured queue.
pub fn open(config: &Config, opener: Opener) -> Result<Store, String> {
    match config.queue.backend {
        QueueBackend::Sled => match opener {
            Opener::Server => Store::open_with_cache(&config.queue.path, config.queue.cache.0),
            Opener::Cli => Store::open(&config.queue.path),
        }
        .map_err(|e| e.to_string()),
        QueueBackend::Postgres => {
            let settings = pg_settings(config, opener)?;
            Store::open_postgres(&settings)
                .map_err(|e| format!("{e} (queue database {})", settings.display()))
        }
    }
}

/// Where the queue is, for the log: the sled directory or the database
/// (no password).
pub fn describe(config: &Config) -> String {
    match config.queue.backend {
        QueueBackend::Sled => config.queue.path.display().to_string(),
        QueueBackend::Postgres => match pg_settings(config, Opener::Server) {
            Ok(s) => format!("{} (node {})", s.display(), s.node),
            Err(e) => e,
        },
    }
}

/// The accounts in the queue's database, for a CLI command
/// (`[accounts] backend = "database"`); the store is kept open with them.
pub fn accounts(config: &Config) -> Result<(Store, Arc<dyn Accounts>), String> {
    let store = open(config, Opener::Cli)?;
    let accounts = store
        .accounts()
        .ok_or("[accounts] backend = \"database\" needs the queue on PostgreSQL")?;
    Ok((store, accounts))
}
