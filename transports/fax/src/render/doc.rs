//! The document being built: finished pages, and the text flow that lays
//! message text out in DejaVu Sans Mono — tabs to 8 columns, words
//! wrapped at the right margin, over-long words broken, form feeds as
//! page breaks, new pages at the bottom margin — under the page cap.
//!
//! Text is laid out as it comes and drawn at the end ([`Doc::finish`]):
//! the pages of text are drawn side by side ([`super::parallel`]), each
//! thread with its own glyph cache, and come out in document order.

use super::font::{Face, Typesetter};
use super::raster::Sheet;
use super::RenderError;
use crate::page::Page;

/// Margins around message text, in inches.
const MARGIN: f32 = 0.5;

/// One character cell of monospaced text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cell {
    pub ch: char,
    pub bold: bool,
}

/// Text set so far on the page in progress: each line's baseline and
/// cells, drawn by [`Doc::finish`].
struct TextPage {
    lines: Vec<(i64, Vec<Cell>)>,
    line: u32,
}

/// A page of the document: made, or text still to draw.
enum Slot {
    Page(Page),
    Text(Vec<(i64, Vec<Cell>)>),
}

pub(crate) struct Doc {
    pub sheet: Sheet,
    pages: Vec<Slot>,
    /// Threads for drawing the text pages.
    threads: usize,
    /// Pages this document may have at most.
    max_pages: u32,
    /// Text size in points.
    pt: f32,
    cell_w: f32,
    line_h: f32,
    ascent: f32,
    cols: usize,
    lines: u32,
    text: Option<TextPage>,
}

impl Doc {
    pub fn new(sheet: Sheet, pt: f32, max_pages: u32, threads: usize) -> Result<Doc, RenderError> {
        let mut ts = Typesetter::new(sheet.res).map_err(RenderError::Internal)?;
        // Message headers are in bold: unless baked, that face loads
        // beside the other.
        ts.preload(Face::MonoBold, pt);
        // Whole pixels per cell: box-drawing lines join without gaps.
        let cell_w = ts.advance(Face::Mono, pt, 'M').round().max(1.0);
        let line_h = ts.line_height(Face::Mono, pt);
        let ascent = ts.ascent(Face::Mono, pt);
        let width = sheet.width() as f32 - 2.0 * sheet.x_px(MARGIN);
        let height = sheet.height() as f32 - 2.0 * sheet.y_px(MARGIN);
        let cols = ((width / cell_w).floor() as usize).max(10);
        let lines = ((height / line_h).floor() as u32).max(5);
        Ok(Doc {
            sheet,
            pages: Vec::new(),
            threads,
            max_pages,
            pt,
            cell_w,
            line_h,
            ascent,
            cols,
            lines,
            text: None,
        })
    }

    /// Characters per line of message text.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pages so far, including the text page in progress.
    pub fn page_count(&self) -> usize {
        self.pages.len() + usize::from(self.text.is_some())
    }

    /// Pages that may still be added.
    pub fn room(&self) -> usize {
        (self.max_pages as usize).saturating_sub(self.page_count())
    }

    fn reserve_page(&self) -> Result<(), RenderError> {
        if self.page_count() >= self.max_pages as usize {
            return Err(RenderError::TooManyPages {
                limit: self.max_pages,
            });
        }
        Ok(())
    }

    /// Adds a finished page (after any text in progress).
    pub fn push_page(&mut self, page: Page) -> Result<(), RenderError> {
        self.flush_text();
        self.reserve_page()?;
        self.pages.push(Slot::Page(page));
        Ok(())
    }

    /// Fails early when `n` more pages would not fit under the cap.
    pub fn check_room(&self, n: usize) -> Result<(), RenderError> {
        if self.page_count() + n > self.max_pages as usize {
            return Err(RenderError::TooManyPages {
                limit: self.max_pages,
            });
        }
        Ok(())
    }

    /// Ends the text page in progress; the next text starts a new page.
    pub fn flush_text(&mut self) {
        if let Some(t) = self.text.take() {
            self.pages.push(Slot::Text(t.lines));
        }
    }

