//! The only `unsafe` of the fax TIFF code (here and in [`callbacks`]):
//! hand-declared libtiff (≥ 4.5) functions and a safe [`Handle`] over
//! one open TIFF.
//!
//! Files live in memory: libtiff reads and writes through client procs
//! ([`TIFFClientOpenExt`]) over a Rust buffer, so attachments (bytes) and
//! files (read whole) take the same path. Every handle gets its own error
//! and warning handlers (`TIFFOpenOptionsSet…HandlerExtR`) that collect
//! libtiff's messages into the handle instead of printing them on stderr;
//! they turn into Rust errors with the message text. Tags are typed
//! ([`TagU16`], [`TagU32`] …) so a value of the wrong C type can never be
//! passed through the variadic `TIFFSetField`/`TIFFGetField`.

mod callbacks;

use callbacks::{
    mem_close, mem_map, mem_read, mem_seek, mem_size, mem_unmap, mem_write, on_error, on_warning,
    take, Buffer, MemFile, MessageLog,
};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::NonNull;

/// libtiff's opaque `TIFF`.
#[repr(C)]
struct RawTiff {
    _private: [u8; 0],
}

/// libtiff's opaque `TIFFOpenOptions`.
#[repr(C)]
struct RawOpenOptions {
    _private: [u8; 0],
}

type Thandle = *mut c_void;
type Tmsize = isize;
type Toff = u64;
/// A C `va_list` as a handler receives it. On x86-64 System V `va_list` is
/// an array type, so a parameter of that type is a pointer; on AArch64
/// (and other ABIs where it is a large struct) it is passed by reference;
/// on i686 and Windows it is a `char *`. In every case the bits are one
/// pointer, passed on unchanged to `vsnprintf`.
type VaListPtr = *mut c_void;

type ReadWriteProc = unsafe extern "C" fn(Thandle, *mut c_void, Tmsize) -> Tmsize;
type SeekProc = unsafe extern "C" fn(Thandle, Toff, c_int) -> Toff;
type CloseProc = unsafe extern "C" fn(Thandle) -> c_int;
type SizeProc = unsafe extern "C" fn(Thandle) -> Toff;
type MapProc = unsafe extern "C" fn(Thandle, *mut *mut c_void, *mut Toff) -> c_int;
type UnmapProc = unsafe extern "C" fn(Thandle, *mut c_void, Toff);
type HandlerExtR = unsafe extern "C" fn(
    *mut RawTiff,
    *mut c_void,
    *const c_char,
    *const c_char,
    VaListPtr,
) -> c_int;

extern "C" {
    fn TIFFOpenOptionsAlloc() -> *mut RawOpenOptions;
    fn TIFFOpenOptionsFree(opts: *mut RawOpenOptions);
    fn TIFFOpenOptionsSetMaxSingleMemAlloc(opts: *mut RawOpenOptions, max: Tmsize);
    fn TIFFOpenOptionsSetErrorHandlerExtR(
        opts: *mut RawOpenOptions,
        handler: HandlerExtR,
        user_data: *mut c_void,
    );
    fn TIFFOpenOptionsSetWarningHandlerExtR(
        opts: *mut RawOpenOptions,
        handler: HandlerExtR,
        user_data: *mut c_void,
    );
    #[allow(clippy::too_many_arguments)]
    fn TIFFClientOpenExt(
        name: *const c_char,
        mode: *const c_char,
        client: Thandle,
        read: ReadWriteProc,
        write: ReadWriteProc,
        seek: SeekProc,
        close: CloseProc,
        size: SizeProc,
        map: MapProc,
        unmap: UnmapProc,
        opts: *mut RawOpenOptions,
    ) -> *mut RawTiff;
    fn TIFFClose(tif: *mut RawTiff);
    fn TIFFSetField(tif: *mut RawTiff, tag: u32, ...) -> c_int;
    fn TIFFGetField(tif: *mut RawTiff, tag: u32, ...) -> c_int;
    fn TIFFGetFieldDefaulted(tif: *mut RawTiff, tag: u32, ...) -> c_int;
    #[cfg(test)]
    fn TIFFWriteEncodedStrip(
        tif: *mut RawTiff,
        strip: u32,
        data: *mut c_void,
        cc: Tmsize,
    ) -> Tmsize;
    fn TIFFWriteRawStrip(tif: *mut RawTiff, strip: u32, data: *mut c_void, cc: Tmsize) -> Tmsize;
    fn TIFFWriteDirectory(tif: *mut RawTiff) -> c_int;
    fn TIFFNumberOfDirectories(tif: *mut RawTiff) -> u32;
    fn TIFFSetDirectory(tif: *mut RawTiff, dir: u32) -> c_int;
    fn TIFFIsTiled(tif: *mut RawTiff) -> c_int;
    fn TIFFScanlineSize(tif: *mut RawTiff) -> Tmsize;
    fn TIFFReadScanline(tif: *mut RawTiff, buf: *mut c_void, row: u32, sample: u16) -> c_int;
    fn TIFFRGBAImageOK(tif: *mut RawTiff, emsg: *mut c_char) -> c_int;
    fn TIFFReadRGBAImageOriented(
        tif: *mut RawTiff,
        width: u32,
        height: u32,
        raster: *mut u32,
        orientation: c_int,
        stop_on_error: c_int,
    ) -> c_int;
}

