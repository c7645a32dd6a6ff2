//! Tests of the UDPTL codec and receive window, with golden vectors
//! checked by tshark's T.38 dissector.

use super::pcap::{self, Datagram};
use super::*;
use crate::engine::sip::media::{T38Params, UdptlEc};
use crate::engine::spandsp::t38::tests::{receiver, sender};
use crate::engine::spandsp::t38::T38Terminal;
use std::path::Path;
use std::time::{Duration, Instant};

const CNG: &[u8] = &[0x02];
const CED: &[u8] = &[0x04];
/// v21 data, one field hdlc-data with 2 bytes (version 0 encoding).
const V21_DATA: &[u8] = &[0xc0, 0x01, 0x80, 0x00, 0x01, 0xff, 0x13];
/// v21 data: hdlc-data (2 bytes) then hdlc-fcs-OK without data (a half
/// octet in version 0).
const V21_TWO_FIELDS: &[u8] = &[0xc0, 0x02, 0x80, 0x00, 0x01, 0xff, 0x13, 0x20];

fn ifp(n: usize) -> Vec<u8> {
    // A v17 data IFP with one t4-non-ecm-data field of n bytes (v0).
    let mut v = vec![0xc0 | (8 << 1), 0x01, 0x80 | (6 << 4)];
    v.extend_from_slice(&((n - 1) as u16).to_be_bytes());
    v.extend((0..n).map(|i| (i * 7 + n) as u8));
    v
}

#[test]
fn udptl_golden_vector_of_the_design_note() {
    let p = Packet {
        seq: 5,
        primary: CNG.to_vec(),
        recovery: Recovery::Redundancy(vec![]),
    };
    let bytes = p.encode().unwrap();
    assert_eq!(bytes, [0x00, 0x05, 0x01, 0x02, 0x00, 0x00]);
    assert_eq!(Packet::decode(&bytes).unwrap(), p);
}

#[test]
fn udptl_round_trips_redundancy_fec_and_long_lengths() {
    for recovery in [
        Recovery::Redundancy(vec![ifp(300), CED.to_vec(), vec![]]),
        Recovery::Fec {
            span: 3,
            entries: vec![ifp(200), vec![0x55; 127], vec![]],
        },
        Recovery::Fec {
            span: 200,
            entries: vec![vec![1]],
        },
    ] {
        let p = Packet {
            seq: 0xfffe,
            primary: ifp(130),
            recovery,
        };
        let bytes = p.encode().unwrap();
        assert_eq!(Packet::decode(&bytes).unwrap(), p);
    }
    // 130 bytes of IFP: a two-octet length determinant 0x80 0x87.
    let bytes = Packet {
        seq: 1,
        primary: ifp(130),
        recovery: Recovery::Redundancy(vec![]),
    }
    .encode()
    .unwrap();
    assert_eq!(&bytes[2..4], &[0x80, 0x87]);
    // fec-npackets 200: a leading zero keeps the INTEGER positive.
    let fec = Packet {
        seq: 1,
        primary: CNG.to_vec(),
        recovery: Recovery::Fec {
            span: 200,
            entries: vec![],
        },
    }
    .encode()
    .unwrap();
    assert_eq!(&fec[4..], &[0x80, 0x02, 0x00, 0xc8, 0x00]);
    assert!(matches!(
        Packet {
            seq: 1,
            primary: vec![0; 0x4000],
            recovery: Recovery::Redundancy(vec![])
        }
        .encode(),
        Err(UdptlError::TooLong(0x4000))
    ));
}

#[test]
fn udptl_malformed_packets_are_errors_never_panics() {
    let good = [
        Packet {
            seq: 7,
            primary: ifp(150),
            recovery: Recovery::Redundancy(vec![ifp(140), CNG.to_vec()]),
        },
        Packet {
            seq: 8,
            primary: V21_DATA.to_vec(),
            recovery: Recovery::Fec {
                span: 3,
                entries: vec![ifp(10), ifp(20)],
            },
        },
    ];
    for p in &good {
        let bytes = p.encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(
                Packet::decode(&bytes[..cut]).is_err(),
                "{cut} of {} bytes decoded",
                bytes.len()
            );
        }
    }
    // A length beyond the buffer.
    assert!(matches!(
        Packet::decode(&[0, 1, 0x05, 0x02, 0x00, 0x00]),
        Err(UdptlError::Truncated { need: 5, .. })
    ));
    assert!(matches!(
        Packet::decode(&[0, 1, 0xbf, 0xff, 0x02]),
        Err(UdptlError::Truncated { .. })
    ));
    // A fragmented length.
    assert!(matches!(
        Packet::decode(&[0, 1, 0xc1, 0x02]),
        Err(UdptlError::Fragmented { .. })
    ));
    // A redundancy count with too few entries behind it.
    assert!(Packet::decode(&[0, 1, 0x01, 0x02, 0x00, 0x03, 0x01, 0x02]).is_err());
    // fec-npackets empty or negative.
    assert!(Packet::decode(&[0, 1, 0x01, 0x02, 0x80, 0x00, 0x00]).is_err());
    assert!(Packet::decode(&[0, 1, 0x01, 0x02, 0x80, 0x01, 0xff, 0x00]).is_err());
    // Noise: errors or packets, never a panic.
    let mut rng = 0x1234_5678_u64;
    for _ in 0..20_000 {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
        let len = (rng >> 59) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (rng >> (i % 7 * 8)) as u8 ^ i as u8)
            .collect();
        let _ = Packet::decode(&bytes);
        let _ = ifp_len(&bytes, 0);
        let _ = ifp_len(&bytes, 2);
    }
}

