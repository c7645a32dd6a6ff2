//! Declarations of spandsp 0.0.6's T.38 terminal and core
//! (`t38_terminal.h`, `t38_core.h`): T.30 carried over T.38 IFP packets
//! instead of modem audio. UDPTL framing is not in spandsp (ours:
//! `engine::sip::udptl`).
//!
//! Every signature and constant was checked against
//! `/usr/include/spandsp/t38_terminal.h`, `t38_core.h`, `t30.h` and
//! `t30_api.h` (libspandsp-dev 0.0.6+dfsg-2). The safe wrapper is
//! [`super::super::t38`].

#![allow(non_camel_case_types, dead_code)]

use super::{logging_state_t, t30_state_t};
use std::ffi::{c_int, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// `t38_terminal_state_t`: a T.38 terminal (T.30 + the T.38 core).
/// Opaque; made by `t38_terminal_init(NULL, …)`, released by
/// `t38_terminal_free`.
#[repr(C)]
pub struct t38_terminal_state_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `t38_core_state_t`: the IFP packet engine inside a terminal. Opaque;
/// owned by its terminal.
#[repr(C)]
pub struct t38_core_state_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `t38_tx_packet_handler_t` (t38_core.h:204): called for every IFP packet
/// the terminal sends; `count` is the category's setting from
/// `t38_set_redundancy_control` (how many times to send it).
pub type t38_tx_packet_handler_t = unsafe extern "C" fn(
    s: *mut t38_core_state_t,
    user_data: *mut c_void,
    buf: *const u8,
    len: c_int,
    count: c_int,
) -> c_int;

// t38_terminal.h:44-53: T38_TERMINAL_OPTION_* bits for t38_terminal_set_config.
pub const T38_TERMINAL_OPTION_NO_PACING: c_int = 0x01;
pub const T38_TERMINAL_OPTION_REGULAR_INDICATORS: c_int = 0x02;
pub const T38_TERMINAL_OPTION_2S_REPEATING_INDICATORS: c_int = 0x04;
pub const T38_TERMINAL_OPTION_NO_INDICATORS: c_int = 0x08;

// t38_core.h: enum t38_transport_types_e.
pub const T38_TRANSPORT_UDPTL: c_int = 0;

// t38_core.h: enum t38_data_rate_management_types_e.
pub const T38_DATA_RATE_MANAGEMENT_LOCAL_TCF: c_int = 1;
pub const T38_DATA_RATE_MANAGEMENT_TRANSFERRED_TCF: c_int = 2;

// t38_core.h: enum t38_packet_categories_e.
pub const T38_PACKET_CATEGORY_INDICATOR: c_int = 0;
pub const T38_PACKET_CATEGORY_CONTROL_DATA: c_int = 1;
pub const T38_PACKET_CATEGORY_CONTROL_DATA_END: c_int = 2;
pub const T38_PACKET_CATEGORY_IMAGE_DATA: c_int = 3;
pub const T38_PACKET_CATEGORY_IMAGE_DATA_END: c_int = 4;

// t30.h:342-350: T30_SUPPORT_* modem bits for t30_set_supported_modems.
pub const T30_SUPPORT_V27TER: c_int = 0x01;
pub const T30_SUPPORT_V29: c_int = 0x02;
pub const T30_SUPPORT_V17: c_int = 0x04;

// t30.h:454-470: T30_IAF_MODE_* bits for t30_set_iaf_mode.
pub const T30_IAF_MODE_T38: c_int = 0x02;

#[link(name = "spandsp")]
extern "C" {
    // t38_terminal.h
    pub fn t38_terminal_init(
        s: *mut t38_terminal_state_t,
        calling_party: c_int,
        tx_packet_handler: Option<t38_tx_packet_handler_t>,
        tx_packet_user_data: *mut c_void,
    ) -> *mut t38_terminal_state_t;
    pub fn t38_terminal_free(s: *mut t38_terminal_state_t) -> c_int;
    pub fn t38_terminal_send_timeout(s: *mut t38_terminal_state_t, samples: c_int) -> c_int;
    pub fn t38_terminal_set_config(s: *mut t38_terminal_state_t, config: c_int);
    pub fn t38_terminal_set_tep_mode(s: *mut t38_terminal_state_t, use_tep: c_int);
    pub fn t38_terminal_set_fill_bit_removal(s: *mut t38_terminal_state_t, remove: c_int);
    pub fn t38_terminal_get_t30_state(s: *mut t38_terminal_state_t) -> *mut t30_state_t;
    pub fn t38_terminal_get_t38_core_state(s: *mut t38_terminal_state_t) -> *mut t38_core_state_t;
    pub fn t38_terminal_get_logging_state(s: *mut t38_terminal_state_t) -> *mut logging_state_t;

    // t38_core.h
    pub fn t38_core_rx_ifp_packet(
        s: *mut t38_core_state_t,
        buf: *const u8,
        len: c_int,
        seq_no: u16,
    ) -> c_int;
    pub fn t38_core_get_logging_state(s: *mut t38_core_state_t) -> *mut logging_state_t;
    pub fn t38_set_t38_version(s: *mut t38_core_state_t, t38_version: c_int);
    pub fn t38_set_max_datagram_size(s: *mut t38_core_state_t, max_datagram_size: c_int);
    pub fn t38_set_max_buffer_size(s: *mut t38_core_state_t, max_buffer_size: c_int);
    pub fn t38_set_fastest_image_data_rate(s: *mut t38_core_state_t, max_rate: c_int);
    pub fn t38_set_data_rate_management_method(s: *mut t38_core_state_t, method: c_int);
    pub fn t38_set_data_transport_protocol(
        s: *mut t38_core_state_t,
        data_transport_protocol: c_int,
    );
    pub fn t38_set_fill_bit_removal(s: *mut t38_core_state_t, fill_bit_removal: c_int);
    pub fn t38_set_mmr_transcoding(s: *mut t38_core_state_t, mmr_transcoding: c_int);
    pub fn t38_set_jbig_transcoding(s: *mut t38_core_state_t, jbig_transcoding: c_int);
    pub fn t38_set_redundancy_control(s: *mut t38_core_state_t, category: c_int, setting: c_int);

    // t30_api.h
    pub fn t30_set_supported_modems(s: *mut t30_state_t, supported_modems: c_int) -> c_int;
    pub fn t30_set_iaf_mode(s: *mut t30_state_t, iaf: c_int);
}
