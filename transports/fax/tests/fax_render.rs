//! Rendering email to fax pages, end to end: MIME messages built here
//! (text, HTML, a TIFF made by our writer, a PNG from the `image` crate, a
//! hand-written PDF, PostScript through ghostscript), rendered, written as
//! TIFF Class F with each compression, checked with libtiff's `tiffinfo`
//! and read back pixel for pixel.

use faxmta_fax::page::{Compression, FAX_WIDTH};
use faxmta_fax::render::{
    render, CoverInfo, Paper, PartOutcome, RenderError, Resolution, Unsupported,
};
use faxmta_fax::tiff::{decode_tiff, encode_tiff_f, write_tiff_f, ReadLimits, TiffHeader};
use std::process::Command;

#[path = "fixtures/fax/messages.rs"]
mod fixtures;
use fixtures::{message, pdf, png, Part, PDF_PAGE};
#[path = "fax_render/support.rs"]
mod support;
use support::*;

#[test]
fn a_mixed_message_becomes_tiff_f_that_libtiff_accepts() {
    let tiff = encode_tiff_f(
        &[tiff_page(300), tiff_page(200)],
        Compression::Mmr,
        &TiffHeader::default(),
    )
    .unwrap();
    let msg = message(
        "Documents",
        &[
            Part(
                "text/plain; charset=utf-8",
                None,
                "Hello Bob,\n\n\there are the papers — über alles.\n".into(),
            ),
            Part("image/tiff", Some("scan.tif"), tiff),
            Part(
                "image/png",
                Some("logo.png"),
                png(300, 200, |x, _| if x < 150 { 0 } else { 255 }),
            ),
            Part(
                "application/pdf",
                Some("letter.pdf"),
                pdf(&[(595, 842, PDF_PAGE)]),
            ),
        ],
    );
    let r = render(&msg, &with_cover(opts(Resolution::Fine, Paper::A4))).unwrap();
    assert!(r.cover.is_some());
    assert_eq!(r.pages.len(), 1 + 2 + 1 + 1, "{:#?}", r.parts);
    assert_eq!(r.page_count(), 6);
    assert_sizes(&r, 2292);
    let outcomes: Vec<_> = r
        .parts
        .iter()
        .map(|p| (p.part.as_str(), p.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                "1",
                PartOutcome::Rendered {
                    first_page: 1,
                    pages: 1
                }
            ),
            (
                "2",
                PartOutcome::Rendered {
                    first_page: 2,
                    pages: 2
                }
            ),
            (
                "3",
                PartOutcome::Rendered {
                    first_page: 4,
                    pages: 1
                }
            ),
            (
                "4",
                PartOutcome::Rendered {
                    first_page: 5,
                    pages: 1
                }
            ),
        ]
    );
    for p in r.all_pages() {
        assert!(p.black_pixels() > 500, "a blank page");
    }
    // The 98 lpi TIFF on a fine page: rows doubled, width kept.
    let scan = &r.pages[1];
    assert_eq!(bbox(scan), Some((100, 28, 1598, 580)));

    let dir = tempfile::tempdir().unwrap();
    let pages = r.into_pages();
    for c in [Compression::Mh, Compression::Mr, Compression::Mmr] {
        let path = dir.path().join(format!("{c:?}.tif"));
        write_tiff_f(&path, &pages, c, &TiffHeader::default()).unwrap();
        let out = Command::new("tiffinfo")
            .arg("-D")
            .arg(&path)
            .output()
            .expect("tiffinfo");
        let (info, err) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success() && err.is_empty(), "{c:?}: {err}");
        assert_eq!(
            info.matches("Image Width: 1728 Image Length: 2292").count(),
            6,
            "{info}"
        );
        assert_eq!(info.matches("Resolution: 204, 196 pixels/inch").count(), 6);
        assert!(info.contains("Page Number: 5-6") && info.contains("Software: faxmta"));
        let back = decode_tiff(&std::fs::read(&path).unwrap(), &ReadLimits::default()).unwrap();
        assert_eq!(back.len(), 6);
        for (a, b) in pages.iter().zip(&back) {
            assert!(b.to_fax_page().as_ref() == Some(a), "{c:?}: pixels changed");
        }
    }
}

