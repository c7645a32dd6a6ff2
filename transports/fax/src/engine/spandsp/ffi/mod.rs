//! Hand-written declarations of the part of spandsp 0.0.6 (Debian's
//! libspandsp-dev, release 20110122) that the engines use: the audio fax
//! terminal (`fax.h`), its T.30 engine (`t30.h`, `t30_api.h`,
//! `t30_logging.h`), per-context logging (`logging.h`) and the DTMF
//! generator and receiver (`dtmf.h`).
//!
//! Every signature and constant here was checked against the installed
//! headers in `/usr/include/spandsp/`. No bindgen: the surface is small and
//! the library is frozen. Nothing here is safe to call directly; the safe
//! wrapper is [`super::modem`].
//!
//! `SPAN_DECLARE(type)` is plain `type` with default visibility on Linux,
//! and `SPAN_DECLARE_NONSTD` the same: every function is the C ABI.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// `fax_state_t`: an audio fax terminal (modems + T.30). Opaque; made by
/// `fax_init(NULL, …)` and released by `fax_free`.
#[repr(C)]
pub struct fax_state_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `t30_state_t`: the T.30 engine inside a `fax_state_t`. Opaque; owned by
/// its `fax_state_t`.
#[repr(C)]
pub struct t30_state_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `logging_state_t`: a per-context logging descriptor. Opaque here.
#[repr(C)]
pub struct logging_state_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `t30_stats_t` from `t30.h`, field for field (15 `int`s; the two RTP/RTN
/// counters after `current_status` are under `#if 0` in 0.0.6).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct t30_stats_t {
    /// The current bit rate for image transfer.
    pub bit_rate: c_int,
    /// TRUE if error correcting mode is used.
    pub error_correcting_mode: c_int,
    /// The number of pages sent so far.
    pub pages_tx: c_int,
    /// The number of pages received so far.
    pub pages_rx: c_int,
    /// The number of pages in the file (<0 if not known).
    pub pages_in_file: c_int,
    /// Horizontal resolution of the most recent page, pixels per metre.
    pub x_resolution: c_int,
    /// Vertical resolution of the most recent page, pixels per metre.
    pub y_resolution: c_int,
    /// Horizontal pixels in the most recent page.
    pub width: c_int,
    /// Vertical pixels in the most recent page.
    pub length: c_int,
    /// The size of the image, in bytes.
    pub image_size: c_int,
    /// The compression used between the machines.
    pub encoding: c_int,
    /// Bad pixel rows in the most recent page.
    pub bad_rows: c_int,
    /// Longest run of bad rows in the most recent page.
    pub longest_bad_row_run: c_int,
    /// HDLC frame retries in ECM.
    pub error_correcting_mode_retries: c_int,
    /// Current status (a completion code).
    pub current_status: c_int,
}

/// `t30_phase_b_handler_t`: when the far end's DIS/DCS arrives (phase B).
pub type t30_phase_b_handler_t =
    unsafe extern "C" fn(s: *mut t30_state_t, user_data: *mut c_void, result: c_int) -> c_int;

/// `t30_phase_d_handler_t`: after each page's post-page message.
pub type t30_phase_d_handler_t =
    unsafe extern "C" fn(s: *mut t30_state_t, user_data: *mut c_void, result: c_int) -> c_int;

/// `t30_phase_e_handler_t`: once, when the call ends.
pub type t30_phase_e_handler_t =
    unsafe extern "C" fn(s: *mut t30_state_t, user_data: *mut c_void, completion_code: c_int);

/// `message_handler_func_t` (`logging.h`).
pub type message_handler_func_t = unsafe extern "C" fn(level: c_int, text: *const c_char);

/// `error_handler_func_t` (`logging.h`).
pub type error_handler_func_t = unsafe extern "C" fn(text: *const c_char);

/// Samples per second of the audio interface (`SAMPLE_RATE`).
pub const SAMPLE_RATE: u64 = 8000;

