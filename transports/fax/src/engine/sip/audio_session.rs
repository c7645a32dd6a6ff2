//! A fax over G.711: spandsp's audio fax terminal (V.21/V.27ter/V.29/V.17
//! modems + T.30) wired to an RTP socket through the jitter buffer, paced
//! every 20 ms, until T.30 ends or the signalling stops it (hang-up, or a
//! switch to T.38 by re-INVITE).
//!
//! Each tick (20 ms of the real clock, scheduled from the start so the
//! pace does not drift): the terminal makes 160 samples, they go out
//! G.711-encoded in one RTP packet (silence too: the terminal transmits
//! on idle, so the far end always has a stream); every datagram waiting
//! on the socket goes into the jitter buffer; one frame comes out,
//! decoded into the terminal's receiver — or, for a frame that is
//! missing, a concealment ([`Conceal`]). Symmetric RTP: when our audio
//! arrives from another address than the SDP said, we send there from
//! then on (a far end behind NAT, as rtpengine and most SBCs do it). An
//! extension can be dialled as DTMF first ([`Options::dtmf`]).
//!
//! What the path survives (back-to-back tests over loopback, 2 pages,
//! V.17 with ECM): jitter up to 40 ms with reordering and duplicates;
//! 2% loss inside image data (ECM asks again); random loss anywhere at
//! 0.1–0.2%. At 0.5% anywhere about half the calls fail in spandsp
//! 0.0.6's T.30, not in the media: a lost MCF makes the sender repeat
//! PPS, which the receiver calls unexpected and hangs up on. T.38 is the
//! answer for lossy paths.

use super::jitter::{JitterBuffer, Tick, DEFAULT_DEPTH};
use super::media::{AudioParams, Control, MediaEnd, G711};
use super::rtp::{self, Counters, Incoming};
use crate::engine::spandsp::dtmf::Tones;
use crate::engine::spandsp::g711::{Codec, Law};
use crate::engine::spandsp::modem::{Job, ModemError, Setup, Terminal};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Samples in one tick and one RTP packet.
const SAMPLES: usize = 160;
/// One tick.
const TICK: Duration = Duration::from_millis(20);
/// Behind the schedule by more than this many ticks (the thread was
/// stalled), the schedule restarts from now rather than sending the
/// missed packets in a burst.
const MAX_BEHIND_TICKS: u32 = 5;
/// After T.30's phase E, ticks still sent and heard (200 ms): the last
/// frame (DCN) is out on the wire before the session returns.
const TAIL_TICKS: u32 = 10;
/// Large enough for any datagram.
const DATAGRAM: usize = 2048;

/// How a session runs; [`run`] takes the defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// Frames of delay in the jitter buffer (20 ms each).
    pub jitter_depth: usize,
    /// What the terminal hears for a frame that never came.
    pub conceal: Conceal,
    /// Digits to play as DTMF before the fax starts (an extension behind
    /// a PBX: `SendRequest::extension`, `,` a 2 s pause). The fax
    /// terminal starts (CNG, T.30's timers) once they are played; what
    /// arrives meanwhile is not heard.
    pub dtmf: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jitter_depth: DEFAULT_DEPTH,
            conceal: Conceal::Repeat,
            dtmf: None,
        }
    }
}

/// How a lost frame is concealed from the modem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conceal {
    /// spandsp's `fax_rx_fillin`: the modem steps over the gap, keeping
    /// its carrier phase, but its training and symbol counts miss the
    /// gap's symbols: a loss during a training sequence fails it, and
    /// spandsp 0.0.6 does not recover from a failed TCF (it stays in
    /// the TCF state and calls the repeated DCS unexpected).
    FillIn,
    /// The last frame heard, played again (up to [`MAX_REPEATS`] in a
    /// row, then fill-in, so a far end that went away still ends by
    /// T.30's timers). 20 ms holds whole carrier cycles and symbols of
    /// every fax modem (V.17/V.27ter 1800 Hz, V.29 1700 Hz, 2400 or 1600
    /// baud; V.21 1650/1850 Hz at 300 baud), so the repeat is phase
    /// continuous: the receiver sees a burst of wrong symbols, not a
    /// break — what ECM repairs.
    Repeat,
}

/// Lost frames in a row concealed by repeating the last one.
pub const MAX_REPEATS: u32 = 3;

/// Runs a fax over G.711 RTP on `socket` (bound by the signalling; its
/// local port is the one in our SDP) to `audio.remote`, with the default
/// [`Options`]. Returns when T.30 has ended (`completion: Some(code)`) or
/// within a tick of [`Control::stop`] (`completion: None`). Blocks: run it
/// on a blocking thread.
pub fn run(
    socket: UdpSocket,
    audio: &AudioParams,
    setup: &Setup<'_>,
    control: &Control,
) -> Result<MediaEnd, ModemError> {
    run_with(socket, audio, setup, control, &Options::default())
}

