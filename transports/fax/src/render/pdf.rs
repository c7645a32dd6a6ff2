//! PDF attachments as fax pages, through hayro (pure Rust): each page
//! rasterised straight at the fax grid (204 dpi across, 98/196 down,
//! smaller only when the page does not fit the paper; landscape pages
//! turned), fills without anti-aliasing so text stays crisp, pictures in
//! the PDF dithered.
//!
//! A page is drawn straight to grey by `pdf_grey::GreyDevice`; a page
//! using what that device does not draw (images, soft masks, blend modes,
//! patterns) is drawn by hayro's own RGBA renderer and turned into grey.

use super::doc::Doc;
use super::pdf_grey::{GreyDevice, THRESHOLD};
use super::raster::{Gray, Sheet};
use super::{RenderError, RenderOptions};
use crate::page::Page;
use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_interpret::{InterpreterCache, InterpreterSettings};
use hayro::hayro_syntax::page::Page as PdfPage;
use hayro::hayro_syntax::{LoadPdfError, Pdf};
use hayro::kurbo::Affine;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings};
use std::sync::Arc;

/// What one thread keeps from page to page: the grey device (with its
/// glyph cache) and the interpreter's cache for it; for pages only hayro
/// draws, hayro's cache and the render context and pixmap of the last
/// such page, reused when the next has the same size (a new 16 MB pixmap
/// per page is mostly page faults and clearing).
struct Canvas<'a> {
    grey: GreyDevice,
    interpreter_cache: InterpreterCache<'a>,
    cache: RenderCache<'a>,
    ctx: Option<RenderContext>,
    pixmap: Option<Pixmap>,
}

impl Canvas<'_> {
    fn new() -> Self {
        Canvas {
            grey: GreyDevice::new(),
            interpreter_cache: InterpreterCache::new(),
            cache: RenderCache::new(),
            ctx: None,
            pixmap: None,
        }
    }
}

/// The page's size in pixels at `x_scale × y_scale`, and the transform
/// from PDF space to those pixels (as `hayro::render`).
pub(super) fn geometry(page: &PdfPage<'_>, x_scale: f32, y_scale: f32) -> ((u16, u16), Affine) {
    let (width, height) = page.render_dimensions();
    let size = ((width * x_scale) as u16, (height * y_scale) as u16);
    let transform = Affine::scale_non_uniform(f64::from(x_scale), f64::from(y_scale))
        * page.initial_transform(true).to_kurbo();
    (size, transform)
}

/// `page` at `x_scale × y_scale` as a fax page, `turned` or not: drawn in
/// grey by the grey device (into its own buffer, kept for the next page),
/// or by hayro's renderer when the page needs what the device does not
/// draw.
fn fax_page<'a>(
    canvas: &mut Canvas<'a>,
    page: &'a PdfPage<'a>,
    (interpreter, settings): (&InterpreterSettings, &RenderSettings),
    (x_scale, y_scale): (f32, f32),
    sheet: &Sheet,
    turned: bool,
) -> Page {
    let ((w, h), transform) = geometry(page, x_scale, y_scale);
    match canvas.grey.draw(
        page,
        &canvas.interpreter_cache,
        interpreter,
        (w, h),
        transform,
    ) {
        Ok(()) => {
            let gray = Gray {
                w: u32::from(w),
                h: u32::from(h),
                px: canvas.grey.take_page(),
            };
            let made = sheet.place_rendered(&gray, turned);
            canvas.grey.give_back(gray.px);
            made
        }
        Err(why) => {
            tracing::debug!(why, "PDF page drawn through hayro's RGBA renderer");
            let gray = through_rgba(canvas, page, interpreter, settings, x_scale, y_scale);
            sheet.place_rendered(&gray, turned)
        }
    }
}

/// `page` in grey through hayro's RGBA renderer and [`luma`].
fn through_rgba<'a>(
    canvas: &mut Canvas<'a>,
    page: &'a PdfPage<'a>,
    interpreter: &InterpreterSettings,
    settings: &RenderSettings,
    x_scale: f32,
    y_scale: f32,
) -> Gray {
    let pixmap = rasterise(canvas, page, interpreter, settings, x_scale, y_scale);
    let mut px = vec![0u8; usize::from(pixmap.width()) * usize::from(pixmap.height())];
    luma(pixmap.data_as_u8_slice(), &mut px);
    Gray {
        w: u32::from(pixmap.width()),
        h: u32::from(pixmap.height()),
        px,
    }
}

