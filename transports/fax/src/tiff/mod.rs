//! TIFF for the fax transport, through libtiff: writing TIFF Class F (RFC
//! 3949 profile F: MH, MR or MMR, one page per directory), the file the
//! engines send; and reading any TIFF (every directory, any compression,
//! fill order, colour model) as bilevel or grey pixels, for TIFF
//! attachments, ghostscript output and the faxes the engines receive.
//!
//! The CCITT coding of written pages is ours ([`ccitt`], bit for bit what
//! libtiff's coder makes, several pages at once); libtiff writes the file
//! around the coded strips and does all the reading. Files are handled in memory ([`encode_tiff_f`],
//! [`decode_tiff`]); [`write_tiff_f`] and [`read_tiff`] add the file. The
//! `unsafe` FFI is confined to [`ffi`]; libtiff's messages become the text
//! of [`TiffError`], never stderr output.
//!
//! libtiff ≥ 4.5 is required (per-handle message handlers and allocation
//! limits; Debian bookworm ships 4.5.0).

mod ccitt;
mod ffi;
#[cfg(test)]
mod tests;

use super::page::{Compression, Page, Resolution, FAX_WIDTH, X_DPI};
use ffi::Handle;
use std::path::{Path, PathBuf};

/// The widths T.4 allows: A4 (1728), B4 (2048), A3 (2432) at 8 pels/mm.
pub const FAX_WIDTHS: [u32; 3] = [FAX_WIDTH, 2048, 2432];

/// What went wrong with a TIFF.
#[derive(Debug, thiserror::Error)]
pub enum TiffError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// libtiff refused or failed; `message` is libtiff's own text.
    #[error("TIFF {context}: {message}")]
    Libtiff { context: String, message: String },
    /// A page that TIFF-F cannot carry (width, size, resolution).
    #[error("not a fax page: {0}")]
    InvalidPage(String),
    /// A page is larger than [`ReadLimits`] allow.
    #[error("TIFF too large: {0}")]
    TooLarge(String),
    /// The file has more pages than [`ReadLimits`] allow.
    #[error("TIFF has {pages} pages (at most {limit})")]
    TooManyPages { pages: u32, limit: u32 },
    /// Writing needs at least one page; reading found none.
    #[error("TIFF has no pages")]
    NoPages,
}

fn lib(context: impl Into<String>) -> impl FnOnce(String) -> TiffError {
    let context = context.into();
    move |message| TiffError::Libtiff { context, message }
}

/// The descriptive tags of a TIFF-F file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiffHeader {
    /// Software (305).
    pub software: String,
    /// DateTime (306) as `YYYY:MM:DD HH:MM:SS`; `None`: now (UTC).
    pub date_time: Option<String>,
    /// ImageDescription (270), if any (a job id, the recipient …).
    pub description: Option<String>,
}

impl Default for TiffHeader {
    fn default() -> Self {
        TiffHeader {
            software: "faxmta".into(),
            date_time: None,
            description: None,
        }
    }
}

/// Writes `pages` to `path` as TIFF Class F, atomically (a temporary file
/// beside it, then a rename).
pub fn write_tiff_f(
    path: &Path,
    pages: &[Page],
    compression: Compression,
    header: &TiffHeader,
) -> Result<(), TiffError> {
    write_tiff_f_threads(path, pages, compression, header, 0)
}