/// [`run`] with other [`Options`].
pub fn run_with(
    socket: UdpSocket,
    audio: &AudioParams,
    setup: &Setup<'_>,
    control: &Control,
    options: &Options,
) -> Result<MediaEnd, ModemError> {
    let law = match audio.law {
        G711::Ulaw => Law::Ulaw,
        G711::Alaw => Law::Alaw,
    };
    if audio.payload_type > 127 {
        return Err(ModemError::Media {
            what: "RTP payload type",
            detail: format!("{} is not a 7-bit payload type", audio.payload_type),
        });
    }
    let codec = |_| ModemError::Media {
        what: "G.711 codec",
        detail: "g711_init returned NULL".into(),
    };
    socket
        .set_nonblocking(true)
        .map_err(|e| ModemError::Media {
            what: "RTP socket",
            detail: format!("cannot make it non-blocking: {e}"),
        })?;
    let tones = match options.dtmf.as_deref() {
        Some(digits) => Some(Tones::new(digits).map_err(|detail| ModemError::Media {
            what: "DTMF",
            detail,
        })?),
        None => None,
    };
    let mut session = Session {
        terminal: Terminal::new(setup)?,
        tones,
        encoder: Codec::new(law).map_err(codec)?,
        decoder: Codec::new(law).map_err(codec)?,
        socket,
        payload_type: audio.payload_type,
        remote: audio.remote,
        sender: rtp::Sender::new(audio.payload_type),
        jitter: JitterBuffer::new(options.jitter_depth),
        counters: Counters::default(),
        send_errors: 0,
        odd_frames: 0,
        sending: matches!(setup.job, Job::Send { .. }),
        phase_d_seen: 0,
        conceal: options.conceal,
        last_heard: None,
        gaps_in_a_row: 0,
    };
    tracing::debug!(
        remote = %audio.remote,
        law = ?audio.law,
        payload_type = audio.payload_type,
        ssrc = session.sender.ssrc(),
        "audio fax session starts"
    );
    let completion = session.run_ticks(control);
    Ok(session.end(completion))
}

/// The state of one running session.
struct Session {
    terminal: Terminal,
    /// DTMF still to play before the fax starts.
    tones: Option<Tones>,
    encoder: Codec,
    decoder: Codec,
    socket: UdpSocket,
    payload_type: u8,
    /// Where our RTP goes: the SDP's address until audio arrives from
    /// another.
    remote: SocketAddr,
    sender: rtp::Sender,
    jitter: JitterBuffer,
    counters: Counters,
    send_errors: u64,
    /// Audio frames of another length than 20 ms (played as gaps).
    odd_frames: u64,
    sending: bool,
    phase_d_seen: u32,
    conceal: Conceal,
    /// The last frame played, decoded (for [`Conceal::Repeat`]).
    last_heard: Option<[i16; SAMPLES]>,
    /// Gaps in a row so far.
    gaps_in_a_row: u32,
}

impl Session {
    /// Ticks until phase E (plus the tail) or a stop; returns the
    /// completion code, `None` when stopped first.
    fn run_ticks(&mut self, control: &Control) -> Option<i32> {
        let mut start = Instant::now();
        let mut tick: u32 = 0;
        let mut ended_at: Option<u32> = None;
        loop {
            if control.stopped() {
                return self.terminal.completion();
            }
            self.transmit();
            self.receive();
            self.play();
            self.progress(control);
            if ended_at.is_none() && self.terminal.completion().is_some() {
                ended_at = Some(tick);
            }
            if ended_at.is_some_and(|at| tick - at >= TAIL_TICKS) {
                return self.terminal.completion();
            }
            tick += 1;
            let due = start + TICK * tick;
            let now = Instant::now();
            if let Some(wait) = due.checked_duration_since(now) {
                std::thread::sleep(wait);
            } else if now - due > TICK * MAX_BEHIND_TICKS {
                // Stalled: what was missed is not sent late; the stream's
                // timestamps jump over the pause.
                let missed =
                    u32::try_from((now - due).as_millis() / TICK.as_millis()).unwrap_or(u32::MAX);
                tracing::debug!(missed, "audio fax session fell behind; schedule restarted");
                self.sender.skip(missed);
                start = now;
                tick = 0;
                ended_at = ended_at.map(|_| 0);
            }
        }
    }

