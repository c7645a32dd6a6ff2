//! Two T.38 sessions on loopback sockets, back to back or through a small
//! relay thread that drops datagrams (deterministic seeds) and captures
//! what each side sent for tshark. Each test is a real-time fax of about
//! 25 s: they run in parallel.

use super::*;
use crate::engine::sip::media::{T38Params, UdptlEc};
use crate::engine::sip::udptl::pcap::{self, Datagram};
use crate::engine::sip::udptl::Packet;
use crate::engine::spandsp::modem::T30_ERR_OK;
use crate::engine::spandsp::t38::tests::{assert_received, document, receiver, sender};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

fn bind() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("not IPv4: {a}"),
    }
}

/// What the relay saw.
#[derive(Default)]
struct RelayReport {
    /// Every datagram each side sent, before any drop.
    from_a: Vec<Datagram>,
    from_b: Vec<Datagram>,
    dropped_to_b: u32,
    dropped_to_a: u32,
    /// The port the relay answers A from.
    a_out: Option<SocketAddrV4>,
}

/// A relay between A and B dropping `loss_percent` of the datagrams in
/// each direction. A sends to `a_in`; the relay answers A from another
/// port (`a_out`), as a symmetric-media relay may, so A must follow it.
struct Relay {
    a_in: SocketAddr,
    b_side: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<RelayReport>,
}

fn lcg(seed: u64) -> impl FnMut() -> u32 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as u32
    }
}

fn relay(a: SocketAddr, b: SocketAddr, loss_percent: u32, seed: u64) -> Relay {
    let (a_in, a_out, b_side) = (bind(), bind(), bind());
    let (a_in_addr, b_addr) = (addr(&a_in), addr(&b_side));
    for s in [&a_in, &a_out, &b_side] {
        s.set_nonblocking(true).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = thread::spawn(move || {
        let mut report = RelayReport {
            a_out: Some(v4(addr(&a_out))),
            ..RelayReport::default()
        };
        let (mut rng_ab, mut rng_ba) = (lcg(seed), lcg(seed ^ 0x5555));
        let mut buf = [0u8; 2048];
        while !flag.load(Ordering::SeqCst) {
            let mut idle = true;
            for (i, s) in [&a_in, &a_out, &b_side].into_iter().enumerate() {
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    idle = false;
                    let payload = buf[..n].to_vec();
                    let gram = Datagram {
                        from: v4(from),
                        to: v4(addr(s)),
                        payload: payload.clone(),
                    };
                    if i < 2 && from == a {
                        report.from_a.push(gram);
                        if rng_ab() % 100 < loss_percent {
                            report.dropped_to_b += 1;
                        } else {
                            let _ = b_side.send_to(&payload, b);
                        }
                    } else if i == 2 && from == b {
                        report.from_b.push(gram);
                        if rng_ba() % 100 < loss_percent {
                            report.dropped_to_a += 1;
                        } else {
                            let _ = a_out.send_to(&payload, a);
                        }
                    }
                }
            }
            if idle {
                thread::sleep(Duration::from_millis(1));
            }
        }
        report
    });
    Relay {
        a_in: a_in_addr,
        b_side: b_addr,
        stop,
        handle,
    }
}

struct Outcome {
    sender: (MediaEnd, RxStats),
    receiver: (MediaEnd, RxStats),
    sender_pages: u32,
    receiver_pages: u32,
}

