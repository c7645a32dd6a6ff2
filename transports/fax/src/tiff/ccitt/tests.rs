//! The coder against libtiff's: the same TIFF-F file, byte for byte.

use super::super::{encode_tiff_f_libtiff, encode_tiff_f_threads, TiffHeader};
use crate::page::{Compression, Page, Resolution, FAX_WIDTH};

/// Rows that exercise every mode of the 2-D coder and every run length:
/// runs of every length from 0 to past 2560 (wide pages), edges at both
/// ends, noise, rows the same as the one above, shifted by 1–4 pixels.
fn pages(width: u32) -> Vec<Page> {
    let mut seed: u32 = 0x9e37_79b9;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut out = Vec::new();
    for res in [Resolution::Fine, Resolution::Standard] {
        let height = 97; // not a multiple of K
        let mut p = Page::blank(width, height, res);
        for y in 0..height {
            match y % 12 {
                // All white; all black.
                0 => {}
                1 => (0..width).for_each(|x| p.set(x, y, true)),
                // One black pixel at the first, then the last column.
                2 => p.set(0, y, true),
                3 => p.set(width - 1, y, true),
                // Runs of growing length, alternating colours.
                4 => {
                    let (mut x, mut len, mut black) = (0, 1 + y / 12, false);
                    while x < width {
                        for i in x..(x + len).min(width) {
                            p.set(i, y, black);
                        }
                        x += len;
                        len = len * 3 / 2 + 1;
                        black = !black;
                    }
                }
                // Noise, sparse and dense.
                5 => (0..width).for_each(|x| p.set(x, y, rnd() % 7 == 0)),
                6 => (0..width).for_each(|x| p.set(x, y, rnd() % 2 == 0)),
                // The row above shifted by 1–4 (vertical modes), or not.
                7..=10 => {
                    let shift = (y % 12 - 6) as i64 * if y % 2 == 0 { 1 } else { -1 };
                    for x in 0..width {
                        let from = x as i64 - shift;
                        let v = from >= 0 && from < width as i64 && p.get(from as u32, y - 1);
                        p.set(x, y, v);
                    }
                }
                // Blocks: long runs, pass modes below short ones.
                _ => {
                    for x in 0..width {
                        p.set(x, y, (x / (5 + y % 40)) % 3 == 1);
                    }
                }
            }
        }
        out.push(p);
        // A full-height page with long white stretches.
        let mut q = Page::blank(width, res_height(res), res);
        for y in (0..q.height).step_by(7) {
            for x in (y % 300..width).step_by(300) {
                q.set(x, y, true);
            }
        }
        out.push(q);
        // Runs of random lengths up to 100 pixels of both colours, as in
        // text: white and black runs under and over 64 side by side.
        let mut t = Page::blank(width, 40, res);
        for y in 0..t.height {
            let (mut x, mut black) = (rnd() % 130, true);
            while x < width {
                let len = 1 + rnd() % 100;
                for i in x..(x + len).min(width) {
                    t.set(i, y, black);
                }
                x += len;
                black = !black;
            }
        }
        out.push(t);
    }
    out
}

fn res_height(res: Resolution) -> u32 {
    crate::page::Paper::A4.height_lines(res)
}

#[test]
fn same_bytes_as_libtiff_for_every_coding_and_width() {
    let header = TiffHeader {
        date_time: Some("2026:12:06 12:00:00".into()),
        description: Some("test".into()),
        ..TiffHeader::default()
    };
    for width in [FAX_WIDTH, 2048, 2432] {
        let pages = pages(width);
        for c in [Compression::Mh, Compression::Mr, Compression::Mmr] {
            let ours = encode_tiff_f_threads(&pages, c, &header, 1).unwrap();
            let theirs = encode_tiff_f_libtiff(&pages, c, &header).unwrap();
            if ours != theirs {
                let at = ours.iter().zip(&theirs).position(|(a, b)| a != b);
                panic!(
                    "{width} {c:?}: {} bytes against libtiff's {}, first difference at {at:?}",
                    ours.len(),
                    theirs.len()
                );
            }
        }
    }
}

#[test]
fn threads_do_not_change_the_bytes() {
    let pages: Vec<Page> = (0..4).flat_map(|_| pages(FAX_WIDTH)).collect();
    let header = TiffHeader {
        date_time: Some("2026:12:06 12:00:00".into()),
        ..TiffHeader::default()
    };
    for c in [Compression::Mh, Compression::Mmr] {
        let one = encode_tiff_f_threads(&pages, c, &header, 1).unwrap();
        for t in [2, 3, 8] {
            assert!(
                encode_tiff_f_threads(&pages, c, &header, t).unwrap() == one,
                "{c:?} on {t} threads"
            );
        }
    }
}