    /// Whether text has been set on the current text page.
    pub fn text_in_progress(&self) -> bool {
        self.text.as_ref().is_some_and(|t| t.line > 0)
    }

    /// Lays out `text` (may hold many lines) in regular or bold.
    pub fn text(&mut self, text: &str, bold: bool) -> Result<(), RenderError> {
        let mut cells = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            cells.clear();
            for ch in line.chars() {
                match ch {
                    '\t' => {
                        let to = (cells.len() / 8 + 1) * 8;
                        cells.resize(to, Cell { ch: ' ', bold });
                    }
                    '\x0c' => {
                        self.set_cells(&cells)?;
                        cells.clear();
                        self.flush_text();
                    }
                    c if c.is_control() => {}
                    c => cells.push(Cell { ch: c, bold }),
                }
            }
            self.set_cells(&cells)?;
        }
        Ok(())
    }

    /// A `label: value` line with the label in bold (message headers).
    pub fn labelled(&mut self, label: &str, value: &str) -> Result<(), RenderError> {
        let mut cells: Vec<Cell> = label.chars().map(|ch| Cell { ch, bold: true }).collect();
        cells.push(Cell {
            ch: ' ',
            bold: false,
        });
        cells.extend(
            value
                .chars()
                .filter(|c| !c.is_control())
                .map(|ch| Cell { ch, bold: false }),
        );
        self.set_cells(&cells)
    }

    /// Wraps one logical line and sets the pieces.
    fn set_cells(&mut self, cells: &[Cell]) -> Result<(), RenderError> {
        for piece in wrap(cells, self.cols) {
            self.set_line(piece)?;
        }
        Ok(())
    }

    fn set_line(&mut self, cells: &[Cell]) -> Result<(), RenderError> {
        if self.text.as_ref().is_some_and(|t| t.line >= self.lines) {
            self.flush_text();
        }
        if self.text.is_none() {
            self.reserve_page()?;
            self.text = Some(TextPage {
                lines: Vec::new(),
                line: 0,
            });
        }
        let top = self.sheet.y_px(MARGIN);
        let Some(t) = self.text.as_mut() else {
            return Ok(());
        };
        let baseline = (top + t.line as f32 * self.line_h + self.ascent).round() as i64;
        if cells.iter().any(|c| c.ch != ' ') {
            t.lines.push((baseline, cells.to_vec()));
        }
        t.line += 1;
        Ok(())
    }

    /// Draws one page of text.
    fn draw(&self, ts: &mut Typesetter, lines: &[(i64, Vec<Cell>)]) -> Page {
        let mut page = self.sheet.blank();
        let left = self.sheet.x_px(MARGIN);
        for (baseline, cells) in lines {
            for (col, c) in cells.iter().enumerate() {
                if c.ch == ' ' {
                    continue;
                }
                let face = if c.bold { Face::MonoBold } else { Face::Mono };
                let x = left + col as f32 * self.cell_w;
                ts.draw_char(&mut page, face, self.pt, x, *baseline, c.ch);
            }
        }
        page
    }

    /// The finished pages (text in progress included), in order; the text
    /// pages drawn on up to `threads` threads.
    pub fn finish(mut self) -> Result<Vec<Page>, RenderError> {
        self.flush_text();
        let slots = std::mem::take(&mut self.pages);
        let texts: Vec<&[(i64, Vec<Cell>)]> = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Text(lines) => Some(lines.as_slice()),
                Slot::Page(_) => None,
            })
            .collect();
        let res = self.sheet.res;
        let drawn = super::parallel::try_map_with(
            texts.len(),
            super::parallel::threads(self.threads),
            || Typesetter::new(res),
            |ts, i| match ts {
                Ok(ts) => Ok(self.draw(ts, texts[i])),
                Err(e) => Err(RenderError::Internal(e.clone())),
            },
        )?;
        let mut drawn = drawn.into_iter();
        let mut pages = Vec::with_capacity(slots.len());
        for slot in slots {
            match slot {
                Slot::Page(p) => pages.push(p),
                Slot::Text(_) => match drawn.next() {
                    Some(p) => pages.push(p),
                    None => return Err(RenderError::Internal("a text page was not drawn".into())),
                },
            }
        }
        Ok(pages)
    }
}

