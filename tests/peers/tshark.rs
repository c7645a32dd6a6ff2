//! A packet capture on the loopback interface with tshark (Wireshark
//! 4.0; needs root): started with a capture filter into a pcap file in a
//! temporary directory, ready once it has captured a probe packet of its
//! own. dumpcap writes each packet as it comes, so the file can be read
//! while the capture runs: [`Capture::wait_for`] waits (by condition)
//! until what a test sent is in it, then [`Capture::t38`] decodes UDPTL
//! as T.38 on a port (`-d udp.port==P,t38`; Wireshark's t38 dissector
//! reads UDPTL) and counts the T.38 packets and the malformed or
//! erroneous ones. Stopping it (TERM/INT) may lose packets not yet
//! written: wait for them first.

use super::sipp::Daemon;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Capture {
    pub pcap: PathBuf,
    // Before `_dir`: a failing test's log is read when it is dropped.
    daemon: Option<Daemon>,
    _dir: tempfile::TempDir,
}

/// What tshark made of the UDP packets of one port decoded as T.38.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct T38Count {
    /// Packets dissected as T.38 (UDPTL).
    pub packets: usize,
    /// Packets Wireshark marked malformed.
    pub malformed: usize,
    /// Packets with an expert-info error (a bad length, a field out of
    /// range…).
    pub errors: usize,
}

fn tshark_fields(pcap: &PathBuf, extra: &[&str], filter: &str) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(extra)
        .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
        .output()
        .expect("tshark is installed by scripts/test");
    // A file still being written may end in half a packet (tshark then
    // fails after printing the rest); a bad filter is the test's bug.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || !err.contains("filter"),
        "tshark -Y {filter}: {err}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Capture {
    /// Captures what matches the BPF `filter` (e.g. `udp`, `udp port
    /// 5060 or portrange 20000-20199`) on `lo`. Returns once the capture
    /// runs: a probe datagram sent to itself shows in the file.
    pub fn start(filter: &str) -> Capture {
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("capture.pcapng");
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let probe_port = probe.local_addr().unwrap().port();
        let mut cmd = Command::new("tshark");
        cmd.args(["-i", "lo", "-n", "-q", "-f"])
            .arg(format!("({filter}) or (udp dst port {probe_port})"))
            .arg("-w")
            .arg(&pcap);
        let mut daemon = Daemon::spawn(cmd, "tshark", &dir.path().join("tshark.log"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            daemon.assert_alive();
            let _ = probe.send_to(b"faxmta capture probe", ("127.0.0.1", probe_port));
            if pcap.exists()
                && !tshark_fields(&pcap, &[], &format!("udp.dstport == {probe_port}"))
                    .trim()
                    .is_empty()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tshark did not start capturing:\n{}",
                daemon.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Capture {
            pcap,
            daemon: Some(daemon),
            _dir: dir,
        }
    }

    /// Stops the capture.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            // tshark ends its capture and flushes the file on SIGINT.
            if d.signal(libc::SIGINT, Duration::from_secs(10)).is_none() {
                d.stop();
            }
        }
    }

    /// `tshark -r FILE ARGS…` on the capture so far; its output.
    pub fn read(&self, args: &[&str]) -> String {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.pcap)
            .args(args)
            .output()
            .expect("tshark is installed by scripts/test");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many captured packets match the display filter `filter`.
    pub fn count(&self, filter: &str) -> usize {
        tshark_fields(&self.pcap, &[], filter)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }

    /// Waits up to `secs` until at least `n` captured packets match the
    /// display filter `filter` (e.g. `udp.dstport == 40000`).
    pub fn wait_for(&self, filter: &str, n: usize, secs: u64) -> bool {
        crate::common::wait_until(secs, || self.count(filter) >= n)
    }

    /// The UDP packets to or from `port` captured so far, decoded as
    /// T.38: how many, how many malformed, how many with expert errors.
    pub fn t38(&self, port: u16) -> T38Count {
        let decode = format!("udp.port=={port},t38");
        let args = ["-d", decode.as_str()];
        let count = |filter: String| {
            tshark_fields(&self.pcap, &args, &filter)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
        };
        T38Count {
            packets: count(format!("t38 && udp.port == {port}")),
            malformed: count(format!("_ws.malformed && udp.port == {port}")),
            errors: count(format!(
                "_ws.expert.severity == error && udp.port == {port}"
            )),
        }
    }
}

/// Leaves out RTP (version 2, no padding, extension or CSRC: a first
/// byte 0x80) when a port carried audio before its call switched to
/// T.38; faxmta's UDPTL sequence numbers start at 0, so its first byte is
/// never 0x80 in a test's call.
const NOT_RTP: &str = "udp.payload[0] != 80";

impl Capture {
    /// Like [`Capture::t38`], for a port that carried G.711 RTP before
    /// the switch to T.38: only the datagrams that are not RTP.
    pub fn udptl_after_audio(&self, port: u16) -> T38Count {
        let decode = format!("udp.port=={port},t38");
        let args = ["-d", decode.as_str()];
        let count = |filter: String| {
            tshark_fields(&self.pcap, &args, &format!("({filter}) && {NOT_RTP}"))
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
        };
        T38Count {
            packets: count(format!("t38 && udp.port == {port}")),
            malformed: count(format!("_ws.malformed && udp.port == {port}")),
            errors: count(format!(
                "_ws.expert.severity == error && udp.port == {port}"
            )),
        }
    }

    /// tshark's full dissection of the datagrams to or from `port` that
    /// are not RTP and that it marks malformed or in error (for an
    /// assertion's message).
    pub fn t38_faults(&self, port: u16) -> String {
        let decode = format!("udp.port=={port},t38");
        let filter = format!(
            "(_ws.malformed || _ws.expert.severity == error) && udp.port == {port} && {NOT_RTP}"
        );
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.pcap)
            .args(["-d", &decode, "-Y", &filter, "-V", "-x"])
            .output()
            .expect("tshark is installed by scripts/test");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}