#[test]
fn page_lengths_for_each_paper_and_resolution() {
    let msg = message("x", &[Part("text/plain", None, "one line".into())]);
    for (res, paper, lines) in [
        (Resolution::Fine, Paper::A4, 2292),
        (Resolution::Standard, Paper::A4, 1146),
        (Resolution::Fine, Paper::Letter, 2156),
        (Resolution::Standard, Paper::Letter, 1078),
    ] {
        let r = render(&msg, &with_cover(opts(res, paper))).unwrap();
        assert_eq!(r.page_count(), 2);
        assert_sizes(&r, lines);
        assert!(r.pages.iter().all(|p| p.resolution == res));
    }
}

#[test]
fn a_black_square_png_stays_a_black_square() {
    let sq = png(100, 100, |_, _| 0);
    let msg = message("sq", &[Part("image/png", Some("sq.png"), sq)]);
    for (res, h) in [(Resolution::Fine, 384), (Resolution::Standard, 192)] {
        let r = render(&msg, &opts(res, Paper::A4)).unwrap();
        assert_eq!(r.pages.len(), 1, "no text, no header page");
        let p = &r.pages[0];
        // Enlarged 4× (the cap), 400 px across; rows at 196 or 98 lpi.
        let top = (0.4 * res.y_dpi() as f32).round() as u32;
        assert_eq!(bbox(p), Some((664, top, 1064, top + h)), "{res:?}");
        assert_eq!(p.black_pixels(), 400 * u64::from(h));
    }
    // A big picture is shrunk to the printable width.
    let big = png(3000, 1000, |x, y| {
        if (1000..2000).contains(&x) && y < 500 {
            0
        } else {
            255
        }
    });
    let r = render(
        &message("b", &[Part("image/png", None, big)]),
        &opts(Resolution::Fine, Paper::A4),
    )
    .unwrap();
    let (x0, _, x1, _) = bbox(&r.pages[0]).unwrap();
    let width = 1728.0 - 2.0 * 0.4 * 204.0;
    assert!(
        (i64::from(x1 - x0) - (width / 3.0) as i64).abs() <= 2,
        "{x0}..{x1}"
    );
}

#[test]
fn photos_are_dithered_not_thresholded() {
    // A horizontal grey ramp from black to white.
    let ramp = png(256, 64, |x, _| x as u8);
    let r = render(
        &message("p", &[Part("image/png", None, ramp)]),
        &opts(Resolution::Fine, Paper::A4),
    )
    .unwrap();
    let p = &r.pages[0];
    let (x0, y0, x1, y1) = bbox(p).unwrap();
    let w = x1 - x0;
    // Black share falls from left to right in steps, not at one edge.
    let share = |a: u32, b: u32| {
        ink(p, x0 + a * w / 8, y0, x0 + b * w / 8, y1) as f64 / ((b - a) * w / 8 * (y1 - y0)) as f64
    };
    let shares: Vec<f64> = (0..8).map(|i| share(i, i + 1)).collect();
    for i in 1..8 {
        assert!(shares[i] < shares[i - 1], "{shares:?}");
    }
    assert!(shares[2] > 0.55 && shares[2] < 0.8, "{shares:?}");
    assert!(shares[5] > 0.2 && shares[5] < 0.45, "{shares:?}");
}

#[test]
fn text_lines_have_ink_and_headers_come_first_without_a_cover() {
    let body: String = (0..10)
        .map(|i| format!("Line {i}: the quick brown fox jumps over the lazy dog\n"))
        .collect();
    let msg = message("Ten lines", &[Part("text/plain", None, body.into_bytes())]);
    let r = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap();
    assert!(r.cover.is_none());
    assert_eq!(r.pages.len(), 1);
    let p = &r.pages[0];
    // Bands of rows with ink: From, To, Date, Subject, then 10 lines.
    let mut bands = Vec::new();
    let mut start = None;
    for y in 0..p.height {
        let inked = p.row(y).iter().any(|&b| b != 0);
        match (inked, start) {
            (true, None) => start = Some(y),
            (false, Some(s)) => {
                bands.push((s, y));
                start = None;
            }
            _ => {}
        }
    }
    assert_eq!(bands.len(), 4 + 10, "{bands:?}");
    for &(a, b) in &bands[4..] {
        let black = ink(p, 0, a, FAX_WIDTH, b);
        // ~52 characters of 10 pt text.
        assert!((3_000..20_000).contains(&black), "{black} in rows {a}..{b}");
        assert!((18..40).contains(&(b - a)), "line of {} rows", b - a);
    }
    // Lines start at the left margin (0.5 in = 102 px).
    let (x0, y0, _, _) = bbox(p).unwrap();
    assert!((100..=106).contains(&x0), "{x0}");
    assert!((95..=110).contains(&y0), "{y0}");
}

