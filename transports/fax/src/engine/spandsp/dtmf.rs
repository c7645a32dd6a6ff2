//! DTMF after the answer: an extension (`x12`, `;ext=12`) dialled as
//! tones once the far end picked up, before fax starts. [`over_the_line`]
//! plays the digits with spandsp's DTMF generator and listens at the far
//! end with its DTMF receiver, over the same perfect line as
//! [`super::modem::run_call`] (8000 samples a second, 160 at a time).

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

#[cfg(test)]
mod tests {
    #[test]
    fn the_far_end_hears_the_digits() {
        assert_eq!(super::over_the_line("12").unwrap(), "12");
        assert_eq!(super::over_the_line("4,*0#").unwrap(), "4*0#");
        assert_eq!(super::over_the_line("").unwrap(), "");
    }
}