/// Sends the two-page document from A to B over T.38 with `params`,
/// through a relay with `loss_percent` if given, else directly; checks
/// the pages arrived pixel for pixel.
fn fax(params: T38Params, loss_percent: Option<u32>) -> (Outcome, Option<RelayReport>) {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pages) = document(dir.path());
    let rx_file = dir.path().join("received.tif");
    let (sa, sb) = (bind(), bind());
    let (a, b) = (addr(&sa), addr(&sb));
    let relay = loss_percent.map(|loss| relay(a, b, loss, 0x7438));
    let (to_b, to_a) = match &relay {
        Some(r) => (r.a_in, r.b_side),
        None => (b, a),
    };
    let (ca, cb) = (Arc::new(Control::default()), Arc::new(Control::default()));
    let (done_tx, done_rx) = mpsc::channel();
    let (pa, pb) = (params.clone(), params);
    let (ca2, cb2, doc2, rx2) = (ca.clone(), cb.clone(), doc.clone(), rx_file.clone());
    let done_a = done_tx.clone();
    let ta = thread::spawn(move || {
        let stream = T38Stream {
            params: pa,
            remote: to_b,
        };
        let r = session(sa, &stream, &sender(&doc2), &ca2);
        let _ = done_a.send(());
        r
    });
    let tb = thread::spawn(move || {
        let stream = T38Stream {
            params: pb,
            remote: to_a,
        };
        let r = session(sb, &stream, &receiver(&rx2), &cb2);
        let _ = done_tx.send(());
        r
    });
    // A watchdog: a fax of two pages takes about 25 s.
    for _ in 0..2 {
        if done_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            ca.stop();
            cb.stop();
        }
    }
    let sender_end = ta.join().unwrap().unwrap();
    let receiver_end = tb.join().unwrap().unwrap();
    let report = relay.map(|r| {
        r.stop.store(true, Ordering::SeqCst);
        r.handle.join().unwrap()
    });
    assert_eq!(sender_end.0.completion, Some(T30_ERR_OK), "sender");
    assert_eq!(receiver_end.0.completion, Some(T30_ERR_OK), "receiver");
    assert_received(&rx_file, &pages);
    let outcome = Outcome {
        sender: sender_end,
        receiver: receiver_end,
        sender_pages: ca.pages(),
        receiver_pages: cb.pages(),
    };
    (outcome, report)
}

/// Every datagram in `grams` is read by tshark with the sequence number
/// we put in it, and without error (data IFPs go once: a repeated
/// end-of-data datagram is what Wireshark's reassembly would flag).
fn assert_tshark_reads(grams: &[Datagram], name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    let port = 40070;
    let grams: Vec<Datagram> = grams
        .iter()
        .map(|g| Datagram {
            from: pcap::loopback(port + 2),
            to: pcap::loopback(port),
            payload: g.payload.clone(),
        })
        .collect();
    pcap::write(&file, &grams);
    let frames = pcap::tshark(&file, port);
    assert_eq!(frames.len(), grams.len(), "{name}");
    for (i, (f, g)) in frames.iter().zip(&grams).enumerate() {
        assert!(f.text.contains("ITU-T Recommendation T.38"), "{}", f.text);
        let p = Packet::decode(&g.payload).unwrap();
        assert_eq!(f.seq, Some(p.seq), "{}", f.text);
        assert!(
            pcap::is_clean(f),
            "{name}: frame {} has an error:\n{}",
            i + 1,
            f.text
        );
        assert!(f.secondary.is_some() || f.fec_items.is_some(), "{}", f.text);
    }
}

#[test]
fn t38_session_back_to_back_two_pages_arrive_pixel_for_pixel() {
    let (o, _) = fax(T38Params::default(), None);
    let (a, b) = (&o.sender.0, &o.receiver.0);
    assert_eq!(a.stats.pages_tx, 2);
    assert_eq!(b.stats.pages_rx, 2);
    assert_eq!(a.stats.bit_rate, 14_400);
    assert_eq!((o.sender_pages, o.receiver_pages), (2, 2));
    assert_eq!(a.remote_ident, "+1 555 0199");
    assert_eq!(b.remote_ident, "+1 555 0100");
    assert!(
        a.packets_sent > 100 && b.packets_received > 100,
        "{a:?} {b:?}"
    );
    assert_eq!(a.packets_lost + b.packets_lost, 0);
    assert_eq!(o.sender.1.recovered + o.receiver.1.recovered, 0);
}