/// A tag whose value is a C `uint16_t` (passed promoted to `int`).
#[derive(Clone, Copy)]
pub(super) struct TagU16(u32);
/// A tag whose value is a C `uint32_t`.
#[derive(Clone, Copy)]
pub(super) struct TagU32(u32);
/// A tag whose value is a C `float` (passed promoted to `double`).
#[derive(Clone, Copy)]
pub(super) struct TagF32(u32);
/// An ASCII tag (`char *`).
#[derive(Clone, Copy)]
pub(super) struct TagStr(u32);
/// A tag holding two `uint16_t` (PageNumber).
#[derive(Clone, Copy)]
pub(super) struct TagU16Pair(u32);

pub(super) const SUBFILE_TYPE: TagU32 = TagU32(254);
pub(super) const IMAGE_WIDTH: TagU32 = TagU32(256);
pub(super) const IMAGE_LENGTH: TagU32 = TagU32(257);
pub(super) const BITS_PER_SAMPLE: TagU16 = TagU16(258);
pub(super) const COMPRESSION: TagU16 = TagU16(259);
pub(super) const PHOTOMETRIC: TagU16 = TagU16(262);
pub(super) const FILL_ORDER: TagU16 = TagU16(266);
pub(super) const IMAGE_DESCRIPTION: TagStr = TagStr(270);
pub(super) const SAMPLES_PER_PIXEL: TagU16 = TagU16(277);
pub(super) const ROWS_PER_STRIP: TagU32 = TagU32(278);
pub(super) const X_RESOLUTION: TagF32 = TagF32(282);
pub(super) const Y_RESOLUTION: TagF32 = TagF32(283);
pub(super) const PLANAR_CONFIG: TagU16 = TagU16(284);
pub(super) const T4_OPTIONS: TagU32 = TagU32(292);
pub(super) const T6_OPTIONS: TagU32 = TagU32(293);
pub(super) const RESOLUTION_UNIT: TagU16 = TagU16(296);
pub(super) const PAGE_NUMBER: TagU16Pair = TagU16Pair(297);
pub(super) const SOFTWARE: TagStr = TagStr(305);
pub(super) const DATE_TIME: TagStr = TagStr(306);

/// One open TIFF over an in-memory buffer.
pub(super) struct Handle<'a> {
    tif: NonNull<RawTiff>,
    // Owned (made by `Box::into_raw`, freed in Drop after TIFFClose):
    // libtiff's procs and handlers reach them through raw pointers, so no
    // Box or reference to them is kept while libtiff runs.
    file: NonNull<MemFile<'a>>,
    log: NonNull<MessageLog>,
    closed: bool,
}

impl<'a> Handle<'a> {
    /// Opens `data` for reading. `max_alloc` caps any single allocation
    /// libtiff makes for this file.
    pub(super) fn open_read(data: &'a [u8], max_alloc: usize) -> Result<Handle<'a>, String> {
        Self::open(
            MemFile {
                buf: Buffer::Read(data),
                pos: 0,
            },
            c"r",
            max_alloc,
        )
    }

    /// A new, empty TIFF to write (classic TIFF, native byte order).
    pub(super) fn open_write() -> Result<Handle<'static>, String> {
        Handle::open(
            MemFile {
                buf: Buffer::Write(Vec::new()),
                pos: 0,
            },
            c"w",
            0,
        )
    }

