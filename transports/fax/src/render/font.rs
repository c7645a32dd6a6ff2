//! Type for fax pages: the DejaVu faces (Sans Mono for message text, Sans
//! for the cover page) rasterised by fontdue and kept as bilevel glyph
//! bitmaps, once per face, size, character and resolution, in a cache
//! shared by all renders.
//!
//! Fax pixels are not square (204 dpi across, 98 or 196 lines per inch
//! down): a glyph is rasterised at its size across and its coverage is
//! box-filtered down the rows before the threshold
//! ([`super::glyph_bits`]). The message-text faces' common glyphs at the
//! default size come baked ([`super::baked`]); a face is parsed only when
//! a glyph or size is not baked.

use super::baked::{self, BakedSet};
use super::glyph_bits;
use super::raster::{blit, blit_words};
use crate::page::{Page, Resolution, X_DPI};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A typeface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Face {
    Mono,
    MonoBold,
    Sans,
    SansBold,
}

impl Face {
    fn index(self) -> usize {
        self as usize
    }

    /// The face that covers more characters, for glyphs this one lacks.
    fn fallback(self) -> Option<Face> {
        match self {
            Face::Mono => Some(Face::Sans),
            Face::MonoBold => Some(Face::SansBold),
            Face::Sans | Face::SansBold => None,
        }
    }
}

/// The parsed face, loaded on first use (a text-only fax never parses
/// the Sans faces of the cover page).
static FONTS: [OnceLock<Result<fontdue::Font, String>>; 4] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];

