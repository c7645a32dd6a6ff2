//! The safe face of spandsp's T.38 terminal: a [`T38Terminal`] is one fax
//! machine whose T.30 talks in T.38 IFP packets instead of modem audio —
//! the twin of [`super::modem::Terminal`] (same [`Setup`], same phase D/E
//! bookkeeping, same statistics).
//!
//! The terminal never touches the network: every IFP packet it wants to
//! send is pushed into a queue ([`T38Terminal::take_tx`]) with spandsp's
//! repeat count, and received IFPs are handed in, in sequence order, by
//! [`T38Terminal::rx_ifp`]. The UDPTL side (`engine::sip::udptl`,
//! `engine::sip::t38_session`) does the framing, pacing and recovery.
//!
//! Ownership: the terminal owns its `t38_terminal_state_t` and frees it in
//! `Drop`; the callbacks' user data (the phase D/E [`Events`] and the
//! transmit queue) are heap allocations it owns too and frees after the C
//! state. Every `unsafe` of the T.38 path is in this file and in
//! [`super::ffi`].

use super::ffi;
use super::log;
use super::modem::{configure_t30, t30_remote_ident, t30_stats, Events, T30Strings};
use super::modem::{ModemError, Setup, Stats};
use crate::engine::sip::media::{RateManagement, T38Params};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

/// Bytes of UDPTL framing around a primary IFP in the worst case we send
/// alone (sequence number 2, open-type length 2, error-recovery choice 1,
/// an empty redundancy count 1): an IFP may take the rest of the far
/// end's `T38FaxMaxDatagram`.
pub const UDPTL_OVERHEAD: u32 = 6;

/// One IFP packet the terminal wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ifp {
    /// The IFP packet, as T.38 Annex A encodes it.
    pub data: Vec<u8>,
    /// How many times spandsp asks for it to be sent (its per-category
    /// repeat count; at least 1).
    pub count: u32,
}

/// The transmit queue the C callback fills.
#[derive(Default)]
struct TxQueue {
    packets: RefCell<VecDeque<Ifp>>,
}

/// One spandsp T.38 terminal.
pub struct T38Terminal {
    t38: NonNull<ffi::t38_terminal_state_t>,
    t30: NonNull<ffi::t30_state_t>,
    core: NonNull<ffi::t38_core_state_t>,
    /// From `Box::leak`; freed in `Drop` after `t38`.
    events: NonNull<Events>,
    /// From `Box::leak`; freed in `Drop` after `t38`.
    tx: NonNull<TxQueue>,
}

/// The modems T.30 may use for the image at most `bit_rate` bit/s
/// (`T38MaxBitRate`): V.17 from 14,400, V.29 from 9,600, V.27ter always.
fn supported_modems(bit_rate: u32) -> c_int {
    let mut modems = ffi::T30_SUPPORT_V27TER;
    if bit_rate >= 9600 {
        modems |= ffi::T30_SUPPORT_V29;
    }
    if bit_rate >= 14_400 {
        modems |= ffi::T30_SUPPORT_V17;
    }
    modems
}

fn int(v: u32) -> c_int {
    c_int::try_from(v).unwrap_or(c_int::MAX)
}