    fn open(file: MemFile<'a>, mode: &CStr, max_alloc: usize) -> Result<Handle<'a>, String> {
        let file = NonNull::from(Box::leak(Box::new(file)));
        let log = NonNull::from(Box::leak(Box::new(MessageLog::default())));
        // Frees both when the open fails.
        let free = || {
            // SAFETY: both came from Box::leak above and libtiff holds no
            // pointer to them (it did not open, or was closed).
            unsafe {
                let log = Box::from_raw(log.as_ptr());
                drop(Box::from_raw(file.as_ptr()));
                take(&log.errors)
            }
        };
        // SAFETY: plain constructor; checked for null.
        let opts = unsafe { TIFFOpenOptionsAlloc() };
        if opts.is_null() {
            let _ = free();
            return Err("libtiff: out of memory".into());
        }
        // SAFETY: opts is valid; file and log stay allocated until after
        // TIFFClose (Drop). libtiff copies the options at open, so opts is
        // freed right after.
        let tif = unsafe {
            TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, log.as_ptr() as *mut c_void);
            TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, log.as_ptr() as *mut c_void);
            if max_alloc > 0 {
                TIFFOpenOptionsSetMaxSingleMemAlloc(opts, max_alloc as Tmsize);
            }
            let tif = TIFFClientOpenExt(
                c"memory".as_ptr(),
                mode.as_ptr(),
                file.as_ptr() as Thandle,
                mem_read,
                mem_write,
                mem_seek,
                mem_close,
                mem_size,
                mem_map,
                mem_unmap,
                opts,
            );
            TIFFOpenOptionsFree(opts);
            tif
        };
        match NonNull::new(tif) {
            Some(tif) => Ok(Handle {
                tif,
                file,
                log,
                closed: false,
            }),
            None => Err(free().unwrap_or_else(|| "not a TIFF file".into())),
        }
    }

    fn log(&self) -> &MessageLog {
        // SAFETY: allocated until Drop; libtiff's handlers only take shared
        // references too (its contents are behind RefCells).
        unsafe { self.log.as_ref() }
    }

    fn raw(&self) -> *mut RawTiff {
        self.tif.as_ptr()
    }

    /// libtiff's errors so far (joined), or `fallback`; clears them.
    pub(super) fn error(&self, fallback: &str) -> String {
        take(&self.log().errors).unwrap_or_else(|| fallback.to_string())
    }

    /// libtiff's errors so far (joined), if any; clears them.
    pub(super) fn take_errors(&self) -> Option<String> {
        take(&self.log().errors)
    }

    /// libtiff's warnings so far (joined); clears them.
    pub(super) fn take_warnings(&self) -> Option<String> {
        take(&self.log().warnings)
    }

    pub(super) fn set_u16(&mut self, tag: TagU16, v: u16) -> Result<(), String> {
        // SAFETY: the tag's C type is uint16_t, passed promoted to int.
        let ok = unsafe { TIFFSetField(self.raw(), tag.0, c_int::from(v)) };
        self.check(ok, tag.0)
    }

    pub(super) fn set_u32(&mut self, tag: TagU32, v: u32) -> Result<(), String> {
        // SAFETY: the tag's C type is uint32_t.
        let ok = unsafe { TIFFSetField(self.raw(), tag.0, v) };
        self.check(ok, tag.0)
    }

    pub(super) fn set_f32(&mut self, tag: TagF32, v: f32) -> Result<(), String> {
        // SAFETY: the tag's C type is float, passed promoted to double.
        let ok = unsafe { TIFFSetField(self.raw(), tag.0, f64::from(v)) };
        self.check(ok, tag.0)
    }

    pub(super) fn set_u16_pair(&mut self, tag: TagU16Pair, a: u16, b: u16) -> Result<(), String> {
        // SAFETY: two uint16_t, each promoted to int.
        let ok = unsafe { TIFFSetField(self.raw(), tag.0, c_int::from(a), c_int::from(b)) };
        self.check(ok, tag.0)
    }

    pub(super) fn set_str(&mut self, tag: TagStr, v: &str) -> Result<(), String> {
        let c = CString::new(v.replace('\0', " ")).map_err(|e| e.to_string())?;
        // SAFETY: an ASCII tag takes a C string, which libtiff copies.
        let ok = unsafe { TIFFSetField(self.raw(), tag.0, c.as_ptr()) };
        self.check(ok, tag.0)
    }

    fn check(&self, ok: c_int, tag: u32) -> Result<(), String> {
        if ok == 1 {
            Ok(())
        } else {
            Err(self.error(&format!("cannot set tag {tag}")))
        }
    }

    /// The tag's value, or libtiff's default when `defaulted`.
    pub(super) fn get_u16(&self, tag: TagU16, defaulted: bool) -> Option<u16> {
        let mut v: u16 = 0;
        // SAFETY: the tag's C type is uint16_t; libtiff writes one through
        // the pointer.
        let ok = unsafe {
            if defaulted {
                TIFFGetFieldDefaulted(self.raw(), tag.0, &mut v as *mut u16)
            } else {
                TIFFGetField(self.raw(), tag.0, &mut v as *mut u16)
            }
        };
        (ok == 1).then_some(v)
    }

    pub(super) fn get_u32(&self, tag: TagU32) -> Option<u32> {
        let mut v: u32 = 0;
        // SAFETY: the tag's C type is uint32_t.
        let ok = unsafe { TIFFGetField(self.raw(), tag.0, &mut v as *mut u32) };
        (ok == 1).then_some(v)
    }

    pub(super) fn get_f32(&self, tag: TagF32) -> Option<f32> {
        let mut v: f32 = 0.0;
        // SAFETY: the tag's C type is float.
        let ok = unsafe { TIFFGetField(self.raw(), tag.0, &mut v as *mut f32) };
        (ok == 1).then_some(v)
    }

    pub(super) fn get_str(&self, tag: TagStr) -> Option<String> {
        let mut p: *const c_char = std::ptr::null();
        // SAFETY: ASCII tags hand out a pointer to libtiff's own copy,
        // valid until the directory changes; it is copied at once.
        let ok = unsafe { TIFFGetField(self.raw(), tag.0, &mut p as *mut *const c_char) };
        if ok != 1 || p.is_null() {
            return None;
        }
        // SAFETY: p is non-null and points to libtiff's NUL-terminated copy.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    /// Writes `data` as strip 0 of the current directory; libtiff codes it
    /// with the directory's compression.
    /// Strip 0 as already coded data (libtiff writes it as it is).
    pub(super) fn write_raw_strip(&mut self, data: &[u8]) -> Result<(), String> {
        let Ok(len) = Tmsize::try_from(data.len()) else {
            return Err("strip too large".into());
        };
        // SAFETY: libtiff only reads `len` bytes from data (the pointer is
        // non-const in its signature only).
        let n = unsafe { TIFFWriteRawStrip(self.raw(), 0, data.as_ptr() as *mut c_void, len) };
        if n < 0 {
            Err(self.error("cannot write strip"))
        } else {
            Ok(())
        }
    }

    /// Strip 0 from pixels, coded by libtiff (the tests' reference coder).
    #[cfg(test)]
    pub(super) fn write_strip(&mut self, data: &[u8]) -> Result<(), String> {
        let Ok(len) = Tmsize::try_from(data.len()) else {
            return Err("strip too large".into());
        };
        // SAFETY: libtiff only reads `len` bytes from data (the pointer is
        // non-const in its signature only).
        let n = unsafe { TIFFWriteEncodedStrip(self.raw(), 0, data.as_ptr() as *mut c_void, len) };
        if n < 0 {
            Err(self.error("cannot write strip"))
        } else {
            Ok(())
        }
    }

    pub(super) fn write_directory(&mut self) -> Result<(), String> {
        // SAFETY: valid handle.
        let ok = unsafe { TIFFWriteDirectory(self.raw()) };
        self.check(ok, 0)
            .map_err(|e| format!("cannot write directory: {e}"))
    }

    pub(super) fn number_of_directories(&self) -> u32 {
        // SAFETY: valid handle; libtiff detects IFD loops.
        unsafe { TIFFNumberOfDirectories(self.raw()) }
    }

    pub(super) fn set_directory(&mut self, dir: u32) -> Result<(), String> {
        // SAFETY: valid handle; an index past the end fails cleanly.
        let ok = unsafe { TIFFSetDirectory(self.raw(), dir) };
        if ok == 1 {
            Ok(())
        } else {
            Err(self.error(&format!("cannot read directory {dir}")))
        }
    }

    pub(super) fn is_tiled(&self) -> bool {
        // SAFETY: valid handle.
        unsafe { TIFFIsTiled(self.raw()) != 0 }
    }

    pub(super) fn scanline_size(&self) -> usize {
        // SAFETY: valid handle.
        let n = unsafe { TIFFScanlineSize(self.raw()) };
        usize::try_from(n).unwrap_or(0)
    }

    /// Decodes row `row` of a stripped image into `buf`.
    pub(super) fn read_scanline(&mut self, row: u32, buf: &mut [u8]) -> Result<(), String> {
        let need = self.scanline_size();
        if need == 0 || buf.len() < need {
            return Err(format!(
                "scanline buffer of {} bytes, need {need}",
                buf.len()
            ));
        }
        // SAFETY: buf holds at least TIFFScanlineSize bytes, all libtiff
        // writes for one row of sample 0.
        let ok = unsafe { TIFFReadScanline(self.raw(), buf.as_mut_ptr() as *mut c_void, row, 0) };
        if ok == 1 {
            Ok(())
        } else {
            Err(self.error(&format!("cannot decode row {row}")))
        }
    }

    /// Whether libtiff's RGBA reader can handle this directory.
    pub(super) fn rgba_ok(&self) -> Result<(), String> {
        let mut msg = [0 as c_char; 1024];
        // SAFETY: msg is the char[1024] the function requires.
        let ok = unsafe { TIFFRGBAImageOK(self.raw(), msg.as_mut_ptr()) };
        if ok == 1 {
            Ok(())
        } else {
            // SAFETY: libtiff NUL-terminates the message in msg.
            Err(unsafe { CStr::from_ptr(msg.as_ptr()) }
                .to_string_lossy()
                .into_owned())
        }
    }

    /// The current directory as `width × height` ABGR words, top row first.
    pub(super) fn read_rgba(
        &mut self,
        width: u32,
        height: u32,
        raster: &mut [u32],
    ) -> Result<(), String> {
        if raster.len() != width as usize * height as usize {
            return Err("raster size does not match the image".into());
        }
        // SAFETY: raster holds exactly width × height words, what libtiff
        // fills; 1 = ORIENTATION_TOPLEFT; stop at the first error.
        let ok = unsafe {
            TIFFReadRGBAImageOriented(self.raw(), width, height, raster.as_mut_ptr(), 1, 1)
        };
        if ok == 1 {
            Ok(())
        } else {
            Err(self.error("cannot decode image"))
        }
    }

    /// Closes a handle opened with [`Handle::open_write`] and returns the
    /// file's bytes.
    pub(super) fn finish(mut self) -> Result<Vec<u8>, String> {
        // SAFETY: the handle is open; `closed` keeps Drop from closing it
        // again. TIFFClose flushes pending data through mem_write.
        unsafe { TIFFClose(self.raw()) };
        self.closed = true;
        if let Some(e) = take(&self.log().errors) {
            return Err(e);
        }
        // SAFETY: libtiff is done with the file (closed); Drop frees it.
        let file = unsafe { self.file.as_mut() };
        match std::mem::replace(&mut file.buf, Buffer::Write(Vec::new())) {
            Buffer::Write(v) => Ok(v),
            Buffer::Read(_) => Err("handle was opened for reading".into()),
        }
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle is closed once (finish() sets `closed`);
        // file and log came from Box::leak in open() and libtiff no longer
        // points to them after TIFFClose.
        unsafe {
            if !self.closed {
                TIFFClose(self.raw());
            }
            drop(Box::from_raw(self.file.as_ptr()));
            drop(Box::from_raw(self.log.as_ptr()));
        }
    }
}
