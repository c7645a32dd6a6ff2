//! The grey device against hayro's own renderer (RGBA, then luma): the
//! same pixels for what it draws, and the page given up for what it does
//! not draw.

use super::super::pdf::{geometry, through_hayro};
use super::GreyDevice;
use hayro::hayro_interpret::{InterpreterCache, InterpreterSettings};
use hayro::hayro_syntax::Pdf;
use std::sync::Arc;

/// Fine and standard resolution: pixels per point across and down.
const SCALES: [(f32, f32); 2] = [(204.0 / 72.0, 196.0 / 72.0), (204.0 / 72.0, 98.0 / 72.0)];

/// The 10-page document of bench/fax.sh (ghostscript's pdfwrite: Times,
/// a line chart, grey bars, a grey disc per page).
const BENCH_DOC: &[u8] = include_bytes!("../../../tests/fixtures/fax/bench-doc.pdf");
/// bench/fax.sh's business letters (10 pages of Helvetica and rules).
const BENCH_LETTERS: &[u8] = include_bytes!("../../../tests/fixtures/fax/bench-letters.pdf");

#[path = "../../../tests/fixtures/fax/messages.rs"]
#[allow(dead_code)]
mod fixtures;
use fixtures::pdf_with as pdf;

/// Pages of the bench documents compared (each takes seconds unoptimised).
const PAGES: usize = 3;

/// One page drawn by the device (or what it gave up on) and by hayro.
struct Drawn {
    ours: Result<Vec<u8>, &'static str>,
    theirs: Vec<u8>,
    w: u16,
}

/// The first `PAGES` pages of `data` through the device and through
/// hayro, at `scale`.
fn both(data: &[u8], device: &mut GreyDevice, (sx, sy): (f32, f32)) -> Vec<Drawn> {
    let pdf = Pdf::new(Arc::new(data.to_vec())).expect("the test PDF parses");
    let cache = InterpreterCache::new();
    let settings = InterpreterSettings::default();
    pdf.pages()
        .iter()
        .take(PAGES)
        .map(|page| {
            let (size, transform) = geometry(page, sx, sy);
            let ours = device
                .draw(page, &cache, &settings, size, transform)
                .map(|()| device.grey().to_vec());
            Drawn {
                ours,
                theirs: through_hayro(page, sx, sy),
                w: size.0,
            }
        })
        .collect()
}

/// How many pixels differ, and whether any differs by more than `tol`.
fn diff(a: &[u8], b: &[u8], tol: u8) -> (usize, bool) {
    assert_eq!(a.len(), b.len(), "the same page size");
    let n = a.iter().zip(b).filter(|(x, y)| x != y).count();
    let far = a.iter().zip(b).any(|(x, y)| x.abs_diff(*y) > tol);
    (n, far)
}

fn inked(px: &[u8]) -> usize {
    px.iter().filter(|&&v| v != 255).count()
}

/// A page of paths, strokes and clips of every kind the device draws.
const SHAPES: &str = "\
1 0 0 rg 40 700 120 60 re f
0 0.6 0 rg 200 700 120 60 re f
0.2 0.2 0.8 rg 360 700 120 60 re f
0.5 g 40 600 m 140 600 l 90 680 l h f
0 g 300 560 m 340 680 l 380 560 l 270 640 l 410 640 l h f*
420 560 m 460 680 l 500 560 l 390 640 l 530 640 l h f
0 G 0.1 w 40 520 m 540 520 l S
0.4 w 40 510 m 540 505 l S
2 w [6 3] 0 d 40 495 m 540 480 l S [] 0 d
8 w 1 J 1 j 60 420 m 200 470 l 340 420 l S
6 w 0 J 2 j 380 420 m 450 470 l 520 420 l S
0.3 0.3 0.3 RG 3 w 40 300 100 80 re S
q 200 300 150 100 re W n 0 0 1 rg 150 250 300 200 re f Q
q 380 300 m 480 400 l 540 300 l h W n 0.2 g 360 290 200 120 re f
  400 310 m 500 310 l 450 390 l h W* n 0 g 300 280 300 200 re f Q
