//! Pixels on their way to a fax page: grey images ([`Gray`]) resampled to
//! the fax grid (204 dpi across, 98/196 lines per inch down), turned into
//! 1 bit ([`Bits`]) by thresholding or Floyd–Steinberg error diffusion,
//! and placed on a [`Page`]. Shared by pictures, PDF, PostScript and TIFF
//! attachments; `blit.rs` ORs 1-bit images (glyphs) onto a page.

use crate::page::{Page, Resolution, FAX_WIDTH, X_DPI};
use crate::render::Paper;

mod blit;
#[cfg(test)]
use blit::blit_any;
pub(crate) use blit::{blit, blit_words};

/// A grey image: one byte per pixel, 0 = black, 255 = white.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Gray {
    pub w: u32,
    pub h: u32,
    pub px: Vec<u8>,
}

/// A bilevel image: packed rows, most significant bit first, 1 = black.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bits {
    pub w: u32,
    pub h: u32,
    pub stride: usize,
    pub data: Vec<u8>,
}

impl Bits {
    pub fn new(w: u32, h: u32) -> Bits {
        let stride = w.div_ceil(8) as usize;
        Bits {
            w,
            h,
            stride,
            data: vec![0; stride * h as usize],
        }
    }

    pub fn row(&self, y: u32) -> &[u8] {
        &self.data[y as usize * self.stride..(y as usize + 1) * self.stride]
    }

    pub fn to_gray(&self) -> Gray {
        let mut px = Vec::with_capacity(self.w as usize * self.h as usize);
        for y in 0..self.h {
            let row = self.row(y);
            px.extend((0..self.w).map(|x| {
                if row[(x / 8) as usize] & (0x80 >> (x % 8)) != 0 {
                    0
                } else {
                    255
                }
            }));
        }
        Gray {
            w: self.w,
            h: self.h,
            px,
        }
    }

    /// The same picture `factor` times as tall (rows repeated).
    fn stretch_rows(&self, factor: u32) -> Bits {
        let mut out = Bits::new(self.w, self.h * factor);
        for (y, dst) in out.data.chunks_exact_mut(self.stride).enumerate() {
            dst.copy_from_slice(self.row(y as u32 / factor));
        }
        out
    }

    /// Half as tall: each output row is the OR of two input rows, so thin
    /// horizontal lines survive.
    fn halve_rows(&self) -> Bits {
        let mut out = Bits::new(self.w, self.h.div_ceil(2));
        for (y, dst) in out.data.chunks_exact_mut(self.stride).enumerate() {
            let a = self.row(2 * y as u32);
            dst.copy_from_slice(a);
            if 2 * y as u32 + 1 < self.h {
                let b = self.row(2 * y as u32 + 1);
                dst.iter_mut().zip(b).for_each(|(d, s)| *d |= s);
            }
        }
        out
    }
}

impl Gray {
    /// Whether nearly every pixel is already black or white (line art,
    /// text, scans): such images are thresholded, keeping edges sharp;
    /// others (photos) are dithered.
    pub fn is_line_art(&self) -> bool {
        // Branch-free so it vectorises: (v − 48) < 160 ⇔ 48 ≤ v < 208.
        let mid: usize = self
            .px
            .chunks(4096)
            .map(|c| {
                let n = c
                    .iter()
                    .fold(0u16, |n, &v| n + u16::from(v.wrapping_sub(48) < 160));
                usize::from(n)
            })
            .sum();
        mid * 50 <= self.px.len() // at most 2 % mid tones
    }

    /// Turned a quarter counter-clockwise (the top edge becomes the left
    /// edge): how a landscape page is laid on portrait paper.
    pub fn rotate_ccw(&self) -> Gray {
        let (w, h) = (self.w as usize, self.h as usize);
        let mut px = vec![0u8; w * h];
        for y in 0..h {
            let src = &self.px[y * w..(y + 1) * w];
            for (x, &v) in src.iter().enumerate() {
                // (x, y) → (y, w − 1 − x) in an h-wide image.
                px[(w - 1 - x) * h + y] = v;
            }
        }
        Gray {
            w: self.h,
            h: self.w,
            px,
        }
    }

