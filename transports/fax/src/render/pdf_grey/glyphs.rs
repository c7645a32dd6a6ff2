//! Text on the grey device: glyph runs drawn as hayro draws them (hinted
//! outlines for horizontal text between 4 and 128 pixels per em, the
//! baseline on a whole pixel), with a per-thread cache of thresholded
//! masks, so each glyph at each size and quarter-pixel position is
//! rasterised once instead of once per occurrence.
//!
//! A cached glyph is laid at its position rounded to a quarter pixel
//! across and down (hinted text is already on a whole pixel down): at
//! most an eighth of a pixel from where the outline would fall, which can
//! move an edge pixel. Glyphs larger than 128 pixels, glyphs under a
//! clip path, stroked text and Type 3 glyphs take the path route.

use super::page::{spans_of, Ink};
use super::{clear_of_clips, GreyDevice, THRESHOLD};
use hayro::hayro_interpret::font::{Glyph, GlyphRun, HintingCache, OutlineGlyph};
use hayro::hayro_interpret::hayro_cmap::WritingMode;
use hayro::hayro_interpret::{DrawMode, DrawProps, StrokeProps};
use hayro::kurbo::{Affine, BezPath, Rect, Shape};
use rustc_hash::FxHashMap;
use std::rc::Rc;
use vello_common::fearless_simd::Level;
use vello_common::peniko::Fill;
use vello_common::strip_generator::{StripGenerator, StripStorage};

const MIN_HINTING_PPEM: f64 = 4.0;
const MAX_HINTING_PPEM: f64 = 128.0;
/// Larger glyphs are drawn as paths.
const MAX_CACHED: f64 = 128.0;
/// The side of the mask generator's viewport: a cached glyph's box.
const MASK_SIDE: u16 = 132;
/// Cached positions per pixel, across and down.
const STEPS: f64 = 4.0;
/// Masks kept at most (a hostile PDF can ask for a glyph at any number
/// of sizes); past it the cache starts again.
const MAX_MASKS: usize = 20_000;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct MaskKey {
    glyph: u128,
    hinted: bool,
    linear: [u64; 4],
    sub_x: u8,
    sub_y: u8,
}

enum Cached {
    /// Draws nothing (no area).
    Empty,
    /// Too large to cache.
    Big,
    Mask {
        /// Offset of the mask's top-left from the glyph's whole-pixel origin.
        x: i32,
        y: i32,
        w: u16,
        h: u16,
        spans: Vec<[u16; 3]>,
    },
}

/// One thread's text caches: outlines (hinted per size), hinting
/// programs, and masks.
pub(super) struct Glyphs {
    outlines: FxHashMap<(u128, u32), Option<Rc<BezPath>>>,
    hinting: HintingCache,
    masks: FxHashMap<MaskKey, Cached>,
    generator: StripGenerator,
    storage: StripStorage,
}

impl Glyphs {
    pub fn new(level: Level) -> Glyphs {
        Glyphs {
            outlines: FxHashMap::default(),
            hinting: HintingCache::new(),
            masks: FxHashMap::default(),
            generator: StripGenerator::new(MASK_SIDE, MASK_SIDE, level),
            storage: StripStorage::default(),
        }
    }

    /// The outline to fill for `glyph` at `transform`, the transform to
    /// fill it at, and whether it is hinted (hayro's `fill_outline`).
    fn fill_outline(
        &mut self,
        glyph: &OutlineGlyph,
        id: u128,
        transform: Affine,
        hint: bool,
    ) -> (Rc<BezPath>, Affine, bool) {
        let [a, b, c, d, e, f] = transform.as_coeffs();
        let ppem = d.abs() * 1000.0;
        if hint && b == 0.0 && (MIN_HINTING_PPEM..=MAX_HINTING_PPEM).contains(&ppem) {
            let ppem = ppem as f32;
            let hinting = &self.hinting;
            if let Some(hinted) = cached(&mut self.outlines, id, ppem, || {
                glyph.hinted_outline(ppem, hinting)
            }) {
                return (hinted, Affine::new([a, b, c, d, e, f.round()]), true);
            }
        }
        (self.outline(glyph, id), transform, false)
    }

    fn outline(&mut self, glyph: &OutlineGlyph, id: u128) -> Rc<BezPath> {
        cached(&mut self.outlines, id, 0.0, || Some(glyph.outline())).unwrap_or_default()
    }

