//! A rasterised glyph's coverage made bilevel for a fax grid: the rows
//! box-filtered down to the page's rows per pixel across, then
//! thresholded. Shared by the run-time rasteriser ([`super::font`]) and the
//! build script, which bakes the text faces' common glyphs with it, so
//! the two make the same pixels.

/// Coverage (0–255) at or above which a pixel is black; a little under
/// half, so strokes stay whole at 98 lines per inch.
pub const INK: u32 = 112;

/// Bilevel rows of a glyph: `h` rows of `stride` bytes, most significant
/// bit first, 1 = black; `top` is the first row's offset from the
/// baseline (negative: above).
pub struct Squashed {
    pub h: u32,
    pub top: i32,
    pub stride: usize,
    pub bits: Vec<u8>,
}

/// `cov` (`width × height` coverage bytes, rows from the top, the
/// bitmap's bottom `ymin` pixels above the baseline) squashed to `sq`
/// rows per pixel across.
pub fn squash(width: usize, height: usize, ymin: i32, cov: &[u8], sq: f32) -> Squashed {
    // Source rows span [top_in, bottom_in) below the baseline (y down).
    let top_in = -(ymin + height as i32) as f32;
    let out_top = (top_in * sq).floor() as i32;
    let out_bottom = ((top_in + height as f32) * sq).ceil() as i32;
    let h = (out_bottom - out_top).max(1) as u32;
    let stride = width.div_ceil(8);
    let mut bits = vec![0u8; stride * h as usize];
    let mut acc = vec![0f32; width];
    for r in 0..h {
        // Output row r covers source y in [a, b).
        let a = (out_top + r as i32) as f32 / sq - top_in;
        let b = (out_top + r as i32 + 1) as f32 / sq - top_in;
        acc.iter_mut().for_each(|v| *v = 0.0);
        let first = a.floor().max(0.0) as usize;
        let last = (b.ceil().max(0.0) as usize).min(height);
        for sy in first..last {
            let overlap = b.min(sy as f32 + 1.0) - a.max(sy as f32);
            if overlap <= 0.0 {
                continue;
            }
            let row = &cov[sy * width..(sy + 1) * width];
            for (v, &c) in acc.iter_mut().zip(row) {
                *v += f32::from(c) * overlap;
            }
        }
        let span = b - a;
        let dst = &mut bits[r as usize * stride..(r as usize + 1) * stride];
        for (x, &v) in acc.iter().enumerate() {
            if v / span >= INK as f32 {
                dst[x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    Squashed {
        h,
        top: out_top,
        stride,
        bits,
    }
}
