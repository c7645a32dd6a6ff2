//! Unit tests of raster.rs.

use super::*;

fn gray(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Gray {
    let px = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| f(x, y))
        .collect();
    Gray { w, h, px }
}

#[test]
fn resize_keeps_a_square_and_its_tone() {
    let g = gray(100, 100, |x, y| {
        if (26..76).contains(&x) && (26..76).contains(&y) {
            0
        } else {
            255
        }
    });
    let small = g.resize(50, 50);
    assert_eq!(small.px[0], 255);
    assert_eq!(small.px[25 * 50 + 25], 0);
    assert_eq!(small.px[13 * 50 + 12], 255);
    let black = small.px.iter().filter(|&&v| v == 0).count();
    assert_eq!(black, 25 * 25);
    let big = g.resize(200, 100);
    assert_eq!(big.px.iter().filter(|&&v| v < 128).count(), 100 * 50);
    let empty = Gray {
        w: 0,
        h: 5,
        px: Vec::new(),
    };
    assert_eq!(empty.resize(4, 2).px, vec![255; 8]);
    assert_eq!(empty.binarize().data.len(), 0);
    let mid = gray(10, 10, |_, _| 100).resize(3, 7);
    assert!(mid.px.iter().all(|&v| v == 100), "{:?}", mid.px);
}

#[test]
fn halftone_keeps_the_tone_in_fewer_runs_than_diffusion() {
    let (w, h) = (256u32, 64u32);
    let grey = Gray {
        w,
        h,
        px: vec![150; (w * h) as usize],
    };
    let (ht, fs) = (grey.halftone(), grey.dither());
    let black = |b: &Bits| -> u32 { b.data.iter().map(|x| x.count_ones()).sum() };
    let runs = |b: &Bits| -> u32 {
        let mut n = 0;
        for row in b.data.chunks(b.stride) {
            let mut last = false;
            for x in 0..w as usize {
                let px = row[x / 8] & (0x80 >> (x % 8)) != 0;
                n += u32::from(px != last);
                last = px;
            }
        }
        n
    };
    // 150 of 255 is about 41% black: both keep it within a few percent.
    let total = f64::from(w * h);
    for b in [&ht, &fs] {
        let share = f64::from(black(b)) / total;
        assert!((share - 0.41).abs() < 0.05, "{share}");
    }
    assert!(
        runs(&ht) * 3 < runs(&fs) * 2,
        "{} vs {}",
        runs(&ht),
        runs(&fs)
    );
    // White stays white, black stays black.
    let white = Gray {
        w: 8,
        h: 8,
        px: vec![255; 64],
    };
    assert_eq!(black(&white.halftone()), 0);
    let dark = Gray {
        w: 8,
        h: 8,
        px: vec![0; 64],
    };
    assert_eq!(black(&dark.halftone()), 64);
}

#[test]
fn dither_keeps_the_mean_and_leaves_pure_pixels_alone() {
    let g = gray(200, 200, |_, _| 191); // 25 % black
    let b = g.dither();
    let black = b.data.iter().map(|v| v.count_ones()).sum::<u32>() as f64;
    let share = black / 40_000.0;
    assert!((0.22..0.28).contains(&share), "{share}");
    assert!(!g.is_line_art());
    let art = gray(64, 64, |x, _| if x < 32 { 0 } else { 255 });
    assert!(art.is_line_art());
    let d = art.dither();
    assert_eq!(d, art.threshold(128));
    assert_eq!(d.row(5)[..4], [0xff, 0xff, 0xff, 0xff]);
    assert_eq!(d.row(5)[4..], [0, 0, 0, 0]);
}

#[test]
fn rotate_and_blit() {
    let g = gray(3, 2, |x, y| (y * 3 + x) as u8);
    let r = g.rotate_ccw();
    assert_eq!((r.w, r.h), (2, 3));
    // Top row of the original (0 1 2) is now the left column, bottom up.
    assert_eq!(r.px, vec![2, 5, 1, 4, 0, 3]);

    let mut page = Page::blank(FAX_WIDTH, 10, Resolution::Fine);
    let src = [0xffu8, 0x80];
    blit(&mut page, &src, 2, 9, 1, 5, 2);
    assert!((5..14).all(|x| page.get(x, 2)));
    assert!(!page.get(4, 2) && !page.get(14, 2));
    assert_eq!(page.black_pixels(), 9);
    blit(&mut page, &src, 2, 9, 1, -4, 3); // clipped left: 5 pixels
    blit(&mut page, &src, 2, 9, 1, 1724, 4); // clipped right: 4 pixels
    blit(&mut page, &src, 2, 9, 1, 0, 10); // below: nothing
    assert_eq!(page.black_pixels(), 9 + 5 + 4);
    assert!(page.get(0, 3) && page.get(4, 3) && !page.get(5, 3));
}