    /// The cached mask of `outline` at `transform`, made on first use;
    /// with the whole-pixel origin it is laid at.
    fn mask(
        &mut self,
        glyph: u128,
        hinted: bool,
        outline: &BezPath,
        transform: Affine,
    ) -> Option<(&Cached, i32, i32)> {
        let [a, b, c, d, e, f] = transform.as_coeffs();
        let quarter = |v: f64| -> Option<(i32, u8)> {
            let steps = (v * STEPS).round();
            if !steps.is_finite() || steps.abs() > f64::from(i32::MAX / 8) {
                return None;
            }
            let steps = steps as i64;
            let whole = steps.div_euclid(STEPS as i64) as i32;
            Some((whole, steps.rem_euclid(STEPS as i64) as u8))
        };
        let (x, sub_x) = quarter(e)?;
        let (y, sub_y) = quarter(f)?;
        let key = MaskKey {
            glyph,
            hinted,
            linear: [a.to_bits(), b.to_bits(), c.to_bits(), d.to_bits()],
            sub_x,
            sub_y,
        };
        if !self.masks.contains_key(&key) {
            if self.masks.len() >= MAX_MASKS {
                self.masks.clear();
            }
            let at = Affine::new([
                a,
                b,
                c,
                d,
                f64::from(sub_x) / STEPS,
                f64::from(sub_y) / STEPS,
            ]);
            let made = self.make_mask(outline, at);
            self.masks.insert(key, made);
        }
        self.masks.get(&key).map(|m| (m, x, y))
    }

    /// Rasterises `outline` at `at` (a sub-pixel offset only) into spans.
    fn make_mask(&mut self, outline: &BezPath, at: Affine) -> Cached {
        let bbox = (at * outline.clone()).bounding_box();
        if !(bbox.x0.is_finite()
            && bbox.y0.is_finite()
            && bbox.x1.is_finite()
            && bbox.y1.is_finite())
            || bbox.width() > MAX_CACHED
            || bbox.height() > MAX_CACHED
        {
            return Cached::Big;
        }
        if bbox.is_zero_area() {
            return Cached::Empty;
        }
        let (x0, y0) = (bbox.x0.floor(), bbox.y0.floor());
        let w = (bbox.x1.ceil() - x0) as u16;
        let h = (bbox.y1.ceil() - y0) as u16;
        self.storage.clear();
        self.generator.generate_filled_path(
            outline,
            Fill::NonZero,
            Affine::translate((-x0, -y0)) * at,
            Some(THRESHOLD),
            &mut self.storage,
            None,
        );
        let spans = spans_of(&self.storage.strips, &self.storage.alphas, w, h);
        Cached::Mask {
            x: x0 as i32,
            y: y0 as i32,
            w,
            h,
            spans,
        }
    }
}

/// hayro's outline cache: by glyph and size (0 for unhinted outlines).
fn cached(
    outlines: &mut FxHashMap<(u128, u32), Option<Rc<BezPath>>>,
    id: u128,
    ppem: f32,
    make: impl FnOnce() -> Option<BezPath>,
) -> Option<Rc<BezPath>> {
    outlines
        .entry((id, ppem.to_bits()))
        .or_insert_with(|| make().map(Rc::new))
        .clone()
}