#[test]
fn html_is_text_and_alternative_prefers_plain() {
    let alt = "--ALT\r\nContent-Type: text/plain\r\n\r\nPlain version\r\n\
               --ALT\r\nContent-Type: text/html\r\n\r\n<p>HTML <b>version</b></p>\r\n--ALT--\r\n";
    let msg = message(
        "alt",
        &[Part(
            "multipart/alternative; boundary=\"ALT\"",
            None,
            alt.into(),
        )],
    );
    let r = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap();
    let got: Vec<_> = r
        .parts
        .iter()
        .map(|p| {
            (
                p.part.as_str(),
                p.content_type.as_str(),
                matches!(p.outcome, PartOutcome::Rendered { .. }),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("1.1", "text/plain", true), ("1.2", "text/html", false)]
    );

    let html = "<html><body><h1>Invoice</h1><p>Total: <b>42 EUR</b></p>\
                <table><tr><td>a</td><td>b</td></tr></table></body></html>";
    let msg = message("h", &[Part("text/html; charset=utf-8", None, html.into())]);
    let r = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap();
    assert_eq!(r.pages.len(), 1);
    assert!(r.pages[0].black_pixels() > 5_000);
}

#[test]
fn pdf_pages_at_true_size_and_landscape_turned() {
    let doc = pdf(&[
        (595, 842, PDF_PAGE),
        (842, 595, "0 0 0 rg 0 495 100 100 re f"),
    ]);
    let msg = message("pdf", &[Part("application/pdf", Some("two.pdf"), doc)]);
    let r = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap();
    assert_eq!(r.pages.len(), 2);
    let p = &r.pages[0];
    // The rectangle: x 72..272 pt, y 600..700 pt from the bottom of 842.
    let off = (1728 - (595.0f32 * 204.0 / 72.0) as u32) / 2;
    let (x0, x1) = (off + 204, off + 204 + 567);
    let (y0, y1) = ((142.0 * 196.0 / 72.0) as u32, (242.0 * 196.0 / 72.0) as u32);
    let inside = ink(p, x0 + 3, y0 + 3, x1 - 3, y1 - 3);
    assert_eq!(
        inside,
        u64::from((x1 - x0 - 6) * (y1 - y0 - 6)),
        "rectangle solid"
    );
    assert_eq!(ink(p, 0, 0, FAX_WIDTH, y0 - 3), 0, "nothing above it");
    // The text below it has ink.
    assert!(ink(p, x0, y1 + 200, x1 + 300, y1 + 300) > 1_000);
    // Landscape: the square at its top left lies at the bottom left once
    // the page is turned counter-clockwise.
    let q = &r.pages[1];
    let (bx0, by0, bx1, by1) = bbox(q).unwrap();
    assert!(bx0 < 30 && bx1 > 240 && bx1 < 320, "{:?}", bbox(q));
    assert!(by1 > 2240 && by0 > 1950, "{:?}", bbox(q));
}

#[test]
fn broken_and_encrypted_pdfs_name_the_part() {
    let broken = b"%PDF-1.4\nthis is not really a PDF\n".to_vec();
    let msg = message("b", &[Part("application/pdf", Some("broken.pdf"), broken)]);
    let e = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("broken.pdf") && text.contains("not a valid PDF"),
        "{text}"
    );

    // Standard security handler with a user password we do not know.
    let mut enc = pdf(&[(595, 842, PDF_PAGE)]);
    let rfind = |hay: &[u8], needle: &[u8]| {
        hay.windows(needle.len())
            .rposition(|w| w == needle)
            .unwrap()
    };
    let tail = rfind(&enc, b"trailer");
    enc.truncate(tail);
    let o = "<".to_string() + &"41".repeat(32) + ">";
    let xref_at = rfind(&enc, b"xref");
    enc.extend_from_slice(
        format!(
            "trailer\n<< /Size 6 /Root 1 0 R /ID [<0123456789abcdef0123456789abcdef><0123456789abcdef0123456789abcdef>] \
             /Encrypt << /Filter /Standard /V 1 /R 2 /O {o} /U {o} /P -4 >> >>\nstartxref\n{xref_at}\n%%EOF\n"
        )
        .as_bytes(),
    );
    let msg = message("e", &[Part("application/pdf", Some("secret.pdf"), enc)]);
    let e = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap_err();
    assert!(
        e.to_string().contains("secret.pdf") && e.to_string().contains("encrypted"),
        "{e}"
    );
}