    /// Resampled to `w × h`: area average when shrinking, linear
    /// interpolation when enlarging; separable, fixed point.
    pub fn resize(&self, w: u32, h: u32) -> Gray {
        let (w, h) = (w.max(1), h.max(1));
        if (w, h) == (self.w, self.h) {
            return self.clone();
        }
        if self.w == 0 || self.h == 0 {
            // Nothing to sample: white.
            return Gray {
                w,
                h,
                px: vec![255; w as usize * h as usize],
            };
        }
        let xs = weights(self.w, w);
        let ys = weights(self.h, h);
        // Horizontal pass: h_in rows of w_out.
        let (sw, ow) = (self.w as usize, w as usize);
        let mut tmp = vec![0u8; ow * self.h as usize];
        for (src, dst) in self.px.chunks_exact(sw).zip(tmp.chunks_exact_mut(ow)) {
            for (d, c) in dst.iter_mut().zip(&xs) {
                *d = c.apply(|i| src[i]);
            }
        }
        // Vertical pass.
        let mut px = vec![0u8; ow * h as usize];
        for (dst, c) in px.chunks_exact_mut(ow).zip(&ys) {
            for (x, d) in dst.iter_mut().enumerate() {
                *d = c.apply(|i| tmp[i * ow + x]);
            }
        }
        Gray { w, h, px }
    }

    /// 1 bit: a threshold for line art, error diffusion otherwise.
    pub fn binarize(&self) -> Bits {
        if self.is_line_art() {
            self.threshold(128)
        } else {
            self.dither()
        }
    }

    /// 1 bit for document pages (PDF, PostScript): a threshold for line
    /// art, else a clustered-dot halftone. Flat grey fills, the usual grey
    /// in documents, then code into far fewer bits on the line than error
    /// diffusion's noise (about a third less T.6 data per page, so less
    /// time on the phone).
    pub fn binarize_document(&self) -> Bits {
        if self.is_line_art() {
            self.threshold(128)
        } else {
            self.halftone()
        }
    }

    /// Ordered dithering with a 4×4 clustered-dot screen (about 51 lines
    /// per inch at 204 dpi), aligned to the page.
    pub fn halftone(&self) -> Bits {
        // The order in which a cell's dots turn black as the grey darkens:
        // from the centre outwards.
        const SCREEN: [[u16; 4]; 4] =
            [[12, 5, 6, 13], [4, 0, 1, 7], [11, 3, 2, 8], [15, 10, 9, 14]];
        let mut out = Bits::new(self.w, self.h);
        let w = self.w as usize;
        if w == 0 {
            return out;
        }
        for (y, (src, dst)) in self
            .px
            .chunks_exact(w)
            .zip(out.data.chunks_exact_mut(out.stride))
            .enumerate()
        {
            // Black when darker than the cell's threshold: rank k of 16
            // turns black below (16 - k) / 16 of white. A byte holds 8
            // pixels, two cells across (x % 8 is aligned with x % 4).
            let mut t = [0u8; 8];
            for (i, t) in t.iter_mut().enumerate() {
                // 8..=248: white (255) never turns black, black (0) always.
                *t = ((16 - SCREEN[y % 4][i % 4]) * 16 - 8) as u8;
            }
            pack_row(src, dst, |px| {
                let mut b = 0u8;
                for (i, (&v, &t)) in px.iter().zip(&t).enumerate() {
                    b |= u8::from(v < t) << (7 - i);
                }
                b
            });
        }
        out
    }

