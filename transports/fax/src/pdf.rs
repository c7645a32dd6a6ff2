//! Fax pages as a PDF file, written by hand: one PDF page per fax page,
//! each an image XObject of the page compressed with CCITT G4
//! (`/CCITTFaxDecode`, `/K -1`, encoded here with the `fax` crate) and
//! drawn over the whole page. The page size comes from the resolution, so
//! an A4 fax (1728 dots at 204 dpi, 196 or 98 lines per inch) prints as
//! A4 (1728 / 204 in = 8.47 in wide).

use crate::tiff::{Pixels, ReadPage};
use fax::encoder::Encoder;
use fax::{Color, VecWriter};
use std::fmt::Write as _;

/// The resolution assumed when a page does not give one (fine fax).
const DEFAULT_DPI: (f32, f32) = (204.0, 196.0);

/// Errors making a PDF.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("no pages to put in the PDF")]
    NoPages,
    #[error("page {page}: bad size {width}×{height}")]
    BadPage {
        page: usize,
        width: u32,
        height: u32,
    },
}

/// One page as rows of bits, 1 = black, packed MSB first.
struct Bits<'a> {
    width: u32,
    height: u32,
    row_bytes: usize,
    data: std::borrow::Cow<'a, [u8]>,
}

fn bits(page: &ReadPage) -> Bits<'_> {
    let row_bytes = page.width.div_ceil(8) as usize;
    let data = match &page.pixels {
        Pixels::Bilevel(b) => std::borrow::Cow::Borrowed(b.as_slice()),
        Pixels::Gray(g) => {
            let mut out = vec![0u8; row_bytes * page.height as usize];
            for (i, &v) in g.iter().enumerate() {
                let (y, x) = (i / page.width as usize, i % page.width as usize);
                if v < 128 {
                    if let Some(b) = out.get_mut(y * row_bytes + x / 8) {
                        *b |= 0x80 >> (x % 8);
                    }
                }
            }
            std::borrow::Cow::Owned(out)
        }
    };
    Bits {
        width: page.width,
        height: page.height,
        row_bytes,
        data,
    }
}

/// G4 (T.6) of the page, as `/CCITTFaxDecode /K -1` reads it.
fn encode_g4(b: &Bits<'_>) -> Vec<u8> {
    let mut encoder = Encoder::new(VecWriter::new());
    for y in 0..b.height as usize {
        let row = b
            .data
            .get(y * b.row_bytes..(y + 1) * b.row_bytes)
            .unwrap_or(&[]);
        let pels = (0..b.width as usize).map(|x| {
            let black = row
                .get(x / 8)
                .is_some_and(|byte| byte & (0x80 >> (x % 8)) != 0);
            if black {
                Color::Black
            } else {
                Color::White
            }
        });
        match encoder.encode_line(pels, b.width) {
            Ok(()) => {}
            Err(e) => match e {},
        }
    }
    match encoder.finish() {
        Ok(w) => w.finish(),
        Err(e) => match e {},
    }
}

/// The PDF of `pages` (as read from a received TIFF).
pub fn pages_to_pdf(pages: &[ReadPage]) -> Result<Vec<u8>, PdfError> {
    if pages.is_empty() {
        return Err(PdfError::NoPages);
    }
    // Objects: 1 catalog, 2 page tree, then per page: page, content, image.
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let kids: String = (0..pages.len())
        .map(|i| format!("{} 0 R", 3 + 3 * i))
        .collect::<Vec<_>>()
        .join(" ");
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(format!("<< /Type /Pages /Kids [{kids}] /Count {} >>", pages.len()).into_bytes());
    for (i, page) in pages.iter().enumerate() {
        if page.width == 0 || page.height == 0 || page.width > 65_535 || page.height > 65_535 {
            return Err(PdfError::BadPage {
                page: i + 1,
                width: page.width,
                height: page.height,
            });
        }
        let sane = |v: Option<f32>, d: f32| v.filter(|v| (20.0..=2400.0).contains(v)).unwrap_or(d);
        let x_dpi = sane(page.x_dpi, DEFAULT_DPI.0);
        let y_dpi = sane(page.y_dpi, DEFAULT_DPI.1);
        let w_pt = page.width as f32 * 72.0 / x_dpi;
        let h_pt = page.height as f32 * 72.0 / y_dpi;
        let (page_id, content_id, image_id) = (3 + 3 * i, 4 + 3 * i, 5 + 3 * i);
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.2} {h_pt:.2}] \
                 /Resources << /XObject << /Im0 {image_id} 0 R >> >> /Contents {content_id} 0 R >>"
            )
            .into_bytes(),
        );
        debug_assert_eq!(objects.len(), page_id);
        let content = format!("q {w_pt:.2} 0 0 {h_pt:.2} 0 0 cm /Im0 Do Q");
        objects.push(stream(
            &format!("<< /Length {} >>", content.len()),
            content.as_bytes(),
        ));
        let data = encode_g4(&bits(page));
        let dict = format!(
            "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray \
             /BitsPerComponent 1 /Filter /CCITTFaxDecode \
             /DecodeParms << /K -1 /Columns {w} /Rows {h} >> /Length {len} >>",
            w = page.width,
            h = page.height,
            len = data.len()
        );
        objects.push(stream(&dict, &data));
    }
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for o in offsets {
        let _ = writeln!(table, "{o:010} 00000 n ");
    }
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(table.as_bytes());
    Ok(out)
}

fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(dict.len() + data.len() + 32);
    s.extend_from_slice(dict.as_bytes());
    s.extend_from_slice(b"\nstream\n");
    s.extend_from_slice(data);
    s.extend_from_slice(b"\nendstream");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayro::hayro_interpret::InterpreterSettings;
    use hayro::hayro_syntax::Pdf;
    use hayro::vello_cpu::color::palette::css::WHITE;
    use hayro::{PixmapSettings, RenderCache, RenderSettings};
    use std::sync::Arc;

    /// A 1728×`height` page, black in the left half of the top `black`
    /// rows, white elsewhere.
    fn page(height: u32, y_dpi: f32, black: u32) -> ReadPage {
        let row_bytes = 1728 / 8;
        let mut bits = vec![0u8; row_bytes * height as usize];
        for y in 0..black as usize {
            for b in &mut bits[y * row_bytes..y * row_bytes + row_bytes / 2] {
                *b = 0xff;
            }
        }
        ReadPage {
            width: 1728,
            height,
            x_dpi: Some(204.0),
            y_dpi: Some(y_dpi),
            description: None,
            pixels: Pixels::Bilevel(bits),
        }
    }

    /// Page `n` rendered at 72 dpi: (width, height, luma pixels).
    fn render(pdf: &[u8], n: usize) -> (u32, u32, Vec<u8>) {
        let pdf = Pdf::new(Arc::new(pdf.to_vec())).unwrap();
        let pages = pdf.pages();
        let pixmap = hayro::render(
            &pages[n],
            &RenderCache::new(),
            &InterpreterSettings::default(),
            &RenderSettings::default(),
            &PixmapSettings {
                x_scale: 1.0,
                y_scale: 1.0,
                bg_color: WHITE,
            },
        );
        let luma = pixmap
            .data_as_u8_slice()
            .chunks_exact(4)
            .map(|p| p[0])
            .collect();
        (u32::from(pixmap.width()), u32::from(pixmap.height()), luma)
    }

    #[test]
    fn pages_keep_their_size_and_ink() {
        // An A4 page at fine resolution (2292 rows / 196 dpi = 11.69 in)
        // and a short one at standard resolution.
        let pages = [page(2292, 196.0, 1146), page(400, 98.0, 0)];
        let pdf = pages_to_pdf(&pages).unwrap();
        assert!(pdf.starts_with(b"%PDF-1.4"));
        let count = Pdf::new(Arc::new(pdf.clone())).unwrap().pages().len();
        assert_eq!(count, 2);
        let (w, h, px) = render(&pdf, 0);
        // 8.47 × 11.69 in at 72 dpi (A4 is 8.27 in wide: fax pages are
        // a little wider than the paper).
        assert!((609..=611).contains(&w), "{w}");
        assert!((841..=843).contains(&h), "{h}");
        // Black where the fax is black (the top left quarter), white
        // elsewhere: not inverted, not shifted.
        let at = |x: u32, y: u32| px[(y * w + x) as usize];
        assert!(at(w / 4, h / 4) < 64, "top left should be black");
        assert!(at(3 * w / 4, h / 4) > 192, "top right should be white");
        assert!(at(w / 4, 3 * h / 4) > 192, "bottom left should be white");
        let black = px.iter().filter(|&&v| v < 128).count() as f64;
        let quarter = f64::from(w * h) / 4.0;
        assert!(
            (black - quarter).abs() < quarter * 0.05,
            "{black} vs {quarter}"
        );
        // 400 rows at 98 dpi: 4.08 in = 294 points; all white.
        let (_, h, px) = render(&pdf, 1);
        assert!((293..=295).contains(&h), "{h}");
        assert!(px.iter().all(|&v| v > 192));
    }

    #[test]
    fn poppler_reads_it_when_installed() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = dir.path().join("fax.pdf");
        std::fs::write(&path, pages_to_pdf(&[page(2292, 196.0, 10)]).unwrap()).unwrap();
        let Ok(out) = std::process::Command::new("pdfinfo").arg(&path).output() else {
            return; // poppler-utils not installed
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("Pages:          1"), "{text}");
        assert!(text.contains("609.88 x 841.96 pts"), "{text}");
    }

    #[test]
    fn no_pages_is_an_error() {
        assert!(matches!(pages_to_pdf(&[]), Err(PdfError::NoPages)));
    }
}