impl T38Terminal {
    /// Makes a terminal for `setup` (T.30 as the audio terminal has it:
    /// ECM on, MH/MR/MMR, received pages as MMR) speaking T.38 with the
    /// agreed `params`: version, fastest image rate (and the modems it
    /// allows), rate management, fill-bit removal, the far end's buffer,
    /// and its datagram size less the UDPTL framing.
    pub fn new(setup: &Setup<'_>, params: &T38Params) -> Result<T38Terminal, ModemError> {
        let strings = T30Strings::new(setup)?;
        let tx = NonNull::from(Box::leak(Box::<TxQueue>::default()));
        // SAFETY: t38_terminal_init(NULL, …) allocates and initialises a
        // new context or returns NULL. The handler is a plain function; its
        // user data is `tx`, a heap allocation freed only after the context.
        let raw = unsafe {
            ffi::t38_terminal_init(
                std::ptr::null_mut(),
                c_int::from(setup.calling),
                Some(on_tx_packet),
                tx.as_ptr().cast::<c_void>(),
            )
        };
        let Some(t38) = NonNull::new(raw) else {
            // SAFETY: `tx` came from Box::leak and nothing else holds it.
            drop(unsafe { Box::from_raw(tx.as_ptr()) });
            return Err(ModemError::Init);
        };
        // SAFETY: `t38` is live; both states live inside it.
        let (t30, core) = unsafe {
            (
                NonNull::new(ffi::t38_terminal_get_t30_state(t38.as_ptr())),
                NonNull::new(ffi::t38_terminal_get_t38_core_state(t38.as_ptr())),
            )
        };
        let (Some(t30), Some(core)) = (t30, core) else {
            // SAFETY: `t38` came from t38_terminal_init and is freed once;
            // then `tx`, which no callback can reach any more.
            unsafe {
                ffi::t38_terminal_free(t38.as_ptr());
                drop(Box::from_raw(tx.as_ptr()));
            }
            return Err(ModemError::Init);
        };
        // From here on `Drop` frees everything on every path.
        let terminal = T38Terminal {
            t38,
            t30,
            core,
            events: NonNull::from(Box::leak(Box::<Events>::default())),
            tx,
        };
        let events = terminal.events.as_ptr().cast::<c_void>();
        let (t, c) = (t38.as_ptr(), core.as_ptr());
        let method = match params.rate_management {
            RateManagement::LocalTcf => ffi::T38_DATA_RATE_MANAGEMENT_LOCAL_TCF,
            RateManagement::TransferredTcf => ffi::T38_DATA_RATE_MANAGEMENT_TRANSFERRED_TCF,
        };

        // SAFETY: `t`, `c` and `t30` are the live context and its parts;
        // the log tag is 'static; `events` outlives the context (freed in
        // Drop after t38_terminal_free). An early return drops `terminal`.
        unsafe {
            log::route(ffi::t38_terminal_get_logging_state(t), setup.tag);
            log::route(ffi::t38_core_get_logging_state(c), setup.tag);
            ffi::t38_set_t38_version(c, c_int::from(params.version));
            ffi::t38_set_fastest_image_data_rate(c, int(params.max_bit_rate));
            ffi::t38_set_data_rate_management_method(c, method);
            ffi::t38_set_data_transport_protocol(c, ffi::T38_TRANSPORT_UDPTL);
            ffi::t38_set_fill_bit_removal(c, c_int::from(params.fill_bit_removal));
            ffi::t38_terminal_set_fill_bit_removal(t, c_int::from(params.fill_bit_removal));
            ffi::t38_set_mmr_transcoding(c, c_int::from(params.transcoding_mmr));
            ffi::t38_set_jbig_transcoding(c, c_int::from(params.transcoding_jbig));
            if let Some(buffer) = params.max_buffer {
                ffi::t38_set_max_buffer_size(c, int(buffer));
            }
            if let Some(datagram) = params.max_datagram {
                let ifp = datagram.saturating_sub(UDPTL_OVERHEAD).max(1);
                ffi::t38_set_max_datagram_size(c, int(ifp));
            }
            configure_t30(terminal.t30.as_ptr(), setup, &strings, events)?;
            ffi::t30_set_supported_modems(
                terminal.t30.as_ptr(),
                supported_modems(params.max_bit_rate),
            );
        }
        Ok(terminal)
    }

    /// Advances the terminal's clock by `samples` (8000 a second; 160 per
    /// 20 ms tick): timers run and due IFPs are queued.
    pub fn send_timeout(&mut self, samples: u32) {
        // SAFETY: `t38` is live; the tx callback only touches `tx`.
        unsafe { ffi::t38_terminal_send_timeout(self.t38.as_ptr(), int(samples)) };
    }