/// Renders `page` at `x_scale × y_scale` onto white: hayro's own
/// `hayro::render`, with the context and pixmap kept in `canvas`.
fn rasterise<'a, 'c>(
    canvas: &'c mut Canvas<'a>,
    page: &'a PdfPage<'a>,
    interpreter: &InterpreterSettings,
    settings: &RenderSettings,
    x_scale: f32,
    y_scale: f32,
) -> &'c Pixmap {
    let ((w, h), transform) = geometry(page, x_scale, y_scale);
    let ctx = match canvas.ctx.take() {
        Some(mut c) => {
            c.reset_and_resize(w, h);
            c
        }
        None => RenderContext::new(w, h),
    };
    let ctx = canvas.ctx.insert(ctx);
    hayro::render_into(page, &canvas.cache, interpreter, settings, ctx, transform);
    ctx.flush();
    let pixmap = match canvas.pixmap.take() {
        Some(p) if (p.width(), p.height()) == (ctx.width(), ctx.height()) => p,
        _ => Pixmap::new(ctx.width(), ctx.height()),
    };
    let pixmap = canvas.pixmap.insert(pixmap);
    ctx.render_with(
        &mut *pixmap,
        &mut Resources::default(),
        RasterizerSettings {
            target_init: TargetInit::Clear(WHITE),
            ..Default::default()
        },
    );
    pixmap
}

/// Luma of premultiplied RGBA over opaque white (every pixel is opaque):
/// the BT.601 weights in 8-bit fixed point.
fn luma(rgba: &[u8], out: &mut [u8]) {
    let one = |d: &mut u8, p: &[u8]| {
        let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
        *d = ((r * 77 + g * 150 + b * 29) >> 8) as u8;
    };
    // Most of a page is white: four white pixels are one compare.
    let mut quads = rgba.chunks_exact(16);
    let mut outs = out.chunks_exact_mut(4);
    for (d, q) in (&mut outs).zip(&mut quads) {
        let mut b = [0u8; 16];
        b.copy_from_slice(q);
        if u128::from_ne_bytes(b) == u128::MAX {
            d.fill(255);
        } else {
            for (d, p) in d.iter_mut().zip(q.chunks_exact(4)) {
                one(d, p);
            }
        }
    }
    for (d, p) in outs
        .into_remainder()
        .iter_mut()
        .zip(quads.remainder().chunks_exact(4))
    {
        one(d, p);
    }
}

/// hayro's settings for the pages it draws.
fn render_settings() -> RenderSettings {
    RenderSettings {
        // Paint a pixel when more than ~40 % covered: no grey edges on
        // text and lines, thin rules kept.
        aliasing_threshold: Some(THRESHOLD),
        ..RenderSettings::default()
    }
}

/// Test helper: `page` in grey through hayro's RGBA renderer alone.
#[cfg(test)]
pub(super) fn through_hayro<'a>(page: &'a PdfPage<'a>, x_scale: f32, y_scale: f32) -> Vec<u8> {
    let interpreter = InterpreterSettings::default();
    let mut canvas = Canvas::new();
    through_rgba(
        &mut canvas,
        page,
        &interpreter,
        &render_settings(),
        x_scale,
        y_scale,
    )
    .px
}

/// The largest page side accepted, in points (PDF's own limit is 14 400).
const MAX_SIDE_PT: f32 = 14_400.0;

pub(super) fn render(
    doc: &mut Doc,
    data: &[u8],
    who: &str,
    opts: &RenderOptions,
) -> Result<(), RenderError> {
    let fail = |reason: String| RenderError::Part {
        part: who.to_string(),
        reason,
    };
    let pdf = Pdf::new(Arc::new(data.to_vec())).map_err(|e| {
        fail(match e {
            LoadPdfError::Decryption(d) => {
                format!(
                    "the PDF is encrypted and cannot be opened ({d:?}); send it without a password"
                )
            }
            LoadPdfError::Invalid => "not a valid PDF (damaged or truncated)".into(),
        })
    })?;
    let pages = pdf.pages();
    if pages.is_empty() {
        return Err(fail("the PDF has no pages".into()));
    }
    doc.check_room(pages.len())?;
    let interpreter = InterpreterSettings::default();
    let settings = render_settings();
    let sheet = doc.sheet;
    // Pages side by side, each thread with its own cache (hayro's is not
    // shared between threads), one page in flight per thread.
    let threads = super::parallel::threads(opts.threads);
    let made = super::parallel::try_map_with(pages.len(), threads, Canvas::new, |canvas, i| {
        let page = &pages[i];
        let (w_pt, h_pt) = page.render_dimensions();
        let sane = |v: f32| (1.0..=MAX_SIDE_PT).contains(&v);
        if !sane(w_pt) || !sane(h_pt) {
            return Err(fail(format!(
                "page {} has an impossible size ({w_pt}×{h_pt} points)",
                i + 1
            )));
        }
        let (w_in, h_in) = (w_pt / 72.0, h_pt / 72.0);
        let (x_ppi, y_ppi, turned) = sheet.document_scale(w_in, h_in);
        // hayro panics on some malformed content; that must not take
        // the process (or the whole queue runner) down. A context left
        // in a panicked state is not used again.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fax_page(
                canvas,
                page,
                (&interpreter, &settings),
                (x_ppi / 72.0, y_ppi / 72.0),
                &sheet,
                turned,
            )
        }))
        .map_err(|_| {
            canvas.grey = GreyDevice::new();
            canvas.ctx = None;
            canvas.pixmap = None;
            fail(format!("page {} cannot be rendered (damaged PDF)", i + 1))
        })
    })?;
    for page in made {
        doc.push_page(page)?;
    }
    Ok(())
}
