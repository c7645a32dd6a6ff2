//! A private PostgreSQL for the queue's tests: started for one test by
//! `tests/peers/postgres.sh` (initdb in the test's directory, a free port
//! on 127.0.0.1), stopped when the test ends. The test's directory keeps
//! the connection string, so the store can be opened again and again.

use crate::postgres::PgSettings;
use crate::Store;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The script that runs private PostgreSQL instances.
pub(crate) fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/postgres.sh")
}

/// A running instance; stopped when dropped.
pub(crate) struct Instance {
    dir: PathBuf,
    pub url: String,
}

impl Instance {
    /// Start an instance with its files in `dir`.
    pub fn start(dir: &Path) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let status = Command::new(script())
            .arg("start")
            .arg(dir)
            .arg(port.to_string())
            .env("FAXMTA_PG_FSYNC", "off")
            .status()
            .expect("tests/peers/postgres.sh runs");
        assert!(status.success(), "a private PostgreSQL starts in {dir:?}");
        Instance {
            dir: dir.to_path_buf(),
            url: format!("postgres://faxmta@127.0.0.1:{port}/postgres"),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}

/// Setup of the backend tests: an instance for the test directory, its
/// connection string kept in `pg-url`.
pub(crate) fn start(dir: &Path) -> Box<dyn std::any::Any + Send> {
    let instance = Instance::start(&dir.join("pg"));
    std::fs::write(dir.join("pg-url"), &instance.url).expect("the connection string is kept");
    Box::new(instance)
}

/// The settings of node `node` of the test's database.
pub(crate) fn settings(dir: &Path, node: &str) -> PgSettings {
    let url = std::fs::read_to_string(dir.join("pg-url")).expect("a database was started");
    let mut settings = PgSettings::new(&url, &dir.join(format!("spool-{node}")));
    settings.node = node.to_string();
    settings
}

/// Open the store of the test's database (as node `a`).
pub(crate) fn open(dir: &Path) -> Store {
    Store::open_postgres(&settings(dir, "a")).expect("the PostgreSQL store opens")
}
