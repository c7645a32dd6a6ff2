//! The UDPTL receive window: datagrams in, IFPs out in sequence order,
//! each exactly once. Lost IFPs are taken from the redundancy or FEC of
//! later packets; duplicates and packets older than the window are
//! skipped; a gap nothing fills is given up after a bounded wait and
//! counted lost.
//!
//! Sequence numbers are 16 bits and wrap; inside the window they are
//! extended to 64 bits relative to the newest seen, so ordering survives
//! the wrap.

use super::{ifp_len, xor_into, Packet, Recovery, UdptlError};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How far a sequence number may jump (either way) before it counts as a
/// restart of the far end's numbering rather than loss or lateness.
const RESTART_JUMP: i64 = 1000;
/// Delivered IFPs kept for FEC repairs of later gaps.
const KEEP_DELIVERED: i64 = 64;

/// What the window saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Datagrams that decoded.
    pub packets: u64,
    /// Datagrams that did not (counted, dropped).
    pub malformed: u64,
    /// Packets whose primary IFP was already known or delivered (repeats,
    /// late packets).
    pub duplicates: u64,
    /// IFPs delivered from redundancy or FEC, their own packet not there
    /// (lost, or late) when they were due.
    pub recovered: u64,
    /// IFPs given up on.
    pub lost: u64,
}

#[derive(Debug, Clone)]
struct Slot {
    ifp: Vec<u8>,
    /// From the packet itself (not recovered).
    primary: bool,
}

/// The receive side of a UDPTL stream.
#[derive(Debug)]
pub struct Receiver {
    /// The T.38 version, for cutting FEC-recovered IFPs to length.
    version: u8,
    /// How long a gap may wait for recovery before it is given up.
    max_wait: Duration,
    /// The next extended sequence number to deliver; `None` before the
    /// first packet.
    next: Option<i64>,
    /// The newest extended sequence number seen.
    newest: i64,
    /// IFPs known, not yet delivered (keys ≥ `next`).
    pending: BTreeMap<i64, Slot>,
    /// IFPs delivered recently (for FEC), keys < `next`.
    delivered: BTreeMap<i64, Vec<u8>>,
    /// FEC data of recent packets: (span, parity entries) by sequence.
    fec: BTreeMap<i64, (u32, Vec<Vec<u8>>)>,
    /// Since when `next` has been missing while later IFPs wait.
    gap_since: Option<Instant>,
    stats: RxStats,
}

impl Receiver {
    /// A window for T.38 `version` that waits at most `max_wait` for a
    /// missing IFP before skipping it.
    pub fn new(version: u8, max_wait: Duration) -> Receiver {
        Receiver {
            version,
            max_wait,
            next: None,
            newest: 0,
            pending: BTreeMap::new(),
            delivered: BTreeMap::new(),
            fec: BTreeMap::new(),
            gap_since: None,
            stats: RxStats::default(),
        }
    }

    /// What the window has seen so far.
    pub fn stats(&self) -> RxStats {
        self.stats
    }

    /// Extends a 16-bit sequence number relative to the newest seen.
    fn extend(&self, seq: u16) -> i64 {
        let diff = seq.wrapping_sub(self.newest as u16) as i16;
        self.newest + i64::from(diff)
    }

