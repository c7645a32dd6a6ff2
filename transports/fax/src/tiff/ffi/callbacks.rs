//! The C side of a handle: libtiff's message handlers (into a
//! [`MessageLog`]) and the client procs over a [`MemFile`] in memory.

use super::{RawTiff, Thandle, Tmsize, Toff, VaListPtr};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr};

extern "C" {
    fn vsnprintf(buf: *mut c_char, size: usize, fmt: *const c_char, ap: VaListPtr) -> c_int;
}

/// At most this many messages are kept per handle (a hostile file can
/// make libtiff warn once per row).
const MAX_MESSAGES: usize = 16;

/// The largest file position a handle accepts (4 GiB, the classic TIFF
/// limit).
const MAX_FILE: u64 = 1 << 32;

/// libtiff's messages for one handle.
#[derive(Default)]
pub(super) struct MessageLog {
    pub(super) errors: RefCell<Vec<String>>,
    pub(super) warnings: RefCell<Vec<String>>,
}

impl MessageLog {
    fn push(list: &RefCell<Vec<String>>, msg: String) {
        if let Ok(mut l) = list.try_borrow_mut() {
            if l.len() < MAX_MESSAGES {
                l.push(msg);
            }
        }
    }
}

/// Formats one libtiff message (`module: text`).
///
/// # Safety
/// `module` is null or a C string, `fmt` a printf format, `ap` the
/// `va_list` libtiff passed with it.
unsafe fn format_message(module: *const c_char, fmt: *const c_char, ap: VaListPtr) -> String {
    let mut buf = [0 as c_char; 512];
    let text = if fmt.is_null() {
        String::new()
    } else {
        // SAFETY: buf is writable for its length; fmt and ap come from
        // libtiff as a matching printf format and argument list.
        let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
        if n < 0 {
            // SAFETY: fmt is a NUL-terminated C string from libtiff.
            unsafe { CStr::from_ptr(fmt) }
                .to_string_lossy()
                .into_owned()
        } else {
            // SAFETY: vsnprintf NUL-terminates within buf.
            unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        }
    };
    if module.is_null() {
        text
    } else {
        // SAFETY: module is a NUL-terminated C string from libtiff.
        let m = unsafe { CStr::from_ptr(module) }.to_string_lossy();
        format!("{m}: {text}")
    }
}

/// libtiff's error handler for one handle: keeps the message.
///
/// # Safety
/// Called by libtiff only, with `user` the handle's [`MessageLog`].
pub(super) unsafe extern "C" fn on_error(
    _tif: *mut RawTiff,
    user: *mut c_void,
    module: *const c_char,
    fmt: *const c_char,
    ap: VaListPtr,
) -> c_int {
    // SAFETY: user is the MessageLog boxed by Handle::open, alive until
    // after TIFFClose; arguments are libtiff's.
    let log = unsafe { &*(user as *const MessageLog) };
    // SAFETY: module, fmt and ap are the message libtiff passes.
    let msg = unsafe { format_message(module, fmt, ap) };
    MessageLog::push(&log.errors, msg);
    1 // handled: libtiff does not call the global (stderr) handler
}

/// libtiff's warning handler for one handle: keeps the message.
///
/// # Safety
/// As [`on_error`].
pub(super) unsafe extern "C" fn on_warning(
    _tif: *mut RawTiff,
    user: *mut c_void,
    module: *const c_char,
    fmt: *const c_char,
    ap: VaListPtr,
) -> c_int {
    // SAFETY: as in on_error.
    let log = unsafe { &*(user as *const MessageLog) };
    // SAFETY: as above.
    let msg = unsafe { format_message(module, fmt, ap) };
    MessageLog::push(&log.warnings, msg);
    1
}

/// The bytes behind a handle: borrowed for reading, owned for writing.
pub(super) enum Buffer<'a> {
    Read(&'a [u8]),
    Write(Vec<u8>),
}

pub(super) struct MemFile<'a> {
    pub(super) buf: Buffer<'a>,
    pub(super) pos: u64,
}

impl MemFile<'_> {
    fn bytes(&self) -> &[u8] {
        match &self.buf {
            Buffer::Read(b) => b,
            Buffer::Write(v) => v,
        }
    }
}