impl GreyDevice {
    /// `Device::draw_glyph_run`, as hayro's `draw_glyph_run`.
    pub(super) fn glyph_run<'a>(
        &mut self,
        run: &GlyphRun<'_, 'a>,
        props: DrawProps<'a>,
        mode: &DrawMode,
    ) {
        if matches!(mode, DrawMode::Invisible) {
            return;
        }
        let outlines_only = run
            .glyphs()
            .iter()
            .all(|g| matches!(&**g, Glyph::Outline(_)));
        if !outlines_only {
            self.glyphs_one_by_one(run, props, mode);
            return;
        }
        let Some(ink) = self.props_ink(&props) else {
            return;
        };
        match mode {
            DrawMode::Fill(_) => self.fill_run(run, &props, ink),
            DrawMode::Stroke(s) => self.stroke_run(run, &props, s, ink),
            DrawMode::FillAndStroke(_, s) => {
                self.fill_run(run, &props, ink);
                self.stroke_run(run, &props, s, ink);
            }
            DrawMode::Invisible => {}
        }
    }

    fn fill_run(&mut self, run: &GlyphRun<'_, '_>, props: &DrawProps<'_>, ink: Ink) {
        let horizontal = run.writing_mode() == WritingMode::Horizontal;
        for glyph in run.glyphs() {
            let Glyph::Outline(outline) = &**glyph else {
                continue;
            };
            let id = outline.identifier().cache_key();
            let (path, transform, hinted) = self.glyphs.fill_outline(
                outline,
                id,
                props.transform * glyph.transform(),
                horizontal,
            );
            if self.cache_glyphs && horizontal && self.lay_mask(id, hinted, &path, transform, ink) {
                continue;
            }
            #[cfg(test)]
            let transform = match self.quarter_paths && horizontal {
                true => {
                    let [a, b, c, d, e, f] = transform.as_coeffs();
                    let q = |v: f64| (v * STEPS).round() / STEPS;
                    Affine::new([a, b, c, d, q(e), q(f)])
                }
                false => transform,
            };
            self.fill(&path, Fill::NonZero, transform, ink);
        }
    }

    /// Lays a glyph from the cache; false when it must be drawn as a path.
    fn lay_mask(
        &mut self,
        id: u128,
        hinted: bool,
        path: &BezPath,
        transform: Affine,
        ink: Ink,
    ) -> bool {
        let Some((cached, gx, gy)) = self.glyphs.mask(id, hinted, path, transform) else {
            return false;
        };
        match cached {
            Cached::Empty => true,
            Cached::Big => false,
            Cached::Mask { x, y, w, h, spans } => {
                let (x, y) = (gx.saturating_add(*x), gy.saturating_add(*y));
                let r = Rect::new(
                    f64::from(x),
                    f64::from(y),
                    f64::from(x) + f64::from(*w),
                    f64::from(y) + f64::from(*h),
                );
                let clear = clear_of_clips(self.path_clips, self.clip_rect, r);
                if clear {
                    self.page.fill_spans(spans, x, y, ink);
                }
                clear
            }
        }
    }

    fn stroke_run(
        &mut self,
        run: &GlyphRun<'_, '_>,
        props: &DrawProps<'_>,
        stroke: &StrokeProps,
        ink: Ink,
    ) {
        let stroke = super::stroke::stroke_for(stroke, &props.transform, true, !self.in_type3);
        for glyph in run.glyphs() {
            let Glyph::Outline(outline) = &**glyph else {
                continue;
            };
            let id = outline.identifier().cache_key();
            let path = glyph.transform() * self.glyphs.outline(outline, id).as_ref().clone();
            self.stroke_with(&path, &stroke, props.transform, ink);
        }
    }

    /// A run with Type 3 glyphs: each glyph on its own (hayro's
    /// `draw_glyphs_individually`).
    fn glyphs_one_by_one<'a>(
        &mut self,
        run: &GlyphRun<'_, 'a>,
        props: DrawProps<'a>,
        mode: &DrawMode,
    ) {
        let hint = run.writing_mode() == WritingMode::Horizontal;
        for glyph in run.glyphs() {
            let transform = glyph.transform();
            let (fill, stroke) = match mode {
                DrawMode::Fill(_) => (true, None),
                DrawMode::Stroke(s) => (false, Some(s)),
                DrawMode::FillAndStroke(_, s) => (true, Some(s)),
                DrawMode::Invisible => (false, None),
            };
            if fill {
                match &**glyph {
                    Glyph::Outline(outline) => {
                        let Some(ink) = self.props_ink(&props) else {
                            return;
                        };
                        let id = outline.identifier().cache_key();
                        let (path, t, _) = self.glyphs.fill_outline(
                            outline,
                            id,
                            props.transform * transform,
                            hint,
                        );
                        self.fill(&path, Fill::NonZero, t, ink);
                    }
                    Glyph::Type3(t3) => {
                        self.in_type3 = true;
                        t3.interpret(self, props.transform, transform, &props.paint);
                        self.in_type3 = false;
                    }
                }
            }
            if let Some(s) = stroke {
                match &**glyph {
                    Glyph::Outline(outline) => {
                        let Some(ink) = self.props_ink(&props) else {
                            return;
                        };
                        let id = outline.identifier().cache_key();
                        let path = transform * self.glyphs.outline(outline, id).as_ref().clone();
                        self.stroke_path(&path, props.transform, s, true, ink);
                    }
                    Glyph::Type3(t3) => {
                        t3.interpret(self, props.transform, transform, &props.paint)
                    }
                }
            }
        }
    }
}
