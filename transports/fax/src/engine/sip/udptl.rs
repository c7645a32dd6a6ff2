//! UDPTL (ITU-T T.38 §9.1 and Annex A): the packet that carries T.38 IFP
//! packets over UDP — a sequence number, the primary IFP and either
//! redundant copies of earlier IFPs or FEC parity — encoded in ASN.1 PER
//! (aligned); and the receive side that puts IFPs back in order and
//! recovers lost ones from the redundancy or FEC of later packets.
//!
//! ```text
//! UDPTLPacket ::= SEQUENCE {
//!   seq-number          INTEGER (0..65535),            -- 2 octets
//!   primary-ifp-packet  TYPE-IDENTIFIER.&Type(IFPPacket), -- open type
//!   error-recovery CHOICE {                            -- 1 bit, padded
//!     secondary-ifp-packets SEQUENCE OF open type,     -- newest first
//!     fec-info SEQUENCE { fec-npackets INTEGER,
//!                         fec-data SEQUENCE OF OCTET STRING } } }
//! ```
//!
//! Lengths are PER length determinants: one octet below 128, two octets
//! (`10xxxxxx xxxxxxxx`) below 16384; fragmented lengths (`11xxxxxx`) are
//! refused (no IFP is that long). FEC follows the scheme Asterisk and
//! spandsp's own `udptl.c` use: parity entry `m` of the packet with
//! sequence number `s` is the XOR of the `span` IFPs
//! `s + m − k·entries` (k = 1..=span), zero-padded to the longest.
//!
//! [`Encoder`] numbers and frames outgoing IFPs; [`Receiver`]
//! (in [`window`]) takes datagrams and hands out IFPs in order.

mod window;

pub use window::{Receiver, RxStats};

use crate::engine::sip::media::UdptlEc;
use std::collections::VecDeque;

/// Redundant IFPs per packet (FreeSWITCH and Asterisk send 3).
pub const DEFAULT_REDUNDANCY_DEPTH: usize = 3;
/// FEC: IFPs each parity entry covers (`fec-npackets`).
pub const DEFAULT_FEC_SPAN: usize = 3;
/// FEC: parity entries per packet.
pub const DEFAULT_FEC_ENTRIES: usize = 3;

/// A UDPTL datagram that cannot be read, or an IFP that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdptlError {
    #[error(
        "UDPTL packet truncated: {what} needs {need} bytes at offset {at}, {len} in the packet"
    )]
    Truncated {
        what: &'static str,
        at: usize,
        need: usize,
        len: usize,
    },
    #[error("UDPTL packet: fragmented length for {what} at offset {at} (not supported)")]
    Fragmented { what: &'static str, at: usize },
    #[error("UDPTL packet: {what} {value} out of range")]
    Range { what: &'static str, value: u64 },
    #[error("IFP of {0} bytes is too long for UDPTL (at most 16383)")]
    TooLong(usize),
}

/// The error recovery part of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Earlier IFPs, newest first: entry `i` is packet `seq − 1 − i`.
    Redundancy(Vec<Vec<u8>>),
    /// XOR parity: `span` IFPs per entry (see the module doc).
    Fec { span: u32, entries: Vec<Vec<u8>> },
}

/// One decoded UDPTL packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u16,
    pub primary: Vec<u8>,
    pub recovery: Recovery,
}

/// Appends a PER length determinant (below 16384).
fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), UdptlError> {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x4000 {
        out.push(0x80 | (len >> 8) as u8);
        out.push((len & 0xff) as u8);
    } else {
        return Err(UdptlError::TooLong(len));
    }
    Ok(())
}

fn put_open(out: &mut Vec<u8>, data: &[u8]) -> Result<(), UdptlError> {
    put_len(out, data.len())?;
    out.extend_from_slice(data);
    Ok(())
}

/// The size of an open type of `n` bytes.
fn open_size(n: usize) -> usize {
    n + if n < 0x80 { 1 } else { 2 }
}

