//! The safe face of spandsp: a [`Terminal`] is one audio fax machine (a
//! `fax_state_t`: V.21/V.27ter/V.29/V.17 modems plus T.30), and
//! [`run_call`] wires a calling and an answering terminal back to back,
//! 160 samples at a time, each one's transmitted audio fed to the other's
//! receiver — a perfect phone line, as spandsp's own `fax_tests.c` does it.
//!
//! Every `unsafe` block of the engines is in this file, in
//! [`super::t38`], [`super::dtmf`], [`super::g711`] and [`super::log`]
//! (the declarations are in [`super::ffi`]). Ownership: a
//! [`Terminal`] owns its `fax_state_t` and frees it in `Drop` on every
//! path; the callbacks' user data is a heap-allocated `Events` that the
//! terminal owns too and frees after the C state.
//!
//! The work is CPU-bound and synchronous: callers run it on a blocking
//! thread (`tokio::task::spawn_blocking`).

use super::{ffi, log};
use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;

/// Samples per block moved across the line in one step (20 ms).
const BLOCK: usize = 160;

/// How long a caller may go on alone after the far end has hung up or
/// finished, before the call is cut (simulated seconds). T.30's own
/// timers end it well before this.
const TAIL_SECONDS: u64 = 120;

/// Why a terminal could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    #[error("{what} {path:?}: the path is longer than spandsp's {max}-byte limit")]
    PathTooLong {
        what: &'static str,
        path: std::path::PathBuf,
        max: usize,
    },
    #[error("{what} {value:?} contains a NUL byte")]
    Nul { what: &'static str, value: String },
    #[error("spandsp could not create a fax terminal (fax_init returned NULL)")]
    Init,
    #[error("spandsp refused the {what} {value:?}")]
    Refused { what: &'static str, value: String },
    /// The media socket of a SIP call failed (set-up, not a lost packet).
    #[error("media socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The media around the terminal could not be set up (a G.711
    /// codec, the RTP socket).
    #[error("media: {what}: {detail}")]
    Media { what: &'static str, detail: String },
}

/// What a terminal does in the call.
pub enum Job<'a> {
    /// Send pages `first..=last` (1-based; `last: None`: to the end) of a
    /// TIFF-F file.
    Send {
        file: &'a Path,
        first: u32,
        last: Option<u32>,
        /// A header line for the top of each page (at most 50 characters;
        /// spandsp adds date, our identity and page number). spandsp 0.0.6
        /// always puts it above the image, making each page longer (32
        /// rows at 196 dpi): its overlay switch does not reach T.4 there.
        header: Option<&'a str>,
    },
    /// Store what arrives in a TIFF-F file (G4, FillOrder 2).
    Receive { file: &'a Path },
}

/// How one terminal is set up.
pub struct Setup<'a> {
    /// The calling party (sends CNG) or the answering one (sends CED).
    pub calling: bool,
    /// Our identity: TSI when sending, CSID when answering (at most 20
    /// characters; longer ones are cut).
    pub ident: &'a str,
    /// The log tag of this terminal's spandsp messages.
    pub tag: &'static CStr,
    pub job: Job<'a>,
}

/// What the C callbacks record; shared with C through a raw pointer, so
/// only `Cell`s (the terminal lives on one thread).
#[derive(Default)]
pub(super) struct Events {
    /// The phase E completion code, once the call has ended.
    pub(super) completion: Cell<Option<c_int>>,
    /// Post-page exchanges seen (phase D), for the hang-up simulation.
    pub(super) phase_d: Cell<u32>,
    /// Phase B seen: the machines have found each other (DIS) and are
    /// negotiating; pages follow.
    pub(super) phase_b: Cell<bool>,
}

/// One spandsp audio fax terminal.
pub struct Terminal {
    fax: NonNull<ffi::fax_state_t>,
    t30: NonNull<ffi::t30_state_t>,
    /// Read by the C callbacks through the pointer registered with
    /// spandsp. From `Box::into_raw`; freed in `Drop` after `fax`.
    events: NonNull<Events>,
}

/// The transfer statistics of one side, as far as the engines need them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub pages_tx: u32,
    pub pages_rx: u32,
    pub bit_rate: u32,
    pub ecm: bool,
    /// Rows received damaged (repaired by copying the previous one).
    pub bad_rows: u32,
    /// Pages in the file being sent (`None` before it is opened).
    pub pages_in_file: Option<u32>,
}