#[test]
fn udptl_ifp_length_of_each_kind() {
    assert_eq!(ifp_len(CNG, 0), Some(1));
    assert_eq!(ifp_len(&[0x20, 0x40], 3), Some(2)); // an extended indicator
    assert_eq!(ifp_len(V21_DATA, 0), Some(7));
    assert_eq!(ifp_len(V21_TWO_FIELDS, 0), Some(8));
    // Version 1+: a whole octet per field header.
    assert_eq!(
        ifp_len(&[0xc0, 0x02, 0x80, 0x00, 0x00, 0x7e, 0x10], 2),
        Some(7)
    );
    let mut padded = ifp(40);
    padded.extend_from_slice(&[0; 60]);
    assert_eq!(ifp_len(&padded, 0), Some(ifp(40).len()));
    assert_eq!(ifp_len(&ifp(40)[..30], 0), None);
    assert_eq!(ifp_len(&[], 0), None);
}

#[test]
fn udptl_encoder_redundancy_newest_first_within_the_datagram_limit() {
    let mut enc = Encoder::new(UdptlEc::Redundancy, None);
    let ifps: Vec<Vec<u8>> = (1..=5).map(|n| ifp(n * 10)).collect();
    let mut last = Vec::new();
    for i in &ifps {
        last = enc.packet(i).unwrap();
    }
    let p = Packet::decode(&last).unwrap();
    assert_eq!(p.seq, 4);
    assert_eq!(p.primary, ifps[4]);
    assert_eq!(
        p.recovery,
        Recovery::Redundancy(vec![ifps[3].clone(), ifps[2].clone(), ifps[1].clone()])
    );
    // The far end takes 130 bytes: the primary (53) and one redundant
    // IFP (43) fit, the next (33) would not.
    let mut enc = Encoder::new(UdptlEc::Redundancy, Some(130));
    for i in &ifps[..4] {
        enc.packet(i).unwrap();
    }
    let bytes = enc.packet(&ifps[4]).unwrap();
    assert!(bytes.len() <= 130, "{}", bytes.len());
    let p = Packet::decode(&bytes).unwrap();
    assert_eq!(p.recovery, Recovery::Redundancy(vec![ifps[3].clone()]));
    // No error correction: no entries.
    let mut enc = Encoder::new(UdptlEc::None, None);
    enc.packet(CNG).unwrap();
    let p = Packet::decode(&enc.packet(CED).unwrap()).unwrap();
    assert_eq!(p.recovery, Recovery::Redundancy(vec![]));
}

#[test]
fn udptl_encoder_fec_parity_covers_interleaved_packets() {
    let mut enc = Encoder::new(UdptlEc::Fec, None).with_fec(3, 2);
    let ifps: Vec<Vec<u8>> = (0..10).map(|n| ifp(5 + n)).collect();
    let mut packets = Vec::new();
    for i in &ifps {
        packets.push(Packet::decode(&enc.packet(i).unwrap()).unwrap());
    }
    // Too little history at first: no parity until span × entries.
    assert_eq!(
        packets[2].recovery,
        Recovery::Fec {
            span: 3,
            entries: vec![]
        }
    );
    let Recovery::Fec { span, entries } = &packets[9].recovery else {
        panic!("not FEC");
    };
    assert_eq!((*span, entries.len()), (3, 2));
    // Entry m of packet 9 covers 9 + m − 2k, k = 1..=3.
    for (m, parity) in entries.iter().enumerate() {
        let mut want = Vec::new();
        for k in 1..=3 {
            xor_into(&mut want, &ifps[9 + m - 2 * k]);
        }
        assert_eq!(parity, &want, "entry {m}");
    }
}

fn datagrams(ec: UdptlEc, ifps: &[Vec<u8>], start: u16) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(ec, None);
    enc.seq = start;
    ifps.iter().map(|i| enc.packet(i).unwrap()).collect()
}