    /// Takes one datagram at time `now`; returns the IFPs now deliverable,
    /// in order, with their 16-bit sequence numbers. A datagram that does
    /// not decode is counted and its error returned (nothing is lost from
    /// the window).
    pub fn push(
        &mut self,
        datagram: &[u8],
        now: Instant,
    ) -> Result<Vec<(u16, Vec<u8>)>, UdptlError> {
        let packet = match Packet::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        self.stats.packets += 1;
        let ext = match self.next {
            None => {
                // The first packet: start here (16-bit value kept, so the
                // extension is exact), with room below for old packets.
                let ext = (1i64 << 32) + i64::from(packet.seq);
                self.newest = ext;
                self.next = Some(ext);
                ext
            }
            Some(next) => {
                let ext = self.extend(packet.seq);
                if (ext - next).abs() > RESTART_JUMP {
                    // The far end restarted its numbering: start over.
                    tracing::debug!(seq = packet.seq, "UDPTL sequence restart");
                    self.pending.clear();
                    self.delivered.clear();
                    self.fec.clear();
                    self.gap_since = None;
                    let ext = (1i64 << 32) + i64::from(packet.seq);
                    self.newest = ext;
                    self.next = Some(ext);
                    ext
                } else {
                    ext
                }
            }
        };
        self.newest = self.newest.max(ext);
        if !self.store(ext, packet.primary, true) {
            self.stats.duplicates += 1;
        }
        match packet.recovery {
            Recovery::Redundancy(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    let at = ext - 1 - i as i64;
                    self.store(at, item, false);
                }
            }
            Recovery::Fec { span, entries } => {
                if !entries.is_empty() && span > 0 {
                    self.fec.insert(ext, (span, entries));
                }
                self.repair();
            }
        }
        Ok(self.deliver(now))
    }

    /// Stores an IFP for `at` if it is still wanted; whether it was new.
    fn store(&mut self, at: i64, ifp: Vec<u8>, primary: bool) -> bool {
        let Some(next) = self.next else {
            return false;
        };
        if at < next || self.pending.contains_key(&at) {
            return false;
        }
        self.pending.insert(at, Slot { ifp, primary });
        true
    }

    /// The IFP for `at` if known (pending or delivered).
    fn known(&self, at: i64) -> Option<&[u8]> {
        self.pending
            .get(&at)
            .map(|s| s.ifp.as_slice())
            .or_else(|| self.delivered.get(&at).map(Vec::as_slice))
    }

    /// Rebuilds missing IFPs from FEC parity wherever exactly one IFP of a
    /// parity group is missing, until nothing more can be rebuilt.
    fn repair(&mut self) {
        let Some(next) = self.next else {
            return;
        };
        loop {
            let mut rebuilt = None;
            'search: for (&seq, (span, entries)) in &self.fec {
                let count = entries.len() as i64;
                for (m, parity) in entries.iter().enumerate() {
                    let group: Vec<i64> = (1..=i64::from(*span))
                        .map(|k| seq + m as i64 - k * count)
                        .collect();
                    let missing: Vec<i64> = group
                        .iter()
                        .copied()
                        .filter(|&g| self.known(g).is_none())
                        .collect();
                    if let [lost] = missing[..] {
                        if lost < next {
                            continue;
                        }
                        let mut ifp = parity.clone();
                        for &g in &group {
                            if let Some(other) = self.known(g) {
                                xor_into(&mut ifp, other);
                            }
                        }
                        if let Some(len) = ifp_len(&ifp, self.version) {
                            ifp.truncate(len);
                            rebuilt = Some((lost, ifp));
                            break 'search;
                        }
                    }
                }
            }
            match rebuilt {
                Some((at, ifp)) => {
                    self.store(at, ifp, false);
                }
                None => return,
            }
        }
    }

    /// Hands out what is in order; gives up a gap that waited too long.
    fn deliver(&mut self, now: Instant) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else {
            return out;
        };
        loop {
            while let Some(slot) = self.pending.remove(&next) {
                if !slot.primary {
                    self.stats.recovered += 1;
                }
                out.push((next as u16, slot.ifp.clone()));
                self.delivered.insert(next, slot.ifp);
                next += 1;
                self.gap_since = None;
            }
            let Some((&first, _)) = self.pending.iter().next() else {
                self.gap_since = None;
                break;
            };
            // A gap before `first`.
            let since = *self.gap_since.get_or_insert(now);
            if now.duration_since(since) < self.max_wait {
                break;
            }
            self.stats.lost += (first - next) as u64;
            tracing::debug!(from = next as u16, to = first as u16, "UDPTL IFPs lost");
            next = first;
            self.gap_since = None;
        }
        self.next = Some(next);
        let floor = next - KEEP_DELIVERED;
        self.delivered = self.delivered.split_off(&floor);
        self.fec = self.fec.split_off(&floor);
        out
    }

    /// Delivers what a gap held back once it has waited `max_wait` (call
    /// it every tick: a gap may end with no packet arriving).
    pub fn poll(&mut self, now: Instant) -> Vec<(u16, Vec<u8>)> {
        self.deliver(now)
    }
}