impl Terminal {
    /// Makes a terminal. ECM is on; MH, MR and MMR are offered on the line;
    /// received pages are stored as MMR (T.6).
    pub fn new(setup: &Setup<'_>) -> Result<Terminal, ModemError> {
        let strings = T30Strings::new(setup)?;

        // SAFETY: fax_init(NULL, …) allocates and initialises a new
        // context or returns NULL; nothing else is touched.
        let raw = unsafe { ffi::fax_init(std::ptr::null_mut(), c_int::from(setup.calling)) };
        let fax = NonNull::new(raw).ok_or(ModemError::Init)?;
        // SAFETY: `fax` is a live context; its T.30 state lives inside it
        // and is never NULL for a context made by fax_init.
        let t30 = NonNull::new(unsafe { ffi::fax_get_t30_state(fax.as_ptr()) });
        let Some(t30) = t30 else {
            // SAFETY: `fax` came from fax_init and is freed exactly once.
            unsafe { ffi::fax_free(fax.as_ptr()) };
            return Err(ModemError::Init);
        };
        // From here on `Drop` frees the context (and the events) on every
        // path.
        let terminal = Terminal {
            fax,
            t30,
            events: NonNull::from(Box::leak(Box::<Events>::default())),
        };
        let events = terminal.events.as_ptr().cast::<c_void>();
        let f = fax.as_ptr();

        // SAFETY: `f` is the live context and `t30` its T.30 state; the log
        // tag is 'static, as span_log_set_tag keeps the pointer. `events`
        // is a heap allocation that `terminal` owns and frees only after
        // fax_free, so the callbacks never see a dangling pointer. An
        // early return drops `terminal`, which frees the context.
        unsafe {
            log::route(ffi::fax_get_logging_state(f), setup.tag);
            ffi::fax_set_transmit_on_idle(f, 1);
            configure_t30(t30.as_ptr(), setup, &strings, events)?;
        }
        Ok(terminal)
    }

    /// Produces up to `buf.len()` samples of line audio; returns how many.
    pub(crate) fn tx(&mut self, buf: &mut [i16; BLOCK]) -> usize {
        // SAFETY: `fax` is live; the buffer holds BLOCK samples and
        // fax_tx writes at most `max_len` of them.
        let n = unsafe { ffi::fax_tx(self.fax.as_ptr(), buf.as_mut_ptr(), BLOCK as c_int) };
        usize::try_from(n).unwrap_or(0).min(BLOCK)
    }

    /// Hears a block of line audio.
    pub(crate) fn rx(&mut self, buf: &mut [i16; BLOCK]) {
        // SAFETY: `fax` is live; fax_rx reads exactly `len` samples.
        unsafe { ffi::fax_rx(self.fax.as_ptr(), buf.as_mut_ptr(), BLOCK as c_int) };
    }

    /// `samples` of line audio were lost (an RTP frame that never came):
    /// the modems and T.30's timers step on over the gap without hearing
    /// anything (`fax_rx_fillin`).
    pub(crate) fn fill_in(&mut self, samples: usize) {
        let len = c_int::try_from(samples).unwrap_or(c_int::MAX);
        // SAFETY: `fax` is live; fax_rx_fillin reads no buffer.
        unsafe { ffi::fax_rx_fillin(self.fax.as_ptr(), len) };
    }