#[test]
fn t38_session_lossy_relay_redundancy_recovers_and_tshark_reads_every_datagram() {
    let (o, report) = fax(T38Params::default(), Some(5));
    let r = report.unwrap();
    assert!(
        r.dropped_to_b > 0 && r.dropped_to_a > 0,
        "{} {}",
        r.dropped_to_b,
        r.dropped_to_a
    );
    let (a, b) = (&o.sender, &o.receiver);
    assert!(
        a.1.recovered + b.1.recovered > 0,
        "nothing recovered: {:?} {:?}",
        a.1,
        b.1
    );
    // Depth-3 redundancy covers every drop of up to three datagrams in a
    // row: nothing is lost.
    assert_eq!(
        (a.0.packets_lost, b.0.packets_lost),
        (0, 0),
        "{:?} {:?}",
        a.1,
        b.1
    );
    assert_eq!((a.1.lost, b.1.lost), (0, 0));
    // The datagrams the relay passed arrived (but for a few after the
    // receiving side had ended).
    let passed_to_b = r.from_a.len() as u64 - u64::from(r.dropped_to_b);
    let passed_to_a = r.from_b.len() as u64 - u64::from(r.dropped_to_a);
    assert!(b.0.packets_received <= passed_to_b && b.0.packets_received + 10 > passed_to_b);
    assert!(a.0.packets_received <= passed_to_a && a.0.packets_received + 10 > passed_to_a);
    assert_eq!(a.0.stats.pages_tx, 2);
    // A followed the relay's other port: it sent there after the first
    // answer (or from the start, when the answer came first).
    assert!(r.from_a.iter().any(|g| Some(g.to) == r.a_out));
    assert_tshark_reads(&r.from_a, "a.pcap");
    assert_tshark_reads(&r.from_b, "b.pcap");
}

#[test]
fn t38_session_lossy_relay_fec_recovers_and_tshark_reads_every_datagram() {
    let params = T38Params {
        ec: UdptlEc::Fec,
        ..T38Params::default()
    };
    let (o, report) = fax(params, Some(5));
    let r = report.unwrap();
    assert!(r.dropped_to_b > 0 && r.dropped_to_a > 0);
    let (a, b) = (&o.sender, &o.receiver);
    assert!(a.1.recovered + b.1.recovered > 0, "{:?} {:?}", a.1, b.1);
    // Span 3 × 3 entries rebuilds up to three datagrams lost in a row.
    assert_eq!(
        (a.0.packets_lost, b.0.packets_lost),
        (0, 0),
        "{:?} {:?}",
        a.1,
        b.1
    );
    assert!(r.from_a.iter().any(|g| {
        matches!(
            Packet::decode(&g.payload).map(|p| p.recovery),
            Ok(crate::engine::sip::udptl::Recovery::Fec { ref entries, .. }) if !entries.is_empty()
        )
    }));
    assert_tshark_reads(&r.from_a, "a.pcap");
    assert_tshark_reads(&r.from_b, "b.pcap");
}

#[test]
fn t38_session_stop_ends_it_within_a_tick() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, _) = document(dir.path());
    let silent = bind();
    silent.set_nonblocking(true).unwrap();
    let stream = T38Stream {
        params: T38Params::default(),
        remote: addr(&silent),
    };
    let control = Arc::new(Control::default());
    let c2 = control.clone();
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let r = session(bind(), &stream, &sender(&doc), &c2);
        let _ = tx.send(Instant::now());
        r
    });
    thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    control.stop();
    let ended = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let (end, _) = t.join().unwrap().unwrap();
    // One tick (20 ms) plus scheduling slack on a busy machine.
    assert!(
        ended.duration_since(asked) < Duration::from_millis(100),
        "{:?}",
        ended.duration_since(asked)
    );
    assert_eq!(end.completion, None);
    assert!(end.packets_sent > 0, "CNG went out");
    assert_eq!(end.packets_received, 0);
    // CNG (after a no-signal indicator) reached the silent socket.
    let mut buf = [0u8; 64];
    let mut primaries = Vec::new();
    while let Ok((n, _)) = silent.recv_from(&mut buf) {
        primaries.push(Packet::decode(&buf[..n]).unwrap().primary);
    }
    assert!(primaries.iter().any(|p| p == &[0x02]), "{primaries:?}");
}

#[test]
fn t38_session_follows_a_first_port_change_of_the_same_host_only() {
    let remote: SocketAddr = "127.0.0.5:40000".parse().unwrap();
    let mut peer = Peer {
        remote,
        locked: false,
    };
    // Another host: ignored, nothing learnt.
    assert!(!peer.accept("127.0.0.6:40000".parse().unwrap()));
    assert_eq!(peer.remote, remote);
    // The same host from another port first: followed, then locked.
    let moved: SocketAddr = "127.0.0.5:40002".parse().unwrap();
    assert!(peer.accept(moved));
    assert_eq!(peer.remote, moved);
    assert!(!peer.accept(remote));
    assert!(peer.accept(moved));
    // Once the stated address has been heard, no following.
    let mut peer = Peer {
        remote,
        locked: false,
    };
    assert!(peer.accept(remote));
    assert!(!peer.accept(moved));
    assert_eq!(peer.remote, remote);
}