/// Splits a line into pieces of at most `cols` cells: at the last space
/// that fits (the space is dropped), or within a word longer than a line.
/// Spaces that begin a continuation are dropped; an empty line stays one
/// empty piece.
pub(crate) fn wrap(cells: &[Cell], cols: usize) -> Vec<&[Cell]> {
    let mut out = Vec::new();
    let mut rest = cells;
    let mut continuation = false;
    loop {
        if continuation {
            let skip = rest.iter().take_while(|c| c.ch == ' ').count();
            rest = &rest[skip..];
            if rest.is_empty() {
                break;
            }
        }
        if rest.len() <= cols {
            out.push(rest);
            break;
        }
        match rest[..=cols].iter().rposition(|c| c.ch == ' ') {
            Some(i) if rest[..i].iter().any(|c| c.ch != ' ') => {
                let end = rest[..i]
                    .iter()
                    .rposition(|c| c.ch != ' ')
                    .map_or(0, |e| e + 1);
                out.push(&rest[..end]);
                rest = &rest[i + 1..];
            }
            _ => {
                out.push(&rest[..cols]);
                rest = &rest[cols..];
            }
        }
        continuation = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{Paper, Resolution, FAX_WIDTH};

    fn cells(s: &str) -> Vec<Cell> {
        s.chars().map(|ch| Cell { ch, bold: false }).collect()
    }

    fn text_of(pieces: Vec<&[Cell]>) -> Vec<String> {
        pieces
            .into_iter()
            .map(|p| p.iter().map(|c| c.ch).collect())
            .collect()
    }

    #[test]
    fn wrapping() {
        let w = |s: &str, n| text_of(wrap(&cells(s), n));
        assert_eq!(w("hello world", 20), ["hello world"]);
        assert_eq!(w("hello world", 8), ["hello", "world"]);
        assert_eq!(w("hello   world", 8), ["hello", "world"]);
        assert_eq!(w("abcdefghijkl", 5), ["abcde", "fghij", "kl"]);
        assert_eq!(w("a abcdefghij", 5), ["a", "abcde", "fghij"]);
        assert_eq!(w("", 5), [""]);
        assert_eq!(w("    indented text", 12), ["    indented", "text"]);
        assert_eq!(w("exactly10!", 10), ["exactly10!"]);
    }

    fn doc(res: Resolution, max: u32) -> Doc {
        let sheet = Sheet {
            paper: Paper::A4,
            res,
        };
        Doc::new(sheet, 10.0, max, 2).unwrap()
    }

    #[test]
    fn text_paginates_with_tabs_and_form_feeds() {
        let mut d = doc(Resolution::Fine, 50);
        assert!((85..=92).contains(&d.cols()), "{}", d.cols());
        let lines = d.lines as usize;
        assert!((60..=70).contains(&lines), "{lines}");
        let body: String = (0..lines + 3).map(|i| format!("line {i}\n")).collect();
        d.text(&body, false).unwrap();
        assert_eq!(d.page_count(), 2);
        d.text("before\x0cafter", false).unwrap();
        assert_eq!(d.page_count(), 3);
        let pages = d.finish().unwrap();
        assert_eq!(pages.len(), 3);
        for p in &pages {
            assert_eq!((p.width, p.height), (FAX_WIDTH, 2292));
            assert!(p.black_pixels() > 100);
        }
        // A tab moves the next character to column 8.
        let mut d = doc(Resolution::Fine, 5);
        d.text("\tX", false).unwrap();
        let page = d.finish().unwrap().remove(0);
        let left = (0..FAX_WIDTH)
            .find(|&x| (0..300).any(|y| page.get(x, y)))
            .unwrap();
        let expect = 102.0 + 8.0 * 17.06;
        assert!((left as f32 - expect).abs() < 6.0, "{left} vs {expect}");
    }

    #[test]
    fn page_cap() {
        let mut d = doc(Resolution::Standard, 2);
        let body = "x\n".repeat(1000);
        let e = d.text(&body, false).unwrap_err();
        assert!(matches!(e, RenderError::TooManyPages { limit: 2 }), "{e}");
    }
}
