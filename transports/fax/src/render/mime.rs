//! The walk through a parsed message: which MIME parts are rendered, in
//! what order, by which renderer; what is left out and why.

use super::doc::Doc;
use super::{
    describe, html, pdf, picture, postscript, CoverInfo, PartNote, PartOutcome, RenderError,
};
use super::{RenderOptions, Unsupported};
use mail_parser::{Address, Message, MessagePart, MimeHeaders, PartType};

/// What a binary part is, by declared type or (for
/// `application/octet-stream`) by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Readable as text though it came as bytes (delivery reports …).
    Text,
    Pdf,
    PostScript,
    Tiff,
    Picture,
    Signature,
    Other,
}

fn kind_of(content_type: &str, data: &[u8]) -> Kind {
    match content_type {
        "application/pdf" | "application/x-pdf" | "application/acrobat" => Kind::Pdf,
        "application/postscript" | "application/ps" | "application/x-postscript" => {
            Kind::PostScript
        }
        "image/tiff" | "image/tif" | "image/x-tiff" => Kind::Tiff,
        "image/png" | "image/jpeg" | "image/jpg" | "image/pjpeg" | "image/gif" => Kind::Picture,
        "application/pkcs7-signature"
        | "application/x-pkcs7-signature"
        | "application/pgp-signature" => Kind::Signature,
        "text/rtf" => Kind::Other,
        "message/delivery-status"
        | "message/global-delivery-status"
        | "message/disposition-notification"
        | "message/global-disposition-notification"
        | "text/rfc822-headers" => Kind::Text,
        t if t.starts_with("text/") => Kind::Text,
        "application/octet-stream"
        | "binary/octet-stream"
        | "application/x-download"
        | "application/download"
        | "application/force-download" => sniff(data),
        _ => Kind::Other,
    }
}

/// Recognises a document by its first bytes.
fn sniff(d: &[u8]) -> Kind {
    let head = &d[..d.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        Kind::Pdf
    } else if d.starts_with(b"%!") || d.starts_with(b"\x04%!") {
        Kind::PostScript
    } else if d.starts_with(b"II*\0") || d.starts_with(b"MM\0*") {
        Kind::Tiff
    } else if d.starts_with(b"\x89PNG\r\n\x1a\n")
        || d.starts_with(&[0xff, 0xd8, 0xff])
        || d.starts_with(b"GIF87a")
        || d.starts_with(b"GIF89a")
    {
        Kind::Picture
    } else {
        Kind::Other
    }
}

fn content_type(part: &MessagePart) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => match part.body {
            PartType::Multipart(_) => "multipart/mixed".into(),
            PartType::Message(_) => "message/rfc822".into(),
            _ => "text/plain".into(),
        },
    }
}