// T.30 completion codes (the anonymous enum in t30.h, counted from 0).
pub const T30_ERR_OK: c_int = 0;
pub const T30_ERR_T0_EXPIRED: c_int = 2;
pub const T30_ERR_T1_EXPIRED: c_int = 3;
pub const T30_ERR_INCOMPATIBLE: c_int = 8;
pub const T30_ERR_NOSIZESUPPORT: c_int = 12;
pub const T30_ERR_FILEERROR: c_int = 41;
pub const T30_ERR_NOMEM: c_int = 47;
pub const T30_ERR_CALLDROPPED: c_int = 49;
pub const T30_ERR_NOPOLL: c_int = 50;

// t4_rx.h: output encodings for received files.
pub const T4_COMPRESSION_ITU_T6: c_int = 3;

// t30.h: T30_SUPPORT_*_COMPRESSION bits.
pub const T30_SUPPORT_T4_1D_COMPRESSION: c_int = 0x02;
pub const T30_SUPPORT_T4_2D_COMPRESSION: c_int = 0x04;
pub const T30_SUPPORT_T6_COMPRESSION: c_int = 0x08;

// logging.h: severities and display flags.
pub const SPAN_LOG_ERROR: c_int = 1;
pub const SPAN_LOG_PROTOCOL_WARNING: c_int = 4;
pub const SPAN_LOG_FLOW: c_int = 5;
pub const SPAN_LOG_SHOW_PROTOCOL: c_int = 0x0800;
pub const SPAN_LOG_SHOW_TAG: c_int = 0x2000;

/// The size of `t30_state_t`'s `tx_file` / `rx_file` buffers
/// (`private/t30.h`): longer paths would be cut silently by `strncpy`.
pub const T30_MAX_FILE_NAME: usize = 256;
/// `T30_MAX_IDENT_LEN`.
pub const T30_MAX_IDENT_LEN: usize = 20;
/// `T30_MAX_PAGE_HEADER_INFO`.
pub const T30_MAX_PAGE_HEADER_INFO: usize = 50;

/// `dtmf_tx_state_t`: a DTMF generator. Opaque; `dtmf_tx_init(NULL)`,
/// `dtmf_tx_free`.
#[repr(C)]
pub struct dtmf_tx_state_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `dtmf_rx_state_t`: a DTMF receiver. Opaque; `dtmf_rx_init(NULL, …)`,
/// `dtmf_rx_free`.
#[repr(C)]
pub struct dtmf_rx_state_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `digits_rx_callback_t` (dtmf.h).
pub type digits_rx_callback_t =
    unsafe extern "C" fn(user_data: *mut c_void, digits: *const c_char, len: c_int);