    /// Hands a received IFP to the terminal; `seq` is its UDPTL sequence
    /// number. IFPs must come in sequence order, each once (spandsp counts
    /// a jump in `seq` as lost packets). A malformed IFP is logged by
    /// spandsp and ignored.
    pub fn rx_ifp(&mut self, ifp: &[u8], seq: u16) {
        let Ok(len) = c_int::try_from(ifp.len()) else {
            return;
        };
        // SAFETY: `core` is live; spandsp reads exactly `len` bytes of the
        // buffer during the call. Replies go to the tx callback.
        unsafe { ffi::t38_core_rx_ifp_packet(self.core.as_ptr(), ifp.as_ptr(), len, seq) };
    }

    fn tx_queue(&self) -> &TxQueue {
        // SAFETY: `tx` came from Box::leak and is freed only in Drop; the
        // C callback touches it only during our calls into spandsp.
        unsafe { self.tx.as_ref() }
    }

    /// The IFP packets queued for sending since the last call, oldest
    /// first.
    pub fn take_tx(&mut self) -> Vec<Ifp> {
        self.tx_queue().packets.borrow_mut().drain(..).collect()
    }

    fn events(&self) -> &Events {
        // SAFETY: `events` came from Box::leak and is freed only in Drop;
        // only Cells are touched, on this terminal's thread.
        unsafe { self.events.as_ref() }
    }

    /// The phase E completion code, once the call has ended for this side.
    pub fn completion(&self) -> Option<i32> {
        self.events().completion.get()
    }

    /// Post-page exchanges seen so far (phase D events).
    pub fn phase_d_count(&self) -> u32 {
        self.events().phase_d.get()
    }

    /// Whether T.30 has reached phase B (pages are under way).
    pub fn negotiated(&self) -> bool {
        self.events().phase_b.get()
    }

    /// Transfer statistics so far.
    pub fn stats(&self) -> Stats {
        // SAFETY: `t30` is live as long as `self`.
        unsafe { t30_stats(self.t30.as_ptr()) }
    }

    /// The far end's identity (CSID when we call, TSI when it calls us).
    pub fn remote_ident(&self) -> String {
        // SAFETY: `t30` is live as long as `self`.
        unsafe { t30_remote_ident(self.t30.as_ptr()) }
    }

    /// The call is over from our side (hang-up, stop): T.30 ends now and
    /// phase E runs if it had not.
    pub fn terminate(&mut self) {
        // SAFETY: `t30` is live; t30_terminate may be called in any phase.
        unsafe { ffi::t30_terminate(self.t30.as_ptr()) };
        if self.completion().is_none() {
            self.events().completion.set(Some(ffi::T30_ERR_CALLDROPPED));
        }
    }
}

impl Drop for T38Terminal {
    fn drop(&mut self) {
        // SAFETY: `t38` came from t38_terminal_init and is freed exactly
        // once, here (with its T.30 state and TIFF files). Only then are
        // the callbacks' allocations freed: no callback can run any more.
        unsafe {
            ffi::t38_terminal_free(self.t38.as_ptr());
            drop(Box::from_raw(self.events.as_ptr()));
            drop(Box::from_raw(self.tx.as_ptr()));
        }
    }
}

unsafe extern "C" fn on_tx_packet(
    _s: *mut ffi::t38_core_state_t,
    user_data: *mut c_void,
    buf: *const u8,
    len: c_int,
    count: c_int,
) -> c_int {
    let Ok(len) = usize::try_from(len) else {
        return -1;
    };
    if buf.is_null() {
        return -1;
    }
    // SAFETY: user_data is the TxQueue registered in T38Terminal::new,
    // alive as long as the context.
    let Some(queue) = (unsafe { user_data.cast::<TxQueue>().as_ref() }) else {
        return -1;
    };
    // SAFETY: spandsp passes `len` readable bytes, valid for the call.
    let data = unsafe { std::slice::from_raw_parts(buf, len) }.to_vec();
    let count = u32::try_from(count).unwrap_or(0).max(1);
    match queue.packets.try_borrow_mut() {
        Ok(mut packets) => {
            packets.push_back(Ifp { data, count });
            0
        }
        Err(_) => -1,
    }
}

#[cfg(test)]
pub(crate) mod tests;