/// `Name <address>, …` of an address header.
fn addresses(a: Option<&Address>) -> String {
    let Some(a) = a else {
        return String::new();
    };
    a.iter()
        .map(
            |addr| match (addr.name.as_deref(), addr.address.as_deref()) {
                (Some(n), Some(e)) if !n.is_empty() => format!("{n} <{e}>"),
                (_, Some(e)) => e.to_string(),
                (Some(n), None) => n.to_string(),
                (None, None) => String::new(),
            },
        )
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The display names of an address header (addresses where none). When
/// some of its addresses are the number dialled, only theirs: a message
/// to several numbers names each recipient on its own cover page.
fn names(a: Option<&Address>, number: &str) -> String {
    let Some(a) = a else {
        return String::new();
    };
    let all: Vec<_> = a.iter().collect();
    let dialled = digits(number);
    let own: Vec<_> = all
        .iter()
        .copied()
        .filter(|addr| {
            let local = addr
                .address
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map_or("", |(local, _)| local);
            same_number(&digits(local), &dialled)
        })
        .collect();
    let chosen = if own.is_empty() { all } else { own };
    chosen
        .into_iter()
        .filter_map(|addr| {
            addr.name
                .as_deref()
                .filter(|n| !n.trim().is_empty())
                .or(addr.address.as_deref())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Whether two numbers' digits are the same number, one perhaps with
/// its country code or trunk prefix (`5551234567`, `15551234567`).
fn same_number(a: &str, b: &str) -> bool {
    a.len().min(b.len()) >= 3 && (a.ends_with(b) || b.ends_with(a))
}

fn date(m: &Message) -> String {
    m.date().map(|d| d.to_rfc822()).unwrap_or_default()
}

/// The cover with its empty fields taken from the message.
pub(super) fn fill_cover(info: &CoverInfo, m: Option<&Message>) -> CoverInfo {
    let mut c = info.clone();
    if let Some(m) = m {
        let fill = |field: &mut String, v: String| {
            if field.trim().is_empty() {
                *field = v;
            }
        };
        fill(&mut c.from, addresses(m.from()));
        // The recipients' names: their addresses are our fax gateway's.
        fill(&mut c.to, names(m.to(), &info.number));
        fill(&mut c.subject, m.subject().unwrap_or_default().to_string());
        fill(&mut c.date, date(m));
    }
    c
}

/// Walks one message, rendering into a [`Doc`].
pub(super) struct Walker<'a> {
    doc: &'a mut Doc,
    opts: &'a RenderOptions,
    notes: &'a mut Vec<PartNote>,
    /// The top-level headers, set before the first text when there is no
    /// cover page.
    header: Option<Vec<(&'static str, String)>>,
    /// Multiparts and attached messages we are inside.
    depth: usize,
}

/// Multiparts and attached messages nested deeper than this are not
/// walked (a hostile message must not exhaust the stack).
const MAX_NESTING: usize = 32;

impl<'a> Walker<'a> {
    pub fn new(doc: &'a mut Doc, opts: &'a RenderOptions, notes: &'a mut Vec<PartNote>) -> Self {
        Walker {
            doc,
            opts,
            notes,
            header: None,
            depth: 0,
        }
    }

    pub fn message(mut self, m: &Message) -> Result<(), RenderError> {
        if self.opts.cover.is_none() {
            self.header = Some(header_lines(m));
        }
        self.part(m, 0, "")
    }

    fn part(&mut self, m: &Message, id: usize, path: &str) -> Result<(), RenderError> {
        let Some(part) = m.parts.get(id) else {
            return Ok(());
        };
        let ct = content_type(part);
        if let PartType::Multipart(children) = &part.body {
            if self.depth >= MAX_NESTING {
                let e = part_error(
                    path,
                    None,
                    &ct,
                    format!("parts nested more than {MAX_NESTING} deep"),
                );
                return self.skip_or_fail(e, path, &ct);
            }
            self.depth += 1;
            let r = self.multipart(m, &ct, children, path);
            self.depth -= 1;
            return r;
        }
        // A leaf: the root of a single-part message is part 1.
        let path = if path.is_empty() { "1" } else { path };
        let name = part.attachment_name().map(str::to_string);
        // Text may continue on the page in progress; all else starts anew.
        let continues = self.doc.text_in_progress();
        let before = self.doc.page_count();
        let is_text = match &part.body {
            PartType::Text(_) | PartType::Html(_) => true,
            PartType::Binary(d) | PartType::InlineBinary(d) => kind_of(&ct, d) == Kind::Text,
            _ => false,
        };
        let result = match &part.body {
            PartType::Text(_) if ct == "text/rtf" => Err(unsupported(path, name.as_deref(), &ct)),
            PartType::Text(t) => self.text(t, name.as_deref()),
            PartType::Html(h) => guarded(path, name.as_deref(), &ct, || {
                html::to_text(h, self.doc.cols())
                    .map_err(|reason| part_error(path, name.as_deref(), &ct, reason))
            })
            .and_then(|t| self.text(&t, name.as_deref())),
            PartType::Message(_) if self.depth >= MAX_NESTING => Err(part_error(
                path,
                name.as_deref(),
                &ct,
                format!("messages attached more than {MAX_NESTING} deep"),
            )),
            PartType::Message(inner) => {
                self.depth += 1;
                let r = self.attached_message(inner, path, &ct, name);
                self.depth -= 1;
                return r;
            }
            PartType::Binary(d) | PartType::InlineBinary(d) => {
                guarded(path, name.as_deref(), &ct, || {
                    self.binary(d, path, name.as_deref(), &ct)
                })
            }
            PartType::Multipart(_) => Ok(Outcome::Done),
        };
        let outcome = match result {
            Ok(Outcome::Done) => {
                let first = if is_text && continues {
                    before
                } else {
                    before + 1
                };
                PartOutcome::Rendered {
                    first_page: first,
                    pages: (self.doc.page_count() + 1).saturating_sub(first),
                }
            }
            Ok(Outcome::Skipped(why)) => PartOutcome::Skipped(why),
            Err(e) if e.is_part_error() && self.opts.unsupported == Unsupported::Skip => {
                PartOutcome::Skipped(reason_of(&e))
            }
            Err(e) => return Err(e),
        };
        self.notes.push(PartNote {
            part: path.to_string(),
            content_type: ct,
            name,
            outcome,
        });
        Ok(())
    }

    fn multipart(
        &mut self,
        m: &Message,
        ct: &str,
        children: &[u32],
        path: &str,
    ) -> Result<(), RenderError> {
        let child_path = |i: usize| {
            if path.is_empty() {
                format!("{}", i + 1)
            } else {
                format!("{path}.{}", i + 1)
            }
        };
        let sub = ct.split('/').nth(1).unwrap_or("mixed");
        match sub {
            "alternative" => {
                let rank = |id: &u32| match m.parts.get(*id as usize) {
                    Some(p) => match (&p.body, content_type(p).as_str()) {
                        (PartType::Text(t), "text/plain") if !t.trim().is_empty() => 3,
                        (PartType::Html(_), _) => 2,
                        (PartType::Multipart(_), _) => 1,
                        _ => 0,
                    },
                    None => 0,
                };
                // The best; among equals the last (RFC 2046: richest last).
                let best = children
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, id)| rank(id))
                    .map(|(i, _)| i);
                for (i, id) in children.iter().enumerate() {
                    if Some(i) == best {
                        self.part(m, *id as usize, &child_path(i))?;
                    } else if let Some(p) = m.parts.get(*id as usize) {
                        self.note_skipped(p, &child_path(i), "another version of the same text");
                    }
                }
            }
            "related" | "signed" => {
                // The first part is the content; the rest are its inline
                // pictures (referenced by Content-ID) or the signature.
                for (i, id) in children.iter().enumerate() {
                    let Some(p) = m.parts.get(*id as usize) else {
                        continue;
                    };
                    let inline = sub == "related" && p.content_id().is_some();
                    if i == 0 || !(inline || sub == "signed") {
                        self.part(m, *id as usize, &child_path(i))?;
                    } else if sub == "signed" {
                        self.note_skipped(p, &child_path(i), "signature");
                    } else {
                        self.note_skipped(p, &child_path(i), "picture inside the HTML text");
                    }
                }
            }
            _ => {
                for (i, id) in children.iter().enumerate() {
                    self.part(m, *id as usize, &child_path(i))?;
                }
            }
        }
        Ok(())
    }

    /// A part error: noted with `unsupported = "skip"`, else returned.
    fn skip_or_fail(&mut self, e: RenderError, path: &str, ct: &str) -> Result<(), RenderError> {
        if self.opts.unsupported == Unsupported::Skip {
            self.notes.push(PartNote {
                part: path.to_string(),
                content_type: ct.to_string(),
                name: None,
                outcome: PartOutcome::Skipped(reason_of(&e)),
            });
            Ok(())
        } else {
            Err(e)
        }
    }

    fn note_skipped(&mut self, p: &MessagePart, path: &str, why: &str) {
        self.notes.push(PartNote {
            part: path.to_string(),
            content_type: content_type(p),
            name: p.attachment_name().map(str::to_string),
            outcome: PartOutcome::Skipped(why.into()),
        });
    }

    /// Sets the top-level headers before the first text, once.
    fn header_block(&mut self) -> Result<(), RenderError> {
        if let Some(lines) = self.header.take() {
            for (label, value) in &lines {
                self.doc.labelled(label, value)?;
            }
            if !lines.is_empty() {
                self.doc.text("", false)?;
            }
        }
        Ok(())
    }

    fn text(&mut self, t: &str, name: Option<&str>) -> Result<Outcome, RenderError> {
        let t = t.trim_end();
        if t.trim().is_empty() {
            return Ok(Outcome::Skipped("empty".into()));
        }
        // A rule between texts, not between the headers and the first.
        let follows_text = self.doc.text_in_progress();
        self.header_block()?;
        if follows_text {
            let cols = self.doc.cols();
            let rule = match name {
                Some(n) => {
                    let label = format!("── {n} ");
                    let fill = cols.saturating_sub(label.chars().count());
                    format!("{label}{}", "─".repeat(fill))
                }
                None => "─".repeat(cols),
            };
            self.doc.text("", false)?;
            self.doc.text(&rule, false)?;
        }
        self.doc.text(t, false)?;
        Ok(Outcome::Done)
    }

    fn attached_message(
        &mut self,
        inner: &Message,
        path: &str,
        ct: &str,
        name: Option<String>,
    ) -> Result<(), RenderError> {
        self.header_block()?;
        if self.doc.text_in_progress() {
            self.doc.text("", false)?;
        }
        let cols = self.doc.cols();
        let label = "── Attached message ";
        self.doc.text(
            &format!(
                "{label}{}",
                "─".repeat(cols.saturating_sub(label.chars().count()))
            ),
            false,
        )?;
        for (label, value) in header_lines(inner) {
            self.doc.labelled(label, &value)?;
        }
        self.doc.text("", false)?;
        self.notes.push(PartNote {
            part: path.to_string(),
            content_type: ct.to_string(),
            name,
            outcome: PartOutcome::Rendered {
                first_page: self.doc.page_count().max(1),
                pages: 1,
            },
        });
        // Its root is part `path` itself when single-part (IMAP: path.1).
        let inner_path = if matches!(
            inner.parts.first().map(|p| &p.body),
            Some(PartType::Multipart(_))
        ) {
            path.to_string()
        } else {
            format!("{path}.1")
        };
        self.part(inner, 0, &inner_path)
    }

    fn binary(
        &mut self,
        d: &[u8],
        path: &str,
        name: Option<&str>,
        ct: &str,
    ) -> Result<Outcome, RenderError> {
        let who = || describe(path, name, ct);
        let opts = self.opts;
        match kind_of(ct, d) {
            Kind::Pdf => pdf::render(self.doc, d, &who(), opts)?,
            Kind::PostScript => postscript::render(self.doc, d, &who(), opts)?,
            Kind::Tiff => picture::tiff(self.doc, d, &who(), opts)?,
            Kind::Picture => picture::picture(self.doc, d, &who(), opts)?,
            Kind::Text => return self.text(&String::from_utf8_lossy(d), name),
            Kind::Signature => return Ok(Outcome::Skipped("signature".into())),
            Kind::Other => return Err(unsupported(path, name, ct)),
        }
        Ok(Outcome::Done)
    }
}

enum Outcome {
    Done,
    Skipped(String),
}

/// Runs a third-party decoder (HTML, pictures, PDF): a panic in it on a
/// hostile file becomes an error naming the part, not a dead thread.
fn guarded<T>(
    path: &str,
    name: Option<&str>,
    ct: &str,
    f: impl FnOnce() -> Result<T, RenderError>,
) -> Result<T, RenderError> {
    super::progress(&describe(path, name, ct));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(part_error(
            path,
            name,
            ct,
            "the file is damaged: rendering it failed".into(),
        ))
    })
}