    /// One packet of what the terminal says (or its idle silence).
    fn transmit(&mut self) {
        let mut samples = [0i16; SAMPLES];
        let dialling = match &mut self.tones {
            Some(tones) => tones.block(&mut samples),
            None => false,
        };
        if !dialling {
            self.tones = None;
            let n = self.terminal.tx(&mut samples);
            samples[n..].fill(0);
        }
        let mut octets = [0u8; SAMPLES];
        self.encoder.encode(&samples, &mut octets);
        let packet = self.sender.packet(&octets);
        if let Err(e) = self.socket.send_to(&packet, self.remote) {
            // Often an ICMP port unreachable for an earlier packet (the
            // far end not listening yet): not fatal; T.30's timers end a
            // call that gets nowhere.
            self.send_errors += 1;
            if self.send_errors == 1 {
                tracing::debug!(remote = %self.remote, "RTP send failed: {e}");
            }
        }
    }

    /// Every datagram waiting on the socket, into the jitter buffer.
    fn receive(&mut self) {
        let mut buf = [0u8; DATAGRAM];
        loop {
            let (len, from) = match self.socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // An ICMP error for something we sent, reported here on
                // Linux; the next datagram may be fine.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!("RTP receive failed: {e}");
                    return;
                }
            };
            let incoming = rtp::parse(&buf[..len.min(buf.len())], self.payload_type);
            self.counters.count(&incoming);
            match incoming {
                Incoming::Audio {
                    ssrc, seq, payload, ..
                } => {
                    if from != self.remote {
                        tracing::debug!(
                            from = %from,
                            was = %self.remote,
                            "RTP arrives from another address; sending there (symmetric RTP)"
                        );
                        self.remote = from;
                    }
                    self.jitter.push(ssrc, seq, payload.to_vec());
                }
                Incoming::Other { payload_type } => {
                    tracing::trace!(payload_type, "RTP of another payload type ignored");
                }
                Incoming::Malformed(why) => {
                    if self.counters.malformed == 1 {
                        tracing::debug!(from = %from, "malformed RTP dropped: {why}");
                    }
                }
            }
        }
    }

    /// One tick of the far end's audio into the terminal.
    fn play(&mut self) {
        let mut samples = [0i16; SAMPLES];
        let tick = self.jitter.pop();
        if self.tones.is_some() {
            // Still dialling: the fax terminal has not started.
            return;
        }
        if tick == Tick::Gap {
            self.gaps_in_a_row += 1;
        } else {
            self.gaps_in_a_row = 0;
        }
        match tick {
            Tick::Frame(frame) if frame.len() == SAMPLES => {
                self.decoder.decode(&frame, &mut samples);
                self.last_heard = Some(samples);
                self.terminal.rx(&mut samples);
            }
            Tick::Frame(frame) => {
                // Another packet time than the 20 ms of our SDP: the
                // buffer plays one packet a tick, so it cannot be used.
                self.odd_frames += 1;
                if self.odd_frames == 1 {
                    tracing::warn!(
                        octets = frame.len(),
                        "G.711 packets of another length than 20 ms are not played"
                    );
                }
                self.terminal.fill_in(SAMPLES);
            }
            Tick::Gap => match (self.conceal, self.last_heard) {
                (Conceal::Repeat, Some(mut last)) if self.gaps_in_a_row <= MAX_REPEATS => {
                    self.terminal.rx(&mut last)
                }
                _ => self.terminal.fill_in(SAMPLES),
            },
            // Nothing heard yet: silence.
            Tick::Idle => self.terminal.rx(&mut samples),
        }
    }

    /// Phase B reached, and after each page's post-page exchange (phase
    /// D) the pages so far, into the control block.
    fn progress(&mut self, control: &Control) {
        if !control.negotiated() && self.terminal.negotiated() {
            control.set_negotiated();
        }
        let seen = self.terminal.phase_d_count();
        if seen != self.phase_d_seen {
            self.phase_d_seen = seen;
            let stats = self.terminal.stats();
            control.set_pages(if self.sending {
                stats.pages_tx
            } else {
                stats.pages_rx
            });
        }
    }

    fn end(self, completion: Option<i32>) -> MediaEnd {
        let jitter = self.jitter.stats();
        tracing::debug!(
            ?completion,
            sent = self.sender.sent(),
            send_errors = self.send_errors,
            received = ?self.counters,
            jitter = ?jitter,
            odd_frames = self.odd_frames,
            "audio fax session ends"
        );
        MediaEnd {
            completion,
            stats: self.terminal.stats(),
            remote_ident: self.terminal.remote_ident(),
            packets_sent: self.sender.sent() - self.send_errors,
            packets_received: self.counters.total(),
            packets_lost: jitter.lost,
            packets_late: jitter.late,
        }
    }
}

#[cfg(test)]
mod tests;