fn push_all(rx: &mut Receiver, packets: &[&Vec<u8>], now: Instant) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for p in packets {
        out.extend(rx.push(p, now).unwrap());
    }
    out
}

#[test]
fn udptl_window_orders_dedups_and_recovers_from_redundancy_across_the_wrap() {
    let ifps: Vec<Vec<u8>> = (0..12).map(|n| ifp(3 + n)).collect();
    let d = datagrams(UdptlEc::Redundancy, &ifps, 0xfffa);
    let now = Instant::now();
    let mut rx = Receiver::new(0, Duration::from_millis(500));
    // Lose 3 and 4 (the wrap is between 5 and 6), repeat 1, swap 7 and 8,
    // an old packet (0) at the end.
    let order = [
        &d[0], &d[1], &d[1], &d[2], &d[5], &d[6], &d[8], &d[7], &d[9], &d[10], &d[11], &d[0],
    ];
    let out = push_all(&mut rx, &order, now);
    let seqs: Vec<u16> = out.iter().map(|(s, _)| *s).collect();
    let want: Vec<u16> = (0..12u16).map(|i| 0xfffau16.wrapping_add(i)).collect();
    assert_eq!(seqs, want);
    let got: Vec<Vec<u8>> = out.into_iter().map(|(_, i)| i).collect();
    assert_eq!(got, ifps);
    let stats = rx.stats();
    // 3 and 4 from 5's redundancy, 7 from 8's (its own packet was late).
    assert_eq!(stats.recovered, 3, "{stats:?}");
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.duplicates, 3, "{stats:?}"); // 1 again, 7 late, 0 old
    assert_eq!(stats.packets, 12);
}

#[test]
fn udptl_window_recovers_from_fec() {
    let ifps: Vec<Vec<u8>> = (0..20).map(|n| ifp(3 + (n * 5) % 17)).collect();
    let d = datagrams(UdptlEc::Fec, &ifps, 100);
    let now = Instant::now();
    let mut rx = Receiver::new(0, Duration::from_millis(500));
    // Lose 12 and 16: FEC of later packets (span 3, entries 3) rebuilds
    // them, cut back to their own length.
    let order: Vec<&Vec<u8>> = d
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 12 && *i != 16)
        .map(|(_, p)| p)
        .collect();
    let out = push_all(&mut rx, &order, now);
    let got: Vec<Vec<u8>> = out.into_iter().map(|(_, i)| i).collect();
    assert_eq!(got, ifps);
    assert_eq!(rx.stats().recovered, 2, "{:?}", rx.stats());
    assert_eq!(rx.stats().lost, 0);
}