q 1 0 0 1 300 150 cm 0.7 0.3 0.3 0 k 0 0 m 50 80 100 0 c 50 -80 0 0 c f Q
q 0.866 0.5 -0.5 0.866 100 100 cm 0 g 0 0 120 30 re f 1 g 10 10 50 10 re f Q
BT /F1 18 Tf 40 230 Td (Outline text, Helvetica 18) Tj ET
BT /F1 9 Tf 40 210 Td (Small text at 9 points: the quick brown fox) Tj ET
BT /F1 30 Tf 1 Tr 0.8 w 40 170 Td (Stroked) Tj ET
BT /F1 30 Tf 2 Tr 0.5 w 240 170 Td (Fill+stroke) Tj ET
q 40 40 200 60 re W n BT /F1 48 Tf 20 50 Td (Clipped text) Tj ET Q
";

const HELVETICA: &str = "/Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >>";

#[test]
fn without_the_glyph_cache_every_page_is_byte_identical_to_hayros_renderer() {
    let shapes = pdf(&[(595, 842, SHAPES), (842, 595, SHAPES)], HELVETICA, &[]);
    let mut device = GreyDevice::without_glyph_cache(false);
    for (name, data) in [
        ("bench document", BENCH_DOC),
        ("bench letters", BENCH_LETTERS),
        ("shapes", shapes.as_slice()),
    ] {
        for scale in SCALES {
            for (i, Drawn { ours, theirs, .. }) in
                both(data, &mut device, scale).into_iter().enumerate()
            {
                let ours = ours.unwrap_or_else(|why| panic!("{name} page {i}: gave up on {why}"));
                assert!(inked(&theirs) > 1000, "{name} page {i}: something is drawn");
                let (n, _) = diff(&ours, &theirs, 0);
                assert_eq!(n, 0, "{name} page {i} at {scale:?}: {n} pixels differ");
            }
        }
    }
}

#[test]
fn a_cached_glyph_is_the_glyph_drawn_at_a_quarter_pixel() {
    let mut cached = GreyDevice::new();
    let mut quartered = GreyDevice::without_glyph_cache(true);
    let mut exact = GreyDevice::without_glyph_cache(false);
    let (mut moved, mut differ, mut ink) = (0, 0, 0);
    for data in [BENCH_DOC, BENCH_LETTERS] {
        for scale in SCALES {
            let a = both(data, &mut cached, scale);
            let b = both(data, &mut quartered, scale);
            let c = both(data, &mut exact, scale);
            for ((ours, quarter), exact) in a.into_iter().zip(b).zip(c) {
                let (ours, quarter) = (ours.ours.expect("drawn"), quarter.ours.expect("drawn"));
                let exact = exact.ours.expect("drawn");
                ink += inked(&quarter);
                differ += diff(&ours, &quarter, 0).0;
                moved += diff(&ours, &exact, 0).0;
            }
        }
    }
    println!(
        "{ink} inked pixels: {differ} differ from the glyphs drawn at a quarter pixel, \
         {moved} from the glyphs drawn where they fall"
    );
    // Only a coverage right at the threshold may round the other way (a
    // mask is made near the origin, the page at its place).
    assert!(differ * 10_000 <= ink, "the masks are the glyphs");
    // The cache is used (positions are rounded), and moves little.
    assert!(
        moved > 0 && moved * 100 < ink * 3,
        "{moved} of {ink} pixels moved"
    );
}

