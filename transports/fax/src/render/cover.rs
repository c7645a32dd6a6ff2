//! The cover page: "FAX" in large type, then To, Fax number, From, Date,
//! Subject and the page count ("3 including this cover") as a two-column
//! table in DejaVu Sans, a rule, and the note, wrapped and cut at the
//! bottom margin (a cover page is one page).

use super::font::{Face, Typesetter};
use super::raster::Sheet;
use super::{CoverInfo, RenderError};
use crate::page::Page;

const MARGIN: f32 = 0.75;
const TITLE_PT: f32 = 40.0;
const TEXT_PT: f32 = 12.0;
/// Where values start, from the left margin, in inches.
const VALUE_COLUMN: f32 = 1.6;

/// The cover page for a fax of `total_pages` pages (cover included).
pub(super) fn page(
    sheet: Sheet,
    info: &CoverInfo,
    total_pages: usize,
) -> Result<Page, RenderError> {
    let mut ts = Typesetter::new(sheet.res).map_err(RenderError::Internal)?;
    let mut page = sheet.blank();
    let left = sheet.x_px(MARGIN);
    let right = sheet.width() as f32 - sheet.x_px(MARGIN);
    let bottom = sheet.height() as f32 - sheet.y_px(MARGIN);
    let mut y = sheet.y_px(MARGIN);

    // Title and a heavy rule.
    let baseline = y + ts.ascent(Face::SansBold, TITLE_PT);
    ts.draw_str(
        &mut page,
        Face::SansBold,
        TITLE_PT,
        left,
        baseline.round() as i64,
        "FAX",
    );
    y += ts.line_height(Face::SansBold, TITLE_PT);
    rule(&mut page, left, right, y, sheet.y_px(3.0 / 72.0));
    y += sheet.y_px(0.35);

    // The table.
    let pages = match total_pages {
        1 => "1 (this cover only)".to_string(),
        n => format!("{n} including this cover"),
    };
    let rows = [
        ("To:", info.to.trim().to_string()),
        ("Fax number:", info.number.trim().to_string()),
        ("From:", info.from.trim().to_string()),
        ("Date:", info.date.trim().to_string()),
        ("Subject:", info.subject.trim().to_string()),
        ("Pages:", pages),
    ];
    let line = ts.line_height(Face::Sans, TEXT_PT);
    let ascent = ts.ascent(Face::Sans, TEXT_PT);
    let value_x = left + sheet.x_px(VALUE_COLUMN);
    for (label, value) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        ts.draw_str(
            &mut page,
            Face::SansBold,
            TEXT_PT,
            left,
            (y + ascent).round() as i64,
            label,
        );
        let lines = wrap(&mut ts, Face::Sans, TEXT_PT, value, right - value_x);
        for l in lines.iter().take(3) {
            ts.draw_str(
                &mut page,
                Face::Sans,
                TEXT_PT,
                value_x,
                (y + ascent).round() as i64,
                l,
            );
            y += line;
        }
        y += line * 0.4;
    }
    y += line * 0.3;
    rule(&mut page, left, right, y, sheet.y_px(1.0 / 72.0));
    y += line;

    // The note, as much as fits.
    if !info.note.trim().is_empty() {
        let lines = wrap(
            &mut ts,
            Face::Sans,
            TEXT_PT,
            info.note.trim_end(),
            right - left,
        );
        let fits = ((bottom - y) / line).floor().max(0.0) as usize;
        let cut = lines.len() > fits;
        for (i, l) in lines.iter().take(fits).enumerate() {
            let text = if cut && i + 1 == fits {
                "…"
            } else {
                l.as_str()
            };
            ts.draw_str(
                &mut page,
                Face::Sans,
                TEXT_PT,
                left,
                (y + ascent).round() as i64,
                text,
            );
            y += line;
        }
    }
    Ok(page)
}

/// A black bar from `x0` to `x1`, `thick` rows from row `y`.
fn rule(page: &mut Page, x0: f32, x1: f32, y: f32, thick: f32) {
    let (y0, y1) = (y.round() as u32, (y + thick.max(1.0)).round() as u32);
    for row in y0..y1.max(y0 + 1) {
        for x in x0.round() as u32..x1.round() as u32 {
            page.set(x, row, true);
        }
    }
}

/// `text` broken into lines no wider than `width` pixels: at spaces,
/// within words longer than a line; newlines kept.
fn wrap(ts: &mut Typesetter, face: Face, pt: f32, text: &str, width: f32) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let para = para.trim_end_matches('\r');
        let mut line = String::new();
        let mut line_w = 0.0;
        let space = ts.advance(face, pt, ' ');
        for word in para.split_whitespace() {
            let mut word_w = ts.measure(face, pt, word);
            let sep = if line.is_empty() { 0.0 } else { space };
            if line_w + sep + word_w <= width {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
                line_w += sep + word_w;
                continue;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            // A word wider than a line is broken by characters.
            let mut rest = word;
            while word_w > width {
                let mut w = 0.0;
                let mut end = 0;
                for (i, c) in rest.char_indices() {
                    let a = ts.advance(face, pt, c);
                    if w + a > width && i > 0 {
                        break;
                    }
                    w += a;
                    end = i + c.len_utf8();
                }
                out.push(rest[..end].to_string());
                rest = &rest[end..];
                word_w = ts.measure(face, pt, rest);
            }
            line.push_str(rest);
            line_w = word_w;
        }
        out.push(line);
    }
    out
}
