//! RTP for G.711 fax audio: packets of 20 ms (160 samples, payload type 0
//! PCMU or 8 PCMA) built and read with rtp-rs.
//!
//! [`Sender`] numbers our stream (a random SSRC, random initial sequence
//! number and timestamp as RFC 3550 §5.1 asks, the timestamp 160 on per
//! packet, the marker bit on the first); [`parse`] sorts what arrives into
//! our audio, other payloads (telephone-event, comfort noise: ignored) and
//! malformed datagrams, and [`Counters`] keeps the tally.

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

/// Samples (and timestamp units, at 8 kHz) in one 20 ms packet.
pub const SAMPLES_PER_PACKET: u32 = 160;

/// The largest G.711 payload taken from the far end: 60 ms. Longer ones
/// are not a G.711 stream of ours.
pub const MAX_PAYLOAD: usize = 480;

/// Our outgoing RTP stream.
#[derive(Debug, Clone)]
pub struct Sender {
    payload_type: u8,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    first: bool,
    sent: u64,
}

impl Sender {
    /// A stream of `payload_type` with a random SSRC, sequence number and
    /// timestamp.
    pub fn new(payload_type: u8) -> Sender {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        Sender::with_start(payload_type, rng.gen(), rng.gen(), rng.gen())
    }

    /// A stream starting at the given numbers (tests).
    pub fn with_start(payload_type: u8, ssrc: u32, seq: u16, timestamp: u32) -> Sender {
        Sender {
            payload_type,
            ssrc,
            seq,
            timestamp,
            first: true,
            sent: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Packets built so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The next packet, carrying `payload` (160 octets for 20 ms); the
    /// sequence number steps by one and the timestamp by the payload's
    /// samples.
    pub fn packet(&mut self, payload: &[u8]) -> Vec<u8> {
        let packet = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .marked(self.first)
            .payload(payload)
            .build();
        // Only a payload type above 127 or more than 15 CSRCs make the
        // builder fail; neither can happen here (the session refuses such
        // a type before it starts; no CSRCs). An empty datagram otherwise.
        let packet = packet.unwrap_or_default();
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self
            .timestamp
            .wrapping_add(u32::try_from(payload.len()).unwrap_or(SAMPLES_PER_PACKET));
        self.sent += 1;
        packet
    }

    /// `packets` packets' worth of time passed without sending (the
    /// sender fell behind): the timestamp jumps over it, the sequence
    /// number does not (RFC 3550 §5.1), and the next packet is marked.
    pub fn skip(&mut self, packets: u32) {
        self.timestamp = self
            .timestamp
            .wrapping_add(packets.wrapping_mul(SAMPLES_PER_PACKET));
        self.first = true;
    }
}

/// One received datagram, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// Audio of the expected payload type.
    Audio {
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &'a [u8],
    },
    /// Valid RTP of another payload type (telephone-event, comfort noise
    /// 13 …): not ours to play.
    Other { payload_type: u8 },
    /// Not an RTP packet we can use (too short, wrong version, truncated
    /// headers, a bad padding length, an empty or oversized payload).
    Malformed(String),
}

/// Sorts a datagram received on the media socket; `payload_type` is the
/// one agreed for the audio.
pub fn parse(datagram: &[u8], payload_type: u8) -> Incoming<'_> {
    let reader = match RtpReader::new(datagram) {
        Ok(reader) => reader,
        Err(e) => return Incoming::Malformed(format!("{e:?}")),
    };
    let pt = reader.payload_type();
    if pt != payload_type {
        return Incoming::Other { payload_type: pt };
    }
    let payload = reader.payload();
    if payload.is_empty() || payload.len() > MAX_PAYLOAD {
        return Incoming::Malformed(format!("a G.711 payload of {} octets", payload.len()));
    }
    Incoming::Audio {
        ssrc: reader.ssrc(),
        seq: u16::from(reader.sequence_number()),
        timestamp: reader.timestamp(),
        marker: reader.mark(),
        payload,
    }
}

/// What arrived on a media socket, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Audio packets of the agreed payload type.
    pub audio: u64,
    /// RTP of other payload types, ignored.
    pub other: u64,
    /// Datagrams that were not usable RTP.
    pub malformed: u64,
}

