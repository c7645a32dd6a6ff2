//! DTMF after the answer: an extension (`x12`, `;ext=12`) dialled as
//! tones once the far end picked up, before fax starts. [`over_the_line`]
//! plays the digits with spandsp's DTMF generator and listens at the far
//! end with its DTMF receiver, over the same perfect line as
//! [`super::modem::run_call`] (8000 samples a second, 160 at a time);
//! [`Tones`] plays them block by block into a real audio stream (the SIP
//! engine's RTP) and [`Detector`] is a far end's receiver for tests.

use super::ffi;
use std::ffi::{c_int, CString};

/// Samples per block (20 ms), as in the modem.
const BLOCK: usize = 160;
/// A `,` in the digits: two seconds of silence, as a modem's pause.
const PAUSE_SAMPLES: usize = 2 * 8000;
/// Silence after the last tone, so the receiver reports it.
const TAIL_SAMPLES: usize = 800;

/// Owns a generator and a receiver; both freed on every path.
struct Pair {
    tx: *mut ffi::dtmf_tx_state_t,
    rx: *mut ffi::dtmf_rx_state_t,
}

impl Drop for Pair {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or came from its `_init(NULL…)`,
        // and is freed once, here.
        unsafe {
            if !self.tx.is_null() {
                ffi::dtmf_tx_free(self.tx);
            }
            if !self.rx.is_null() {
                ffi::dtmf_rx_free(self.rx);
            }
        }
    }
}

/// Plays `digits` (`0-9`, `*`, `#`, `A-D`; `,` a pause) as DTMF and
/// returns what the far end's receiver heard (pauses are not heard).
pub fn over_the_line(digits: &str) -> Result<String, String> {
    // SAFETY: NULL asks spandsp to allocate; checked below.
    let pair = unsafe {
        Pair {
            tx: ffi::dtmf_tx_init(std::ptr::null_mut()),
            rx: ffi::dtmf_rx_init(std::ptr::null_mut(), None, std::ptr::null_mut()),
        }
    };
    if pair.tx.is_null() || pair.rx.is_null() {
        return Err("spandsp: cannot set up the DTMF generator".into());
    }
    let mut block = [0i16; BLOCK];
    let mut heard = String::new();
    let collect = |pair: &Pair, heard: &mut String| {
        let mut buf = [0u8; 64];
        // SAFETY: `buf` holds 64 bytes; dtmf_rx_get writes at most
        // `max` digits and a NUL.
        let n =
            unsafe { ffi::dtmf_rx_get(pair.rx, buf.as_mut_ptr().cast(), (buf.len() - 1) as c_int) };
        heard.extend(buf[..n.min(buf.len() - 1)].iter().map(|&b| b as char));
    };
    for (i, group) in digits.split(',').enumerate() {
        if i > 0 {
            let silence = [0i16; BLOCK];
            for _ in 0..PAUSE_SAMPLES / BLOCK {
                // SAFETY: `silence` holds BLOCK samples.
                unsafe { ffi::dtmf_rx(pair.rx, silence.as_ptr(), BLOCK as c_int) };
            }
        }
        if group.is_empty() {
            continue;
        }
        let text = CString::new(group).map_err(|_| format!("digits {group:?}: a NUL byte"))?;
        // SAFETY: `text` is NUL-terminated; -1: up to the NUL.
        let queued = unsafe { ffi::dtmf_tx_put(pair.tx, text.as_ptr(), -1) };
        if queued != 0 {
            return Err(format!("spandsp: cannot queue the digits {group:?}"));
        }
        loop {
            // SAFETY: `block` holds BLOCK samples.
            let n = unsafe { ffi::dtmf_tx(pair.tx, block.as_mut_ptr(), BLOCK as c_int) };
            if n <= 0 {
                break;
            }
            // SAFETY: the first `n` samples were written.
            unsafe { ffi::dtmf_rx(pair.rx, block.as_ptr(), n) };
            collect(&pair, &mut heard);
        }
    }
    let silence = [0i16; BLOCK];
    for _ in 0..TAIL_SAMPLES / BLOCK {
        // SAFETY: `silence` holds BLOCK samples.
        unsafe { ffi::dtmf_rx(pair.rx, silence.as_ptr(), BLOCK as c_int) };
    }
    collect(&pair, &mut heard);
    Ok(heard)
}

/// Digits played as DTMF a block at a time, for a real audio stream (the
/// SIP engine's RTP): the same tones, pauses and tail as
/// [`over_the_line`].
pub struct Tones {
    tx: *mut ffi::dtmf_tx_state_t,
    /// The digit groups still to queue (split at `,`).
    groups: std::collections::VecDeque<CString>,
    /// Samples of silence still to play before the next group (a pause)
    /// or at the end (the tail).
    silence: usize,
    /// Whether the tail has been played.
    done: bool,
}

