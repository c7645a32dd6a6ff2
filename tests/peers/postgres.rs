//! A private PostgreSQL (tests/peers/postgres.sh): initdb in a temporary
//! directory, listening on 127.0.0.1 and a free port, synchronous commit
//! and fsync on as in production; stopped (at once) when dropped. Never
//! the system's cluster.

use super::PEERS;
use std::path::PathBuf;
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    /// `postgres://faxmta@127.0.0.1:PORT/postgres`
    pub url: String,
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(None)
    }

    /// An instance that also speaks TLS with the certificate and key in
    /// `certs` (`server.crt`, `server.key`).
    pub fn start_tls(certs: &std::path::Path) -> Postgres {
        Postgres::start_with(Some(certs))
    }

    fn start_with(certs: Option<&std::path::Path>) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::common::free_port();
        let pg = Postgres {
            url: format!("postgres://faxmta@127.0.0.1:{port}/postgres"),
            dir,
            port,
        };
        pg.script_env(
            &["start", &pg.data().display().to_string(), &port.to_string()],
            certs.map(|c| ("FAXMTA_PG_TLS", c)),
        );
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("pg")
    }

    fn script(&self, args: &[&str]) {
        self.script_env(args, None)
    }

    fn script_env(&self, args: &[&str], env: Option<(&str, &std::path::Path)>) {
        let mut cmd = Command::new(format!("{PEERS}/postgres.sh"));
        cmd.args(args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("tests/peers/postgres.sh runs");
        assert!(
            out.status.success(),
            "postgres.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop at once (as a crash) and start again; returns once it accepts
    /// connections.
    pub fn restart(&self) {
        self.script(&["restart", &self.data().display().to_string()]);
    }

    /// Run SQL with psql; its output (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-U",
                "faxmta",
                "-d",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output()
            .expect("psql (package postgresql-client) runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(format!("{PEERS}/postgres.sh"))
            .arg("stop")
            .arg(self.data())
            .output();
        if std::thread::panicking() {
            eprintln!("--- PostgreSQL log ---\n{}", self.log());
        }
    }
}
