//! PDF pages drawn straight to grey: a hayro-interpret `Device` on
//! vello_common's strips, without vello_cpu's RGBA stage.
//!
//! hayro's own renderer draws into a 4-byte-per-pixel pixmap that
//! `pdf.rs` then turns into grey; at fax resolution that is 16 MB written
//! and read per page, and with the aliasing threshold the fax needs,
//! hayro draws every glyph as a path. This device computes the same
//! coverage with the same vello_common calls (so paths, strokes and clips
//! come out byte for byte as the RGBA path would make them), writes one
//! byte per pixel, and draws text from a per-thread cache of thresholded
//! glyph masks (at a quarter-pixel position, as hayro's own cache does).
//!
//! What it does not draw — soft masks, blend modes other than Normal,
//! groups with an opacity or a mask, patterns and shadings, images — makes
//! it give the page up ([`GreyDevice::unsupported`]); `pdf.rs` then draws
//! that page through hayro's RGBA renderer as before.

mod glyphs;
mod page;
mod stroke;

use hayro::hayro_interpret::font::GlyphRun;
use hayro::hayro_interpret::hayro_syntax::page::Page as PdfPage;
use hayro::hayro_interpret::util::RectExt;
use hayro::hayro_interpret::{
    interpret_page, BlendMode, ClipPath, Context, Device, DrawMode, DrawProps, FillRule, Image,
    ImageDrawProps, InterpreterCache, InterpreterSettings, Paint, SoftMask, StrokeProps,
};
use hayro::kurbo::{Affine, BezPath, PathEl, Point, Rect, Shape};
use page::{Ink, Page};
use std::f64::consts::SQRT_2;
use vello_common::clip::PathDataRef;
use vello_common::fearless_simd::Level;
use vello_common::peniko::Fill;
use vello_common::strip_generator::{StripGenerator, StripStorage};
use vello_common::viewport::ViewportState;

/// Coverage above which a pixel is painted (of 255): the fax's crisp
/// edges. The same value is given to hayro for pages it draws.
pub(super) const THRESHOLD: u8 = 100;

/// A clip on the stack, remembered so glyph masks know when they may be
/// laid without vello's clip intersection.
struct ClipEntry {
    /// The known rectangle before this clip was pushed.
    prev_rect: Option<Rect>,
    /// Whether this clip is a path (not a rectangle).
    path: bool,
}

/// A device drawing one page at a time into a grey [`Page`]; kept per
/// thread so its buffers and glyph cache serve every page.
pub(super) struct GreyDevice {
    page: Page,
    viewport: ViewportState,
    strips: StripStorage,
    clips: Vec<ClipEntry>,
    /// The intersection of the rectangle clips on the stack.
    clip_rect: Option<Rect>,
    path_clips: usize,
    unsupported: Option<&'static str>,
    in_type3: bool,
    glyphs: glyphs::Glyphs,
    /// Whether glyphs may be laid from the mask cache (tests compare
    /// with it off).
    cache_glyphs: bool,
    /// Tests: glyphs drawn as paths at the quarter-pixel positions the
    /// cache lays them at.
    #[cfg(test)]
    quarter_paths: bool,
}

impl GreyDevice {
    pub fn new() -> GreyDevice {
        // The level vello_cpu picks for itself, so the strips are the same.
        let level = Level::try_detect().unwrap_or(Level::baseline());
        GreyDevice {
            page: Page {
                w: 0,
                h: 0,
                px: Vec::new(),
            },
            viewport: ViewportState::new(1, 1, level),
            strips: StripStorage::default(),
            clips: Vec::new(),
            clip_rect: None,
            path_clips: 0,
            unsupported: None,
            in_type3: false,
            glyphs: glyphs::Glyphs::new(level),
            cache_glyphs: true,
            #[cfg(test)]
            quarter_paths: false,
        }
    }

    #[cfg(test)]
    pub fn without_glyph_cache(quarter_paths: bool) -> GreyDevice {
        GreyDevice {
            cache_glyphs: false,
            quarter_paths,
            ..GreyDevice::new()
        }
    }

