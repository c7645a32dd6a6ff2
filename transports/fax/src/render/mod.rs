//! Rendering: an email message becomes fax pages ([`Page`]), which
//! [`crate::tiff::write_tiff_f`] turns into a TIFF Class F file.
//!
//! [`render`] parses the message (MIME, any charset mail-parser decodes)
//! and renders part by part, in message order:
//! - `text/plain` and other readable `text/*` (also delivery-status
//!   reports; not `text/rtf`) in DejaVu Sans Mono (10 pt, ½ inch
//!   margins, words wrapped, tabs, form feeds); consecutive text parts
//!   share pages, separated by a rule (with the file name if any);
//!   `text/html` is reduced to text (html2text); `multipart/alternative`
//!   prefers `text/plain`; an attached `message/rfc822` shows its
//!   From/To/Cc/Date/Subject, then its parts;
//! - `image/tiff`: every page, at its own resolution (a 204×98 page on a
//!   fine fax has its rows doubled), bilevel;
//! - `image/png`, `image/jpeg`, `image/gif`: scaled to fit inside the
//!   margins (enlarged at most 4×), photos dithered, line art
//!   thresholded; one picture per page;
//! - `application/pdf` (hayro) and `application/postscript` (ghostscript,
//!   when installed): every page at its true size, shrunk only when it
//!   does not fit, landscape pages turned;
//! - `application/octet-stream` is recognised by content (PDF, PS, TIFF,
//!   PNG, JPEG, GIF); signatures (`multipart/signed`) are left out;
//!   images inside `multipart/related` referenced by the HTML are left out.
//!
//! A part that cannot be rendered (an unknown type, a damaged or
//! password-protected PDF, PostScript without ghostscript, an image over
//! the pixel cap, parts nested more than 32 deep) fails the whole fax
//! with an error naming it when `unsupported` is [`Unsupported::Fail`],
//! or is left out and noted with [`Unsupported::Skip`]. Exceeding the
//! page cap ([`RenderOptions::max_pages`], cover included) always fails,
//! and is found before the pages are made where the count is known (PDF,
//! TIFF). A panic in a decoder on a hostile file becomes an error naming
//! the part. Not bounded here: the memory and CPU time a decoder spends on
//! a hostile file — the server renders in a worker process within limits
//! ([`crate::worker`]), which [`set_progress`] tells the part it
//! decodes.
//!
//! Without a cover page, the From/To/Date/Subject of the message head its
//! first text (as HylaFAX's faxmail does); with one, they are on the
//! cover, which comes separately in [`Rendered::cover`] and first in
//! [`Rendered::into_pages`]. A message with nothing to render yields just
//! the cover page, or [`RenderError::Empty`] when there is no cover.
//!
//! Rendering is CPU-bound and synchronous: call it from a blocking task.

mod baked;
mod cover;
mod doc;
mod font;
mod glyph_bits;
mod html;
mod mime;
pub mod parallel;
mod pdf;
mod pdf_grey;
mod picture;
mod postscript;
mod raster;

pub use crate::media::media_type;
use crate::page::Page;
pub use crate::page::{Paper, Resolution};
use doc::Doc;
use raster::Sheet;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What to do with a part that cannot be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unsupported {
    /// Fail the fax with an error naming the part.
    #[default]
    Fail,
    /// Leave the part out; [`Rendered::parts`] says why.
    Skip,
}

/// What the cover page says. Empty fields are taken from the message
/// (From, To, Subject, Date); an empty `note` prints no note.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CoverInfo {
    /// The sender (`Name <address>`).
    pub from: String,
    /// The recipient's name.
    pub to: String,
    /// The fax number dialled.
    pub number: String,
    pub subject: String,
    pub date: String,
    pub note: String,
}

/// How to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderOptions {
    pub resolution: Resolution,
    pub paper: Paper,
    /// A cover page first, or none.
    pub cover: Option<CoverInfo>,
    pub unsupported: Unsupported,
    /// Pages at most, cover included (default 200).
    pub max_pages: u32,
    /// Pixels at most in one picture or TIFF page (default 40 million).
    pub max_image_pixels: u64,
    /// Size of message text in points (default 10).
    pub font_size: f32,
    /// The ghostscript program; `None`: `gs` on `PATH`.
    pub ghostscript: Option<PathBuf>,
    /// How long ghostscript may take for one part (default 60 s).
    pub ghostscript_timeout: Duration,
    /// Threads one render uses for pages that can be made side by side
    /// (PDF and TIFF pages, the coding of every page); 0: one per core
    /// ([`parallel::threads`]). The output is the same for any number.
    #[serde(default)]
    pub threads: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            resolution: Resolution::Fine,
            paper: Paper::A4,
            cover: None,
            unsupported: Unsupported::Fail,
            max_pages: 200,
            max_image_pixels: 40_000_000,
            font_size: 10.0,
            ghostscript: None,
            ghostscript_timeout: Duration::from_secs(60),
            threads: 0,
        }
    }
}

static PROGRESS: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Have `hook` called with a part's description (`part 2 "x.pdf"
/// (application/pdf)`) before each part is decoded (once per process:
/// the render worker names the part that killed it this way).
pub fn set_progress(hook: fn(&str)) {
    let _ = PROGRESS.set(hook);
}