    /// Black where darker than `t`.
    pub fn threshold(&self, t: u8) -> Bits {
        let mut out = Bits::new(self.w, self.h);
        let w = self.w as usize;
        if w == 0 || t == 0 {
            // Nothing is darker than 0.
            return out;
        }
        for (src, dst) in self
            .px
            .chunks_exact(w)
            .zip(out.data.chunks_exact_mut(out.stride))
        {
            pack_row(src, dst, |px| {
                let mut b = 0u8;
                for (i, &v) in px.iter().enumerate() {
                    b |= u8::from(v < t) << (7 - i);
                }
                b
            });
        }
        out
    }

    /// Floyd–Steinberg error diffusion, serpentine, so photographs keep
    /// their tones; pure black and white pass unchanged.
    pub fn dither(&self) -> Bits {
        let mut out = Bits::new(self.w, self.h);
        let w = self.w as usize;
        if w == 0 {
            return out;
        }
        // Errors for this row and the next, with one guard cell each side.
        let mut cur = vec![0i32; w + 2];
        let mut next = vec![0i32; w + 2];
        for y in 0..self.h as usize {
            let src = &self.px[y * w..(y + 1) * w];
            let dst = &mut out.data[y * out.stride..(y + 1) * out.stride];
            let ltr = y % 2 == 0;
            for i in 0..w {
                let x = if ltr { i } else { w - 1 - i };
                let v = i32::from(src[x]) * 16 + cur[x + 1];
                let black = v < 128 * 16;
                if black {
                    dst[x / 8] |= 0x80 >> (x % 8);
                }
                let err = v - if black { 0 } else { 255 * 16 };
                // 7/16 ahead, 3/16 behind-below, 5/16 below, 1/16 ahead-below.
                let (ahead, behind) = if ltr { (x + 2, x) } else { (x, x + 2) };
                cur[ahead] += err * 7 / 16;
                next[behind] += err * 3 / 16;
                next[x + 1] += err * 5 / 16;
                next[ahead] += err / 16;
            }
            std::mem::swap(&mut cur, &mut next);
            next.iter_mut().for_each(|e| *e = 0);
        }
        out
    }
}

/// One output sample's inputs: first index and fixed-point weights
/// (summing to 1 << 14).
struct Contrib {
    first: usize,
    weights: Vec<u16>,
}

impl Contrib {
    fn apply(&self, at: impl Fn(usize) -> u8) -> u8 {
        let mut acc: u32 = 0;
        for (k, &wt) in self.weights.iter().enumerate() {
            acc += u32::from(at(self.first + k)) * u32::from(wt);
        }
        ((acc + (1 << 13)) >> 14).min(255) as u8
    }
}

fn weights(src: u32, dst: u32) -> Vec<Contrib> {
    let scale = f64::from(dst) / f64::from(src);
    let n = src as usize;
    (0..dst)
        .map(|o| {
            let mut ws: Vec<(usize, f64)> = Vec::new();
            if scale < 1.0 {
                // Area average over [o/scale, (o+1)/scale).
                let a = f64::from(o) / scale;
                let b = (f64::from(o) + 1.0) / scale;
                let mut i = a.floor() as usize;
                while (i as f64) < b && i < n {
                    let lo = a.max(i as f64);
                    let hi = b.min(i as f64 + 1.0);
                    if hi > lo {
                        ws.push((i, hi - lo));
                    }
                    i += 1;
                }
            } else {
                // Linear interpolation between the two nearest centres.
                let c = ((f64::from(o) + 0.5) / scale - 0.5).clamp(0.0, (n - 1) as f64);
                let i = c.floor() as usize;
                let f = c - i as f64;
                ws.push((i, 1.0 - f));
                if i + 1 < n && f > 0.0 {
                    ws.push((i + 1, f));
                }
            }
            if ws.is_empty() {
                ws.push(((o as usize).min(n - 1), 1.0));
            }
            let total: f64 = ws.iter().map(|w| w.1).sum();
            let first = ws[0].0;
            let mut weights: Vec<u16> = ws
                .iter()
                .map(|w| (w.1 / total * 16384.0).round() as u16)
                .collect();
            // Make the weights sum exactly to 1 << 14.
            let sum: i32 = weights.iter().map(|&w| i32::from(w)).sum();
            if let Some(max) = weights.iter_mut().max() {
                *max = (i32::from(*max) + 16384 - sum).clamp(0, 16384) as u16;
            }
            Contrib { first, weights }
        })
        .collect()
}

