//! The fax transport's document maker: a queued message becomes the TIFF
//! Class F file the engine sends (cover page with the recipient's number
//! first), and its first page becomes the picture in fax reports.

use super::page::{Compression, Page};
use super::render::{render, RenderError, RenderOptions};
use super::tiff::{write_tiff_f_threads, TiffHeader};
use super::transport::{RenderFailure, Renderer};
use faxmta_queue::Envelope;
use faxmta_transport::FaxHop;
use std::path::Path;

/// Renders with fixed options; the cover page, when on, names the
/// recipient's number.
#[derive(Clone)]
pub struct DocumentMaker {
    /// How pages are made; `cover` is a template (its `number` is filled
    /// per recipient, empty fields from the message).
    pub options: RenderOptions,
    pub compression: Compression,
}

impl DocumentMaker {
    /// The pages of `message` for `number`.
    pub fn pages(&self, message: &[u8], number: &str) -> Result<Vec<Page>, String> {
        self.pages_for(message, number, None)
    }

    /// The pages of `message` for `number`, the cover page switched on or
    /// off for this sender (`None`: as configured).
    pub fn pages_for(
        &self,
        message: &[u8],
        number: &str,
        cover_page: Option<bool>,
    ) -> Result<Vec<Page>, String> {
        self.rendered(message, number, cover_page)
            .map_err(|e| e.to_string())
    }

    fn rendered(
        &self,
        message: &[u8],
        number: &str,
        cover_page: Option<bool>,
    ) -> Result<Vec<Page>, RenderError> {
        let mut options = self.options.clone();
        let cover_page = cover_header(message).or(cover_page);
        match cover_page {
            Some(false) => options.cover = None,
            Some(true) if options.cover.is_none() => options.cover = Some(Default::default()),
            _ => {}
        }
        if let Some(cover) = options.cover.as_mut() {
            cover.number = number.to_string();
        }
        let rendered = render(message, &options)?;
        for note in &rendered.parts {
            tracing::debug!("fax to {number}: {note}");
        }
        Ok(rendered.into_pages())
    }

    /// The first page of `message` as a PNG, half size (for reports).
    pub fn first_page_png(&self, message: &[u8]) -> Option<Vec<u8>> {
        let pages = self.pages(message, "").ok()?;
        page_png(pages.first()?)
    }
}

impl DocumentMaker {
    /// The TIFF-F document of `message` for `number` at `path`: its page
    /// count.
    pub fn write_document(
        &self,
        message: &[u8],
        number: &str,
        cover_page: Option<bool>,
        description: Option<String>,
        path: &Path,
    ) -> Result<u32, RenderFailure> {
        let pages = self
            .rendered(message, number, cover_page)
            .map_err(|e| match e {
                // Our trouble, not the message's: try again later.
                RenderError::Internal(_) => RenderFailure::Local(e.to_string()),
                e => RenderFailure::Message(e.to_string()),
            })?;
        let header = TiffHeader {
            description,
            ..Default::default()
        };
        write_tiff_f_threads(
            path,
            &pages,
            self.compression,
            &header,
            self.options.threads,
        )
        .map_err(|e| RenderFailure::Local(format!("cannot write the fax document: {e}")))?;
        u32::try_from(pages.len()).map_err(|_| RenderFailure::Message("too many pages".into()))
    }
}

