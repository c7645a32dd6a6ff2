//! A private rtpengine (Debian package `rtpengine-daemon`), userspace
//! only: `--table=-1` (no kernel forwarding), `--config-file=none` (not
//! the system's /etc/rtpengine), in the foreground. Its ng control port
//! and its media ports (a [`PortBlock`] of its own) are picked per test,
//! so tests running in parallel never share them. Kamailio's rtpengine
//! module drives it ([`super::KamailioSetup::rtpengine`]); its T.38
//! gateway (`T.38=force`, `T.38=decode`) is what the fax tests go
//! through.

use super::sipp::{sip_port, Daemon, PortBlock};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Rtpengine {
    /// Where it listens for ng commands and relays media.
    pub ip: String,
    pub ng_port: u16,
    /// Its media ports: `ports.first`..=`ports.last`.
    pub ports: PortBlock,
    // Before `_dir`: a failing test's log is read when it is dropped.
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl Rtpengine {
    /// Starts on 127.0.0.1; returns once it reports "Startup complete".
    pub fn start() -> Rtpengine {
        Rtpengine::start_on("127.0.0.1")
    }

    /// Starts on `ip` (loopback).
    pub fn start_on(ip: &str) -> Rtpengine {
        let dir = tempfile::tempdir().unwrap();
        let ng_port = sip_port(ip);
        let ports = PortBlock::take();
        let mut cmd = Command::new("rtpengine");
        cmd.args([
            "--config-file=none",
            "--table=-1",
            "--foreground",
            "--log-stderr",
            "--log-level=6",
        ])
        .arg(format!(
            "--pidfile={}",
            dir.path().join("rtpengine.pid").display()
        ))
        .arg(format!("--interface={ip}"))
        .arg(format!("--listen-ng={ip}:{ng_port}"))
        .arg(format!("--port-min={}", ports.first))
        .arg(format!("--port-max={}", ports.last));
        let mut daemon = Daemon::spawn(
            cmd,
            &format!("rtpengine {ip}:{ng_port}"),
            &dir.path().join("rtpengine.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !daemon.output().contains("Startup complete") {
            daemon.assert_alive();
            assert!(
                Instant::now() < deadline,
                "rtpengine did not start:\n{}",
                daemon.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Rtpengine {
            ip: ip.to_string(),
            ng_port,
            ports,
            daemon,
            _dir: dir,
        }
    }

    /// The ng socket as Kamailio's rtpengine module writes it:
    /// `udp:IP:PORT`.
    pub fn ng_socket(&self) -> String {
        format!("udp:{}:{}", self.ip, self.ng_port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.daemon.output()
    }
}