/// The page being filled: paper and resolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sheet {
    pub paper: Paper,
    pub res: Resolution,
}

impl Sheet {
    pub fn width(&self) -> u32 {
        FAX_WIDTH
    }

    pub fn height(&self) -> u32 {
        self.paper.height_lines(self.res)
    }

    pub fn ydpi(&self) -> f32 {
        self.res.y_dpi() as f32
    }

    pub fn blank(&self) -> Page {
        Page::blank(self.width(), self.height(), self.res)
    }

    /// Pixels across for `inches`.
    pub fn x_px(&self, inches: f32) -> f32 {
        inches * X_DPI as f32
    }

    /// Rows down for `inches`.
    pub fn y_px(&self, inches: f32) -> f32 {
        inches * self.ydpi()
    }

    /// A picture (photo, drawing) scaled to fit inside the margins
    /// (`margin` inches), keeping its aspect ratio with square source
    /// pixels, enlarged at most `max_up` times; centred across, at the
    /// top.
    pub fn picture_page(&self, img: &Gray, margin: f32, max_up: f32) -> Page {
        if img.w == 0 || img.h == 0 {
            return self.blank();
        }
        let aw = self.width() as f32 - 2.0 * self.x_px(margin);
        let ah = self.height() as f32 - 2.0 * self.y_px(margin);
        let aspect = self.ydpi() / X_DPI as f32; // rows per source row at scale 1
        let s = (aw / img.w as f32)
            .min(ah / (img.h as f32 * aspect))
            .min(max_up);
        let tw = (img.w as f32 * s).round().max(1.0) as u32;
        let th = (img.h as f32 * s * aspect).round().max(1.0) as u32;
        let bits = img.resize(tw, th).binarize();
        let mut page = self.blank();
        let x = (i64::from(self.width()) - i64::from(tw)) / 2;
        let y = self.y_px(margin).round() as i64;
        blit(&mut page, &bits.data, bits.stride, bits.w, bits.h, x, y);
        page
    }

    /// How a document page of `w_in × h_in` inches goes on the sheet: at
    /// its true size when it fits (2 % tolerance, cropped), else shrunk
    /// to fit; landscape pages wider than the sheet are turned. Returns
    /// the scale and whether it is turned.
    fn fit(&self, w_in: f32, h_in: f32) -> (f32, bool) {
        let (sw, sh) = (self.width() as f32, self.height() as f32);
        let turn = w_in > h_in && self.x_px(w_in) > sw * 1.02;
        let (tw, th) = if turn {
            (self.x_px(h_in), self.y_px(w_in))
        } else {
            (self.x_px(w_in), self.y_px(h_in))
        };
        let s = if tw > sw * 1.02 || th > sh * 1.02 {
            (sw / tw).min(sh / th)
        } else {
            1.0
        };
        (s, turn)
    }