impl Counters {
    /// Counts `incoming`.
    pub fn count(&mut self, incoming: &Incoming<'_>) {
        match incoming {
            Incoming::Audio { .. } => self.audio += 1,
            Incoming::Other { .. } => self.other += 1,
            Incoming::Malformed(_) => self.malformed += 1,
        }
    }

    /// Every datagram received.
    pub fn total(&self) -> u64 {
        self.audio + self.other + self.malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_sender_numbers_packets_and_marks_the_first() {
        let mut tx = Sender::with_start(8, 0x1234_5678, 0xFFFE, 0xFFFF_FF00);
        let payload = [0xD5u8; 160];
        let packets: Vec<Vec<u8>> = (0..3).map(|_| tx.packet(&payload)).collect();
        let heads: Vec<_> = packets
            .iter()
            .map(|p| match parse(p, 8) {
                Incoming::Audio {
                    ssrc,
                    seq,
                    timestamp,
                    marker,
                    payload,
                } => {
                    assert_eq!(ssrc, 0x1234_5678);
                    assert_eq!(payload, &[0xD5u8; 160][..]);
                    (seq, timestamp, marker)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        // Sequence numbers and timestamps wrap.
        assert_eq!(
            heads,
            vec![
                (0xFFFE, 0xFFFF_FF00, true),
                (0xFFFF, 0xFFFF_FFA0, false),
                (0x0000, 0x0000_0040, false),
            ]
        );
        assert_eq!(packets[0].len(), 12 + 160);
        assert_eq!(tx.sent(), 3);
        // After a pause: the timestamp jumps, the sequence does not, and
        // the next packet is marked again.
        tx.skip(5);
        match parse(&tx.packet(&payload), 8) {
            Incoming::Audio {
                seq,
                timestamp,
                marker,
                ..
            } => assert_eq!((seq, timestamp, marker), (1, 0x40 + 160 + 5 * 160, true)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rtp_senders_start_at_random_numbers() {
        let a = Sender::new(0);
        let b = Sender::new(0);
        // 2^-80 odds of a false failure.
        assert!(a.ssrc != b.ssrc || a.seq != b.seq || a.timestamp != b.timestamp);
    }

    #[test]
    fn rtp_other_payload_types_and_malformed_packets_are_sorted_out() {
        let mut counters = Counters::default();
        let mut tx = Sender::with_start(0, 1, 1, 1);
        let audio = tx.packet(&[0xFF; 160]);
        // Comfort noise (13) and telephone-event (101).
        let cn = Sender::with_start(13, 1, 2, 1).packet(&[0x40]);
        let dtmf = Sender::with_start(101, 1, 3, 1).packet(&[1, 0x8a, 0, 160]);
        let mut cases: Vec<Vec<u8>> = vec![audio.clone(), cn, dtmf];
        // Malformed: empty, short, version 1, CSRC count beyond the end,
        // an extension header beyond the end, padding longer than the
        // packet, an empty payload, an oversized one.
        let mut v1 = audio.clone();
        v1[0] = 0x40;
        let mut csrc = audio[..12].to_vec();
        csrc[0] |= 0x0F;
        let mut ext = audio[..14].to_vec();
        ext[0] |= 0x10;
        let mut pad = audio.clone();
        pad[0] |= 0x20;
        if let Some(last) = pad.last_mut() {
            *last = 0xFF;
        }
        let empty = audio[..12].to_vec();
        let big = Sender::with_start(0, 1, 1, 1).packet(&[0xFF; MAX_PAYLOAD + 1]);
        cases.extend([vec![], vec![0x80; 5], v1, csrc, ext, pad, empty, big]);
        for case in &cases {
            counters.count(&parse(case, 0));
        }
        assert_eq!(
            counters,
            Counters {
                audio: 1,
                other: 2,
                malformed: 8
            }
        );
        assert_eq!(counters.total(), 11);
        assert!(matches!(
            parse(&audio, 8),
            Incoming::Other { payload_type: 0 }
        ));
        // Arbitrary bytes never panic.
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect();
            let _ = parse(&bytes, 0);
        }
    }
}