/// Reads from the buffer (libtiff's `TIFFReadWriteProc`).
///
/// # Safety
/// Called by libtiff only, with `h` the handle's [`MemFile`] (this goes
/// for every `mem_` proc).
pub(super) unsafe extern "C" fn mem_read(h: Thandle, dst: *mut c_void, n: Tmsize) -> Tmsize {
    // SAFETY: h is the MemFile boxed by Handle::open, alive until after
    // TIFFClose and only used by libtiff on this thread.
    let f = unsafe { &mut *(h as *mut MemFile) };
    let data = f.bytes();
    let Ok(want) = usize::try_from(n) else {
        return -1;
    };
    let start = usize::try_from(f.pos).unwrap_or(usize::MAX).min(data.len());
    let take = want.min(data.len() - start);
    // SAFETY: dst has room for n ≥ take bytes (libtiff's contract); the
    // source range is inside data.
    unsafe { std::ptr::copy_nonoverlapping(data[start..].as_ptr(), dst as *mut u8, take) };
    f.pos = (start + take) as u64;
    take as Tmsize
}

/// Writes into an owned buffer, growing it.
///
/// # Safety
/// See [`mem_read`].
pub(super) unsafe extern "C" fn mem_write(h: Thandle, src: *mut c_void, n: Tmsize) -> Tmsize {
    // SAFETY: as in mem_read.
    let f = unsafe { &mut *(h as *mut MemFile) };
    let Ok(len) = usize::try_from(n) else {
        return -1;
    };
    let Buffer::Write(v) = &mut f.buf else {
        return -1;
    };
    let Ok(start) = usize::try_from(f.pos) else {
        return -1;
    };
    let Some(end) = start.checked_add(len) else {
        return -1;
    };
    if v.len() < end {
        v.resize(end, 0);
    }
    // SAFETY: src holds n readable bytes (libtiff's contract).
    let src = unsafe { std::slice::from_raw_parts(src as *const u8, len) };
    v[start..end].copy_from_slice(src);
    f.pos = end as u64;
    n
}

/// Moves the position.
///
/// # Safety
/// See [`mem_read`].
pub(super) unsafe extern "C" fn mem_seek(h: Thandle, off: Toff, whence: c_int) -> Toff {
    // SAFETY: as in mem_read.
    let f = unsafe { &mut *(h as *mut MemFile) };
    // SEEK_SET takes the offset as is; SEEK_CUR and SEEK_END may move
    // backwards (the C off_t behind toff_t is signed).
    let new = match whence {
        0 => i128::from(off),
        1 => i128::from(f.pos) + i128::from(off as i64),
        2 => f.bytes().len() as i128 + i128::from(off as i64),
        _ => return u64::MAX,
    };
    // Refuse negative and absurd positions (a hostile offset must not make
    // a write allocate gigabytes).
    if !(0..=MAX_FILE as i128).contains(&new) {
        return u64::MAX;
    }
    f.pos = new as u64;
    f.pos
}

/// Nothing to close: the handle owns the buffer.
///
/// # Safety
/// See [`mem_read`].
pub(super) unsafe extern "C" fn mem_close(_h: Thandle) -> c_int {
    0
}

/// The buffer's length.
///
/// # Safety
/// See [`mem_read`].
pub(super) unsafe extern "C" fn mem_size(h: Thandle) -> Toff {
    // SAFETY: as in mem_read.
    let f = unsafe { &*(h as *const MemFile) };
    f.bytes().len() as u64
}

/// Maps a read buffer (libtiff then reads it in place).
///
/// # Safety
/// See [`mem_read`].
pub(super) unsafe extern "C" fn mem_map(
    h: Thandle,
    base: *mut *mut c_void,
    size: *mut Toff,
) -> c_int {
    // SAFETY: as in mem_read; base and size are valid out-pointers.
    let f = unsafe { &*(h as *const MemFile) };
    match f.buf {
        Buffer::Read(b) => {
            // libtiff only reads through a mapping of a file opened "r".
            unsafe {
                *base = b.as_ptr() as *mut c_void;
                *size = b.len() as u64;
            }
            1
        }
        Buffer::Write(_) => 0,
    }
}

/// Nothing to unmap.
///
/// # Safety
/// See [`mem_read`].
pub(super) unsafe extern "C" fn mem_unmap(_h: Thandle, _base: *mut c_void, _size: Toff) {}

/// The messages in `list` joined, if any; clears them.
pub(super) fn take(list: &RefCell<Vec<String>>) -> Option<String> {
    let mut l = list.try_borrow_mut().ok()?;
    if l.is_empty() {
        None
    } else {
        let s = l.join("; ");
        l.clear();
        Some(s)
    }
}
