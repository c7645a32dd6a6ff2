//! 1-bit images ORed onto a fax page at a pixel position, clipped to
//! the page: glyphs (narrow rows shifted into place as one 64-bit word)
//! and anything else a byte at a time.

use crate::page::Page;

/// ORs `src` onto `page` with its top left corner at (x, y); what falls
/// outside the page is clipped.
pub(crate) fn blit(page: &mut Page, src: &[u8], stride: usize, w: u32, h: u32, x: i64, y: i64) {
    let pw = i64::from(page.width);
    if w > 0
        && stride == w.div_ceil(8) as usize
        && stride <= 7
        && x >= 0
        && x + 8 * stride as i64 <= pw
    {
        return blit_narrow(page, src, stride, h, x as usize, y);
    }
    blit_any(page, src, stride, w, h, x, y);
}

/// [`blit`] of any image, anywhere, a byte at a time.
pub(super) fn blit_any(page: &mut Page, src: &[u8], stride: usize, w: u32, h: u32, x: i64, y: i64) {
    let pw = i64::from(page.width);
    let ps = page.stride();
    for sy in 0..h as i64 {
        let py = y + sy;
        if py < 0 {
            continue;
        }
        if py >= i64::from(page.height) {
            break;
        }
        let srow = &src[sy as usize * stride..sy as usize * stride + stride];
        let drow = &mut page.bits[py as usize * ps..(py as usize + 1) * ps];
        for (k, &b) in srow.iter().enumerate() {
            if b == 0 {
                continue;
            }
            let pos = x + 8 * k as i64;
            if pos >= pw || 8 * k as u32 >= w {
                break;
            }
            if pos + 8 <= 0 {
                continue;
            }
            if pos < 0 {
                drow[0] |= b << (-pos);
                continue;
            }
            let (i, shift) = ((pos / 8) as usize, (pos % 8) as u32);
            drow[i] |= b >> shift;
            if shift > 0 && i + 1 < ps {
                drow[i + 1] |= b << (8 - shift);
            }
        }
        // Bits beyond the page width stay white.
        if !page.width.is_multiple_of(8) {
            if let Some(last) = drow.last_mut() {
                *last &= 0xffu8 << (8 - page.width % 8);
            }
        }
    }
}

/// [`blit`] of an image of at most 7 bytes a row (a glyph) whose bytes
/// all lie within the page across: each row shifted into place as one
/// 64-bit word. Like [`blit_any`], whole source bytes are ORed.
fn blit_narrow(page: &mut Page, src: &[u8], stride: usize, h: u32, x: usize, y: i64) {
    let rows = src.chunks_exact(stride).take(h as usize).map(|row| {
        // Left-aligned, byte by byte (a copy of a variable length into
        // a word would be a call to memcpy and a stalled load).
        row.iter()
            .enumerate()
            .fold(0u64, |v, (k, &b)| v | u64::from(b) << (56 - 8 * k))
    });
    or_rows(page, rows, stride, x, y);
}

/// ORs `rows` (left-aligned 64-bit words of `stride` bytes each used,
/// the first at row `y`) onto `page` at pixel `x` across; `x + 8 ×
/// stride` is within the page and `stride` is at most 7.
#[inline]
fn or_rows(page: &mut Page, rows: impl Iterator<Item = u64>, stride: usize, x: usize, y: i64) {
    let ps = page.stride();
    let (byte, shift) = (x / 8, x % 8);
    // Bytes of the page row the image touches.
    let n = (shift + 8 * stride).div_ceil(8);
    for (sy, row) in rows.enumerate() {
        let py = y + sy as i64;
        if py < 0 {
            continue;
        }
        if py >= i64::from(page.height) {
            break;
        }
        let v = row >> shift;
        if v == 0 {
            continue;
        }
        let at = py as usize * ps + byte;
        if let Some(d) = page.bits.get_mut(at..at + 8) {
            // Bytes past the n touched are ORed with 0.
            let mut b = [0u8; 8];
            b.copy_from_slice(d);
            d.copy_from_slice(&(u64::from_be_bytes(b) | v).to_be_bytes());
        } else if let Some(d) = page.bits.get_mut(at..at + n) {
            for (d, s) in d.iter_mut().zip(v.to_be_bytes()) {
                *d |= s;
            }
        }
    }
}

/// [`blit`] of an image whose rows are given as left-aligned 64-bit
/// words (`stride` bytes of each used: a glyph, see
/// [`super::font`]). Returns false, having drawn nothing, unless the
/// image lies within the page across and `stride` is at most 7: then
/// use [`blit`].
pub(crate) fn blit_words(page: &mut Page, rows: &[u64], stride: usize, x: i64, y: i64) -> bool {
    if stride == 0 || stride > 7 || x < 0 || x + 8 * stride as i64 > i64::from(page.width) {
        return false;
    }
    or_rows(page, rows.iter().copied(), stride, x as usize, y);
    true
}
