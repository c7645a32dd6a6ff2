//! The jitter buffer of the audio path: received RTP frames are held a
//! fixed depth, put back in order, and a missing frame is reported as a
//! gap (fed to the modem as fill-in) rather than waited for.
//!
//! Keyed by the RTP sequence number (one frame = one 20 ms packet).
//! Playout starts `depth` ticks after the first frame of a stream arrives
//! and then moves on one frame per tick whatever arrives: a frame that
//! comes after its turn is late and dropped, a second copy is a
//! duplicate and dropped, a new SSRC or a sequence jump restarts the
//! buffer. If the far end's clock runs fast the buffer would grow: frames
//! more than twice the depth ahead of playout push the oldest out.

use std::collections::VecDeque;

/// The default depth: 3 frames, 60 ms (covers ±20 ms of jitter around a
/// 20 ms tick with room to spare; 40 ms of jitter is survived).
pub const DEFAULT_DEPTH: usize = 3;

/// A sequence number more than this many frames ahead of playout (2 s)
/// is a new start of the far end's numbering, not a burst: restart.
const MAX_AHEAD: i32 = 100;

/// What one tick of playout yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// The frame due now.
    Frame(Vec<u8>),
    /// The frame due now is missing (lost, or still to come and then
    /// late): play fill-in for its 20 ms.
    Gap,
    /// No stream yet, or the buffer is filling up after a (re)start.
    Idle,
}

/// What became of a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Accepted,
    /// Its turn had passed (a copy of a frame already played is late
    /// too).
    Late,
    /// A copy of a frame held.
    Duplicate,
    /// A new stream (another SSRC, or a sequence jump): the buffer was
    /// emptied and starts again with this frame.
    Restarted,
}

/// Counts of what the buffer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub accepted: u64,
    pub late: u64,
    pub duplicates: u64,
    /// Frames played.
    pub played: u64,
    /// Ticks with a gap (frames missing at their turn).
    pub gaps: u64,
    /// Gaps with a frame played after them: frames lost (or too late)
    /// within the stream, not the silence after the far end stopped.
    pub lost: u64,
    /// Frames pushed out unplayed because the buffer ran too far ahead.
    pub overflow: u64,
    pub restarts: u64,
}

/// A fixed-depth jitter buffer for one RTP stream.
#[derive(Debug)]
pub struct JitterBuffer {
    depth: usize,
    ssrc: Option<u32>,
    /// The sequence number of `slots[0]`: the next to play.
    next: u16,
    /// Frames from `next` on; `None` where none has arrived.
    slots: VecDeque<Option<Vec<u8>>>,
    /// Ticks still to wait before playout starts after a (re)start.
    priming: usize,
    /// Whether playout has begun for this stream (what arrives before
    /// `next` is then late, not early).
    playing: bool,
    /// Gaps since the last frame played.
    trailing_gaps: u64,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer that delays playout by `depth` frames (at least 1).
    pub fn new(depth: usize) -> JitterBuffer {
        JitterBuffer {
            depth: depth.max(1),
            ssrc: None,
            next: 0,
            slots: VecDeque::new(),
            priming: 0,
            playing: false,
            trailing_gaps: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Frames held (arrived, not yet played).
    pub fn held(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        if self.ssrc.is_some() {
            self.stats.restarts += 1;
        }
        self.ssrc = Some(ssrc);
        self.next = seq;
        self.slots.clear();
        self.priming = self.depth;
        self.playing = false;
        self.trailing_gaps = 0;
    }

    /// Takes a received frame.
    pub fn push(&mut self, ssrc: u32, seq: u16, frame: Vec<u8>) -> Push {
        let mut result = Push::Accepted;
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                result = Push::Restarted;
            }
            self.restart(ssrc, seq);
        }
        let mut ahead = i32::from(seq.wrapping_sub(self.next) as i16);
        if ahead < 0 && !self.playing && -ahead < self.depth as i32 {
            // Reordered at the very start: playout has not begun, so it
            // can begin earlier.
            for _ in ahead..0 {
                self.slots.push_front(None);
            }
            self.next = seq;
            ahead = 0;
        }
        if ahead < 0 {
            // Its turn is over (or it is a copy of a played frame).
            self.stats.late += 1;
            return Push::Late;
        }
        if ahead > MAX_AHEAD {
            self.restart(ssrc, seq);
            ahead = 0;
            result = Push::Restarted;
        }
        let index = ahead as usize;
        if self.slots.len() <= index {
            self.slots.resize(index + 1, None);
        }
        if self.slots[index].is_some() {
            self.stats.duplicates += 1;
            return Push::Duplicate;
        }
        self.slots[index] = Some(frame);
        self.stats.accepted += 1;
        result
    }

    /// One 20 ms tick of playout.
    pub fn pop(&mut self) -> Tick {
        if self.ssrc.is_none() {
            return Tick::Idle;
        }
        if self.priming > 0 {
            self.priming -= 1;
            return Tick::Idle;
        }
        self.playing = true;
        // The far end runs ahead (a faster clock, or a burst after a
        // stall): bring the delay back to the depth.
        while self.slots.len() > 2 * self.depth + 1 {
            if self.slots.pop_front().flatten().is_some() {
                self.stats.overflow += 1;
            }
            self.next = self.next.wrapping_add(1);
        }
        let due = self.slots.pop_front().flatten();
        self.next = self.next.wrapping_add(1);
        match due {
            Some(frame) => {
                self.stats.played += 1;
                self.stats.lost += std::mem::take(&mut self.trailing_gaps);
                Tick::Frame(frame)
            }
            None => {
                self.stats.gaps += 1;
                self.trailing_gaps += 1;
                Tick::Gap
            }
        }
    }
}

#[cfg(test)]
mod tests;