#[test]
fn document_pages_fit_the_sheet() {
    let sheet = Sheet {
        paper: Paper::A4,
        res: Resolution::Fine,
    };
    // A4 portrait renders at true size.
    let (x, y, rot) = sheet.document_scale(8.27, 11.69);
    assert_eq!((x, y, rot), (204.0, 196.0, false));
    // Landscape A4 is turned.
    let (_, _, rot) = sheet.document_scale(11.69, 8.27);
    assert!(rot);
    // A3 is shrunk to fit.
    let (x, _, _) = sheet.document_scale(11.69, 16.54);
    assert!(x < 150.0);
    // A 98 lpi fax page into fine: rows doubled, same pixels.
    let mut b = Bits::new(FAX_WIDTH, 100);
    b.data[0] = 0x80;
    b.data[99 * b.stride] = 0x01;
    let page = sheet.document_page(DocImage::Bits(b), 1728.0 / 204.0, 100.0 / 98.0);
    assert_eq!((page.width, page.height), (FAX_WIDTH, 2292));
    assert!(page.get(0, 0) && page.get(0, 1) && !page.get(0, 2));
    assert!(page.get(7, 198) && page.get(7, 199) && !page.get(7, 200));
    assert_eq!(page.black_pixels(), 4);
}

#[test]
fn narrow_blit_is_the_general_blit() {
    // Glyph-sized images with stray bits past their width, at every
    // offset within a byte, near both edges and clipped at top and bottom.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for w in [1u32, 7, 8, 9, 17, 24, 31, 49, 56] {
        let stride = w.div_ceil(8) as usize;
        let h = 9u32;
        let src: Vec<u8> = (0..stride * h as usize).map(|_| next() as u8).collect();
        for x in (0..40).chain(1680..=(1728 - w as i64)) {
            for y in [-4i64, 0, 5, 96] {
                let mut a = Page::blank(FAX_WIDTH, 100, Resolution::Fine);
                let mut b = a.clone();
                blit(&mut a, &src, stride, w, h, x, y);
                blit_any(&mut b, &src, stride, w, h, x, y);
                assert!(a == b, "w {w} x {x} y {y}");
                let words: Vec<u64> = src
                    .chunks(stride)
                    .map(|r| {
                        let mut b = [0u8; 8];
                        b[..stride].copy_from_slice(r);
                        u64::from_be_bytes(b)
                    })
                    .collect();
                let mut c = Page::blank(FAX_WIDTH, 100, Resolution::Fine);
                if !blit_words(&mut c, &words, stride, x, y) {
                    blit(&mut c, &src, stride, w, h, x, y);
                }
                assert!(a == c, "words: w {w} x {x} y {y}");
            }
        }
    }
}

#[test]
fn threshold_and_halftone_skip_white_and_black_without_changing_a_bit() {
    use rand::{Rng, SeedableRng};
    // Pages of long white and black runs with grey between them, widths
    // that are and are not a whole number of bytes.
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    for w in [1u32, 7, 8, 61, 64, 1687, 1728] {
        let h = 9;
        let mut px = Vec::with_capacity((w * h) as usize);
        while px.len() < (w * h) as usize {
            let v = match rng.gen_range(0..4) {
                0 => 255,
                1 => 0,
                _ => rng.gen(),
            };
            let run = rng.gen_range(1..40);
            px.extend(std::iter::repeat_n(v, run));
        }
        px.truncate((w * h) as usize);
        let g = Gray { w, h, px };
        // Pixel by pixel, as the screen and the threshold are defined.
        const SCREEN: [[u16; 4]; 4] =
            [[12, 5, 6, 13], [4, 0, 1, 7], [11, 3, 2, 8], [15, 10, 9, 14]];
        let reference = |black: &dyn Fn(u32, u32, u8) -> bool| {
            let mut out = Bits::new(w, h);
            for y in 0..h {
                for x in 0..w {
                    if black(x, y, g.px[(y * w + x) as usize]) {
                        out.data[y as usize * out.stride + x as usize / 8] |= 0x80 >> (x % 8);
                    }
                }
            }
            out
        };
        let screen = |x: u32, y: u32, v: u8| {
            u16::from(v) < (16 - SCREEN[y as usize % 4][x as usize % 4]) * 16 - 8
        };
        assert_eq!(g.halftone(), reference(&screen), "halftone, {w} wide");
        for t in [0u8, 1, 128, 255] {
            let want = reference(&|_, _, v| v < t);
            assert_eq!(g.threshold(t), want, "threshold {t}, {w} wide");
        }
    }
}