#[test]
fn glyphs_under_a_clip_are_clipped_by_it() {
    // Text cut by a clip path and by a clip rectangle.
    let page = "q 100 380 m 300 520 l 500 380 l h W n \
                BT /F1 60 Tf 60 420 Td (Clipped by a path) Tj ET Q \
                q 120 100 160 80 re W n BT /F1 60 Tf 60 120 Td (Rectangle) Tj ET Q";
    let data = pdf(&[(595, 842, page)], HELVETICA, &[]);
    let (sx, sy) = SCALES[0];
    let cached = both(&data, &mut GreyDevice::new(), (sx, sy)).remove(0);
    let exact = both(&data, &mut GreyDevice::without_glyph_cache(false), (sx, sy)).remove(0);
    let w = usize::from(cached.w);
    let (cached, exact) = (cached.ours.expect("drawn"), exact.ours.expect("drawn"));
    assert!(inked(&exact) > 2000, "the text shows");
    // Under the path every glyph is a path: the same pixels.
    let path_rows = (842.0 - 520.0) * sy..(842.0 - 380.0) * sy;
    for (y, (a, b)) in cached.chunks(w).zip(exact.chunks(w)).enumerate() {
        if path_rows.contains(&(y as f32)) {
            assert_eq!(a, b, "row {y} under the clip path");
        }
    }
    // Nothing outside the rectangle (120..280 × 100..180 pt).
    let (x0, x1) = ((120.0 * sx) as usize, (280.0 * sx).ceil() as usize);
    let (y0, y1) = (
        ((842.0 - 180.0) * sy) as usize,
        ((842.0 - 100.0) * sy).ceil() as usize,
    );
    for (i, &v) in cached.iter().enumerate() {
        let (x, y) = (i % w, i / w);
        if y > ((842.0 - 320.0) * sy) as usize && !(x0..=x1).contains(&x) | !(y0..=y1).contains(&y)
        {
            assert_eq!(v, 255, "pixel ({x}, {y}) outside the clip rectangle");
        }
    }
}

#[test]
fn a_fill_with_an_alpha_matches_within_one_unit() {
    let gs = "/ExtGState << /Half << /ca 0.5 /CA 0.4 >> >>";
    let page = "0 0 1 rg 50 50 300 300 re f /Half gs 1 0 0 rg 150 150 300 300 re f \
                0 G 12 w 60 500 m 500 700 l S";
    let data = pdf(&[(595, 842, page)], gs, &[]);
    for scale in SCALES {
        let Drawn { ours, theirs, .. } = both(&data, &mut GreyDevice::new(), scale).remove(0);
        let ours = ours.expect("a constant alpha is drawn");
        let (n, far) = diff(&ours, &theirs, 1);
        println!("alpha fills at {scale:?}: {n} pixels differ by one unit");
        assert!(!far, "no pixel differs by more than one unit");
    }
}

/// A stream object: `dict` entries and `data`, with its length.
fn stream(dict: &str, data: &str) -> String {
    format!(
        "<< {dict} /Length {} >>\nstream\n{data}\nendstream",
        data.len()
    )
}

/// A 2×2 RGB image (black, white / white, black) as an XObject.
fn image() -> String {
    stream(
        "/Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceRGB \
         /BitsPerComponent 8 /Filter /ASCIIHexDecode",
        "000000FFFFFF FFFFFF000000>",
    )
}