/// `X-Fax-Cover: yes` or `no` in the message's header: a cover page or
/// none for this fax, whatever the sender's setting says (the web
/// portal's "cover page" box sets it).
pub fn cover_header(message: &[u8]) -> Option<bool> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let value = parsed
        .header_raw("X-Fax-Cover")?
        .trim()
        .to_ascii_lowercase();
    match value.as_str() {
        "yes" | "on" | "true" => Some(true),
        "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// In this process (the `fax render` command and the tests; the server
/// renders in a worker, [`super::worker`]).
impl Renderer for DocumentMaker {
    fn render(
        &self,
        message: &[u8],
        envelope: &Envelope,
        hop: &FaxHop,
        path: &Path,
    ) -> Result<u32, RenderFailure> {
        let description = Some(format!("{} to {}", envelope.id, hop.number));
        self.write_document(message, &hop.number, hop.cover_page, description, path)
    }
}

/// A page as a grey PNG at half its width (a preview: 864 pixels wide for
/// a fax page) and the height that keeps its proportions: half the rows
/// at fine resolution, all of them at standard (whose rows are twice as
/// tall). Each pixel is the share of white in its block.
pub fn page_png(page: &Page) -> Option<Vec<u8>> {
    let rows_per_pixel = match page.resolution {
        super::page::Resolution::Fine => 2,
        super::page::Resolution::Standard => 1,
    };
    let (w, h) = (page.width / 2, page.height / rows_per_pixel);
    if w == 0 || h == 0 {
        return None;
    }
    let cells = 2 * rows_per_pixel;
    let mut grey = image::GrayImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let mut black = 0;
            for dy in 0..rows_per_pixel {
                for dx in 0..2 {
                    black += u32::from(page.get(2 * x + dx, rows_per_pixel * y + dy));
                }
            }
            grey.put_pixel(x, y, image::Luma([(255 - black * 255 / cells) as u8]));
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    grey.write_to(&mut out, image::ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{Resolution, FAX_WIDTH};
    use crate::render::CoverInfo;

    #[test]
    fn a_preview_is_half_size_and_keeps_black_and_white() {
        let mut page = Page::blank(FAX_WIDTH, 100, Resolution::Fine);
        for y in 0..50 {
            for x in 0..100 {
                page.set(x, y, true);
            }
        }
        let png = page_png(&page).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(img.dimensions(), (FAX_WIDTH / 2, 50));
        assert_eq!(img.get_pixel(10, 10).0[0], 0);
        assert_eq!(img.get_pixel(10, 30).0[0], 255);
        assert_eq!(img.get_pixel(60, 10).0[0], 255);
        // Standard resolution: rows are twice as tall, none is dropped.
        let mut page = Page::blank(FAX_WIDTH, 100, Resolution::Standard);
        page.set(0, 99, true);
        page.set(1, 99, true);
        let img = image::load_from_memory(&page_png(&page).unwrap())
            .unwrap()
            .to_luma8();
        assert_eq!(img.dimensions(), (FAX_WIDTH / 2, 100));
        assert_eq!(img.get_pixel(0, 99).0[0], 0);
    }

    #[test]
    fn the_cover_names_the_number_and_the_document_is_tiff_f() {
        let dir = tempfile::tempdir().unwrap();
        let maker = DocumentMaker {
            options: RenderOptions {
                cover: Some(CoverInfo::default()),
                ..Default::default()
            },
            compression: Compression::Mh,
        };
        let message = b"From: Alice <alice@example.test>\r\nSubject: Hello\r\n\r\nSome text.\r\n";
        let with = maker.pages(message, "+15551234567").unwrap();
        let other = maker.pages(message, "+4930123456").unwrap();
        assert_eq!(with.len(), 2, "cover and one page of text");
        assert_ne!(with[0], other[0], "the cover shows the number");
        assert_eq!(with[1], other[1], "the text page does not");
        // The message may say otherwise, either way.
        let without =
            b"From: a@example.test\r\nX-Fax-Cover: no\r\nSubject: Hello\r\n\r\nSome text.\r\n";
        assert_eq!(maker.pages(without, "+15551234567").unwrap().len(), 1);
        let plain = DocumentMaker {
            options: RenderOptions::default(),
            compression: Compression::Mh,
        };
        let with_cover =
            b"From: a@example.test\r\nX-Fax-Cover: yes\r\nSubject: Hello\r\n\r\nSome text.\r\n";
        assert_eq!(plain.pages(with_cover, "+15551234567").unwrap().len(), 2);
        assert_eq!(plain.pages(message, "+15551234567").unwrap().len(), 1);
        let hop = FaxHop {
            number: "+15551234567".into(),
            dial: "15551234567".into(),
            subaddress: None,
            extension: None,
            tsi: None,
            header: None,
            cover_page: None,
        };
        let env = Envelope {
            id: "Q1".into(),
            sender: "alice@example.test".into(),
            arrival: 0,
            size: 0,
            client: Default::default(),
            body_type: Default::default(),
            smtputf8: false,
            requiretls: false,
            ret: None,
            envid: None,
            held: false,
            lifetime: None,
            head: String::new(),
            recipients: Vec::new(),
        };
        let path = dir.path().join("doc.tif");
        assert_eq!(maker.render(message, &env, &hop, &path), Ok(2));
        // A document that cannot be written is our trouble, not the
        // message's.
        let nowhere = dir.path().join("missing/dir/doc.tif");
        assert!(matches!(
            maker.render(message, &env, &hop, &nowhere),
            Err(RenderFailure::Local(_))
        ));
        let read = crate::tiff::read_tiff(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].width, FAX_WIDTH);
    }
}
