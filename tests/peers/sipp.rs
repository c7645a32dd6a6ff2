//! SIPp (Debian package `sip-tester`) running one scenario of
//! tests/peers/sipp/ as a UAC or UAS on loopback, its message, error and
//! `<log>` traces in a temporary directory; and what the SIP peers share:
//! free SIP ports, locked blocks of media ports, and daemons run in their
//! own process group (stopped as a group when dropped, their output
//! printed when a test fails).
//!
//! The scenarios in tests/peers/sipp/ (each file's head says what it
//! does; UACs call `sip:[service]@remote`, set with `-s NUMBER`):
//! - `reg.xml`: REGISTER, 401 → REGISTER with digest (user `-s` or
//!   `-au`, password `-ap`) → 200; a 403 fails the run.
//! - `uac_audio.xml`: INVITE offering PCMU/PCMA; the 200 must answer
//!   `m=audio` (logged `answer: m=…`); ACK, BYE. `uac_audio_auth.xml`:
//!   the same, answering a 407 with digest (`-au USER -ap PASSWORD`).
//! - `uas_t38.xml`, `uas_audio.xml`: the INVITE's offer must be
//!   `m=image … udptl t38` (resp. `m=audio`; logged `offer: m=…`);
//!   180, 200 of the same kind, ACK, then waits for the BYE.
//! - `uas_486.xml`, `uas_404.xml`, `uas_480.xml`, `uas_503.xml`: 100,
//!   then that final failure; takes the ACK. (SIPp checks status codes
//!   when it loads a scenario, so no `-key` can choose one.)
//! - `uac_cancel.xml`: INVITE, CANCEL after the 180/183, expects 200 and
//!   487. `uas_ring.xml`: 180 and never answers; takes the CANCEL (487).
//! - `uas_early_media.xml`: 183 with an audio SDP, 200 one second later.
//! - `uac_reinvite.xml` / `uas_reinvite_491.xml`: audio call, then a
//!   re-INVITE to T.38 that the UAS answers 491 first (glare), then 200
//!   with T.38 (`re-INVITE answer: m=image …`).
//! - `uas_reinvite_t38.xml` / `uac_take_reinvite.xml`: audio call, then
//!   the callee re-INVITEs to T.38 (Annex D's usual way) and the caller
//!   answers T.38 (`re-INVITE offer: m=image …` in the caller's log).
//! - `uac_no_ack.xml`: ACKs the 200 only after 2 s (a UAS over UDP
//!   retransmits it meanwhile).
//! - `uas_slow.xml`: answers an INVITE only after 1.5 s (a UAC over UDP
//!   retransmits it meanwhile).
//! - For tests/sip_signalling.rs (each file's head says more):
//!   `uas_audio_bye.xml`, `uas_early_media_bye.xml`, `uas_slow_bye.xml`,
//!   `uas_reinvite_t38_bye.xml` (as above, then the UAS hangs up at
//!   once), `uas_486_q850.xml` (486 with a `Reason: Q.850;cause=17`),
//!   `uas_488_t38.xml` (refuses a T.38 offer 488, takes audio),
//!   `uas_register.xml` (a registrar over TCP), `uac_glare.xml` (a
//!   re-INVITE crossing the callee's), `uac_cancel_after_200.xml`,
//!   `uac_never_ack.xml`, `uac_late_offer.xml` (INVITE without SDP, the
//!   answer in the ACK), `uac_g722.xml` (an offer with no G.711),
//!   `uac_options.xml`.

use std::fs::File;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/sipp");

/// SIP and control ports: 10000–19999, below the media blocks
/// ([`PortBlock`], 20000–31999) so the two never meet.
const SIP_PORTS: std::ops::Range<u16> = 10_000..20_000;
const MEDIA_PORTS: std::ops::Range<u16> = 20_000..32_000;
const BLOCK: u16 = 200;

fn ip_of(ip: &str) -> IpAddr {
    let addr: IpAddr = ip.parse().expect("an IP address");
    assert!(
        addr.is_loopback(),
        "{ip}: SIP peers live on 127.0.0.0/8 only"
    );
    addr
}

/// A port free for both UDP and TCP on `ip` (SIP listens on both), in
/// 10000–19999, picked at random.
pub fn sip_port(ip: &str) -> u16 {
    let addr = ip_of(ip);
    crate::common::pick_port(SIP_PORTS, |port| {
        UdpSocket::bind((addr, port)).is_ok() && TcpListener::bind((addr, port)).is_ok()
    })
}

