//! spandsp's log messages into `tracing` (target `spandsp`). spandsp logs
//! per context through a plain function without user data, so messages
//! carry the context's tag and land in whatever `tracing` span the call
//! runs in (the engines enter one per call).

use super::ffi;
use std::ffi::{c_char, c_int, CStr};

/// Routes a context's messages to `tracing` (target `spandsp`): errors at
/// warn, warnings at debug, protocol flow at trace — and asks spandsp
/// only for what `tracing` would keep.
///
/// # Safety
/// `log` must be NULL or a live logging context.
pub(super) unsafe fn route(log: *mut ffi::logging_state_t, tag: &'static CStr) {
    if log.is_null() {
        return;
    }
    let level = if tracing::enabled!(target: "spandsp", tracing::Level::TRACE) {
        ffi::SPAN_LOG_FLOW
    } else if tracing::enabled!(target: "spandsp", tracing::Level::DEBUG) {
        ffi::SPAN_LOG_PROTOCOL_WARNING
    } else {
        ffi::SPAN_LOG_ERROR
    };
    // SAFETY: `log` is live (caller's promise); the tag is 'static, as
    // span_log_set_tag keeps the pointer; the handlers are plain functions.
    unsafe {
        ffi::span_log_set_tag(log, tag.as_ptr());
        ffi::span_log_set_level(
            log,
            level | ffi::SPAN_LOG_SHOW_TAG | ffi::SPAN_LOG_SHOW_PROTOCOL,
        );
        ffi::span_log_set_message_handler(log, Some(on_log_message));
        ffi::span_log_set_error_handler(log, Some(on_log_error));
    }
}

unsafe extern "C" fn on_log_message(level: c_int, text: *const c_char) {
    if text.is_null() {
        return;
    }
    // SAFETY: spandsp passes a NUL-terminated message valid for the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let text = text.trim_end();
    match level & 0xff {
        ffi::SPAN_LOG_ERROR => tracing::warn!(target: "spandsp", "{text}"),
        l if l <= ffi::SPAN_LOG_PROTOCOL_WARNING => tracing::debug!(target: "spandsp", "{text}"),
        _ => tracing::trace!(target: "spandsp", "{text}"),
    }
}

unsafe extern "C" fn on_log_error(text: *const c_char) {
    // SAFETY: as in on_log_message.
    unsafe { on_log_message(ffi::SPAN_LOG_ERROR, text) }
}