impl Packet {
    /// The packet's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, UdptlError> {
        let mut out = Vec::with_capacity(16 + self.primary.len());
        out.extend_from_slice(&self.seq.to_be_bytes());
        put_open(&mut out, &self.primary)?;
        match &self.recovery {
            Recovery::Redundancy(items) => {
                out.push(0x00);
                put_len(&mut out, items.len())?;
                for item in items {
                    put_open(&mut out, item)?;
                }
            }
            Recovery::Fec { span, entries } => {
                out.push(0x80);
                // An unconstrained INTEGER: a length, then the minimal
                // two's complement octets (a leading 0 keeps it positive).
                let bytes = span.to_be_bytes();
                let skip = bytes.iter().take_while(|&&b| b == 0).count().min(3);
                let mut value = bytes[skip..].to_vec();
                if value[0] & 0x80 != 0 {
                    value.insert(0, 0);
                }
                put_open(&mut out, &value)?;
                put_len(&mut out, entries.len())?;
                for entry in entries {
                    put_open(&mut out, entry)?;
                }
            }
        }
        Ok(out)
    }

    /// Reads a packet. Every length is checked against the buffer: a short
    /// or inconsistent packet is an error, never a panic. Bytes after the
    /// packet are ignored.
    pub fn decode(buf: &[u8]) -> Result<Packet, UdptlError> {
        let mut r = Reader { buf, at: 0 };
        let seq = u16::from_be_bytes([r.byte("seq-number")?, r.byte("seq-number")?]);
        let primary = r.open("primary-ifp-packet")?.to_vec();
        let choice = r.byte("error-recovery")?;
        let recovery = if choice & 0x80 == 0 {
            let n = r.len("secondary-ifp-packets count")?;
            let mut items = Vec::with_capacity(n.min(16));
            for _ in 0..n {
                items.push(r.open("secondary-ifp-packet")?.to_vec());
            }
            Recovery::Redundancy(items)
        } else {
            let value = r.open("fec-npackets")?;
            if value.is_empty() || value.len() > 4 || value[0] & 0x80 != 0 {
                return Err(UdptlError::Range {
                    what: "fec-npackets length",
                    value: value.len() as u64,
                });
            }
            let span = value.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            let n = r.len("fec-data count")?;
            let mut entries = Vec::with_capacity(n.min(16));
            for _ in 0..n {
                entries.push(r.open("fec-data")?.to_vec());
            }
            Recovery::Fec { span, entries }
        };
        Ok(Packet {
            seq,
            primary,
            recovery,
        })
    }
}

/// A cursor over a received datagram.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], UdptlError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(UdptlError::Truncated {
                what,
                at: self.at,
                need: n,
                len: self.buf.len(),
            });
        };
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, UdptlError> {
        Ok(self.take(what, 1)?[0])
    }

    fn len(&mut self, what: &'static str) -> Result<usize, UdptlError> {
        let at = self.at;
        let b = self.byte(what)?;
        match b & 0xc0 {
            0x00 | 0x40 => Ok(usize::from(b)),
            0x80 => Ok((usize::from(b & 0x3f) << 8) | usize::from(self.byte(what)?)),
            _ => Err(UdptlError::Fragmented { what, at }),
        }
    }

    fn open(&mut self, what: &'static str) -> Result<&'a [u8], UdptlError> {
        let n = self.len(what)?;
        self.take(what, n)
    }
}

/// Numbers and frames outgoing IFPs, keeping the recent ones for the
/// redundancy or FEC of later packets.
#[derive(Debug)]
pub struct Encoder {
    ec: UdptlEc,
    depth: usize,
    fec_span: usize,
    fec_entries: usize,
    max_datagram: Option<usize>,
    seq: u16,
    /// Sent IFPs, newest first.
    history: VecDeque<Vec<u8>>,
}

impl Encoder {
    /// An encoder for `ec` (redundancy depth and FEC span/entries at their
    /// defaults) whose packets stay within `max_datagram` bytes (the far
    /// end's `T38FaxMaxDatagram`) by leaving out recovery entries.
    pub fn new(ec: UdptlEc, max_datagram: Option<u32>) -> Encoder {
        Encoder {
            ec,
            depth: DEFAULT_REDUNDANCY_DEPTH,
            fec_span: DEFAULT_FEC_SPAN,
            fec_entries: DEFAULT_FEC_ENTRIES,
            max_datagram: max_datagram.and_then(|m| usize::try_from(m).ok()),
            seq: 0,
            history: VecDeque::new(),
        }
    }

    /// Redundant IFPs per packet (redundancy mode).
    pub fn with_depth(mut self, depth: usize) -> Encoder {
        self.depth = depth;
        self
    }

    /// IFPs per parity entry and parity entries per packet (FEC mode).
    pub fn with_fec(mut self, span: usize, entries: usize) -> Encoder {
        self.fec_span = span.max(1);
        self.fec_entries = entries;
        self
    }