fn font(face: Face) -> Result<&'static fontdue::Font, String> {
    FONTS[face.index()]
        .get_or_init(|| {
            let data = match face {
                Face::Mono => dejavu::sans_mono::regular(),
                Face::MonoBold => dejavu::sans_mono::bold(),
                Face::Sans => dejavu::sans::regular(),
                Face::SansBold => dejavu::sans::bold(),
            };
            fontdue::Font::from_bytes(data, fontdue::FontSettings::default())
                .map_err(|e| format!("font {face:?}: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// One rasterised glyph: packed rows, 1 = black.
#[derive(Clone)]
pub(crate) struct Glyph {
    w: u32,
    h: u32,
    stride: usize,
    bits: Cow<'static, [u8]>,
    /// The rows as left-aligned 64-bit words when at most 7 bytes wide
    /// (else empty): how they are drawn.
    words: Vec<u64>,
    /// Pixels from the pen position to the bitmap's left edge.
    left: i32,
    /// Rows from the baseline to the bitmap's top row (negative: above).
    top: i32,
    /// Pen advance in pixels across.
    pub advance: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    face: Face,
    ch: char,
    /// Size across in 1/64 pixel per em.
    em: u32,
    /// Rows per pixel across (ydpi / xdpi) in 1/1024.
    squash: u32,
}

/// Entries kept in the shared cache at most (a hostile message with
/// many distinct characters must not grow it without end).
const SHARED_CAP: usize = 16_384;

fn shared() -> &'static Mutex<HashMap<Key, Arc<Glyph>>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Glyph>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Draws text on pages of one resolution.
pub(crate) struct Typesetter {
    squash: f32,
    local: FxHashMap<Key, Arc<Glyph>>,
}

/// A glyph with no ink and no advance.
static EMPTY: Glyph = Glyph {
    w: 0,
    h: 0,
    stride: 0,
    bits: Cow::Borrowed(&[]),
    words: Vec::new(),
    left: 0,
    top: 0,
    advance: 0.0,
};

impl Typesetter {
    pub fn new(res: Resolution) -> Result<Typesetter, String> {
        Ok(Typesetter {
            squash: res.y_dpi() as f32 / X_DPI as f32,
            local: FxHashMap::default(),
        })
    }

    /// Parses `face` on another thread, now, so it is ready when first
    /// needed (fontdue reads every glyph of a face when it loads it: some
    /// milliseconds each) — unless it is baked at `pt` for this
    /// resolution: then it is parsed only if a character is missing.
    pub fn preload(&self, face: Face, pt: f32) {
        if FONTS[face.index()].get().is_some() || self.baked(face, pt).is_some() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("font".into())
            .spawn(move || font(face).is_ok());
    }

    /// Pixels across per em at `pt` points.
    fn em(pt: f32) -> f32 {
        pt * X_DPI as f32 / 72.0
    }

    /// The face, or (never expected: the fonts are built in) the
    /// monospaced one.
    fn font(&self, face: Face) -> Option<&'static fontdue::Font> {
        font(face).or_else(|_| font(Face::Mono)).ok()
    }

    /// The baked glyphs of `face` at `pt` for this resolution, if any.
    fn baked(&self, face: Face, pt: f32) -> Option<&'static BakedSet> {
        let key = self.key(face, pt, ' ');
        baked::set(face, Self::em(pt), key.squash)
    }

    /// Distance between baselines in rows.
    pub fn line_height(&self, face: Face, pt: f32) -> f32 {
        let em = Self::em(pt);
        let size = match self.baked(face, pt) {
            Some(b) => b.new_line_size,
            None => self
                .font(face)
                .and_then(|f| f.horizontal_line_metrics(em))
                .map(|m| m.new_line_size)
                .unwrap_or(em * 1.17),
        };
        size * self.squash
    }

    /// Rows from the top of a line to its baseline.
    pub fn ascent(&self, face: Face, pt: f32) -> f32 {
        let em = Self::em(pt);
        let a = match self.baked(face, pt) {
            Some(b) => b.ascent,
            None => self
                .font(face)
                .and_then(|f| f.horizontal_line_metrics(em))
                .map(|m| m.ascent)
                .unwrap_or(em * 0.93),
        };
        a * self.squash
    }

    /// The pen advance of `ch` in pixels across.
    pub fn advance(&mut self, face: Face, pt: f32, ch: char) -> f32 {
        self.glyph(face, pt, ch).advance
    }

    /// The width of `s` in pixels across.
    pub fn measure(&mut self, face: Face, pt: f32, s: &str) -> f32 {
        s.chars().map(|c| self.advance(face, pt, c)).sum()
    }

    /// Draws `ch` with its pen at (x, baseline); returns the advance.
    pub fn draw_char(
        &mut self,
        page: &mut Page,
        face: Face,
        pt: f32,
        x: f32,
        baseline: i64,
        ch: char,
    ) -> f32 {
        let g = self.glyph_ref(face, pt, ch);
        if g.w > 0 && g.h > 0 {
            let gx = x.round() as i64 + i64::from(g.left);
            let gy = baseline + i64::from(g.top);
            if g.words.is_empty() || !blit_words(page, &g.words, g.stride, gx, gy) {
                blit(page, &g.bits, g.stride, g.w, g.h, gx, gy);
            }
        }
        g.advance
    }

    /// The glyph, borrowed (no reference count touched: the text loop
    /// draws one per character).
    fn glyph_ref(&mut self, face: Face, pt: f32, ch: char) -> &Glyph {
        let key = self.key(face, pt, ch);
        if !self.local.contains_key(&key) {
            self.glyph(face, pt, ch);
        }
        match self.local.get(&key) {
            Some(g) => g,
            // glyph() has just put it there.
            None => &EMPTY,
        }
    }

    fn key(&self, face: Face, pt: f32, ch: char) -> Key {
        Key {
            face,
            ch,
            em: (Self::em(pt) * 64.0).round() as u32,
            squash: (self.squash * 1024.0).round() as u32,
        }
    }

    /// Draws `s` from (x, baseline); returns the pen position after it.
    pub fn draw_str(
        &mut self,
        page: &mut Page,
        face: Face,
        pt: f32,
        x: f32,
        baseline: i64,
        s: &str,
    ) -> f32 {
        s.chars().fold(x, |x, ch| {
            x + self.draw_char(page, face, pt, x, baseline, ch)
        })
    }

    /// The glyph, from this typesetter's cache, the shared cache, or
    /// rasterised now.
    pub fn glyph(&mut self, face: Face, pt: f32, ch: char) -> Arc<Glyph> {
        let key = self.key(face, pt, ch);
        if let Some(g) = self.local.get(&key) {
            return g.clone();
        }
        let cached = shared().lock().ok().and_then(|m| m.get(&key).cloned());
        let g = match cached {
            Some(g) => g,
            None => {
                let g = Arc::new(self.make(face, pt, ch));
                if let Ok(mut m) = shared().lock() {
                    if m.len() >= SHARED_CAP {
                        m.clear();
                    }
                    m.insert(key, g.clone());
                }
                g
            }
        };
        self.local.insert(key, g.clone());
        g
    }

    /// The glyph: baked, or rasterised now; with its rows as words.
    fn make(&self, face: Face, pt: f32, ch: char) -> Glyph {
        let mut g = self.bits_of(face, pt, ch);
        if (1..=7).contains(&g.stride) {
            g.words = g
                .bits
                .chunks_exact(g.stride)
                .map(|r| {
                    let mut b = [0u8; 8];
                    b[..r.len()].copy_from_slice(r);
                    u64::from_be_bytes(b)
                })
                .collect();
        }
        g
    }

    fn bits_of(&self, face: Face, pt: f32, ch: char) -> Glyph {
        let baked = self.baked(face, pt).and_then(|b| b.glyph(ch));
        match baked {
            Some((g, bits)) => Glyph {
                w: g.w,
                h: g.h,
                stride: g.w.div_ceil(8) as usize,
                bits: Cow::Borrowed(bits),
                words: Vec::new(),
                left: g.left,
                top: g.top,
                advance: g.advance,
            },
            None => self.rasterize(face, Self::em(pt), ch),
        }
    }

    /// The glyph rasterised by fontdue, in `face` or its fallback.
    fn rasterize(&self, face: Face, em: f32, ch: char) -> Glyph {
        let Some(mut font) = self.font(face) else {
            return EMPTY.clone();
        };
        if !font.has_glyph(ch) {
            if let Some(fb) = face.fallback().and_then(|f| self.font(f)) {
                if fb.has_glyph(ch) {
                    font = fb;
                }
            }
        }
        let (m, cov) = font.rasterize(ch, em);
        let advance = m.advance_width;
        if m.width == 0 || m.height == 0 {
            return Glyph {
                w: 0,
                h: 0,
                stride: 0,
                bits: Cow::Borrowed(&[]),
                words: Vec::new(),
                left: m.xmin,
                top: 0,
                advance,
            };
        }
        let s = glyph_bits::squash(m.width, m.height, m.ymin, &cov, self.squash);
        Glyph {
            w: m.width as u32,
            h: s.h,
            stride: s.stride,
            bits: Cow::Owned(s.bits),
            words: Vec::new(),
            left: m.xmin,
            top: s.top,
            advance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::FAX_WIDTH;

    fn ink(res: Resolution, ch: char) -> (u64, u32, u32) {
        let mut t = Typesetter::new(res).unwrap();
        let mut page = Page::blank(FAX_WIDTH, 200, res);
        t.draw_char(&mut page, Face::Mono, 10.0, 10.0, 100, ch);
        let rows: Vec<u32> = (0..200)
            .filter(|&y| (0..100).any(|x| page.get(x, y)))
            .collect();
        let height = rows.last().map_or(0, |l| l - rows[0] + 1);
        let cols: Vec<u32> = (0..100)
            .filter(|&x| (0..200).any(|y| page.get(x, y)))
            .collect();
        let width = cols.last().map_or(0, |l| l - cols[0] + 1);
        (page.black_pixels(), width, height)
    }

    #[test]
    fn glyphs_have_ink_and_squash_with_the_resolution() {
        let (fine, w_f, h_f) = ink(Resolution::Fine, 'H');
        let (std, w_s, h_s) = ink(Resolution::Standard, 'H');
        // 10 pt 'H' in DejaVu Sans Mono: cap height 0.73 em = 20 px.
        assert!((18..=22).contains(&h_f), "{h_f}");
        assert!((9..=11).contains(&h_s), "{h_s}");
        assert_eq!(w_f, w_s, "same width across");
        assert!(fine > 60 && std > 30 && std < fine, "{fine} {std}");
        assert_eq!(ink(Resolution::Fine, ' ').0, 0);
        // A Cyrillic letter and a box-drawing line are in the face.
        assert!(ink(Resolution::Fine, 'Ж').0 > 40);
        assert!(ink(Resolution::Fine, '─').0 > 10);
    }

    #[test]
    fn baked_glyphs_are_what_fontdue_makes_at_run_time() {
        let em = Typesetter::em(10.0);
        for res in [Resolution::Fine, Resolution::Standard] {
            let t = Typesetter::new(res).unwrap();
            for face in [Face::Mono, Face::MonoBold] {
                let set = t.baked(face, 10.0).expect("baked at 10 pt");
                assert!(set.glyphs.len() > 300, "{}", set.glyphs.len());
                for g in set.glyphs {
                    let b = t.make(face, 10.0, g.ch);
                    let r = t.rasterize(face, em, g.ch);
                    let key = |g: &Glyph| {
                        (
                            g.w,
                            g.h,
                            g.left,
                            g.top,
                            g.advance.to_bits(),
                            g.bits.to_vec(),
                        )
                    };
                    assert_eq!(key(&b), key(&r), "{face:?} {:?} {res:?}", g.ch);
                }
                let lm = font(face).unwrap().horizontal_line_metrics(em).unwrap();
                assert_eq!(set.new_line_size.to_bits(), lm.new_line_size.to_bits());
                assert_eq!(set.ascent.to_bits(), lm.ascent.to_bits());
            }
            // Other sizes and faces are rasterised at run time.
            assert!(t.baked(Face::Mono, 12.0).is_none());
            assert!(t.baked(Face::Mono, 10.001).is_none());
            assert!(t.baked(Face::Sans, 10.0).is_none());
            assert!(t.baked(Face::Mono, 10.0).unwrap().glyph('é').is_some());
            assert!(t.baked(Face::Mono, 10.0).unwrap().glyph('Ж').is_none());
        }
    }

    #[test]
    fn monospace_cells_and_measuring() {
        let mut t = Typesetter::new(Resolution::Fine).unwrap();
        let a = t.advance(Face::Mono, 10.0, 'i');
        let b = t.advance(Face::Mono, 10.0, 'W');
        assert_eq!(a, b);
        // 0.602 em at 10 pt, 204 dpi.
        assert!((a - 17.06).abs() < 0.2, "{a}");
        let w = t.measure(Face::Sans, 12.0, "Hello");
        assert!(w > 80.0 && w < 130.0, "{w}");
        assert!(t.line_height(Face::Mono, 10.0) > 28.0);
    }
}
