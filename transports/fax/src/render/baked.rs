//! The message-text faces' common glyphs at the default text size, baked
//! at build time (`build.rs`: fontdue, then [`super::glyph_bits`], as at
//! run time), so that text made only of these characters needs no font
//! parsed when the process starts. Other characters and sizes are
//! rasterised at run time by [`super::font`]; the test below holds the
//! baked glyphs to what run time makes.

use super::font::Face;

/// One face at one resolution.
pub(crate) struct BakedSet {
    pub face: Face,
    /// Rows per pixel across × 1024, rounded (the glyph cache's key).
    pub squash1024: u32,
    pub new_line_size: f32,
    pub ascent: f32,
    /// Sorted by character.
    pub glyphs: &'static [BakedGlyph],
}

/// One glyph: its bits are `BITS[offset..offset + stride * h]`.
pub(crate) struct BakedGlyph {
    pub ch: char,
    pub offset: usize,
    pub w: u32,
    pub h: u32,
    pub left: i32,
    pub top: i32,
    pub advance: f32,
}

include!(concat!(env!("OUT_DIR"), "/text_glyphs.rs"));

/// Every baked glyph's rows, one after another.
static BITS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/text_glyphs.bin"));

/// The baked set for `face` at exactly `em` pixels per em and
/// `squash1024`, if any.
pub(crate) fn set(face: Face, em: f32, squash1024: u32) -> Option<&'static BakedSet> {
    if em.to_bits() != EM.to_bits() {
        return None;
    }
    SETS.iter()
        .find(|s| s.face == face && s.squash1024 == squash1024)
}

impl BakedSet {
    /// The glyph for `ch` and its bits, if baked.
    pub fn glyph(&self, ch: char) -> Option<(&'static BakedGlyph, &'static [u8])> {
        let i = self.glyphs.binary_search_by_key(&ch, |g| g.ch).ok()?;
        let g = &self.glyphs[i];
        let len = g.w.div_ceil(8) as usize * g.h as usize;
        let bits = BITS.get(g.offset..g.offset + len)?;
        Some((g, bits))
    }
}
