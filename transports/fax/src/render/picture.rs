//! Pictures and TIFF attachments as fax pages: PNG, JPEG and GIF through
//! the `image` crate (EXIF orientation applied, transparency over white),
//! scaled to fit inside the margins; TIFF through libtiff, every page at
//! its own resolution, the pages side by side ([`super::parallel`]).
//! Pixel counts are checked before anything large is allocated.

use super::doc::Doc;
use super::raster::{Bits, DocImage, Gray};
use super::{RenderError, RenderOptions};
use crate::page::FAX_WIDTH;
use crate::tiff::{Pixels, ReadLimits, ReadPage, TiffError, TiffReader, FAX_WIDTHS};
use image::{DynamicImage, ImageDecoder, ImageReader};
use std::io::Cursor;

/// Margin around pictures, in inches.
const PICTURE_MARGIN: f32 = 0.4;
/// Small pictures are enlarged at most this much (1 picture pixel to 4
/// fax pixels across) so an icon does not become a page of blocks.
const MAX_ENLARGE: f32 = 4.0;

/// A PNG, JPEG or GIF (first frame) on a page of its own.
pub(super) fn picture(
    doc: &mut Doc,
    data: &[u8],
    who: &str,
    opts: &RenderOptions,
) -> Result<(), RenderError> {
    doc.check_room(1)?;
    let gray = decode(data, who, opts.max_image_pixels)?;
    let page = doc.sheet.picture_page(&gray, PICTURE_MARGIN, MAX_ENLARGE);
    doc.push_page(page)
}

fn decode(data: &[u8], who: &str, max_pixels: u64) -> Result<Gray, RenderError> {
    let fail = |reason: String| RenderError::Part {
        part: who.to_string(),
        reason,
    };
    let reader = || {
        ImageReader::new(Cursor::new(data))
            .with_guessed_format()
            .map_err(|e| fail(format!("cannot read the picture: {e}")))
    };
    let r = reader()?;
    if r.format().is_none() {
        return Err(fail(
            "not a picture in a known format (PNG, JPEG, GIF)".into(),
        ));
    }
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| fail(format!("damaged picture: {e}")))?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(RenderError::ImageTooLarge {
            part: who.to_string(),
            width: w.into(),
            height: h.into(),
            limit: max_pixels,
        });
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    // The decoded picture (at most 8 bytes a pixel) and the decoder's own.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    r.limits(limits);
    let mut decoder = r
        .into_decoder()
        .map_err(|e| fail(format!("damaged picture: {e}")))?;
    let orientation = decoder.orientation().ok();
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| fail(format!("damaged picture: {e}")))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(to_gray(img))
}

/// Luminance (ITU-R BT.601 weights), transparency composed over white.
fn to_gray(img: DynamicImage) -> Gray {
    let (w, h) = (img.width(), img.height());
    let luma = |r: u8, g: u8, b: u8| {
        ((u32::from(r) * 77 + u32::from(g) * 150 + u32::from(b) * 29) >> 8) as u8
    };
    let over_white = |v: u8, a: u8| {
        let (v, a) = (u32::from(v), u32::from(a));
        ((v * a + 255 * (255 - a) + 127) / 255) as u8
    };
    let px = match img {
        DynamicImage::ImageLuma8(b) => b.into_raw(),
        DynamicImage::ImageLumaA8(b) => b
            .into_raw()
            .chunks_exact(2)
            .map(|p| over_white(p[0], p[1]))
            .collect(),
        DynamicImage::ImageRgb8(b) => b
            .into_raw()
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        DynamicImage::ImageRgba8(b) => b
            .into_raw()
            .chunks_exact(4)
            .map(|p| over_white(luma(p[0], p[1], p[2]), p[3]))
            .collect(),
        other => other
            .to_rgba8()
            .into_raw()
            .chunks_exact(4)
            .map(|p| over_white(luma(p[0], p[1], p[2]), p[3]))
            .collect(),
    };
    Gray { w, h, px }
}

/// Every page of a TIFF attachment.
pub(super) fn tiff(
    doc: &mut Doc,
    data: &[u8],
    who: &str,
    opts: &RenderOptions,
) -> Result<(), RenderError> {
    let limits = ReadLimits {
        max_pages: u32::MAX,
        max_pixels: opts.max_image_pixels,
    };
    let reader = TiffReader::open(data, &limits).map_err(|e| tiff_error(e, who))?;
    let count = reader.page_count();
    drop(reader);
    doc.check_room(count as usize)?;
    // Pages side by side: each thread reads through its own libtiff
    // handle on the same bytes, one page in flight per thread.
    let sheet = doc.sheet;
    let made = super::parallel::try_map_with(
        count as usize,
        super::parallel::threads(opts.threads),
        || TiffReader::open(data, &limits).map_err(|e| tiff_error(e, who)),
        |reader, i| {
            let reader = reader.as_mut().map_err(|e| e.clone())?;
            let page = reader.read_page(i as u32).map_err(|e| tiff_error(e, who))?;
            let (img, w_in, h_in) = document_of(page);
            Ok(sheet.document_page(img, w_in, h_in))
        },
    )?;
    for page in made {
        doc.push_page(page)?;
    }
    Ok(())
}

/// A page read from a TIFF (attachment or ghostscript output) as a
/// document image and its size in inches.
pub(super) fn document_of(p: ReadPage) -> (DocImage, f32, f32) {
    let (x_dpi, y_dpi) = match (p.x_dpi, p.y_dpi) {
        (Some(x), Some(y)) => (x, y),
        (Some(d), None) | (None, Some(d)) => (d, d),
        // No resolution: a fax-width page is taken for a fine fax page,
        // anything else fills the width of the paper (square pixels).
        (None, None) if FAX_WIDTHS.contains(&p.width) => (204.0, 196.0),
        (None, None) => {
            let d = p.width as f32 / (FAX_WIDTH as f32 / 204.0);
            (d, d)
        }
    };
    let (w_in, h_in) = (p.width as f32 / x_dpi, p.height as f32 / y_dpi);
    let img = match p.pixels {
        Pixels::Bilevel(data) => DocImage::Bits(Bits {
            w: p.width,
            h: p.height,
            stride: p.width.div_ceil(8) as usize,
            data,
        }),
        Pixels::Gray(px) => DocImage::Gray(Gray {
            w: p.width,
            h: p.height,
            px,
        }),
    };
    (img, w_in, h_in)
}

fn tiff_error(e: TiffError, who: &str) -> RenderError {
    match e {
        TiffError::TooLarge(reason) => RenderError::Part {
            part: who.to_string(),
            reason: format!("picture too large: {reason}"),
        },
        other => RenderError::Part {
            part: who.to_string(),
            reason: other.to_string(),
        },
    }
}