fn unsupported(path: &str, name: Option<&str>, ct: &str) -> RenderError {
    RenderError::Unsupported {
        part: describe(path, name, ct),
        content_type: ct.to_string(),
    }
}

fn part_error(path: &str, name: Option<&str>, ct: &str, reason: String) -> RenderError {
    RenderError::Part {
        part: describe(path, name, ct),
        reason,
    }
}

/// The reason of a part error, without the part's name (the note has it).
fn reason_of(e: &RenderError) -> String {
    match e {
        RenderError::Unsupported { .. } => "this type of document cannot be sent as a fax".into(),
        RenderError::Part { reason, .. } => reason.clone(),
        RenderError::NeedsGhostscript { .. } => {
            "PostScript needs ghostscript (gs), which is not installed".into()
        }
        RenderError::ImageTooLarge {
            width,
            height,
            limit,
            ..
        } => format!("picture of {width}×{height} pixels is over the limit of {limit} pixels"),
        other => other.to_string(),
    }
}

fn header_lines(m: &Message) -> Vec<(&'static str, String)> {
    [
        ("From:", addresses(m.from())),
        ("To:", addresses(m.to())),
        ("Cc:", addresses(m.cc())),
        ("Date:", date(m)),
        ("Subject:", m.subject().unwrap_or_default().to_string()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_octet_streams() {
        assert_eq!(
            kind_of("application/octet-stream", b"%PDF-1.4\n"),
            Kind::Pdf
        );
        assert_eq!(
            kind_of("application/octet-stream", b"%!PS-Adobe-3.0"),
            Kind::PostScript
        );
        assert_eq!(
            kind_of("application/octet-stream", b"II*\0\x08\0\0\0"),
            Kind::Tiff
        );
        assert_eq!(
            kind_of("application/octet-stream", b"\x89PNG\r\n\x1a\n"),
            Kind::Picture
        );
        assert_eq!(
            kind_of("application/octet-stream", b"PK\x03\x04"),
            Kind::Other
        );
        assert_eq!(kind_of("application/msword", b"%PDF-1.4"), Kind::Other);
        assert_eq!(kind_of("image/jpeg", b""), Kind::Picture);
        assert_eq!(
            kind_of("message/delivery-status", b"Status: 5.0.0"),
            Kind::Text
        );
        assert_eq!(kind_of("text/csv", b"a,b"), Kind::Text);
        assert_eq!(kind_of("text/rtf", b"{\\rtf1"), Kind::Other);
    }
}
