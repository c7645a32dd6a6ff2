//! The grey page a PDF page is drawn on, and the last stage of drawing:
//! vello's strips (per-pixel coverage) or a cached glyph's spans turned
//! into grey pixels. One byte per pixel, 255 white, row by row.
//!
//! For an opaque paint under the aliasing threshold (every coverage 0 or
//! 255) a covered pixel simply takes the paint's luma: byte for byte what
//! vello's RGBA stage followed by `pdf::luma` makes. Paints with an alpha
//! below one are mixed in grey (luma is linear, so only the rounding of a
//! unit can differ from the RGBA path).

use vello_common::geometry::RectU16;
use vello_common::strip::{visit_strip_fill_segments, Strip};
use vello_common::tile::Tile;

/// What a draw puts down: a luma and an alpha (0‥=255).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ink {
    pub luma: u8,
    pub alpha: u8,
}

impl Ink {
    /// From sRGB + alpha, with `pdf::luma`'s BT.601 weights.
    pub fn from_rgba8([r, g, b, a]: [u8; 4]) -> Ink {
        let (r, g, b) = (u32::from(r), u32::from(g), u32::from(b));
        Ink {
            luma: ((r * 77 + g * 150 + b * 29) >> 8) as u8,
            alpha: a,
        }
    }

    /// `dst` with this ink laid over it at coverage `cover` (0‥=255).
    #[inline(always)]
    fn over(self, dst: u8, cover: u8) -> u8 {
        let a = u32::from(cover) * u32::from(self.alpha);
        if a == 255 * 255 {
            return self.luma;
        }
        let v = u32::from(self.luma) * a + u32::from(dst) * (255 * 255 - a);
        ((v + 255 * 255 / 2) / (255 * 255)) as u8
    }
}

/// A grey page, reused from page to page by one thread.
pub(super) struct Page {
    pub w: u16,
    pub h: u16,
    pub px: Vec<u8>,
}

impl Page {
    /// A white page of `w × h`, reusing the buffer.
    pub fn reset(&mut self, w: u16, h: u16) {
        self.w = w;
        self.h = h;
        self.px.clear();
        self.px.resize(usize::from(w) * usize::from(h), 255);
    }

    /// Lays `ink` where `strips` (with their coverage in `alphas`) cover.
    pub fn fill_strips(&mut self, strips: &[Strip], alphas: &[u8], ink: Ink) {
        if ink.alpha == 0 {
            return;
        }
        let bounds = RectU16::new(
            0,
            0,
            self.w.div_ceil(Tile::WIDTH),
            self.h.div_ceil(Tile::HEIGHT),
        );
        let (w, h) = (usize::from(self.w), usize::from(self.h));
        visit_strip_fill_segments(
            strips,
            bounds,
            &mut self.px,
            |px, seg| {
                let (x0, x1, y0) = (
                    usize::from(seg.x0()),
                    usize::from(seg.x1()).min(w),
                    usize::from(seg.y()),
                );
                let rows = usize::from(Tile::HEIGHT).min(h.saturating_sub(y0));
                let base = seg.alpha_idx as usize;
                for r in 0..rows {
                    let row = &mut px[(y0 + r) * w..(y0 + r + 1) * w];
                    for (i, d) in row[x0..x1].iter_mut().enumerate() {
                        // Coverage is column-major, four rows a column.
                        let cover = alphas.get(base + i * 4 + r).copied().unwrap_or(0);
                        if cover != 0 {
                            *d = ink.over(*d, cover);
                        }
                    }
                }
            },
            |px, seg| {
                let (x0, x1, y0) = (
                    usize::from(seg.x0()),
                    usize::from(seg.x1()).min(w),
                    usize::from(seg.y()),
                );
                let y1 = (y0 + usize::from(Tile::HEIGHT)).min(h);
                for y in y0..y1 {
                    let run = &mut px[y * w + x0..y * w + x1];
                    if ink.alpha == 255 {
                        run.fill(ink.luma);
                    } else {
                        run.iter_mut().for_each(|d| *d = ink.over(*d, 255));
                    }
                }
            },
        );
    }

    /// Lays `ink` on the spans of a cached mask placed at (`x`, `y`):
    /// `[dy, dx0, dx1)` each, clipped to the page.
    pub fn fill_spans(&mut self, spans: &[[u16; 3]], x: i32, y: i32, ink: Ink) {
        if ink.alpha == 0 {
            return;
        }
        let (w, h) = (i32::from(self.w), i32::from(self.h));
        for &[dy, dx0, dx1] in spans {
            let py = y + i32::from(dy);
            if py < 0 || py >= h {
                continue;
            }
            let (a, b) = ((x + i32::from(dx0)).max(0), (x + i32::from(dx1)).min(w));
            if a >= b {
                continue;
            }
            let row = py as usize * w as usize;
            let run = &mut self.px[row + a as usize..row + b as usize];
            if ink.alpha == 255 {
                run.fill(ink.luma);
            } else {
                run.iter_mut().for_each(|d| *d = ink.over(*d, 255));
            }
        }
    }
}

/// The spans (`[dy, dx0, dx1)`) covered by `strips` in a `w × h` box.
pub(super) fn spans_of(strips: &[Strip], alphas: &[u8], w: u16, h: u16) -> Vec<[u16; 3]> {
    let mut mask = vec![false; usize::from(w) * usize::from(h)];
    let (wu, hu) = (usize::from(w), usize::from(h));
    let bounds = RectU16::new(0, 0, w.div_ceil(Tile::WIDTH), h.div_ceil(Tile::HEIGHT));
    visit_strip_fill_segments(
        strips,
        bounds,
        &mut mask,
        |m, seg| {
            let (x0, x1, y0) = (
                usize::from(seg.x0()),
                usize::from(seg.x1()).min(wu),
                usize::from(seg.y()),
            );
            let base = seg.alpha_idx as usize;
            for r in 0..usize::from(Tile::HEIGHT).min(hu.saturating_sub(y0)) {
                for x in x0..x1 {
                    if alphas.get(base + (x - x0) * 4 + r).is_some_and(|&a| a != 0) {
                        m[(y0 + r) * wu + x] = true;
                    }
                }
            }
        },
        |m, seg| {
            let (x0, x1, y0) = (
                usize::from(seg.x0()),
                usize::from(seg.x1()).min(wu),
                usize::from(seg.y()),
            );
            for y in y0..(y0 + usize::from(Tile::HEIGHT)).min(hu) {
                m[y * wu + x0..y * wu + x1].fill(true);
            }
        },
    );
    let mut spans = Vec::new();
    for (y, row) in mask.chunks_exact(wu.max(1)).enumerate() {
        let mut x = 0;
        while x < row.len() {
            if !row[x] {
                x += 1;
                continue;
            }
            let start = x;
            while x < row.len() && row[x] {
                x += 1;
            }
            spans.push([y as u16, start as u16, x as u16]);
        }
    }
    spans
}