const PS: &str = "%!PS-Adobe-3.0\n/Helvetica findfont 24 scalefont setfont\n\
                  72 600 moveto (Page one) show\n0 0 moveto 100 0 rlineto 0 100 rlineto -100 0 rlineto closepath fill\nshowpage\n\
                  72 600 moveto (Page two) show showpage\n";

#[test]
fn postscript_through_ghostscript() {
    let msg = message(
        "ps",
        &[Part("application/postscript", Some("doc.ps"), PS.into())],
    );
    let r = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap();
    assert_eq!(r.pages.len(), 2);
    assert_sizes(&r, 2292);
    // The 100 pt square at the bottom left of page one.
    let p = &r.pages[0];
    let side = (100.0 * 196.0 / 72.0) as u32;
    let inner = ink(p, 40, 2292 - side + 10, 40 + 250, 2292 - 10);
    assert_eq!(inner, 250 * u64::from(side - 20), "square solid");
    // Centred across like PDF pages: A4 is 1686 px wide, 21 px each side.
    assert!(matches!(bbox(p), Some((20..=21, _, _, _))), "{:?}", bbox(p));
    assert!(r.pages[1].black_pixels() > 1_000);

    // The page cap holds for ghostscript's output too.
    let mut capped = opts(Resolution::Fine, Paper::A4);
    capped.max_pages = 1;
    assert_eq!(
        render(&msg, &capped).unwrap_err(),
        RenderError::TooManyPages { limit: 1 }
    );

    // Without ghostscript: a clear error, or a note when skipping.
    let mut o = opts(Resolution::Fine, Paper::A4);
    o.ghostscript = Some("/nonexistent/bin/gs".into());
    let e = render(&msg, &o).unwrap_err();
    assert!(matches!(e, RenderError::NeedsGhostscript { .. }));
    assert_eq!(
        e.to_string(),
        "part 1 \"doc.ps\" (application/postscript): PostScript needs ghostscript (gs), which is not installed"
    );
    o.unsupported = Unsupported::Skip;
    o.cover = Some(CoverInfo::default());
    let r = render(&msg, &o).unwrap();
    assert_eq!(r.page_count(), 1);
    assert!(matches!(&r.parts[0].outcome, PartOutcome::Skipped(w) if w.contains("ghostscript")));
}

#[test]
fn unsupported_parts_fail_or_are_skipped() {
    let msg = message(
        "w",
        &[
            Part("text/plain", None, "See the attachment.".into()),
            Part(
                "application/msword",
                Some("report.doc"),
                vec![0xd0, 0xcf, 0x11, 0xe0, 1, 2, 3],
            ),
            Part("application/pdf", None, pdf(&[(595, 842, PDF_PAGE)])),
        ],
    );
    let e = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap_err();
    assert_eq!(
        e,
        RenderError::Unsupported {
            part: "part 2 \"report.doc\" (application/msword)".into(),
            content_type: "application/msword".into()
        }
    );
    assert!(e.to_string().contains("report.doc"));
    let mut o = opts(Resolution::Fine, Paper::A4);
    o.unsupported = Unsupported::Skip;
    let r = render(&msg, &o).unwrap();
    assert_eq!(r.pages.len(), 2);
    assert!(matches!(r.parts[1].outcome, PartOutcome::Skipped(_)));
    assert_eq!(r.parts[1].to_string(), "part 2 \"report.doc\" (application/msword): left out: this type of document cannot be sent as a fax");
    assert_eq!(r.parts[2].to_string(), "part 3 (application/pdf): page 2");
}