    /// The sequence number the next packet gets.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Frames `ifp` as the next packet (its sequence number, then the
    /// recovery data that fits) and returns the datagram.
    pub fn packet(&mut self, ifp: &[u8]) -> Result<Vec<u8>, UdptlError> {
        if ifp.len() >= 0x4000 {
            return Err(UdptlError::TooLong(ifp.len()));
        }
        // seq, primary, choice, count.
        let base = 2 + open_size(ifp.len()) + 2;
        let room = self
            .max_datagram
            .map_or(usize::MAX, |m| m.saturating_sub(base));
        let recovery = match self.ec {
            UdptlEc::None => Recovery::Redundancy(Vec::new()),
            UdptlEc::Redundancy => {
                let mut used = 0;
                let items = self
                    .history
                    .iter()
                    .take(self.depth)
                    .take_while(|item| {
                        used += open_size(item.len());
                        used <= room
                    })
                    .cloned()
                    .collect();
                Recovery::Redundancy(items)
            }
            UdptlEc::Fec => self.fec(room),
        };
        let bytes = Packet {
            seq: self.seq,
            primary: ifp.to_vec(),
            recovery,
        }
        .encode()?;
        self.seq = self.seq.wrapping_add(1);
        self.history.push_front(ifp.to_vec());
        let keep = self.depth.max(self.fec_span * self.fec_entries);
        self.history.truncate(keep);
        Ok(bytes)
    }

    /// FEC for the packet about to be sent, with as many parity entries
    /// as the history allows and `room` holds.
    fn fec(&self, room: usize) -> Recovery {
        let span = self.fec_span;
        let mut entries = self.fec_entries.min(self.history.len() / span);
        // fec-npackets takes 2 bytes (length and value) below 128.
        let room = room.saturating_sub(2);
        loop {
            let parity: Vec<Vec<u8>> = (0..entries)
                .map(|m| {
                    // Packet seq + m − k·entries is history[k·entries − m − 1].
                    let mut out = Vec::new();
                    for k in 1..=span {
                        if let Some(ifp) = self.history.get(k * entries - m - 1) {
                            xor_into(&mut out, ifp);
                        }
                    }
                    out
                })
                .collect();
            let size: usize = parity.iter().map(|p| open_size(p.len())).sum();
            if size <= room || entries == 0 {
                return Recovery::Fec {
                    span: u32::try_from(span).unwrap_or(u32::MAX),
                    entries: parity,
                };
            }
            entries -= 1;
        }
    }
}

/// `acc ^= data`, growing `acc` with zeros to the longer length.
pub(crate) fn xor_into(acc: &mut Vec<u8>, data: &[u8]) {
    if acc.len() < data.len() {
        acc.resize(data.len(), 0);
    }
    for (a, b) in acc.iter_mut().zip(data) {
        *a ^= b;
    }
}

/// The length of the IFP packet at the start of `buf` (T.38 Annex A, as
/// spandsp's `t38_core_rx_ifp_stream` reads it; `version` 0 has the
/// half-octet field headers of the original ASN.1). FEC recovery XORs
/// packets padded to the longest; this cuts a recovered IFP back to its
/// own length. `None`: not a complete IFP.
pub fn ifp_len(buf: &[u8], version: u8) -> Option<usize> {
    let first = *buf.first()?;
    let data_field = first & 0x80 != 0;
    let is_data = first & 0x40 != 0;
    let mut at = if first & 0x20 != 0 { 2 } else { 1 };
    if !is_data || !data_field {
        return (at <= buf.len()).then_some(at);
    }
    let count = usize::from(*buf.get(at)?);
    at += 1;
    let mut other_half = false;
    for _ in 0..count {
        let b = *buf.get(at)?;
        let present;
        if version == 0 {
            if other_half {
                present = b & 0x08 != 0;
                at += 1;
                other_half = false;
            } else {
                present = b & 0x80 != 0;
                if present {
                    at += 1;
                } else {
                    other_half = true;
                }
            }
        } else {
            present = b & 0x80 != 0;
            at += if b & 0x40 != 0 { 2 } else { 1 };
        }
        if present {
            let hi = usize::from(*buf.get(at)?);
            let lo = usize::from(*buf.get(at + 1)?);
            at += 2 + ((hi << 8) | lo) + 1;
        }
        if at > buf.len() {
            return None;
        }
    }
    if other_half {
        at += 1;
    }
    (at <= buf.len()).then_some(at)
}

#[cfg(test)]
pub(crate) mod pcap;
#[cfg(test)]
mod tests;
