//! Test pages for the fax engine: made-up bilevel pages, a minimal TIFF
//! Class F writer (G4 strips from the `fax` crate, tags written by hand)
//! and a reader for what spandsp stores (G4 or MH, FillOrder 1 or 2, with
//! or without RowsPerStrip). Independent of the project's own TIFF-F
//! writer on purpose: the engine is tested against a second opinion.

use fax::{Color, VecWriter};
use std::path::Path;

/// A bilevel page; `true` is black.
#[derive(Clone, PartialEq, Eq)]
pub struct Page {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<bool>,
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let black = self.pixels.iter().filter(|&&p| p).count();
        write!(f, "Page({}x{}, {black} black)", self.width, self.height)
    }
}

impl Page {
    pub fn row(&self, y: u32) -> &[bool] {
        let w = self.width as usize;
        &self.pixels[y as usize * w..(y as usize + 1) * w]
    }

    /// Black pixels in rows `from..to`.
    pub fn black_in(&self, from: u32, to: u32) -> usize {
        (from..to)
            .map(|y| self.row(y).iter().filter(|&&p| p).count())
            .sum()
    }
}

/// A page of made-up "text": lines of 16×20 character cells with strokes
/// from a seeded generator, every 60 rows (1.5-spaced 12 pt at 196 dpi),
/// in margins. About the ink of a typed letter, so line times are
/// realistic.
pub fn text_page(seed: u64) -> Page {
    let (width, height) = (1728u32, 2200u32);
    let mut pixels = vec![false; (width * height) as usize];
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) as u32
    };
    let mut y0 = 120;
    while y0 + 20 < height - 80 {
        // A line of "words" of 2..9 characters, a space between.
        let mut x0 = 100;
        let line_end = 1500 + next() % 128;
        while x0 + 16 * 9 < line_end {
            let chars = 2 + next() % 8;
            for _ in 0..chars {
                // A character: about a third of a 3×5 grid of 3×3 blocks.
                let shape = next() & (next() | next() >> 7);
                for cell in 0..15u32 {
                    if shape & (1 << cell) != 0 {
                        let (cx, cy) = (x0 + 1 + (cell % 3) * 3, y0 + 2 + (cell / 3) * 3);
                        for y in cy..cy + 3 {
                            for x in cx..cx + 3 {
                                pixels[(y * width + x) as usize] = true;
                            }
                        }
                    }
                }
                x0 += 16;
            }
            x0 += 16;
        }
        y0 += 60;
    }
    Page {
        width,
        height,
        pixels,
    }
}

fn encode_g4(page: &Page) -> Vec<u8> {
    let mut encoder = fax::encoder::Encoder::new(VecWriter::new());
    for y in 0..page.height {
        let row = page.row(y);
        let pels = row
            .iter()
            .map(|&black| if black { Color::Black } else { Color::White });
        match encoder.encode_line(pels, page.width) {
            Ok(()) => {}
            Err(e) => match e {},
        }
    }
    match encoder.finish() {
        Ok(w) => w.finish(),
        Err(e) => match e {},
    }
}