    /// A document page (PDF, PostScript, TIFF) of `w_in × h_in` inches
    /// placed as [`Sheet::fit`] says: centred across, at the top, no
    /// margins of our own.
    pub fn document_page(&self, src: DocImage, w_in: f32, h_in: f32) -> Page {
        let empty = match &src {
            DocImage::Bits(b) => b.w == 0 || b.h == 0,
            DocImage::Gray(g) => g.w == 0 || g.h == 0,
        };
        if empty || !(w_in > 0.0 && h_in > 0.0) {
            return self.blank();
        }
        let (s, turn) = self.fit(w_in, h_in);
        let (w_in, h_in) = if turn { (h_in, w_in) } else { (w_in, h_in) };
        let tw = (self.x_px(w_in) * s).round().max(1.0) as u32;
        let th = (self.y_px(h_in) * s).round().max(1.0) as u32;
        let bits = match src {
            DocImage::Bits(b) if !turn => fit_bits(b, tw, th),
            DocImage::Bits(b) => b.to_gray().rotate_ccw().resize(tw, th).threshold(128),
            DocImage::Gray(g) => {
                let g = if turn { g.rotate_ccw() } else { g };
                g.resize(tw, th).binarize()
            }
        };
        let mut page = self.blank();
        let x = (i64::from(self.width()) - i64::from(bits.w)) / 2;
        blit(&mut page, &bits.data, bits.stride, bits.w, bits.h, x, 0);
        page
    }

    /// A page rasterised at its final scale (see [`Sheet::document_scale`]):
    /// turned if it was rendered upright for a turn, made 1 bit, centred
    /// across and cropped or padded to the sheet, without resampling.
    pub fn place_rendered(&self, g: &Gray, turned: bool) -> Page {
        let bits = if turned {
            g.rotate_ccw().binarize_document()
        } else {
            g.binarize_document()
        };
        let mut page = self.blank();
        let x = (i64::from(self.width()) - i64::from(bits.w)) / 2;
        blit(&mut page, &bits.data, bits.stride, bits.w, bits.h, x, 0);
        page
    }

    /// At what resolution to rasterise a document page of `w_in × h_in`
    /// inches so it needs no resampling: (pixels per inch across the
    /// upright page, rows per inch down it, turned). A page to be turned
    /// is rendered upright with its width at the rows' resolution.
    pub fn document_scale(&self, w_in: f32, h_in: f32) -> (f32, f32, bool) {
        let (s, turn) = self.fit(w_in, h_in);
        let (x, y) = (X_DPI as f32 * s, self.ydpi() * s);
        if turn {
            (y, x, true)
        } else {
            (x, y, false)
        }
    }
}

/// What a document page arrives as.
pub(crate) enum DocImage {
    Bits(Bits),
    Gray(Gray),
}

/// One row of grey `src` into bits `dst`, eight pixels to a byte (most
/// significant first) by `byte`, which must make white pixels (255) white
/// and black ones (0) black: eight of either (most of a page) skip it.
#[inline(always)]
fn pack_row(src: &[u8], dst: &mut [u8], byte: impl Fn(&[u8; 8]) -> u8) {
    let mut eights = src.chunks_exact(8);
    for (d, px) in dst.iter_mut().zip(&mut eights) {
        let px: &[u8; 8] = px.try_into().unwrap_or(&[255; 8]);
        *d = match u64::from_ne_bytes(*px) {
            u64::MAX => 0,
            0 => 0xff,
            _ => byte(px),
        };
    }
    let rest = eights.remainder();
    if !rest.is_empty() {
        if let Some(d) = dst.get_mut(src.len() / 8) {
            let mut px = [255u8; 8];
            px[..rest.len()].copy_from_slice(rest);
            *d = byte(&px);
        }
    }
}

/// A bilevel page to `tw × th`: copied when the size already matches,
/// rows doubled or halved for 98 ↔ 196 lpi, resampled otherwise.
fn fit_bits(b: Bits, tw: u32, th: u32) -> Bits {
    let near = |a: u32, b: u32| a.abs_diff(b) <= 2 + b / 100;
    if near(b.w, tw) && near(b.h, th) {
        return b;
    }
    if near(b.w, tw) && near(b.h * 2, th) {
        return b.stretch_rows(2);
    }
    if near(b.w, tw) && near(b.h.div_ceil(2), th) {
        return b.halve_rows();
    }
    b.to_gray().resize(tw, th).threshold(128)
}

#[cfg(test)]
mod tests;