/// A block of 200 UDP ports (in 20000–31999) for media, held for this
/// test alone: a lock file (`flock`) per block, released when the block
/// is dropped or the process dies, so tests running in parallel never
/// share media ports.
pub struct PortBlock {
    pub first: u16,
    pub last: u16,
    _lock: File,
}

impl PortBlock {
    pub fn take() -> PortBlock {
        let dir = std::env::temp_dir().join("faxmta-test-media-ports");
        std::fs::create_dir_all(&dir).unwrap();
        let blocks = (MEDIA_PORTS.end - MEDIA_PORTS.start) / BLOCK;
        let offset = rand::random::<u16>() % blocks;
        for i in 0..blocks {
            let first = MEDIA_PORTS.start + ((offset + i) % blocks) * BLOCK;
            let file = File::create(dir.join(format!("{first}.lock"))).unwrap();
            if file.try_lock().is_ok() {
                return PortBlock {
                    first,
                    last: first + BLOCK - 1,
                    _lock: file,
                };
            }
        }
        panic!("every media port block is taken");
    }
}

/// A peer process in its own process group, its stdout and stderr in
/// one log file. Dropping it stops the group (TERM, then KILL after 5 s)
/// and prints the log if the test is failing.
pub(super) struct Daemon {
    pub(super) name: String,
    pub(super) log: PathBuf,
    child: Option<Child>,
    status: Option<ExitStatus>,
}

impl Daemon {
    pub(super) fn spawn(mut cmd: Command, name: &str, log: &Path) -> Daemon {
        let out = File::create(log).unwrap();
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} did not start ({e}); scripts/test installs it"));
        Daemon {
            name: name.to_string(),
            log: log.to_path_buf(),
            child: Some(child),
            status: None,
        }
    }

    pub(super) fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Its exit status if it has exited.
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Panics with the log if it has exited.
    pub(super) fn assert_alive(&mut self) {
        if let Some(status) = self.exited() {
            panic!("{} exited ({status}):\n{}", self.name, self.output());
        }
    }

    /// Signals the whole group; waits up to `grace` for the leader.
    pub(super) fn signal(&mut self, sig: i32, grace: Duration) -> Option<ExitStatus> {
        if self.exited().is_some() {
            return self.status;
        }
        let child = self.child.as_mut()?;
        // SAFETY: kill(2) on the process group we created (its leader is
        // our child, not yet reaped, so the id is still ours).
        unsafe {
            libc::kill(-(child.id() as i32), sig);
        }
        let deadline = Instant::now() + grace;
        loop {
            if self.exited().is_some() {
                return self.status;
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the group: TERM (its members end theirs), then KILL.
    pub(super) fn stop(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM, Duration::from_secs(5))
            .or_else(|| self.signal(libc::SIGKILL, Duration::from_secs(5)))
    }

    /// Waits up to `secs` for it to exit by itself; None if it did not
    /// (it is then stopped).
    pub(super) fn wait(&mut self, secs: u64) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() > deadline {
                self.stop();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.name, self.output());
        }
    }
}

/// How a SIPp run ended, and its traces.
#[derive(Debug)]
pub struct SippRun {
    /// The exit code (0: every call succeeded; 1: some failed); None if
    /// it had to be killed at the deadline.
    pub code: Option<i32>,
    /// Every message sent and received (`-trace_msg`).
    pub messages: String,
    /// Unexpected messages (`-trace_err`).
    pub errors: String,
    /// The scenario's `<log>` lines (`-trace_logs`).
    pub logs: String,
    /// What SIPp printed (its screens).
    pub output: String,
}

impl SippRun {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The messages SIPp received, each whole (start line, headers,
    /// body), in order.
    pub fn received(&self) -> Vec<String> {
        self.messages
            .split("message received")
            .skip(1)
            .map(|m| m.split("message sent").next().unwrap_or(m).to_string())
            .collect()
    }
}

impl std::fmt::Display for SippRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sipp exit {:?}\n--- errors ---\n{}\n--- logs ---\n{}\n--- messages ---\n{}\n--- output ---\n{}",
            self.code, self.errors, self.logs, self.messages, self.output
        )
    }
}

