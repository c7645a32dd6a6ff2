//! PDF attachments as fax pages, through hayro (pure Rust): each page
//! rasterised straight at the fax grid (204 dpi across, 98/196 down,
//! smaller only when the page does not fit the paper; landscape pages
//! turned), fills without anti-aliasing so text stays crisp, pictures in
//! the PDF dithered.

use super::doc::Doc;
use super::raster::Gray;
use super::{RenderError, RenderOptions};
use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::{LoadPdfError, Pdf};
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{PixmapSettings, RenderCache, RenderSettings};
use std::sync::Arc;

/// The largest page side accepted, in points (PDF's own limit is 14 400).
const MAX_SIDE_PT: f32 = 14_400.0;

pub(super) fn render(
    doc: &mut Doc,
    data: &[u8],
    who: &str,
    _opts: &RenderOptions,
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
    let cache = RenderCache::new();
    let interpreter = InterpreterSettings::default();
    let settings = RenderSettings {
        // Paint a pixel when more than ~40 % covered: no grey edges on
        // text and lines, thin rules kept.
        aliasing_threshold: Some(100),
        ..RenderSettings::default()
    };
    for (i, page) in pages.iter().enumerate() {
        let (w_pt, h_pt) = page.render_dimensions();
        let sane = |v: f32| (1.0..=MAX_SIDE_PT).contains(&v);
        if !sane(w_pt) || !sane(h_pt) {
            return Err(fail(format!(
                "page {} has an impossible size ({w_pt}×{h_pt} points)",
                i + 1
            )));
        }
        let (w_in, h_in) = (w_pt / 72.0, h_pt / 72.0);
        let (x_ppi, y_ppi, turned) = doc.sheet.document_scale(w_in, h_in);
        let pixmap_settings = PixmapSettings {
            x_scale: x_ppi / 72.0,
            y_scale: y_ppi / 72.0,
            bg_color: WHITE,
        };
        // hayro panics on some malformed content; that must not take the
        // process (or the whole queue runner) down.
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hayro::render(page, &cache, &interpreter, &settings, &pixmap_settings)
        }))
        .map_err(|_| fail(format!("page {} cannot be rendered (damaged PDF)", i + 1)))?;
        // Luma of the RGBA pixels; the background is opaque white, so
        // every pixel is opaque (u16 arithmetic: the weights sum to 256).
        let rgba = rendered.data_as_u8_slice();
        let mut px = vec![0u8; rgba.len() / 4];
        for (d, p) in px.iter_mut().zip(rgba.chunks_exact(4)) {
            let l = u16::from(p[0]) * 77 + u16::from(p[1]) * 150 + u16::from(p[2]) * 29;
            *d = (l >> 8) as u8;
        }
        let gray = Gray {
            w: u32::from(rendered.width()),
            h: u32::from(rendered.height()),
            px,
        };
        drop(rendered);
        let page = doc.sheet.place_rendered(gray, turned);
        doc.push_page(page)?;
    }
    Ok(())
}