#[test]
fn what_the_device_does_not_draw_gives_the_page_to_hayro() {
    let form = |group: &str, data: &str| {
        stream(
            &format!("/Type /XObject /Subtype /Form /BBox [0 0 595 842] /Group << {group} >>"),
            data,
        )
    };
    let cases: Vec<(&str, &str, &str, Vec<String>)> = vec![
        (
            "an image",
            "q 200 0 0 200 100 400 cm /Im1 Do Q",
            "/XObject << /Im1 3 0 R >>",
            vec![image()],
        ),
        (
            "an image",
            "q 200 0 0 200 100 400 cm BI /W 8 /H 2 /IM true /BPC 1 /F /AHx ID F00F> EI Q",
            "",
            vec![],
        ),
        (
            "a blend mode",
            "/M gs 0 0 1 rg 100 100 300 300 re f",
            "/ExtGState << /M << /BM /Multiply >> >>",
            vec![],
        ),
        (
            "a soft mask",
            "/S gs 0 0 1 rg 100 100 300 300 re f",
            "/ExtGState << /S << /SMask << /Type /Mask /S /Luminosity /G 3 0 R >> >> >>",
            vec![form(
                "/S /Transparency /CS /DeviceGray",
                "0.5 g 0 0 595 842 re f",
            )],
        ),
        (
            "a pattern or shading",
            "q 100 100 300 300 re W n /Sh1 sh Q",
            "/Shading << /Sh1 << /ShadingType 2 /ColorSpace /DeviceRGB /Coords [100 0 400 0] \
             /Function << /FunctionType 2 /Domain [0 1] /C0 [1 0 0] /C1 [0 0 1] /N 1 >> >> >>",
            vec![],
        ),
        (
            "a pattern or shading",
            "/Pattern cs /P1 scn 100 100 300 300 re f",
            "/Pattern << /P1 3 0 R >>",
            vec![stream(
                "/PatternType 1 /PaintType 1 /TilingType 1 /BBox [0 0 20 20] /XStep 20 \
                 /YStep 20 /Resources << >>",
                "0 g 0 0 10 10 re f",
            )],
        ),
        (
            "a transparency group",
            "/H gs /F1 Do",
            "/ExtGState << /H << /ca 0.5 /CA 0.5 >> >> /XObject << /F1 3 0 R >>",
            vec![form("/S /Transparency", "0 g 100 100 300 300 re f")],
        ),
    ];
    for (want, content, resources, extra) in cases {
        // A clip pushed before the unsupported operation and popped after
        // it: the device keeps its stack balanced.
        let page =
            format!("q 20 20 555 800 re W n q 10 10 m 580 10 l 300 830 l h W n {content} Q Q");
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let data = pdf(&[(595, 842, &page)], resources, &extra);
        let Drawn { ours, theirs, .. } = both(&data, &mut GreyDevice::new(), SCALES[0]).remove(0);
        assert_eq!(ours, Err(want), "{content}");
        assert!(inked(&theirs) > 0, "{content}: hayro draws it");
    }
}

#[test]
fn a_page_hayro_draws_and_one_the_device_draws_both_come_out_whole() {
    // Through `pdf::render`: a page with an image (hayro), one without
    // (the device), each on the sheet exactly as hayro's grey would be.
    let data = pdf(
        &[
            (
                595,
                842,
                "q 200 0 0 200 100 400 cm /Im1 Do Q 0 g 50 50 100 100 re f",
            ),
            (
                842,
                595,
                "0.5 g 50 50 400 100 re f 0 g 300 400 100 100 re f",
            ),
        ],
        "/XObject << /Im1 3 0 R >>",
        &[&image()],
    );
    let opts = super::super::RenderOptions::default();
    let sheet = super::super::raster::Sheet {
        paper: opts.paper,
        res: opts.resolution,
    };
    let mut doc = super::super::doc::Doc::new(sheet, 10.0, 10, 2).expect("a document");
    super::super::pdf::render(&mut doc, &data, "test.pdf", &opts).expect("renders");
    let pages = doc.finish().expect("pages");
    assert_eq!(pages.len(), 2);
    let pdf_doc = Pdf::new(Arc::new(data)).expect("parses");
    for (page, made) in pdf_doc.pages().iter().zip(&pages) {
        let (w_pt, h_pt) = page.render_dimensions();
        let (x, y, turned) = sheet.document_scale(w_pt / 72.0, h_pt / 72.0);
        let ((w, h), _) = geometry(page, x / 72.0, y / 72.0);
        let gray = super::super::raster::Gray {
            w: u32::from(w),
            h: u32::from(h),
            px: through_hayro(page, x / 72.0, y / 72.0),
        };
        assert!(
            sheet.place_rendered(&gray, turned) == *made,
            "the same page"
        );
    }
}
