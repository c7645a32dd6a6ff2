//! The contract between a call's signalling and its media: the stream the
//! SDP exchange agreed ([`Stream`]: G.711 audio or T.38), the [`Control`]
//! block the signalling task shares with the media thread, what a media
//! session returns ([`MediaEnd`]), and the media ports ([`bind_port`]).
//!
//! A media session (`audio_session::run`, `t38_session::run`) is
//! synchronous and CPU-bound: the signalling runs it on a blocking thread
//! with a UDP socket it bound, and it returns when T.30 has ended or when
//! [`Control::stop`] was asked (hang-up, or a switch from audio to T.38).

use crate::engine::spandsp::modem::Stats;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Which G.711 law an audio stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    /// µ-law, RTP payload type 0 (PCMU).
    Ulaw,
    /// A-law, RTP payload type 8 (PCMA).
    Alaw,
}

impl G711 {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Ulaw => 0,
            G711::Alaw => 8,
        }
    }
}

/// An agreed G.711 audio stream (20 ms packets, 160 samples at 8 kHz).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioParams {
    pub law: G711,
    /// The payload type to send and expect (the static 0 or 8 unless the
    /// SDP mapped another number to PCMU/PCMA).
    pub payload_type: u8,
    /// Where the far end receives RTP.
    pub remote: SocketAddr,
}

/// How the training check (TCF) is done over T.38 (`T38FaxRateManagement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateManagement {
    /// The receiving gateway generates TCF locally (`localTCF`).
    LocalTcf,
    /// TCF is carried over T.38 (`transferredTCF`): the only method for
    /// UDP transports.
    #[default]
    TransferredTcf,
}

/// The error correction of UDPTL (`T38FaxUdpEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdptlEc {
    /// Primary IFPs only.
    None,
    /// Each packet repeats earlier IFPs (`t38UDPRedundancy`).
    #[default]
    Redundancy,
    /// Each packet carries XOR parity of earlier IFPs (`t38UDPFEC`).
    Fec,
}

/// The T.38 parameters of a stream, as the SDP states them (T.38 Annex D;
/// RFC 4612 lists the same names). For the far end's stream they are what
/// it accepts; for ours, what we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct T38Params {
    /// `T38FaxVersion` (absent: 0).
    pub version: u8,
    /// `T38MaxBitRate`, bits per second (e.g. 14400).
    pub max_bit_rate: u32,
    /// `T38FaxRateManagement`.
    pub rate_management: RateManagement,
    /// `T38FaxMaxBuffer`: octets the receiver buffers, if stated.
    pub max_buffer: Option<u32>,
    /// `T38FaxMaxDatagram`: the largest UDPTL datagram the receiver takes,
    /// if stated.
    pub max_datagram: Option<u32>,
    /// `T38FaxUdpEC`.
    pub ec: UdptlEc,
    /// `T38FaxFillBitRemoval`.
    pub fill_bit_removal: bool,
    /// `T38FaxTranscodingMMR`.
    pub transcoding_mmr: bool,
    /// `T38FaxTranscodingJBIG`.
    pub transcoding_jbig: bool,
}

impl Default for T38Params {
    /// What faxmta offers: version 0, 14,400 bit/s (V.17), transferred
    /// TCF, redundancy, no fill-bit removal or transcoding.
    fn default() -> Self {
        T38Params {
            version: 0,
            max_bit_rate: 14_400,
            rate_management: RateManagement::TransferredTcf,
            max_buffer: Some(1800),
            max_datagram: Some(400),
            ec: UdptlEc::Redundancy,
            fill_bit_removal: false,
            transcoding_mmr: false,
            transcoding_jbig: false,
        }
    }
}

/// An agreed T.38 stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct T38Stream {
    /// The agreed parameters (the answer's, which are within the offer).
    pub params: T38Params,
    /// Where the far end receives UDPTL.
    pub remote: SocketAddr,
}

/// What the SDP exchange agreed for the call's media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    Audio(AudioParams),
    T38(T38Stream),
}

/// Shared between the signalling task and the media thread of one call.
#[derive(Debug, Default)]
pub struct Control {
    stop: AtomicBool,
    pages: AtomicU32,
    negotiated: AtomicBool,
}

impl Control {
    /// Asks the media thread to return at its next 20 ms tick (the call
    /// was hung up, or the stream is being switched to T.38).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether [`Control::stop`] was asked; the media loop checks it every
    /// tick.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The media thread records the pages confirmed so far (sent or
    /// received) after each page, for progress and partial sends.
    pub fn set_pages(&self, pages: u32) {
        self.pages.store(pages, Ordering::SeqCst);
    }

    /// Pages confirmed so far in this call.
    pub fn pages(&self) -> u32 {
        self.pages.load(Ordering::SeqCst)
    }

    /// The media thread records that T.30 reached phase B (the machines
    /// found each other; pages follow), for progress.
    pub fn set_negotiated(&self) {
        self.negotiated.store(true, Ordering::SeqCst);
    }

    /// Whether T.30 reached phase B in this session.
    pub fn negotiated(&self) -> bool {
        self.negotiated.load(Ordering::SeqCst)
    }
}

/// How a media session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEnd {
    /// T.30's phase E completion code (`T30_ERR_OK` = 0 when the fax went
    /// through); `None` when [`Control::stop`] ended the session before
    /// T.30 did.
    pub completion: Option<i32>,
    /// The transfer statistics at the end.
    pub stats: Stats,
    /// The far end's identity (CSID when we sent, TSI when we received).
    pub remote_ident: String,
    /// Packets sent and received on the media socket.
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Lost packets (RTP frames filled in, UDPTL IFPs not recovered).
    pub packets_lost: u64,
    /// RTP frames that came after their turn to be played (a stall of
    /// the network or of this machine); UDPTL has no such count (0).
    pub packets_late: u64,
}

/// Binds a UDP socket for a call's media on `ip`, on the first free even
/// port of `ports` (RTP convention: even ports, the odd one above left to
/// RTCP). Errors when the whole range is taken.
pub fn bind_port(ip: IpAddr, ports: &RangeInclusive<u16>) -> std::io::Result<UdpSocket> {
    let start = *ports.start() + (*ports.start() % 2);
    let mut last = None;
    for port in (start..=*ports.end()).step_by(2) {
        match UdpSocket::bind(SocketAddr::new(ip, port)) {
            Ok(socket) => return Ok(socket),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no even port in {}-{}", ports.start(), ports.end()),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ports_are_even_and_a_taken_range_is_an_error() {
        let ip: IpAddr = [127, 0, 0, 1].into();
        // Find a free even pair region by asking the OS for a port.
        let probe = UdpSocket::bind((ip, 0)).unwrap();
        let base = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        let range = base..=base + 3;
        let a = bind_port(ip, &range).unwrap();
        let b = bind_port(ip, &range).unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        assert_eq!(pa % 2, 0);
        assert_eq!(pb % 2, 0);
        assert_ne!(pa, pb);
        let err = bind_port(ip, &range).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }
}
