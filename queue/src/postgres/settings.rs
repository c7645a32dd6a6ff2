//! How a node reaches the database and what it keeps locally: the
//! settings of [`super::PgStore`], the connection configuration made
//! from them (the password from a file, never in a log line), and the
//! local spool of bodies being received.

use super::util::other_error;
use crate::error::QueueError;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// How to reach the queue's database, and this node's part.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user@host:port/dbname` (or the key=value form); a
    /// password in it is allowed but better kept in `password`.
    pub url: String,
    /// The password, read from `[queue] password_file`.
    pub password: Option<String>,
    /// Connections at most (the pool's size).
    pub pool_size: usize,
    /// This node's name, unique among the nodes sharing the database.
    pub node: String,
    /// The local directory where bodies are received before their commit.
    pub spool: PathBuf,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// A command-line tool's store, not a node: its spool is its own and
    /// goes with it, it does not say the node is alive, and it leaves the
    /// node's postponements alone (the server may be running).
    pub passive: bool,
    /// How long this node counts as alive after each renewal (renewed
    /// every third of it): the lease time, so that a dead node's parked
    /// messages come back when its leases expire.
    pub node_ttl: Duration,
    /// TLS to the database: the certificate authorities (PEM) its
    /// certificate must chain to (its name checked against the URL's
    /// host). `None`: no TLS (`sslmode=require` in the URL then fails).
    pub tls_ca: Option<PathBuf>,
}

impl std::fmt::Debug for PgSettings {
    /// Everything but the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("database", &self.display())
            .field("pool_size", &self.pool_size)
            .field("node", &self.node)
            .field("spool", &self.spool)
            .finish()
    }
}

impl PgSettings {
    /// Settings for `url` with the defaults: no password file, 16
    /// connections, the node named after the host, the spool in `spool`.
    pub fn new(url: &str, spool: &Path) -> PgSettings {
        PgSettings {
            url: url.to_string(),
            password: None,
            pool_size: 16,
            node: default_node(),
            spool: spool.to_path_buf(),
            connect_timeout: Duration::from_secs(10),
            passive: false,
            node_ttl: Duration::from_secs(300),
            tls_ca: None,
        }
    }

    /// The connection configuration: the URL, the password, timeouts that
    /// keep a stuck database from holding a connection for ever, and the
    /// application name (this node's).
    pub fn config(&self) -> Result<tokio_postgres::Config, QueueError> {
        let mut config = tokio_postgres::Config::from_str(&self.url).map_err(|e| {
            other_error(
                "[queue] url",
                format!("not a PostgreSQL connection string: {e}"),
            )
        })?;
        if let Some(password) = &self.password {
            config.password(password.as_bytes());
        }
        match (&self.tls_ca, config.get_ssl_mode()) {
            (None, tokio_postgres::config::SslMode::Require) => {
                return Err(other_error(
                    "[queue] url",
                    "sslmode=require needs [queue] tls_ca (the database's certificate authority)",
                ))
            }
            // Without a CA there is nothing to verify the server with: no
            // TLS rather than TLS with anyone's certificate.
            (None, _) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            }
            (Some(_), _) => {}
        }
        config
            .application_name(format!("faxmta {}", self.node))
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            // Writes commit asynchronously unless they say otherwise (the
            // enqueue's commit and a sync do): as sled's writes are
            // written, not synced, until the next sync.
            .options(
                "-c synchronous_commit=off -c statement_timeout=60000 -c lock_timeout=30000 \
                 -c idle_in_transaction_session_timeout=60000",
            );
        Ok(config)
    }

    /// Where the database is, for logs: user, hosts, ports and database
    /// name, never the password.
    pub fn display(&self) -> String {
        match tokio_postgres::Config::from_str(&self.url) {
            Ok(c) => {
                let hosts: Vec<String> = c
                    .get_hosts()
                    .iter()
                    .zip(c.get_ports().iter().chain(std::iter::repeat(&5432)))
                    .map(|(h, p)| match h {
                        tokio_postgres::config::Host::Tcp(h) => format!("{h}:{p}"),
                        tokio_postgres::config::Host::Unix(path) => {
                            format!("{}:{p}", path.display())
                        }
                    })
                    .collect();
                format!(
                    "postgres://{}@{}/{}",
                    c.get_user().unwrap_or(""),
                    hosts.join(","),
                    c.get_dbname().unwrap_or("")
                )
            }
            Err(_) => "(an invalid [queue] url)".to_string(),
        }
    }
}

/// The TLS connector of the database's connections: rustls (ring) with
/// `[queue] tls_ca` as the roots — used when the URL's `sslmode` asks for
/// TLS (`prefer`, the default, or `require`), never without a CA.
pub(super) fn connector(
    settings: &PgSettings,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, QueueError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &settings.tls_ca {
        let pem = std::fs::read(ca).map_err(|source| QueueError::File {
            path: ca.clone(),
            source,
        })?;
        let mut n = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|source| QueueError::File {
                path: ca.clone(),
                source,
            })?;
            roots
                .add(cert)
                .map_err(|e| other_error("[queue] tls_ca", format!("{}: {e}", ca.display())))?;
            n += 1;
        }
        if n == 0 {
            return Err(other_error(
                "[queue] tls_ca",
                format!("{}: no PEM certificate in it", ca.display()),
            ));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| other_error("TLS to the database", e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The host name, or `faxmta` when it cannot be had.
fn default_node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "faxmta".to_string())
}

/// Lock the spool directory for this process (waiting up to 3 s for a
/// store of this process that is going away).
pub(super) fn lock_spool(spool: &Path) -> Result<std::fs::File, QueueError> {
    use fs2::FileExt;
    let path = spool.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| QueueError::File {
            path: path.clone(),
            source,
        })?;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(file),
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(source) => {
                return Err(QueueError::File {
                    path,
                    source: std::io::Error::new(
                        source.kind(),
                        format!("another process uses this spool: {source}"),
                    ),
                })
            }
        }
    }
}

/// Remove what a crash left in the spool: bodies that were being received
/// (their messages were never acknowledged).
pub(super) fn clear_spool(spool: &Path) {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!("cannot remove {}: {e}", entry.path().display());
        }
    }
}