/// One SIPp process running one scenario.
pub struct Sipp {
    /// Where it sends and receives SIP (UDP).
    pub ip: String,
    pub port: u16,
    /// Its media port (`[media_port]` in the scenario SDP).
    pub media_port: u16,
    pub scenario: String,
    // Before `dir`: a failing test's log is read when it is dropped.
    daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Sipp {
    /// The path of a scenario file of tests/peers/sipp/.
    pub fn scenario_path(name: &str) -> PathBuf {
        Path::new(SCENARIOS).join(name)
    }

    /// Starts `scenario` (a file name in tests/peers/sipp/) on `ip` and a
    /// free port, one call (`-m 1`) over UDP (unless `args` has a `-t`,
    /// e.g. `-t t1` for TCP), towards `remote` (`host:port`; None for a
    /// UAS), with `args` added (`-s`, `-au`/`-ap`, `-timeout`…). Returns
    /// once it listens.
    pub fn start(scenario: &str, ip: &str, remote: Option<&str>, args: &[&str]) -> Sipp {
        let port = sip_port(ip);
        Sipp::start_on(scenario, ip, port, remote, args)
    }

    /// [`Sipp::start`] on a given port (e.g. the PSTN port a Kamailio
    /// was configured with).
    pub fn start_on(
        scenario: &str,
        ip: &str,
        port: u16,
        remote: Option<&str>,
        args: &[&str],
    ) -> Sipp {
        let addr = ip_of(ip);
        let path = Sipp::scenario_path(scenario);
        assert!(path.exists(), "no scenario {}", path.display());
        // A port picked free can be taken by another test before SIPp
        // binds it: SIPp then exits at once saying so, and is started
        // again on other media and control ports.
        for attempt in 1.. {
            let dir = tempfile::tempdir().unwrap();
            let media_port = sip_port(ip) & !1;
            let control_port = sip_port(ip);
            let d = dir.path();
            let mut cmd = Command::new("sipp");
            cmd.current_dir(d)
                .arg("-sf")
                .arg(&path)
                .args(["-i", ip, "-p", &port.to_string(), "-m", "1"])
                .args(["-mi", ip, "-mp", &media_port.to_string()])
                // The control socket on our address, not 0.0.0.0 (where a
                // port free on `ip` may be taken on another address).
                .args(["-ci", ip, "-cp", &control_port.to_string()])
                .args(["-nostdin", "-trace_msg", "-trace_err", "-trace_logs"])
                .arg("-message_file")
                .arg(d.join("messages.log"))
                .arg("-error_file")
                .arg(d.join("errors.log"))
                .arg("-log_file")
                .arg(d.join("logs.log"))
                .args(args);
            if !args.contains(&"-t") {
                cmd.args(["-t", "u1"]);
            }
            if let Some(remote) = remote {
                cmd.arg(remote);
            }
            let mut daemon = Daemon::spawn(cmd, &format!("sipp {scenario}"), &d.join("sipp.out"));
            // Listening once the port is taken (UDP, or TCP with `-t t1`).
            let deadline = Instant::now() + Duration::from_secs(10);
            while UdpSocket::bind((addr, port)).is_ok() && TcpListener::bind((addr, port)).is_ok() {
                if daemon.exited().is_some() {
                    break; // a UAC may be done already; wait() reports it
                }
                assert!(
                    Instant::now() < deadline,
                    "sipp {scenario} did not bind {ip}:{port}:\n{}",
                    daemon.output()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            if attempt < 5
                && daemon.exited().is_some()
                && daemon.output().contains("Unable to bind")
            {
                daemon.log = d.join("none"); // no dump of a run retried
                continue;
            }
            return Sipp {
                ip: ip.to_string(),
                port,
                media_port,
                scenario: scenario.to_string(),
                daemon,
                dir,
            };
        }
        unreachable!("the loop returns")
    }

    /// Runs `scenario` to its end (at most `secs`).
    pub fn run(
        scenario: &str,
        ip: &str,
        remote: Option<&str>,
        args: &[&str],
        secs: u64,
    ) -> SippRun {
        Sipp::start(scenario, ip, remote, args).wait(secs)
    }

    /// `ip:port`, for another peer's configuration.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    fn file(&self, name: &str) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join(name)).unwrap_or_default())
            .into_owned()
    }

    /// The messages so far (for a wait by condition while it runs).
    pub fn messages(&self) -> String {
        self.file("messages.log")
    }

    /// Waits up to `secs` for the scenario to end (killed after that).
    pub fn wait(mut self, secs: u64) -> SippRun {
        let status = self.daemon.wait(secs);
        let run = SippRun {
            code: status.and_then(|s| s.code()),
            messages: self.file("messages.log"),
            errors: self.file("errors.log"),
            logs: self.file("logs.log"),
            output: self.daemon.output(),
        };
        // The run is the caller's to judge: no log dump from Drop.
        self.daemon.log = self.dir.path().join("none");
        run
    }
}