    /// Draws `page` at `transform` onto a white `w × h` page, as
    /// `hayro::render_into` would (the crop box clipped when it does not
    /// cover the target). `Err` names what this device cannot draw: the
    /// page must then go through hayro's renderer.
    pub fn draw<'a>(
        &mut self,
        page: &PdfPage<'a>,
        cache: &InterpreterCache<'a>,
        settings: &InterpreterSettings,
        (w, h): (u16, u16),
        transform: Affine,
    ) -> Result<(), &'static str> {
        self.page.reset(w, h);
        self.viewport.reset(w, h);
        self.strips.clear();
        self.clips.clear();
        self.clip_rect = None;
        self.path_clips = 0;
        self.unsupported = None;
        self.in_type3 = false;
        let target = Rect::new(0.0, 0.0, f64::from(w), f64::from(h));
        let mut ctx = Context::new(transform, target, cache, page.xref(), settings.clone());
        let crop_box = page.intersected_crop_box().to_kurbo();
        let [a, b, c, d, _, _] = transform.as_coeffs();
        let axis_aligned = (b == 0.0 && c == 0.0) || (a == 0.0 && d == 0.0);
        let mapped = transform
            .transform_rect_bbox(crop_box)
            .inflate(1.0 / 256.0, 1.0 / 256.0);
        let clip_crop_box = !axis_aligned || !mapped.contains_rect(target);
        if clip_crop_box {
            self.push_clip(&rect_path(&crop_box), Fill::NonZero, transform);
            let known = axis_aligned.then(|| transform.transform_rect_bbox(crop_box));
            self.note_clip(known);
        }
        interpret_page(page, &mut ctx, self);
        if clip_crop_box {
            self.pop_clip();
        }
        match self.unsupported {
            Some(what) => Err(what),
            None => Ok(()),
        }
    }

    /// The page last drawn, one byte per pixel (255 white), row by row.
    #[cfg(test)]
    pub fn grey(&self) -> &[u8] {
        &self.page.px
    }

    /// Takes the page last drawn; [`Self::give_back`] returns the buffer
    /// for the next page.
    pub fn take_page(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.page.px)
    }

    pub fn give_back(&mut self, px: Vec<u8>) {
        self.page.px = px;
    }

    /// The ink of a colour paint; `None` (and the page given up) for what
    /// this device does not draw.
    fn ink(&mut self, paint: &Paint<'_>, mask: bool, blend: BlendMode) -> Option<Ink> {
        if self.unsupported.is_some() {
            return None;
        }
        let why = if mask {
            "a soft mask"
        } else if blend != BlendMode::Normal {
            "a blend mode"
        } else {
            match paint {
                Paint::Color(c) => return Some(Ink::from_rgba8(c.to_rgba().to_rgba8())),
                Paint::Pattern(_) => "a pattern or shading",
            }
        };
        self.unsupported = Some(why);
        None
    }

    fn props_ink(&mut self, props: &DrawProps<'_>) -> Option<Ink> {
        self.ink(&props.paint, props.soft_mask.is_some(), props.blend_mode)
    }

    /// Fills `path` (user space, drawn at `transform`).
    fn fill(&mut self, path: &BezPath, rule: Fill, transform: Affine, ink: Ink) {
        self.lay(ink, |generator, clip, strips| {
            generator.generate_filled_path(path, rule, transform, Some(THRESHOLD), strips, clip);
        });
    }

    /// Strokes `path` with a ready kurbo stroke.
    fn stroke_with(
        &mut self,
        path: &BezPath,
        stroke: &hayro::kurbo::Stroke,
        transform: Affine,
        ink: Ink,
    ) {
        self.lay(ink, |generator, clip, strips| {
            generator.generate_stroked_path(path, stroke, transform, Some(THRESHOLD), strips, clip);
        });
    }

    /// Lays `ink` where the strips `generate` makes (under the current
    /// clip) cover.
    fn lay(
        &mut self,
        ink: Ink,
        generate: impl FnOnce(&mut StripGenerator, Option<PathDataRef<'_>>, &mut StripStorage),
    ) {
        let Self {
            viewport,
            strips,
            page,
            ..
        } = &mut *self;
        strips.clear();
        viewport.with_generator_and_clip(|generator, clip| {
            generate(generator, clip.map(|c| c.path), strips);
        });
        page.fill_strips(&strips.strips, &strips.alphas, ink);
    }

    /// A PDF stroke, as hayro draws it (`stroke::stroke_for`).
    fn stroke_path(
        &mut self,
        path: &BezPath,
        transform: Affine,
        props: &StrokeProps,
        is_text: bool,
        ink: Ink,
    ) {
        let stroke = stroke::stroke_for(props, &transform, is_text, !self.in_type3);
        let extent = stroke.width / 2.0 * stroke.miter_limit.max(SQRT_2);
        let bbox = path.control_box().inflate(extent, extent);
        let target = Rect::new(0.0, 0.0, f64::from(self.page.w), f64::from(self.page.h));
        if !transform.transform_rect_bbox(bbox).overlaps(target) {
            return;
        }
        match stroke::single_segment_outline(path, &stroke) {
            Some(outline) => self.fill(&outline, Fill::NonZero, transform, ink),
            None => self.stroke_with(path, &stroke, transform, ink),
        }
    }

    fn push_clip(&mut self, path: &BezPath, rule: Fill, transform: Affine) {
        self.viewport
            .push_clip_path(path, rule, transform, Some(THRESHOLD));
    }

    /// Records the clip just pushed: a device-space rectangle, or a path.
    fn note_clip(&mut self, rect: Option<Rect>) {
        self.clips.push(ClipEntry {
            prev_rect: self.clip_rect,
            path: rect.is_none(),
        });
        match rect {
            Some(r) => {
                let r = r.abs();
                self.clip_rect = Some(self.clip_rect.map_or(r, |c| c.intersect(r)));
            }
            None => self.path_clips += 1,
        }
    }
}