#[test]
fn empty_messages_and_limits() {
    let empty = b"From: a@example.com\r\nSubject: nothing\r\n\r\n   \r\n";
    let e = render(empty, &opts(Resolution::Fine, Paper::A4)).unwrap_err();
    assert_eq!(e, RenderError::Empty);
    let r = render(empty, &with_cover(opts(Resolution::Fine, Paper::A4))).unwrap();
    assert_eq!((r.page_count(), r.pages.len()), (1, 0));
    assert!(r.cover.as_ref().unwrap().black_pixels() > 10_000);
    assert_eq!(
        render(b"", &opts(Resolution::Fine, Paper::A4)).unwrap_err(),
        RenderError::Empty
    );

    let long = message(
        "l",
        &[Part("text/plain", None, "line\n".repeat(2000).into_bytes())],
    );
    let mut o = opts(Resolution::Standard, Paper::A4);
    o.max_pages = 10;
    assert_eq!(
        render(&long, &o).unwrap_err(),
        RenderError::TooManyPages { limit: 10 }
    );

    let big = message(
        "p",
        &[Part(
            "image/png",
            Some("big.png"),
            png(2000, 2000, |_, _| 255),
        )],
    );
    o.max_image_pixels = 1_000_000;
    let e = render(&big, &o).unwrap_err();
    assert!(
        matches!(
            e,
            RenderError::ImageTooLarge {
                width: 2000,
                height: 2000,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("big.png"));
}

#[test]
fn attached_messages_charsets_and_sniffed_octet_streams() {
    let inner = "From: Carol <carol@example.org>\r\nSubject: Forwarded\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
                 Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe aus K=F6ln\r\n";
    let msg = message(
        "fw",
        &[
            Part("message/rfc822", None, inner.into()),
            Part(
                "application/octet-stream",
                Some("x.bin"),
                pdf(&[(595, 842, PDF_PAGE)]),
            ),
        ],
    );
    let r = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap();
    assert_eq!(r.pages.len(), 2, "{:#?}", r.parts);
    let kinds: Vec<_> = r.parts.iter().map(|p| p.part.as_str()).collect();
    assert_eq!(kinds, ["1", "1.1", "2"]);
    assert!(r
        .parts
        .iter()
        .all(|p| matches!(p.outcome, PartOutcome::Rendered { .. })));
}

#[test]
fn a_black_square_jpeg_stays_a_black_square() {
    let img = image::GrayImage::from_fn(100, 100, |_, _| image::Luma([0u8]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let msg = message(
        "sq",
        &[Part("image/jpeg", Some("sq.jpg"), jpeg.into_inner())],
    );
    let r = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap();
    assert_eq!(r.pages.len(), 1);
    let p = &r.pages[0];
    // As the PNG square: enlarged 4×, 400 px across, 384 rows (JPEG's
    // edges may blur by a pixel).
    let top = (0.4f32 * 196.0).round() as u32;
    let (x0, y0, x1, y1) = bbox(p).unwrap();
    for (got, want) in [(x0, 664), (y0, top), (x1, 1064), (y1, top + 384)] {
        assert!(got.abs_diff(want) <= 2, "{:?}", (x0, y0, x1, y1));
    }
    assert!(p.black_pixels() > 400 * 380);
}

#[test]
fn a_300_dpi_grey_scan_is_resampled_to_fax_geometry() {
    // A grey 8-bit TIFF at 300 dpi, 850 × 1100 (a 2.83 × 3.67 in scan)
    // with a black 1-inch square at (150, 150) and a light grey field.
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (850u32, 1100u32);
    let mut pgm = format!("P5\n{w} {h}\n255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            let inside = (150..450).contains(&x) && (150..450).contains(&y);
            pgm.push(if inside {
                0
            } else if y > 800 {
                230
            } else {
                255
            });
        }
    }
    let pgm_path = dir.path().join("scan.pgm");
    let tif_path = dir.path().join("scan.tif");
    std::fs::write(&pgm_path, &pgm).unwrap();
    let status = Command::new("ppm2tiff")
        .args(["-R", "300"])
        .arg(&pgm_path)
        .arg(&tif_path)
        .status()
        .expect("ppm2tiff (libtiff-tools) is installed by scripts/test");
    assert!(status.success());
    let msg = message(
        "scan",
        &[Part(
            "image/tiff",
            Some("scan.tif"),
            std::fs::read(&tif_path).unwrap(),
        )],
    );
    let r = render(&msg, &opts(Resolution::Fine, Paper::A4)).unwrap();
    assert_eq!(r.pages.len(), 1);
    let p = &r.pages[0];
    assert_eq!(p.width, FAX_WIDTH);
    // The 1-inch square: 204 px across, 196 rows down (±2), still black.
    let rows: Vec<u32> = (0..p.height)
        .filter(|&y| (0..p.width).filter(|&x| p.get(x, y)).count() > 150)
        .collect();
    let (top, bottom) = (rows[0], rows[rows.len() - 1] + 1);
    assert!((bottom - top).abs_diff(196) <= 2, "rows {top}..{bottom}");
    let row = top + 50;
    let cols: Vec<u32> = (0..p.width).filter(|&x| p.get(x, row)).collect();
    let across = cols[cols.len() - 1] + 1 - cols[0];
    assert!(across.abs_diff(204) <= 2, "{across} px across");
    assert_eq!(
        ink(p, cols[0], row, cols[0] + across, row + 1),
        u64::from(across)
    );
}

/// Pages made on several threads (text pages drawn, PDF pages rasterised,
/// every page coded side by side) are the pages made on one, in the same
/// order: the same TIFF, byte for byte. Every page differs from the
/// others, so pages out of order would change the file.
#[test]
fn pages_made_on_several_threads_are_the_pages_made_on_one() {
    let text = |from: usize| -> Vec<u8> {
        (from..from + 200)
            .map(|i| format!("line {i}: {}\r\n", "x".repeat(i % 70)))
            .collect::<String>()
            .into_bytes()
    };
    // Page k of the PDF: a bar k × 40 points wide and its number.
    let contents: Vec<String> = (1..=12)
        .map(|k| {
            format!(
                "0 0 0 rg 72 600 {} 40 re f\nBT /F1 24 Tf 72 500 Td (Page {k}) Tj ET",
                40 * k
            )
        })
        .collect();
    let doc = pdf(&contents
        .iter()
        .map(|c| (595, 842, c.as_str()))
        .collect::<Vec<_>>());
    let msg = message(
        "threads",
        &[
            Part("text/plain", None, text(0)),
            Part("application/pdf", Some("twelve.pdf"), doc),
            Part("text/plain", Some("more.txt"), text(1000)),
        ],
    );
    let header = TiffHeader {
        date_time: Some("2026:12:06 12:00:00".into()),
        ..TiffHeader::default()
    };
    for res in [Resolution::Fine, Resolution::Standard] {
        let made = |threads: usize| {
            let o = faxmta_fax::render::RenderOptions {
                threads,
                ..opts(res, Paper::A4)
            };
            render(&msg, &o).unwrap()
        };
        let r = made(1);
        let at = r
            .parts
            .iter()
            .find_map(|n| match n.outcome {
                PartOutcome::Rendered { first_page, pages }
                    if n.content_type == "application/pdf" =>
                {
                    Some((first_page - 1, pages))
                }
                _ => None,
            })
            .expect("the PDF was rendered");
        assert_eq!(at.1, 12);
        let one = r.into_pages();
        assert!(
            one.len() >= 18 && at.0 >= 3,
            "{res:?}: {} pages, PDF at {at:?}",
            one.len()
        );
        for (i, pair) in one.windows(2).enumerate() {
            assert!(
                pair[0] != pair[1],
                "{res:?}: pages {} and {} are the same",
                i + 1,
                i + 2
            );
        }
        // The PDF's bars grow page by page: its pages are in order.
        let bars: Vec<u32> = one[at.0..at.0 + 12]
            .iter()
            .map(|p| bbox(p).map_or(0, |b| b.2))
            .collect();
        assert!(bars.windows(2).all(|w| w[0] < w[1]), "{res:?}: {bars:?}");
        let tiff_one =
            faxmta_fax::tiff::encode_tiff_f_threads(&one, Compression::Mh, &header, 1).unwrap();
        for threads in [2, 3, 8] {
            let many = made(threads).into_pages();
            assert!(many == one, "{res:?}: {threads} threads made other pages");
            let tiff_many =
                faxmta_fax::tiff::encode_tiff_f_threads(&many, Compression::Mh, &header, threads)
                    .unwrap();
            assert!(
                tiff_many == tiff_one,
                "{res:?}: {threads} threads wrote another TIFF"
            );
        }
    }
}