#[link(name = "spandsp")]
extern "C" {
    // dtmf.h
    pub fn dtmf_tx_init(s: *mut dtmf_tx_state_t) -> *mut dtmf_tx_state_t;
    pub fn dtmf_tx_put(s: *mut dtmf_tx_state_t, digits: *const c_char, len: c_int) -> c_int;
    pub fn dtmf_tx(s: *mut dtmf_tx_state_t, amp: *mut i16, max_samples: c_int) -> c_int;
    pub fn dtmf_tx_free(s: *mut dtmf_tx_state_t) -> c_int;
    pub fn dtmf_rx_init(
        s: *mut dtmf_rx_state_t,
        callback: Option<digits_rx_callback_t>,
        user_data: *mut c_void,
    ) -> *mut dtmf_rx_state_t;
    pub fn dtmf_rx(s: *mut dtmf_rx_state_t, amp: *const i16, samples: c_int) -> c_int;
    pub fn dtmf_rx_get(s: *mut dtmf_rx_state_t, digits: *mut c_char, max: c_int) -> usize;
    pub fn dtmf_rx_free(s: *mut dtmf_rx_state_t) -> c_int;

    // fax.h
    pub fn fax_init(s: *mut fax_state_t, calling_party: c_int) -> *mut fax_state_t;
    pub fn fax_free(s: *mut fax_state_t) -> c_int;
    pub fn fax_rx(s: *mut fax_state_t, amp: *mut i16, len: c_int) -> c_int;
    pub fn fax_tx(s: *mut fax_state_t, amp: *mut i16, max_len: c_int) -> c_int;
    pub fn fax_set_transmit_on_idle(s: *mut fax_state_t, transmit_on_idle: c_int);
    pub fn fax_get_t30_state(s: *mut fax_state_t) -> *mut t30_state_t;
    pub fn fax_get_logging_state(s: *mut fax_state_t) -> *mut logging_state_t;

    // t30_api.h
    pub fn t30_set_tx_ident(s: *mut t30_state_t, id: *const c_char) -> c_int;
    pub fn t30_get_rx_ident(s: *mut t30_state_t) -> *const c_char;
    pub fn t30_set_tx_page_header_info(s: *mut t30_state_t, info: *const c_char) -> c_int;
    pub fn t30_set_rx_file(s: *mut t30_state_t, file: *const c_char, stop_page: c_int);
    pub fn t30_set_tx_file(
        s: *mut t30_state_t,
        file: *const c_char,
        start_page: c_int,
        stop_page: c_int,
    );
    pub fn t30_set_ecm_capability(s: *mut t30_state_t, enabled: c_int) -> c_int;
    pub fn t30_set_rx_encoding(s: *mut t30_state_t, encoding: c_int) -> c_int;
    pub fn t30_set_supported_compressions(
        s: *mut t30_state_t,
        supported_compressions: c_int,
    ) -> c_int;
    pub fn t30_set_phase_b_handler(
        s: *mut t30_state_t,
        handler: Option<t30_phase_b_handler_t>,
        user_data: *mut c_void,
    );
    pub fn t30_set_phase_d_handler(
        s: *mut t30_state_t,
        handler: Option<t30_phase_d_handler_t>,
        user_data: *mut c_void,
    );
    pub fn t30_set_phase_e_handler(
        s: *mut t30_state_t,
        handler: Option<t30_phase_e_handler_t>,
        user_data: *mut c_void,
    );
    pub fn t30_get_logging_state(s: *mut t30_state_t) -> *mut logging_state_t;

    // t30.h
    pub fn t30_get_transfer_statistics(s: *mut t30_state_t, t: *mut t30_stats_t);
    pub fn t30_terminate(s: *mut t30_state_t);

    // t30_logging.h: a static string, never freed.
    pub fn t30_completion_code_to_str(result: c_int) -> *const c_char;

    // logging.h
    pub fn span_log_set_level(s: *mut logging_state_t, level: c_int) -> c_int;
    /// Stores the pointer, does not copy: the tag must outlive the context.
    pub fn span_log_set_tag(s: *mut logging_state_t, tag: *const c_char) -> c_int;
    pub fn span_log_set_message_handler(
        s: *mut logging_state_t,
        func: Option<message_handler_func_t>,
    );
    pub fn span_log_set_error_handler(s: *mut logging_state_t, func: Option<error_handler_func_t>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_ffi_stats_layout_matches_header() {
        // 15 ints, no padding: the header's layout on every LP64 target.
        assert_eq!(std::mem::size_of::<t30_stats_t>(), 15 * 4);
        assert_eq!(std::mem::align_of::<t30_stats_t>(), 4);
    }

    #[test]
    fn engine_ffi_completion_codes_match_the_library() {
        // The constants are counted from the header's enum; the library's
        // own texts confirm the count.
        let text = |code| {
            // SAFETY: t30_completion_code_to_str returns a pointer to a
            // static NUL-terminated string for every int.
            unsafe { std::ffi::CStr::from_ptr(t30_completion_code_to_str(code)) }
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(text(T30_ERR_OK), "OK");
        assert_eq!(
            text(T30_ERR_T0_EXPIRED),
            "Timed out waiting for initial communication"
        );
        assert_eq!(
            text(T30_ERR_T1_EXPIRED),
            "Timed out waiting for the first message"
        );
        assert_eq!(text(T30_ERR_FILEERROR), "TIFF/F file cannot be opened");
        assert_eq!(text(T30_ERR_CALLDROPPED), "The call dropped prematurely");
    }
}

mod g711;
mod t38;
#[allow(unused_imports)] // until the SIP engine's media sessions use them
pub use g711::*;
#[allow(unused_imports)]
pub use t38::*;