/// Whether a glyph mask covering `r` may be laid without vello's clip
/// intersection: no clip path is active, and `r` lies at least a pixel
/// inside the clip rectangles (so they cover each of its pixels whole).
fn clear_of_clips(path_clips: usize, clip_rect: Option<Rect>, r: Rect) -> bool {
    path_clips == 0 && clip_rect.is_none_or(|c| c.inflate(-1.0, -1.0).contains_rect(r))
}

/// A rectangle as vello_cpu makes it into a path (`rect_to_temp_path`),
/// so its strips are the same.
fn rect_path(r: &Rect) -> BezPath {
    BezPath::from_vec(vec![
        PathEl::MoveTo(Point::new(r.x0, r.y0)),
        PathEl::LineTo(Point::new(r.x1, r.y0)),
        PathEl::LineTo(Point::new(r.x1, r.y1)),
        PathEl::LineTo(Point::new(r.x0, r.y1)),
        PathEl::ClosePath,
    ])
}

fn fill_rule(rule: FillRule) -> Fill {
    match rule {
        FillRule::NonZero => Fill::NonZero,
        FillRule::EvenOdd => Fill::EvenOdd,
    }
}

impl<'a> Device<'a> for GreyDevice {
    fn draw_path(&mut self, path: &BezPath, props: DrawProps<'a>, draw_mode: &DrawMode) {
        if matches!(draw_mode, DrawMode::Invisible) {
            return;
        }
        let Some(ink) = self.props_ink(&props) else {
            return;
        };
        let t = props.transform;
        match draw_mode {
            DrawMode::Fill(rule) => self.fill(path, fill_rule(*rule), t, ink),
            DrawMode::Stroke(s) => self.stroke_path(path, t, s, false, ink),
            DrawMode::FillAndStroke(rule, s) => {
                self.fill(path, fill_rule(*rule), t, ink);
                self.stroke_path(path, t, s, false, ink);
            }
            DrawMode::Invisible => {}
        }
    }

    fn draw_rect(&mut self, rect: &Rect, props: DrawProps<'a>, draw_mode: &DrawMode) {
        if matches!(draw_mode, DrawMode::Invisible) {
            return;
        }
        let Some(ink) = self.props_ink(&props) else {
            return;
        };
        let t = props.transform;
        match draw_mode {
            DrawMode::Fill(rule) => self.fill(&rect_path(rect), fill_rule(*rule), t, ink),
            DrawMode::Stroke(s) => self.stroke_path(&rect.to_path(0.1), t, s, false, ink),
            DrawMode::FillAndStroke(rule, s) => {
                self.fill(&rect_path(rect), fill_rule(*rule), t, ink);
                self.stroke_path(&rect.to_path(0.1), t, s, false, ink);
            }
            DrawMode::Invisible => {}
        }
    }

    fn push_clip_path(&mut self, clip_path: &ClipPath) {
        // Clip paths arrive in device space.
        self.push_clip(&clip_path.path, fill_rule(clip_path.fill), Affine::IDENTITY);
        self.note_clip(None);
    }

    fn push_clip_rect(&mut self, rect: &Rect) {
        self.push_clip(&rect_path(rect), Fill::NonZero, Affine::IDENTITY);
        self.note_clip(Some(*rect));
    }

    fn pop_clip(&mut self) {
        // Never below the stack: vello panics on an underflow.
        if let Some(e) = self.clips.pop() {
            self.viewport.pop_clip();
            self.clip_rect = e.prev_rect;
            if e.path {
                self.path_clips -= 1;
            }
        }
    }

    fn push_transparency_group(
        &mut self,
        opacity: f32,
        mask: Option<SoftMask<'a>>,
        blend_mode: BlendMode,
    ) {
        // An opaque, unmasked, normally blended group is the same as
        // drawing its content straight onto the page (source-over is
        // associative); hayro sends one around every image and form.
        if opacity != 1.0 || mask.is_some() || blend_mode != BlendMode::Normal {
            self.unsupported.get_or_insert("a transparency group");
        }
    }

    fn pop_transparency_group(&mut self) {}

    fn draw_glyph_run(
        &mut self,
        glyph_run: &GlyphRun<'_, 'a>,
        props: DrawProps<'a>,
        draw_mode: &DrawMode,
    ) {
        self.glyph_run(glyph_run, props, draw_mode);
    }

    fn draw_image(&mut self, _image: Image<'a, '_>, _props: ImageDrawProps<'a>) {
        self.unsupported.get_or_insert("an image");
    }
}

#[cfg(test)]
mod tests;