impl Tones {
    /// Tones for `digits` (`0-9`, `*`, `#`, `A-D`; `,` a 2 s pause).
    pub fn new(digits: &str) -> Result<Tones, String> {
        let groups = digits
            .split(',')
            .map(|g| CString::new(g).map_err(|_| format!("digits {g:?}: a NUL byte")))
            .collect::<Result<_, _>>()?;
        // SAFETY: NULL asks spandsp to allocate; checked below.
        let tx = unsafe { ffi::dtmf_tx_init(std::ptr::null_mut()) };
        if tx.is_null() {
            return Err("spandsp: cannot set up the DTMF generator".into());
        }
        let mut tones = Tones {
            tx,
            groups,
            silence: 0,
            done: false,
        };
        tones.queue_next(false)?;
        Ok(tones)
    }

    /// Queues the next group (after a 2 s pause if `pause`); at the end,
    /// the tail of silence.
    fn queue_next(&mut self, pause: bool) -> Result<(), String> {
        match self.groups.pop_front() {
            Some(group) => {
                if pause {
                    self.silence = PAUSE_SAMPLES;
                }
                // SAFETY: `tx` is live; `group` is NUL-terminated; -1: up
                // to the NUL.
                if unsafe { ffi::dtmf_tx_put(self.tx, group.as_ptr(), -1) } != 0 {
                    return Err(format!("spandsp: cannot queue the digits {group:?}"));
                }
                Ok(())
            }
            None => {
                self.silence = TAIL_SAMPLES;
                self.done = true;
                Ok(())
            }
        }
    }

    /// The next block of line audio; `false` once everything (tail
    /// included) has been played.
    pub fn block(&mut self, out: &mut [i16; BLOCK]) -> bool {
        out.fill(0);
        loop {
            if self.silence > 0 {
                self.silence = self.silence.saturating_sub(BLOCK);
                return true;
            }
            if self.done {
                return false;
            }
            // SAFETY: `tx` is live; `out` holds BLOCK samples.
            let n = unsafe { ffi::dtmf_tx(self.tx, out.as_mut_ptr(), BLOCK as c_int) };
            if n > 0 {
                return true;
            }
            // This group is played: pause before the next, or the tail.
            if self.queue_next(true).is_err() {
                self.done = true;
            }
        }
    }
}

impl Drop for Tones {
    fn drop(&mut self) {
        // SAFETY: `tx` came from dtmf_tx_init and is freed once, here.
        unsafe { ffi::dtmf_tx_free(self.tx) };
    }
}

/// spandsp's DTMF receiver, for tests of what a far end hears.
pub struct Detector {
    rx: *mut ffi::dtmf_rx_state_t,
}

impl Detector {
    pub fn new() -> Result<Detector, String> {
        // SAFETY: NULL asks spandsp to allocate; checked below.
        let rx = unsafe { ffi::dtmf_rx_init(std::ptr::null_mut(), None, std::ptr::null_mut()) };
        if rx.is_null() {
            return Err("spandsp: cannot set up the DTMF receiver".into());
        }
        Ok(Detector { rx })
    }

    /// Hears `samples`; returns the digits recognised so far and not
    /// returned before.
    pub fn hear(&mut self, samples: &[i16]) -> String {
        for chunk in samples.chunks(BLOCK) {
            // SAFETY: `rx` is live; `chunk` holds `len` samples.
            unsafe { ffi::dtmf_rx(self.rx, chunk.as_ptr(), chunk.len() as c_int) };
        }
        let mut buf = [0u8; 64];
        // SAFETY: `buf` holds 64 bytes; dtmf_rx_get writes at most `max`
        // digits and a NUL.
        let n =
            unsafe { ffi::dtmf_rx_get(self.rx, buf.as_mut_ptr().cast(), (buf.len() - 1) as c_int) };
        buf[..n.min(buf.len() - 1)]
            .iter()
            .map(|&b| b as char)
            .collect()
    }
}

impl Drop for Detector {
    fn drop(&mut self) {
        // SAFETY: `rx` came from dtmf_rx_init and is freed once, here.
        unsafe { ffi::dtmf_rx_free(self.rx) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_far_end_hears_the_digits() {
        assert_eq!(super::over_the_line("12").unwrap(), "12");
        assert_eq!(super::over_the_line("4,*0#").unwrap(), "4*0#");
        assert_eq!(super::over_the_line("").unwrap(), "");
    }

    #[test]
    fn tones_block_by_block_are_heard_with_their_pauses() {
        let mut tones = super::Tones::new("4,*0#").unwrap();
        let mut rx = super::Detector::new().unwrap();
        let mut block = [0i16; super::BLOCK];
        let (mut heard, mut blocks) = (String::new(), 0usize);
        while tones.block(&mut block) {
            heard.push_str(&rx.hear(&block));
            blocks += 1;
            assert!(blocks < 1000, "the tones never end");
        }
        assert_eq!(heard, "4*0#");
        // Four digits of ~100 ms with gaps, a 2 s pause, the tail.
        let seconds = blocks as f64 * super::BLOCK as f64 / 8000.0;
        assert!((2.5..4.0).contains(&seconds), "{seconds} s");
        // Nothing more after the end.
        assert!(!tones.block(&mut block));
        assert!(super::Tones::new("1\0#").is_err());
    }
}
