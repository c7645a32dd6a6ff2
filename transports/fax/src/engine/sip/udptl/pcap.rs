//! Test support: UDP datagrams written to a pcap file (raw IPv4, the
//! classic libpcap format) and read back with tshark's T.38 dissector,
//! the independent decoder our UDPTL is checked against.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::Command;

/// One captured datagram.
#[derive(Debug, Clone)]
pub(crate) struct Datagram {
    pub from: SocketAddrV4,
    pub to: SocketAddrV4,
    pub payload: Vec<u8>,
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes `datagrams` as a pcap file (link type 101, raw IP), 20 ms apart.
pub(crate) fn write(path: &Path, datagrams: &[Datagram]) {
    let mut out = Vec::new();
    // Global header: magic, version 2.4, zone, sigfigs, snaplen, RAW.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    for (i, d) in datagrams.iter().enumerate() {
        let udp_len = 8 + d.payload.len();
        let ip_len = 20 + udp_len;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&(i as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(&d.from.ip().octets());
        ip.extend_from_slice(&d.to.ip().octets());
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip.extend_from_slice(&d.from.port().to_be_bytes());
        ip.extend_from_slice(&d.to.port().to_be_bytes());
        ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(&d.payload);
        let micros = i as u64 * 20_000;
        out.extend_from_slice(&(1_700_000_000 + (micros / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        out.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        out.extend_from_slice(&ip);
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
}

/// What tshark decoded of one frame.
#[derive(Debug, Clone, Default)]
pub(crate) struct Frame {
    pub seq: Option<u16>,
    /// `t30-indicator` or `t30-data` (the primary IFP's type-of-msg).
    pub msg_type: Option<String>,
    /// `secondary-ifp-packets: N items`.
    pub secondary: Option<usize>,
    /// `fec-npackets` and `fec-data: N items`.
    pub fec_npackets: Option<u32>,
    pub fec_items: Option<usize>,
    /// The frame's whole -V text.
    pub text: String,
}

fn items(line: &str) -> Option<usize> {
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `tshark -r FILE -d udp.port==PORT,t38 -V`, split into frames. Panics
/// with a clear message if tshark is not installed (scripts/test
/// installs it).
pub(crate) fn tshark(path: &Path, port: u16) -> Vec<Frame> {
    let output = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .arg("-d")
        .arg(format!("udp.port=={port},t38"))
        .arg("-V")
        .output()
        .unwrap_or_else(|e| {
            panic!("tshark is needed for the UDPTL tests (apt-get install tshark; scripts/test installs it): {e}")
        });
    assert!(
        output.status.success(),
        "tshark failed on {path:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut frames = Vec::new();
    let mut cur: Option<Frame> = None;
    for line in text.lines() {
        if line.starts_with("Frame ") {
            frames.extend(cur.take());
            cur = Some(Frame::default());
        }
        let Some(f) = cur.as_mut() else { continue };
        f.text.push_str(line);
        f.text.push('\n');
        let t = line.trim();
        // Only the first (primary) values: secondary items repeat them.
        if let Some(v) = t.strip_prefix("seq-number: ") {
            f.seq = f.seq.or(v.parse().ok());
        } else if let Some(v) = t.strip_prefix("type-of-msg: ") {
            if f.msg_type.is_none() {
                f.msg_type = v.split_whitespace().next().map(str::to_owned);
            }
        } else if t.starts_with("secondary-ifp-packets: ") {
            f.secondary = items(t);
        } else if let Some(v) = t.strip_prefix("fec-npackets: ") {
            f.fec_npackets = v.parse().ok();
        } else if t.starts_with("fec-data: ") {
            f.fec_items = items(t);
        }
    }
    frames.extend(cur);
    frames
}

/// Whether tshark found nothing malformed, no error-level expert info and
/// no read past the packet's end (BoundError) in the frame.
pub(crate) fn is_clean(f: &Frame) -> bool {
    !f.text.contains("Malformed")
        && !f.text.contains("Expert Info (Error")
        && !f.text.contains("BoundError")
}

/// No frame is malformed or carries an error-level expert info.
pub(crate) fn assert_clean(frames: &[Frame]) {
    for (i, f) in frames.iter().enumerate() {
        assert!(is_clean(f), "frame {} is not clean:\n{}", i + 1, f.text);
        assert!(
            f.text.contains("ITU-T Recommendation T.38"),
            "frame {} not decoded as T.38:\n{}",
            i + 1,
            f.text
        );
    }
}

/// Loopback addresses for captures built by hand.
pub(crate) fn loopback(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}
