//! A fax over T.38: spandsp's T.38 terminal (T.30 over IFP packets) wired
//! to a UDPTL socket, paced every 20 ms, until T.30 ends or the
//! signalling stops it.
//!
//! Every tick (20 ms of real time, scheduled by deadline so the clock
//! does not drift): read every pending datagram through the UDPTL
//! [`Receiver`] into the terminal, deliver IFPs a gap held back too long,
//! advance the terminal by 160 samples, and send what it queued — each
//! IFP framed once as a UDPTL packet (one sequence number). An indicator
//! datagram is sent as many times as spandsp's repeat count asks, as
//! FreeSWITCH's mod_spandsp does (`t38_tx_packet_handler`: one
//! `udptl_build_packet`, then `count` writes of the same frame); spandsp's
//! receiver drops the repeats by sequence number, as ours does. A data
//! IFP is sent once, like Asterisk: its copies are in the redundancy (or
//! FEC) of the packets after it — spandsp follows the end of every data
//! burst with indicators, which go out repeated — and Wireshark's T.38
//! reassembly flags a repeated end-of-data datagram as malformed.
//!
//! Media comes from the stream's remote address. If the first datagrams
//! come from another port of the same host (symmetric media behind a
//! relay such as rtpengine), the session follows them and sends there.

use crate::engine::sip::media::{Control, MediaEnd, T38Stream};
use crate::engine::sip::udptl::{Encoder, Receiver, RxStats};
use crate::engine::spandsp::modem::{ModemError, Setup};
use crate::engine::spandsp::t38::T38Terminal;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Whether an IFP is a T.30 indicator (its type-of-msg choice, the
/// second bit, is 0) rather than data.
fn is_indicator(ifp: &[u8]) -> bool {
    ifp.first().is_some_and(|b| b & 0x40 == 0)
}

/// The pacing tick.
const TICK: Duration = Duration::from_millis(20);
/// Samples per tick at 8 kHz.
const TICK_SAMPLES: u32 = 160;
/// How long a gap in the IFP sequence may wait for recovery (redundancy
/// or FEC of later packets) before it is skipped and counted lost.
const GAP_WAIT: Duration = Duration::from_millis(300);
/// The largest datagram read (UDPTL datagrams are far smaller).
const MAX_DATAGRAM: usize = 2048;

/// Runs the fax of `setup` over T.38 on `socket` to `stream.remote` until
/// T.30 ends (phase E) or `control` is stopped. Pages confirmed so far go
/// to `control` after each page. Errors only when the terminal or the
/// socket cannot be set up; lost packets are counted, not errors.
pub fn run(
    socket: UdpSocket,
    stream: &T38Stream,
    setup: &Setup<'_>,
    control: &Control,
) -> Result<MediaEnd, ModemError> {
    session(socket, stream, setup, control).map(|(end, _)| end)
}

/// Where datagrams are accepted from and sent to.
struct Peer {
    remote: SocketAddr,
    /// A datagram from the far end has been accepted (no more following).
    locked: bool,
}

impl Peer {
    /// Whether a datagram from `from` is the far end's; follows a first
    /// datagram from another port of the same host.
    fn accept(&mut self, from: SocketAddr) -> bool {
        if from == self.remote {
            self.locked = true;
            return true;
        }
        if !self.locked && from.ip() == self.remote.ip() {
            tracing::debug!(%from, was = %self.remote, "UDPTL: following the far end's port");
            self.remote = from;
            self.locked = true;
            return true;
        }
        false
    }
}

/// [`run`], with the UDPTL receive statistics (recovered IFPs) for tests
/// and logs.
pub(crate) fn session(
    socket: UdpSocket,
    stream: &T38Stream,
    setup: &Setup<'_>,
    control: &Control,
) -> Result<(MediaEnd, RxStats), ModemError> {
    let params = &stream.params;
    let mut terminal = T38Terminal::new(setup, params)?;
    socket.set_nonblocking(true)?;
    let mut encoder = Encoder::new(params.ec, params.max_datagram);
    let mut receiver = Receiver::new(params.version, GAP_WAIT);
    let mut peer = Peer {
        remote: stream.remote,
        locked: false,
    };
    let (mut sent, mut received, mut foreign) = (0u64, 0u64, 0u64);
    let mut phase_d = 0;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let start = Instant::now();
    let mut tick: u32 = 0;

    let completion = loop {
        let now = Instant::now();
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if !peer.accept(from) {
                        foreign += 1;
                        continue;
                    }
                    received += 1;
                    match receiver.push(&buf[..n], now) {
                        Ok(ifps) => {
                            for (seq, ifp) in ifps {
                                terminal.rx_ifp(&ifp, seq);
                            }
                        }
                        Err(e) => tracing::debug!(%from, "UDPTL: dropped a datagram: {e}"),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors (port unreachable) surface here on Linux:
                // the far end may not listen yet. Not fatal for UDP.
                Err(e) => {
                    tracing::debug!("UDPTL receive: {e}");
                    break;
                }
            }
        }
        for (seq, ifp) in receiver.poll(now) {
            terminal.rx_ifp(&ifp, seq);
        }
        terminal.send_timeout(TICK_SAMPLES);
        for ifp in terminal.take_tx() {
            let datagram = match encoder.packet(&ifp.data) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("UDPTL: cannot send an IFP: {e}");
                    continue;
                }
            };
            let copies = if is_indicator(&ifp.data) {
                ifp.count
            } else {
                1
            };
            for _ in 0..copies {
                match socket.send_to(&datagram, peer.remote) {
                    Ok(_) => sent += 1,
                    Err(e) => tracing::debug!(remote = %peer.remote, "UDPTL send: {e}"),
                }
            }
        }
        if !control.negotiated() && terminal.negotiated() {
            control.set_negotiated();
        }
        if terminal.phase_d_count() != phase_d {
            phase_d = terminal.phase_d_count();
            let stats = terminal.stats();
            control.set_pages(stats.pages_tx.max(stats.pages_rx));
        }
        if let Some(code) = terminal.completion() {
            break Some(code);
        }
        if control.stopped() {
            terminal.terminate();
            break None;
        }
        tick = tick.saturating_add(1);
        let deadline = start + TICK * tick;
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    };

    let stats = terminal.stats();
    control.set_pages(stats.pages_tx.max(stats.pages_rx));
    let rx = receiver.stats();
    tracing::debug!(
        sent,
        received,
        foreign,
        recovered = rx.recovered,
        lost = rx.lost,
        duplicates = rx.duplicates,
        malformed = rx.malformed,
        "T.38 session ended"
    );
    Ok((
        MediaEnd {
            completion,
            stats,
            remote_ident: terminal.remote_ident(),
            packets_sent: sent,
            packets_received: received,
            packets_lost: rx.lost,
            packets_late: 0,
        },
        rx,
    ))
}

#[cfg(test)]
mod tests;