    fn events(&self) -> &Events {
        // SAFETY: `events` came from Box::leak and is freed only in Drop;
        // everyone (the C callbacks included) touches it through shared
        // references to Cells, on this terminal's thread.
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

    /// Whether T.30 has reached phase B (the far machine's DIS or DCS
    /// came): from then on the pages are under way.
    pub fn negotiated(&self) -> bool {
        self.events().phase_b.get()
    }

    /// Transfer statistics so far.
    pub fn stats(&self) -> Stats {
        // SAFETY: `t30` is live as long as `self`.
        unsafe { t30_stats(self.t30.as_ptr()) }
    }

    /// The far end's identity (its CSID when we call, its TSI when it
    /// calls us), trimmed; empty if none was received.
    pub fn remote_ident(&self) -> String {
        // SAFETY: `t30` is live as long as `self`.
        unsafe { t30_remote_ident(self.t30.as_ptr()) }
    }

    /// The line went dead: T.30 ends now (phase E runs if it had not).
    fn terminate(&mut self) {
        // SAFETY: `t30` is live; t30_terminate may be called in any phase.
        unsafe { ffi::t30_terminate(self.t30.as_ptr()) };
        if self.completion().is_none() {
            self.events().completion.set(Some(ffi::T30_ERR_CALLDROPPED));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // SAFETY: `fax` came from fax_init and is freed exactly once, here;
        // fax_free also releases the T.30 state and closes its TIFF files.
        // Only then is `events` (from Box::leak) freed: no callback can run
        // any more.
        unsafe {
            ffi::fax_free(self.fax.as_ptr());
            drop(Box::from_raw(self.events.as_ptr()));
        }
    }
}

mod call;
pub use call::{run_call, run_call_watched, CallReport, FarEnd, Limit, Watch};

pub use super::ffi::{T30_ERR_CALLDROPPED, T30_ERR_OK, T30_ERR_T0_EXPIRED, T30_ERR_T1_EXPIRED};

/// Whether a call that ended with this completion code may go better
/// another time: not for a bad document (TIFF/F errors), a far end that
/// cannot take the fax (incompatible, no resolution or size support), or
/// a refused identity, password or polling request.
pub fn completion_retryable(code: i32) -> bool {
    !(ffi::T30_ERR_INCOMPATIBLE..=ffi::T30_ERR_NOSIZESUPPORT).contains(&code)
        && !(ffi::T30_ERR_FILEERROR..=ffi::T30_ERR_NOMEM).contains(&code)
        && code < ffi::T30_ERR_NOPOLL
}

/// spandsp's text for a completion code.
pub fn completion_text(code: i32) -> String {
    // SAFETY: t30_completion_code_to_str returns a static NUL-terminated
    // string (or NULL) for any value.
    let p = unsafe { ffi::t30_completion_code_to_str(code) };
    if p.is_null() {
        return format!("T.30 completion code {code}");
    }
    // SAFETY: non-NULL static string (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The NUL-terminated strings a [`Setup`] gives T.30, checked before any
/// C state is made.
pub(super) struct T30Strings {
    ident: CString,
    file: CString,
    header: Option<CString>,
}

impl T30Strings {
    pub(super) fn new(setup: &Setup<'_>) -> Result<T30Strings, ModemError> {
        let ident = c_string(
            "station identity",
            &truncate(setup.ident, ffi::T30_MAX_IDENT_LEN),
        )?;
        let (file, header) = match &setup.job {
            Job::Send { file, header, .. } => (
                c_path("document", file)?,
                header
                    .map(|h| c_string("page header", &truncate(h, ffi::T30_MAX_PAGE_HEADER_INFO)))
                    .transpose()?,
            ),
            Job::Receive { file } => (c_path("received file", file)?, None),
        };
        Ok(T30Strings {
            ident,
            file,
            header,
        })
    }
}

/// Sets up the T.30 engine of a terminal (audio or T.38) for `setup`: log
/// routing, identity, ECM on, MH/MR/MMR offered, received pages stored as
/// MMR, the phase B/D/E handlers recording into `events`, the job's file.
///
/// # Safety
/// `t` is a live T.30 state; `events` points to an [`Events`] that
/// outlives the T.30 state (its callbacks keep the pointer).
pub(super) unsafe fn configure_t30(
    t: *mut ffi::t30_state_t,
    setup: &Setup<'_>,
    strings: &T30Strings,
    events: *mut c_void,
) -> Result<(), ModemError> {
    // SAFETY: `t` is live (caller's promise). The strings are
    // NUL-terminated and only read during the calls (spandsp copies the
    // ident, file names and header info into its own buffers); the log
    // tag is 'static; `events` outlives `t` (caller's promise).
    unsafe {
        log::route(ffi::t30_get_logging_state(t), setup.tag);
        if ffi::t30_set_tx_ident(t, strings.ident.as_ptr()) != 0 {
            return Err(ModemError::Refused {
                what: "station identity",
                value: setup.ident.to_owned(),
            });
        }
        ffi::t30_set_ecm_capability(t, 1);
        ffi::t30_set_supported_compressions(
            t,
            ffi::T30_SUPPORT_T4_1D_COMPRESSION
                | ffi::T30_SUPPORT_T4_2D_COMPRESSION
                | ffi::T30_SUPPORT_T6_COMPRESSION,
        );
        ffi::t30_set_phase_b_handler(t, Some(on_phase_b), events);
        ffi::t30_set_phase_d_handler(t, Some(on_phase_d), events);
        ffi::t30_set_phase_e_handler(t, Some(on_phase_e), events);
        match &setup.job {
            Job::Send { first, last, .. } => {
                // spandsp counts pages from 0.
                let index =
                    |page: u32| c_int::try_from(page.saturating_sub(1)).unwrap_or(c_int::MAX);
                let stop = last.map_or(-1, index);
                ffi::t30_set_tx_file(t, strings.file.as_ptr(), index(*first), stop);
                if let Some(header) = &strings.header {
                    if ffi::t30_set_tx_page_header_info(t, header.as_ptr()) != 0 {
                        return Err(ModemError::Refused {
                            what: "page header",
                            value: header.to_string_lossy().into_owned(),
                        });
                    }
                }
            }
            Job::Receive { .. } => {
                ffi::t30_set_rx_encoding(t, ffi::T4_COMPRESSION_ITU_T6);
                ffi::t30_set_rx_file(t, strings.file.as_ptr(), -1);
            }
        }
    }
    Ok(())
}

/// The transfer statistics of a T.30 engine.
///
/// # Safety
/// `t` is a live T.30 state.
pub(super) unsafe fn t30_stats(t: *mut ffi::t30_state_t) -> Stats {
    let mut raw = ffi::t30_stats_t::default();
    // SAFETY: `t` is live (caller's promise); `raw` has the header's exact
    // layout and t30_get_transfer_statistics only writes into it.
    unsafe { ffi::t30_get_transfer_statistics(t, &mut raw) };
    let count = |v: c_int| u32::try_from(v).unwrap_or(0);
    Stats {
        pages_tx: count(raw.pages_tx),
        pages_rx: count(raw.pages_rx),
        bit_rate: count(raw.bit_rate),
        ecm: raw.error_correcting_mode != 0,
        bad_rows: count(raw.bad_rows),
        pages_in_file: u32::try_from(raw.pages_in_file).ok().filter(|&p| p > 0),
    }
}

/// The far end's identity a T.30 engine received, trimmed; empty if none.
///
/// # Safety
/// `t` is a live T.30 state.
pub(super) unsafe fn t30_remote_ident(t: *mut ffi::t30_state_t) -> String {
    // SAFETY: `t` is live; the returned pointer is into its own
    // NUL-terminated buffer (or NULL), copied out before any other call.
    let p = unsafe { ffi::t30_get_rx_ident(t) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL and NUL-terminated (see above).
    let s = unsafe { CStr::from_ptr(p) };
    s.to_string_lossy().trim().to_owned()
}

unsafe extern "C" fn on_phase_e(_s: *mut ffi::t30_state_t, user_data: *mut c_void, code: c_int) {
    // SAFETY: user_data is the `Events` registered in Terminal::new,
    // alive as long as the context; only Cells are touched.
    if let Some(events) = unsafe { user_data.cast::<Events>().as_ref() } {
        events.completion.set(Some(code));
    }
}

unsafe extern "C" fn on_phase_b(
    _s: *mut ffi::t30_state_t,
    user_data: *mut c_void,
    _result: c_int,
) -> c_int {
    // SAFETY: as in on_phase_e.
    if let Some(events) = unsafe { user_data.cast::<Events>().as_ref() } {
        events.phase_b.set(true);
    }
    ffi::T30_ERR_OK
}

unsafe extern "C" fn on_phase_d(
    _s: *mut ffi::t30_state_t,
    user_data: *mut c_void,
    _result: c_int,
) -> c_int {
    // SAFETY: as in on_phase_e.
    if let Some(events) = unsafe { user_data.cast::<Events>().as_ref() } {
        events.phase_d.set(events.phase_d.get().saturating_add(1));
    }
    ffi::T30_ERR_OK
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn c_string(what: &'static str, value: &str) -> Result<CString, ModemError> {
    CString::new(value).map_err(|_| ModemError::Nul {
        what,
        value: value.to_owned(),
    })
}

fn c_path(what: &'static str, path: &Path) -> Result<CString, ModemError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= ffi::T30_MAX_FILE_NAME {
        return Err(ModemError::PathTooLong {
            what,
            path: path.to_owned(),
            max: ffi::T30_MAX_FILE_NAME - 1,
        });
    }
    CString::new(bytes).map_err(|_| ModemError::Nul {
        what,
        value: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests;
