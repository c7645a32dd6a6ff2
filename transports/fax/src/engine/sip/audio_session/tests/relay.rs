//! A bad network between two RTP endpoints, for the tests: a thread that
//! forwards datagrams both ways after a random delay (reordering them),
//! drops and duplicates some, from a fixed seed, and counts what it did.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the relay does to each datagram.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub seed: u64,
    /// Each datagram is delayed by 0..=max_delay, uniformly.
    pub max_delay: Duration,
    /// Datagrams dropped, per 10,000.
    pub drop_per_10k: u32,
    /// Datagrams sent twice, per 10,000.
    pub duplicate_per_10k: u32,
    /// Drop only datagrams this far into a run of non-silent audio in
    /// their direction: in the middle of image data, never in the
    /// V.21 control frames or the training and TCF after a silence.
    /// `None`: anywhere.
    pub drop_only_after: Option<Duration>,
}

/// Whether an RTP packet (no CSRC, no extension) carries digital silence
/// (µ-law 0xFF/0x7F, A-law 0xD5/0x55: what an idle terminal sends).
fn silent(packet: &[u8]) -> bool {
    packet.len() > 12
        && packet[12..]
            .iter()
            .all(|b| matches!(b, 0xFF | 0x7F | 0xD5 | 0x55))
}

/// What the relay did.
#[derive(Debug, Clone, Copy, Default)]
pub struct RelayStats {
    pub received: u64,
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
    /// Datagrams forwarded after one with a later RTP sequence number.
    pub reordered: u64,
    /// Of `dropped`, those in the direction caller to answerer.
    pub dropped_to_answerer: u64,
}

pub struct Relay {
    /// The caller sends here.
    pub caller_side: SocketAddr,
    /// The answerer sends here.
    pub answerer_side: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<RelayStats>,
}

impl Relay {
    pub fn start(caller: SocketAddr, answerer: SocketAddr, imp: Impairment) -> Relay {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        Relay {
            caller_side: a.local_addr().unwrap(),
            answerer_side: b.local_addr().unwrap(),
            stop: stop.clone(),
            thread: std::thread::spawn(move || forward(a, b, caller, answerer, imp, &stop)),
        }
    }

    pub fn stop(self) -> RelayStats {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

struct Pending {
    due: Instant,
    /// To the answerer (through `b`), or to the caller (through `a`).
    to_answerer: bool,
    bytes: Vec<u8>,
}

fn forward(
    a: UdpSocket,
    b: UdpSocket,
    caller: SocketAddr,
    answerer: SocketAddr,
    imp: Impairment,
    stop: &AtomicBool,
) -> RelayStats {
    let mut stats = RelayStats::default();
    let mut rng = imp.seed | 1;
    let mut next = move |n: u64| {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    };
    let max_delay_us = imp.max_delay.as_micros() as u64;
    let mut pending: Vec<Pending> = Vec::new();
    // The last sequence number forwarded, per direction.
    let mut last: [Option<u16>; 2] = [None, None];
    // Since when each direction carries sound without a break.
    let mut sound_since: [Option<Instant>; 2] = [None, None];
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        let mut idle = true;
        for (socket, to_answerer) in [(&a, true), (&b, false)] {
            while let Ok((len, _)) = socket.recv_from(&mut buf) {
                idle = false;
                stats.received += 1;
                let dir = usize::from(!to_answerer);
                let now = Instant::now();
                if silent(&buf[..len]) {
                    sound_since[dir] = None;
                } else if sound_since[dir].is_none() {
                    sound_since[dir] = Some(now);
                }
                let may_drop = match imp.drop_only_after {
                    None => true,
                    Some(after) => sound_since[dir].is_some_and(|t| now - t >= after),
                };
                if may_drop && next(10_000) < u64::from(imp.drop_per_10k) {
                    stats.dropped += 1;
                    if to_answerer {
                        stats.dropped_to_answerer += 1;
                    }
                    continue;
                }
                let copies = if next(10_000) < u64::from(imp.duplicate_per_10k) {
                    stats.duplicated += 1;
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let delay = Duration::from_micros(next(max_delay_us + 1));
                    pending.push(Pending {
                        due: Instant::now() + delay,
                        to_answerer,
                        bytes: buf[..len].to_vec(),
                    });
                }
            }
        }
        let now = Instant::now();
        pending.sort_by_key(|p| p.due);
        let ready = pending.iter().take_while(|p| p.due <= now).count();
        for p in pending.drain(..ready) {
            idle = false;
            let (socket, to, dir) = if p.to_answerer {
                (&b, answerer, 0)
            } else {
                (&a, caller, 1)
            };
            if p.bytes.len() >= 4 {
                let seq = u16::from_be_bytes([p.bytes[2], p.bytes[3]]);
                if last[dir].is_some_and(|l| (seq.wrapping_sub(l) as i16) < 0) {
                    stats.reordered += 1;
                } else {
                    last[dir] = Some(seq);
                }
            }
            if socket.send_to(&p.bytes, to).is_ok() {
                stats.forwarded += 1;
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    stats
}