/// [`write_tiff_f`], the pages coded on `threads` threads (0: one per
/// core; see [`crate::render::parallel::threads`]).
pub fn write_tiff_f_threads(
    path: &Path,
    pages: &[Page],
    compression: Compression,
    header: &TiffHeader,
    threads: usize,
) -> Result<(), TiffError> {
    let bytes = encode_tiff_f_threads(pages, compression, header, threads)?;
    let io = |source| TiffError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    // Unique per process and call: two writers never share a temporary.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(
        ".{}.{}-{seq}.tmp",
        name.unwrap_or_else(|| "fax".into()),
        std::process::id()
    ));
    std::fs::write(&tmp, &bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// `pages` as the bytes of a TIFF Class F file: ImageWidth 1728 (or
/// 2048/2432), BitsPerSample 1, SamplesPerPixel 1, Compression 3 (MH:
/// T4Options 0, MR: T4Options 1) or 4 (MMR: T6Options 0), Photometric 0,
/// FillOrder 1, XResolution 204, YResolution 98/196 (inch), NewSubfileType
/// 2, PageNumber n/total, one strip per page, Software, DateTime.
pub fn encode_tiff_f(
    pages: &[Page],
    compression: Compression,
    header: &TiffHeader,
) -> Result<Vec<u8>, TiffError> {
    encode_tiff_f_threads(pages, compression, header, 0)
}

/// [`encode_tiff_f`], the pages coded on `threads` threads (0: one per
/// core). The bytes are the same for any number of threads.
pub fn encode_tiff_f_threads(
    pages: &[Page],
    compression: Compression,
    header: &TiffHeader,
    threads: usize,
) -> Result<Vec<u8>, TiffError> {
    if pages.is_empty() {
        return Err(TiffError::NoPages);
    }
    let total = u16::try_from(pages.len())
        .map_err(|_| TiffError::TooLarge(format!("{} pages", pages.len())))?;
    for (i, p) in pages.iter().enumerate() {
        check_page(p).map_err(|e| TiffError::InvalidPage(format!("page {}: {e}", i + 1)))?;
    }
    let date = header.date_time.clone().unwrap_or_else(now_tiff_date);
    let threads = crate::render::parallel::threads(threads);
    let mut t = Handle::open_write().map_err(lib("open for writing"))?;
    // A few pages at a time: coded side by side, then written in order,
    // so no more than a window of coded strips waits beside the file.
    let window = threads * 2;
    for (w, chunk) in pages.chunks(window).enumerate() {
        let Ok(strips) = crate::render::parallel::try_map::<_, std::convert::Infallible>(
            chunk.len(),
            threads,
            |i| Ok(ccitt::encode_page(&chunk[i], compression)),
        );
        for (k, (p, strip)) in chunk.iter().zip(&strips).enumerate() {
            let i = w * window + k;
            write_page(
                &mut t,
                p,
                compression,
                header,
                &date,
                i as u16,
                total,
                |t| t.write_raw_strip(strip),
            )
            .map_err(lib(format!("page {}", i + 1)))?;
        }
    }
    t.finish().map_err(lib("close"))
}

/// [`encode_tiff_f`] with libtiff's own coder: the reference the tests
/// hold [`ccitt`] to.
#[cfg(test)]
pub(crate) fn encode_tiff_f_libtiff(
    pages: &[Page],
    compression: Compression,
    header: &TiffHeader,
) -> Result<Vec<u8>, TiffError> {
    let total = pages.len() as u16;
    let date = header.date_time.clone().unwrap_or_else(now_tiff_date);
    let mut t = Handle::open_write().map_err(lib("open for writing"))?;
    for (i, p) in pages.iter().enumerate() {
        write_page(
            &mut t,
            p,
            compression,
            header,
            &date,
            i as u16,
            total,
            |t| t.write_strip(&p.bits),
        )
        .map_err(lib(format!("page {}", i + 1)))?;
    }
    t.finish().map_err(lib("close"))
}

fn check_page(p: &Page) -> Result<(), String> {
    if !FAX_WIDTHS.contains(&p.width) {
        return Err(format!("{} pixels wide (1728, 2048 or 2432)", p.width));
    }
    if p.height == 0 {
        return Err("no rows".into());
    }
    if p.bits.len() != p.stride() * p.height as usize {
        return Err(format!(
            "{} bytes of pixels for {}×{}",
            p.bits.len(),
            p.width,
            p.height
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_page(
    t: &mut Handle,
    p: &Page,
    compression: Compression,
    header: &TiffHeader,
    date: &str,
    n: u16,
    total: u16,
    strip: impl FnOnce(&mut Handle) -> Result<(), String>,
) -> Result<(), String> {
    t.set_u32(ffi::SUBFILE_TYPE, 2)?; // FILETYPE_PAGE
    t.set_u32(ffi::IMAGE_WIDTH, p.width)?;
    t.set_u32(ffi::IMAGE_LENGTH, p.height)?;
    t.set_u16(ffi::BITS_PER_SAMPLE, 1)?;
    t.set_u16(ffi::SAMPLES_PER_PIXEL, 1)?;
    match compression {
        Compression::Mh => {
            t.set_u16(ffi::COMPRESSION, 3)?;
            t.set_u32(ffi::T4_OPTIONS, 0)?;
        }
        Compression::Mr => {
            t.set_u16(ffi::COMPRESSION, 3)?;
            t.set_u32(ffi::T4_OPTIONS, 1)?;
        }
        Compression::Mmr => {
            t.set_u16(ffi::COMPRESSION, 4)?;
            t.set_u32(ffi::T6_OPTIONS, 0)?;
        }
    }
    t.set_u16(ffi::PHOTOMETRIC, 0)?; // min-is-white: 1 bits are black
    t.set_u16(ffi::FILL_ORDER, 1)?;
    t.set_u16(ffi::PLANAR_CONFIG, 1)?;
    t.set_f32(ffi::X_RESOLUTION, X_DPI as f32)?;
    t.set_f32(ffi::Y_RESOLUTION, p.resolution.y_dpi() as f32)?;
    t.set_u16(ffi::RESOLUTION_UNIT, 2)?; // inch
    t.set_u16_pair(ffi::PAGE_NUMBER, n, total)?;
    t.set_u32(ffi::ROWS_PER_STRIP, p.height)?;
    t.set_str(ffi::SOFTWARE, &header.software)?;
    t.set_str(ffi::DATE_TIME, date)?;
    if let Some(d) = &header.description {
        t.set_str(ffi::IMAGE_DESCRIPTION, d)?;
    }
    strip(t)?;
    t.write_directory()
}

/// Now (UTC) as a TIFF DateTime, `YYYY:MM:DD HH:MM:SS`.
fn now_tiff_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    tiff_date(secs)
}

/// Seconds since the epoch (UTC) as a TIFF DateTime.
fn tiff_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}:{m:02}:{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Caps for reading untrusted TIFF files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Directories (pages) at most.
    pub max_pages: u32,
    /// Pixels per page at most (width × height).
    pub max_pixels: u64,
}

impl Default for ReadLimits {
    /// 1000 pages of at most 64 megapixels.
    fn default() -> Self {
        ReadLimits {
            max_pages: 1000,
            max_pixels: 64 << 20,
        }
    }
}

/// The pixels of a page read from a TIFF.
#[derive(Clone, PartialEq, Eq)]
pub enum Pixels {
    /// Packed rows, `width.div_ceil(8)` bytes each, most significant bit
    /// first, 1 = black (as [`Page::bits`]); bits past the width are 0.
    Bilevel(Vec<u8>),
    /// One byte per pixel, 0 = black, 255 = white (colour is converted to
    /// luminance; transparency is composed over white).
    Gray(Vec<u8>),
}

/// One page (directory) of a TIFF file.
#[derive(Clone, PartialEq)]
pub struct ReadPage {
    pub width: u32,
    pub height: u32,
    /// Horizontal resolution in dots per inch, when the file gives one
    /// (ResolutionUnit inch or centimetre).
    pub x_dpi: Option<f32>,
    /// Vertical resolution in dots per inch, likewise.
    pub y_dpi: Option<f32>,
    /// ImageDescription: in a received fax, the remote's TSI.
    pub description: Option<String>,
    pub pixels: Pixels,
}

impl std::fmt::Debug for ReadPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.pixels {
            Pixels::Bilevel(_) => "bilevel",
            Pixels::Gray(_) => "gray",
        };
        f.debug_struct("ReadPage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("x_dpi", &self.x_dpi)
            .field("y_dpi", &self.y_dpi)
            .field("pixels", &kind)
            .finish_non_exhaustive()
    }
}

impl ReadPage {
    /// The fax resolution this page is at: 204 dpi across (±3%) and about
    /// 98 or 196 lines per inch.
    pub fn fax_resolution(&self) -> Option<Resolution> {
        let (x, y) = (self.x_dpi?, self.y_dpi?);
        if (x - X_DPI as f32).abs() > X_DPI as f32 * 0.03 {
            return None;
        }
        [Resolution::Standard, Resolution::Fine]
            .into_iter()
            .find(|r| (y - r.y_dpi() as f32).abs() <= r.y_dpi() as f32 * 0.03)
    }

    /// This page as a fax [`Page`], if it already is one: bilevel, a T.4
    /// width and a fax resolution (the usual case for received faxes).
    pub fn to_fax_page(&self) -> Option<Page> {
        let resolution = self.fax_resolution()?;
        match &self.pixels {
            Pixels::Bilevel(bits) if FAX_WIDTHS.contains(&self.width) => Some(Page {
                width: self.width,
                height: self.height,
                resolution,
                bits: bits.clone(),
            }),
            _ => None,
        }
    }

    /// The grey level (0 black … 255 white) of the pixel at (x, y).
    pub fn gray_at(&self, x: u32, y: u32) -> u8 {
        if x >= self.width || y >= self.height {
            return 255;
        }
        match &self.pixels {
            Pixels::Bilevel(b) => {
                let stride = self.width.div_ceil(8) as usize;
                let byte = b[y as usize * stride + (x / 8) as usize];
                if byte & (0x80 >> (x % 8)) != 0 {
                    0
                } else {
                    255
                }
            }
            Pixels::Gray(g) => g[y as usize * self.width as usize + x as usize],
        }
    }
}

/// Reads every page of the TIFF file at `path` (default [`ReadLimits`]).
pub fn read_tiff(path: &Path) -> Result<Vec<ReadPage>, TiffError> {
    let data = std::fs::read(path).map_err(|source| TiffError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_tiff(&data, &ReadLimits::default())
}

/// Reads every page of a TIFF file held in memory.
pub fn decode_tiff(data: &[u8], limits: &ReadLimits) -> Result<Vec<ReadPage>, TiffError> {
    let mut r = TiffReader::open(data, limits)?;
    (0..r.page_count()).map(|i| r.read_page(i)).collect()
}

/// A TIFF file in memory, read one page at a time (so a long file never
/// has all its pixels in memory at once).
pub struct TiffReader<'a> {
    handle: Handle<'a>,
    count: u32,
    limits: ReadLimits,
}

impl<'a> TiffReader<'a> {
    /// Opens `data` and counts its pages (checked against `limits`).
    pub fn open(data: &'a [u8], limits: &ReadLimits) -> Result<TiffReader<'a>, TiffError> {
        // No single libtiff allocation beyond what the pixel cap implies.
        let max_alloc = (limits.max_pixels * 4).clamp(1 << 20, 1 << 31) as usize;
        let handle = Handle::open_read(data, max_alloc).map_err(lib("open"))?;
        let count = handle.number_of_directories();
        // A broken chain of directories (an offset past the end: a
        // truncated file) must not pass as a shorter document.
        if let Some(e) = handle.take_errors() {
            return Err(TiffError::Libtiff {
                context: "directories".into(),
                message: e,
            });
        }
        if count == 0 {
            return Err(TiffError::NoPages);
        }
        if count > limits.max_pages {
            return Err(TiffError::TooManyPages {
                pages: count,
                limit: limits.max_pages,
            });
        }
        Ok(TiffReader {
            handle,
            count,
            limits: *limits,
        })
    }

    /// The number of pages (directories).
    pub fn page_count(&self) -> u32 {
        self.count
    }

    /// Page `index` (0-based).
    pub fn read_page(&mut self, index: u32) -> Result<ReadPage, TiffError> {
        self.handle
            .set_directory(index)
            .map_err(lib(format!("page {}", index + 1)))?;
        read_page(&mut self.handle, index + 1, &self.limits)
    }
}

fn read_page(t: &mut Handle, number: u32, limits: &ReadLimits) -> Result<ReadPage, TiffError> {
    let ctx = |m: String| TiffError::Libtiff {
        context: format!("page {number}"),
        message: m,
    };
    let width = t.get_u32(ffi::IMAGE_WIDTH).unwrap_or(0);
    let height = t.get_u32(ffi::IMAGE_LENGTH).unwrap_or(0);
    if width == 0 || height == 0 {
        return Err(ctx(format!("image of {width}×{height} pixels")));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(TiffError::TooLarge(format!(
            "page {number} is {width}×{height} pixels (at most {} megapixels)",
            limits.max_pixels >> 20
        )));
    }
    let (x_dpi, y_dpi) = resolution(t);
    let description = t.get_str(ffi::IMAGE_DESCRIPTION);
    let bps = t.get_u16(ffi::BITS_PER_SAMPLE, true).unwrap_or(1);
    let spp = t.get_u16(ffi::SAMPLES_PER_PIXEL, true).unwrap_or(1);
    let photometric = t.get_u16(ffi::PHOTOMETRIC, false);
    let simple = spp == 1 && !t.is_tiled() && matches!(photometric, Some(0 | 1));
    let pixels = if simple && bps == 1 {
        Pixels::Bilevel(read_bilevel(t, width, height, photometric == Some(1)).map_err(ctx)?)
    } else if simple && bps == 8 {
        Pixels::Gray(read_gray8(t, width, height, photometric == Some(0)).map_err(ctx)?)
    } else {
        t.rgba_ok().map_err(ctx)?;
        Pixels::Gray(read_rgba(t, width, height).map_err(ctx)?)
    };
    // Warnings about odd but readable files are dropped: the pixels came.
    let _ = t.take_warnings();
    Ok(ReadPage {
        width,
        height,
        x_dpi,
        y_dpi,
        description,
        pixels,
    })
}

fn resolution(t: &Handle) -> (Option<f32>, Option<f32>) {
    let factor = match t.get_u16(ffi::RESOLUTION_UNIT, true) {
        Some(2) => 1.0,
        Some(3) => 2.54,
        _ => return (None, None),
    };
    let dpi = |v: Option<f32>| {
        v.map(|v| v * factor)
            .filter(|v| v.is_finite() && *v >= 1.0 && *v <= 100_000.0)
    };
    (
        dpi(t.get_f32(ffi::X_RESOLUTION)),
        dpi(t.get_f32(ffi::Y_RESOLUTION)),
    )
}

/// 1-bit rows as packed 1 = black; `invert` for min-is-black files.
/// libtiff undoes FillOrder 2 and the CCITT/LZW/… coding.
fn read_bilevel(t: &mut Handle, width: u32, height: u32, invert: bool) -> Result<Vec<u8>, String> {
    let stride = width.div_ceil(8) as usize;
    let mut row = vec![0u8; t.scanline_size().max(stride)];
    let mut out = vec![0u8; stride * height as usize];
    let tail_mask: u8 = match width % 8 {
        0 => 0xff,
        r => 0xffu8 << (8 - r),
    };
    for (y, dst) in out.chunks_exact_mut(stride).enumerate() {
        t.read_scanline(y as u32, &mut row)?;
        dst.copy_from_slice(&row[..stride]);
        if invert {
            dst.iter_mut().for_each(|b| *b = !*b);
        }
        if let Some(last) = dst.last_mut() {
            *last &= tail_mask;
        }
    }
    Ok(out)
}

/// 8-bit grey rows as 0 = black; `invert` for min-is-white files.
fn read_gray8(t: &mut Handle, width: u32, height: u32, invert: bool) -> Result<Vec<u8>, String> {
    let w = width as usize;
    let mut row = vec![0u8; t.scanline_size().max(w)];
    let mut out = vec![0u8; w * height as usize];
    for (y, dst) in out.chunks_exact_mut(w).enumerate() {
        t.read_scanline(y as u32, &mut row)?;
        dst.copy_from_slice(&row[..w]);
        if invert {
            dst.iter_mut().for_each(|b| *b = 255 - *b);
        }
    }
    Ok(out)
}

/// Anything else libtiff can decode (colour, palette, tiles, 16-bit …)
/// through its RGBA reader, as luminance over white.
fn read_rgba(t: &mut Handle, width: u32, height: u32) -> Result<Vec<u8>, String> {
    let mut raster = vec![0u32; width as usize * height as usize];
    t.read_rgba(width, height, &mut raster)?;
    Ok(raster
        .iter()
        .map(|&abgr| {
            let r = abgr & 0xff;
            let g = (abgr >> 8) & 0xff;
            let b = (abgr >> 16) & 0xff;
            let a = abgr >> 24;
            // The raster is premultiplied: over white adds 255 − alpha.
            let luma = (r * 77 + g * 150 + b * 29) >> 8;
            (luma + (255 - a)).min(255) as u8
        })
        .collect())
}
