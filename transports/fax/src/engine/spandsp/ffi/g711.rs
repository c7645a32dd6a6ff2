//! Declarations of spandsp 0.0.6's G.711 codec (`g711.h`) and the audio
//! terminal's fill-in for lost audio (`fax_rx_fillin`, `fax.h`): fax as
//! µ-law/A-law audio over RTP.
//!
//! The per-sample `linear_to_ulaw` & co. are `static __inline__` in the
//! header and not in the library; the exported block functions below
//! (`nm -D libspandsp.so.2`) do the same work. Checked against
//! `/usr/include/spandsp/g711.h:59-63,275-318` and `fax.h:63`.

use super::fax_state_t;
use std::ffi::c_int;
use std::marker::{PhantomData, PhantomPinned};

/// `g711_state_t`: a G.711 encode/decode context. Opaque; made by
/// `g711_init(NULL, mode)` and released by `g711_free`.
#[repr(C)]
pub struct g711_state_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `G711_ALAW`, the `mode` of `g711_init` (the header's anonymous enum).
pub const G711_ALAW: c_int = 0;
/// `G711_ULAW`.
pub const G711_ULAW: c_int = 1;

#[link(name = "spandsp")]
extern "C" {
    // g711.h
    pub fn g711_init(s: *mut g711_state_t, mode: c_int) -> *mut g711_state_t;
    pub fn g711_free(s: *mut g711_state_t) -> c_int;
    /// Decodes `g711_bytes` octets into as many samples; returns how many.
    pub fn g711_decode(
        s: *mut g711_state_t,
        amp: *mut i16,
        g711_data: *const u8,
        g711_bytes: c_int,
    ) -> c_int;
    /// Encodes `len` samples into as many octets; returns how many.
    pub fn g711_encode(
        s: *mut g711_state_t,
        g711_data: *mut u8,
        amp: *const i16,
        len: c_int,
    ) -> c_int;

    // fax.h: T.30 and the modems step on through `len` samples that were
    // lost (timers run, receivers are told of the gap); returns the
    // samples not processed (non-zero only once the call has ended).
    pub fn fax_rx_fillin(s: *mut fax_state_t, len: c_int) -> c_int;
}