/// Tell the progress hook, if any, that `part` is next.
pub(crate) fn progress(part: &str) {
    if let Some(hook) = PROGRESS.get() {
        hook(part);
    }
}

/// What became of one MIME part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOutcome {
    /// On document pages `first_page ..= first_page + pages - 1`
    /// (1-based, cover not counted). Text parts may share pages.
    Rendered { first_page: usize, pages: usize },
    /// Left out, and why.
    Skipped(String),
}

/// One MIME part and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartNote {
    /// The IMAP part number (`1`, `2.1` …).
    pub part: String,
    /// `type/subtype`, lower case.
    pub content_type: String,
    /// The file name, if the part has one.
    pub name: Option<String>,
    pub outcome: PartOutcome,
}

impl std::fmt::Display for PartNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: ",
            describe(&self.part, self.name.as_deref(), &self.content_type)
        )?;
        match &self.outcome {
            PartOutcome::Rendered { first_page, pages } => match pages {
                1 => write!(f, "page {first_page}"),
                n => write!(f, "pages {first_page}-{}", first_page + n - 1),
            },
            PartOutcome::Skipped(why) => write!(f, "left out: {why}"),
        }
    }
}

/// `part 2 "report.pdf" (application/pdf)`.
pub(crate) fn describe(part: &str, name: Option<&str>, content_type: &str) -> String {
    match name {
        Some(n) => format!("part {part} \"{n}\" ({content_type})"),
        None => format!("part {part} ({content_type})"),
    }
}

/// A rendered message.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The cover page, when asked for. It is not in `pages`.
    pub cover: Option<Page>,
    /// The document pages, in message order.
    pub pages: Vec<Page>,
    /// Every leaf part (and left-out alternatives), in message order.
    pub parts: Vec<PartNote>,
}

impl Rendered {
    /// Pages to send, cover included.
    pub fn page_count(&self) -> usize {
        self.pages.len() + usize::from(self.cover.is_some())
    }

    /// Every page to send, cover first.
    pub fn all_pages(&self) -> impl Iterator<Item = &Page> {
        self.cover.iter().chain(&self.pages)
    }

    /// Every page to send, cover first.
    pub fn into_pages(self) -> Vec<Page> {
        self.cover.into_iter().chain(self.pages).collect()
    }
}

/// Why a message could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the message cannot be parsed (no header section)")]
    NotAMessage,
    #[error("nothing to send: the message has no text or attachment to render, and no cover page")]
    Empty,
    /// A part of a type that cannot be faxed (`unsupported = "fail"`).
    #[error("{part}: this type of document cannot be sent as a fax")]
    Unsupported { part: String, content_type: String },
    /// A part of a supported type that failed to render.
    #[error("{part}: {reason}")]
    Part { part: String, reason: String },
    #[error("{part}: PostScript needs ghostscript (gs), which is not installed")]
    NeedsGhostscript { part: String },
    #[error("{part}: picture of {width}×{height} pixels is over the limit of {limit} pixels")]
    ImageTooLarge {
        part: String,
        width: u64,
        height: u64,
        limit: u64,
    },
    #[error("the fax would have more than {limit} pages")]
    TooManyPages { limit: u32 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl RenderError {
    /// Errors that belong to one part, which `unsupported = "skip"` may
    /// leave out (the others fail the whole fax).
    fn is_part_error(&self) -> bool {
        matches!(
            self,
            RenderError::Unsupported { .. }
                | RenderError::Part { .. }
                | RenderError::NeedsGhostscript { .. }
                | RenderError::ImageTooLarge { .. }
        )
    }
}

/// Renders `message` (RFC 5322, MIME) as fax pages.
pub fn render(message: &[u8], opts: &RenderOptions) -> Result<Rendered, RenderError> {
    let sheet = Sheet {
        paper: opts.paper,
        res: opts.resolution,
    };
    let cover_pages = u32::from(opts.cover.is_some());
    if opts.max_pages <= cover_pages {
        return Err(RenderError::TooManyPages {
            limit: opts.max_pages,
        });
    }
    let font_size = if opts.font_size.is_finite() {
        opts.font_size.clamp(6.0, 24.0)
    } else {
        10.0
    };
    let mut doc = Doc::new(sheet, font_size, opts.max_pages - cover_pages, opts.threads)?;
    let blank = message.iter().all(|b| b.is_ascii_whitespace());
    let parsed = if blank {
        None
    } else {
        let m = mail_parser::MessageParser::default()
            .parse(message)
            .ok_or(RenderError::NotAMessage)?;
        Some(m)
    };
    let mut parts = Vec::new();
    if let Some(m) = &parsed {
        mime::Walker::new(&mut doc, opts, &mut parts).message(m)?;
    }
    let pages = doc.finish()?;
    let cover = match &opts.cover {
        Some(info) => {
            let info = mime::fill_cover(info, parsed.as_ref());
            Some(cover::page(sheet, &info, pages.len() + 1)?)
        }
        None if pages.is_empty() => return Err(RenderError::Empty),
        None => None,
    };
    Ok(Rendered {
        cover,
        pages,
        parts,
    })
}

#[cfg(test)]
mod tests;