/// Writes `pages` as a multi-page TIFF-F file: G4, FillOrder 1, 204×196
/// dpi, one strip per page, BitsPerSample 1, PageNumber n/total.
pub fn write_tiff_f(path: &Path, pages: &[Page]) {
    let mut out: Vec<u8> = b"II*\0\0\0\0\0".to_vec();
    let mut link_at = 4usize; // where the offset of the next IFD goes
    let total = pages.len() as u32;
    for (i, page) in pages.iter().enumerate() {
        let strip = encode_g4(page);
        let strip_at = out.len() as u32;
        out.extend_from_slice(&strip);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        // Two RATIONALs after the IFD.
        let entries: Vec<(u16, u16, u32, u32)> = vec![
            (254, 4, 1, 2),
            (256, 4, 1, page.width),
            (257, 4, 1, page.height),
            (258, 3, 1, 1),
            (259, 3, 1, 4),
            (262, 3, 1, 0),
            (266, 3, 1, 1),
            (273, 4, 1, strip_at),
            (277, 3, 1, 1),
            (278, 4, 1, page.height),
            (279, 4, 1, strip.len() as u32),
            (282, 5, 1, 0), // patched below
            (283, 5, 1, 0),
            (293, 4, 1, 0),
            (296, 3, 1, 2),
            (297, 3, 2, (i as u32) | (total << 16)),
        ];
        let ifd_at = out.len();
        let rationals_at = (ifd_at + 2 + entries.len() * 12 + 4) as u32;
        out[link_at..link_at + 4].copy_from_slice(&(ifd_at as u32).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in entries {
            let value = match tag {
                282 => rationals_at,
                283 => rationals_at + 8,
                _ => value,
            };
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            if kind == 3 && count == 1 {
                out.extend_from_slice(&(value as u16).to_le_bytes());
                out.extend_from_slice(&[0, 0]);
            } else {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        link_at = out.len();
        out.extend_from_slice(&[0; 4]);
        for (num, den) in [(204u32, 1u32), (196, 1)] {
            out.extend_from_slice(&num.to_le_bytes());
            out.extend_from_slice(&den.to_le_bytes());
        }
    }
    std::fs::write(path, out).unwrap();
}

/// A page as read back, with what the file says about it.
pub struct ReadPage {
    pub page: Page,
    /// ImageDescription (spandsp puts the remote's identity there).
    pub description: Option<String>,
}

/// Reads every page of a TIFF-F file and decodes it to pixels.
pub fn read_tiff_f(path: &Path) -> Vec<ReadPage> {
    let data = std::fs::read(path).unwrap();
    assert_eq!(
        &data[..4],
        b"II*\0",
        "{path:?}: only little-endian TIFF here"
    );
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    let mut pages = Vec::new();
    let mut ifd = u32_at(4) as usize;
    while ifd != 0 {
        let n = u16_at(ifd) as usize;
        let mut tags = std::collections::BTreeMap::<u16, Vec<u32>>::new();
        let mut description = None;
        for e in 0..n {
            let at = ifd + 2 + e * 12;
            let (tag, kind, count) = (u16_at(at), u16_at(at + 2), u32_at(at + 4) as usize);
            let size = match kind {
                1 | 2 | 7 => 1,
                3 => 2,
                4 => 4,
                _ => 8,
            };
            let base = if size * count <= 4 {
                at + 8
            } else {
                u32_at(at + 8) as usize
            };
            if kind == 2 {
                let text = &data[base..base + count];
                let text = text.split(|&b| b == 0).next().unwrap_or_default();
                if tag == 270 {
                    description = Some(String::from_utf8_lossy(text).into_owned());
                }
                continue;
            }
            let values = (0..count)
                .map(|i| match kind {
                    3 => u32::from(u16_at(base + 2 * i)),
                    4 => u32_at(base + 4 * i),
                    1 | 7 => u32::from(data[base + i]),
                    _ => u32_at(base + 8 * i),
                })
                .collect();
            tags.insert(tag, values);
        }
        let one = |tag: u16, default: Option<u32>| {
            tags.get(&tag)
                .map(|v| v[0])
                .or(default)
                .unwrap_or_else(|| panic!("{path:?}: tag {tag} missing"))
        };
        let (width, height) = (one(256, None), one(257, None));
        let compression = one(259, None);
        let fill_order = one(266, Some(1));
        let t4_options = one(292, Some(0));
        let rows_per_strip = one(278, Some(height)).min(height);
        let offsets = tags[&273].clone();
        let counts = tags[&279].clone();
        let mut pixels = Vec::with_capacity((width * height) as usize);
        for (k, (&off, &len)) in offsets.iter().zip(&counts).enumerate() {
            let rows = rows_per_strip.min(height - k as u32 * rows_per_strip);
            let mut strip = data[off as usize..(off + len) as usize].to_vec();
            if fill_order == 2 {
                strip.iter_mut().for_each(|b| *b = b.reverse_bits());
            }
            let before = pixels.len();
            let mut on_line = |transitions: &[u32]| {
                pixels.extend(fax::decoder::pels(transitions, width).map(|c| c == Color::Black));
            };
            let ok = match compression {
                4 => fax::decoder::decode_g4(strip.into_iter(), width, Some(rows), on_line),
                3 if t4_options & 1 == 0 => {
                    fax::decoder::decode_g3(strip.into_iter(), &mut on_line)
                }
                other => {
                    panic!("{path:?}: compression {other} (T4Options {t4_options}) not handled")
                }
            };
            // decode_g3 stops at RTC; the last line may be cut: compare
            // what it did decode and pad.
            assert!(
                ok.is_some() || compression == 3,
                "{path:?}: strip {k} does not decode"
            );
            pixels.resize(before + (rows * width) as usize, false);
        }
        pages.push(ReadPage {
            page: Page {
                width,
                height,
                pixels,
            },
            description,
        });
        ifd = u32_at(ifd + 2 + n * 12) as usize;
    }
    pages
}
