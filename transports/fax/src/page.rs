//! A fax page as a bilevel bitmap: the one picture every renderer produces
//! and every TIFF-F writer and engine consumes.

use serde::{Deserialize, Serialize};

/// The width of an ISO A4 / Letter fax page in pixels (T.4: 1728 pels on
/// 215 mm).
pub const FAX_WIDTH: u32 = 1728;

/// Horizontal resolution in dots per inch (T.4: 8 pels/mm).
pub const X_DPI: u32 = 204;

/// Vertical resolution (T.4 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// 3.85 lines/mm: 98 lines per inch.
    Standard,
    /// 7.7 lines/mm: 196 lines per inch.
    #[default]
    Fine,
}

impl Resolution {
    /// Lines per inch, as written in the TIFF YResolution tag.
    pub fn y_dpi(self) -> u32 {
        match self {
            Resolution::Standard => 98,
            Resolution::Fine => 196,
        }
    }
}

/// How page data is coded in a TIFF-F file (RFC 3949 profile F).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Modified Huffman, T.4 one-dimensional (TIFF Compression 3,
    /// T4Options 0): what every fax machine takes.
    #[default]
    Mh,
    /// Modified READ, T.4 two-dimensional (Compression 3, T4Options 1).
    Mr,
    /// Modified Modified READ, T.6 (Compression 4).
    Mmr,
}

/// Paper the pages are laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Paper {
    /// 210 × 297 mm.
    #[default]
    A4,
    /// 8.5 × 11 in.
    Letter,
}

impl Paper {
    /// Page length in inches.
    pub fn height_inches(self) -> f32 {
        match self {
            Paper::A4 => 297.0 / 25.4,
            Paper::Letter => 11.0,
        }
    }

    /// Page length in lines at `res`.
    pub fn height_lines(self, res: Resolution) -> u32 {
        (self.height_inches() * res.y_dpi() as f32).round() as u32
    }
}

/// One page: `height` rows of `width` pixels, packed 8 to a byte, most
/// significant bit first, 1 = black (TIFF PhotometricInterpretation 0,
/// WhiteIsZero, as fax data is coded).
#[derive(Clone, PartialEq, Eq)]
pub struct Page {
    pub width: u32,
    pub height: u32,
    pub resolution: Resolution,
    pub bits: Vec<u8>,
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("resolution", &self.resolution)
            .finish_non_exhaustive()
    }
}

impl Page {
    /// A white page.
    pub fn blank(width: u32, height: u32, resolution: Resolution) -> Page {
        let stride = width.div_ceil(8) as usize;
        Page {
            width,
            height,
            resolution,
            bits: vec![0; stride * height as usize],
        }
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width.div_ceil(8) as usize
    }

    /// Row `y` (packed).
    pub fn row(&self, y: u32) -> &[u8] {
        let s = self.stride();
        &self.bits[y as usize * s..(y as usize + 1) * s]
    }

    /// Whether the pixel at (x, y) is black; outside the page: white.
    pub fn get(&self, x: u32, y: u32) -> bool {
        if x >= self.width || y >= self.height {
            return false;
        }
        let byte = self.bits[y as usize * self.stride() + (x / 8) as usize];
        byte & (0x80 >> (x % 8)) != 0
    }

    /// Set the pixel at (x, y) to black (`true`) or white; outside the
    /// page: nothing.
    pub fn set(&mut self, x: u32, y: u32, black: bool) {
        if x >= self.width || y >= self.height {
            return;
        }
        let i = y as usize * self.stride() + (x / 8) as usize;
        let mask = 0x80u8 >> (x % 8);
        if black {
            self.bits[i] |= mask;
        } else {
            self.bits[i] &= !mask;
        }
    }

    /// The number of black pixels (for tests and "is this page empty").
    pub fn black_pixels(&self) -> u64 {
        self.bits.iter().map(|b| b.count_ones() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_packed_msb_first() {
        let mut p = Page::blank(FAX_WIDTH, 3, Resolution::Fine);
        p.set(0, 1, true);
        p.set(9, 1, true);
        assert_eq!(p.row(1)[0], 0x80);
        assert_eq!(p.row(1)[1], 0x40);
        assert!(p.get(9, 1) && !p.get(8, 1));
        assert_eq!(p.black_pixels(), 2);
        p.set(9, 1, false);
        assert_eq!(p.black_pixels(), 1);
    }

    #[test]
    fn paper_lengths_in_lines() {
        assert_eq!(Paper::A4.height_lines(Resolution::Fine), 2292);
        assert_eq!(Paper::Letter.height_lines(Resolution::Fine), 2156);
        assert_eq!(Paper::A4.height_lines(Resolution::Standard), 1146);
    }
}