#[test]
fn udptl_window_gives_up_a_gap_after_the_wait_and_counts_it_lost() {
    let ifps: Vec<Vec<u8>> = (0..10).map(|n| ifp(3 + n)).collect();
    let d = datagrams(UdptlEc::None, &ifps, 0);
    let t0 = Instant::now();
    let wait = Duration::from_millis(300);
    let mut rx = Receiver::new(0, wait);
    let out = push_all(&mut rx, &[&d[0], &d[1], &d[4], &d[5]], t0);
    assert_eq!(out.len(), 2, "2 and 3 missing: 4 and 5 wait");
    assert!(rx.poll(t0 + wait / 2).is_empty());
    let late = rx.poll(t0 + wait);
    assert_eq!(late.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(rx.stats().lost, 2);
    // 3 comes late: old, skipped.
    assert!(rx.push(&d[3], t0 + wait).unwrap().is_empty());
    assert_eq!(rx.stats().duplicates, 1);
    // Malformed: counted, an error, the window goes on.
    assert!(rx.push(&[0, 6, 9], t0 + wait).is_err());
    assert_eq!(rx.stats().malformed, 1);
    assert_eq!(rx.push(&d[6], t0 + wait).unwrap().len(), 1);
}

/// The IFPs two spandsp terminals send each other in the first 30
/// simulated seconds of a fax (indicators, V.21 HDLC, TCF, image data).
fn spandsp_ifps(dir: &Path) -> Vec<Vec<u8>> {
    let (doc, _) = crate::engine::spandsp::t38::tests::document(dir);
    let rx_file = dir.join("rx.tif");
    let params = T38Params::default();
    let mut a = T38Terminal::new(&sender(&doc), &params).unwrap();
    let mut b = T38Terminal::new(&receiver(&rx_file), &params).unwrap();
    let (mut seq_a, mut seq_b) = (0u16, 0u16);
    let mut out = Vec::new();
    for _ in 0..1500 {
        a.send_timeout(160);
        b.send_timeout(160);
        for i in a.take_tx() {
            b.rx_ifp(&i.data, seq_a);
            seq_a = seq_a.wrapping_add(1);
            out.push(i.data);
        }
        for i in b.take_tx() {
            a.rx_ifp(&i.data, seq_b);
            seq_b = seq_b.wrapping_add(1);
        }
    }
    out
}

/// Encodes `ifps` with `enc`, writes a pcap, asserts tshark reads every
/// packet cleanly with our sequence numbers, types and entry counts.
fn check_with_tshark(
    dir: &Path,
    name: &str,
    mut enc: Encoder,
    ifps: &[Vec<u8>],
    max: Option<usize>,
) {
    let port = 40070;
    let packets: Vec<Packet> = ifps
        .iter()
        .map(|i| {
            let bytes = enc.packet(i).unwrap();
            if let Some(max) = max {
                assert!(bytes.len() <= max, "{} > {max}", bytes.len());
            }
            Packet::decode(&bytes).unwrap()
        })
        .collect();
    let grams: Vec<Datagram> = packets
        .iter()
        .map(|p| Datagram {
            from: pcap::loopback(port + 2),
            to: pcap::loopback(port),
            payload: p.encode().unwrap(),
        })
        .collect();
    let file = dir.join(name);
    pcap::write(&file, &grams);
    let frames = pcap::tshark(&file, port);
    assert_eq!(frames.len(), packets.len());
    pcap::assert_clean(&frames);
    for (f, p) in frames.iter().zip(&packets) {
        assert_eq!(f.seq, Some(p.seq), "{}", f.text);
        let kind = if p.primary[0] & 0x40 != 0 {
            "t30-data"
        } else {
            "t30-indicator"
        };
        assert_eq!(f.msg_type.as_deref(), Some(kind), "{}", f.text);
        match &p.recovery {
            Recovery::Redundancy(items) => {
                assert_eq!(f.secondary, Some(items.len()), "{}", f.text)
            }
            Recovery::Fec { span, entries } => {
                assert_eq!(f.fec_npackets, Some(*span), "{}", f.text);
                assert_eq!(f.fec_items, Some(entries.len()), "{}", f.text);
            }
        }
    }
}

#[test]
fn udptl_tshark_reads_our_redundancy_packets() {
    let dir = tempfile::tempdir().unwrap();
    let ifps = spandsp_ifps(dir.path());
    assert!(ifps.len() > 100, "{}", ifps.len());
    let enc = Encoder::new(UdptlEc::Redundancy, None);
    check_with_tshark(dir.path(), "red.pcap", enc, &ifps, None);
    // A small far-end datagram: redundancy entries are left out.
    let enc = Encoder::new(UdptlEc::Redundancy, Some(72));
    check_with_tshark(dir.path(), "small.pcap", enc, &ifps, Some(72));
}

#[test]
fn udptl_tshark_reads_our_fec_packets() {
    let dir = tempfile::tempdir().unwrap();
    let ifps = spandsp_ifps(dir.path());
    let enc = Encoder::new(UdptlEc::Fec, None);
    check_with_tshark(dir.path(), "fec.pcap", enc, &ifps, None);
    let enc = Encoder::new(UdptlEc::Fec, Some(120));
    check_with_tshark(dir.path(), "fec-small.pcap", enc, &ifps, Some(120));
}

#[test]
fn udptl_tshark_check_catches_a_malformed_packet() {
    // The checker itself: a truncated packet must fail it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.pcap");
    let grams = [Datagram {
        from: pcap::loopback(40072),
        to: pcap::loopback(40070),
        payload: vec![0x00, 0x05, 0x05, 0x02],
    }];
    pcap::write(&file, &grams);
    let frames = pcap::tshark(&file, 40070);
    assert_eq!(frames.len(), 1);
    let caught = std::panic::catch_unwind(|| pcap::assert_clean(&frames));
    assert!(caught.is_err(), "{}", frames[0].text);
}

#[test]
fn udptl_window_restarts_on_a_wild_sequence_jump() {
    let ifps: Vec<Vec<u8>> = (0..6).map(|n| ifp(3 + n)).collect();
    let early = datagrams(UdptlEc::Redundancy, &ifps[..3], 10);
    let later = datagrams(UdptlEc::Redundancy, &ifps[3..], 30_000);
    let now = Instant::now();
    let mut rx = Receiver::new(0, Duration::from_millis(300));
    let out = push_all(
        &mut rx,
        &[&early[0], &early[1], &early[2], &later[0], &later[1]],
        now,
    );
    let seqs: Vec<u16> = out.iter().map(|(s, _)| *s).collect();
    // The far end renumbered: delivery goes on from the new numbers, the
    // old ones' redundancy is not taken for missing packets.
    assert_eq!(seqs, [10, 11, 12, 30_000, 30_001]);
    assert_eq!(rx.stats().lost, 0);
    assert_eq!(rx.stats().recovered, 0);
}
