//! Helpers of fax_render.rs: render options, ink counts and bounding
//! boxes on a page, a striped test page, the sizes of a rendering.

use faxmta_fax::page::{Page, FAX_WIDTH};
use faxmta_fax::render::{CoverInfo, Paper, RenderOptions, Rendered, Resolution};

pub fn opts(res: Resolution, paper: Paper) -> RenderOptions {
    RenderOptions {
        resolution: res,
        paper,
        ..RenderOptions::default()
    }
}

pub fn with_cover(mut o: RenderOptions) -> RenderOptions {
    o.cover = Some(CoverInfo {
        number: "+1 555 123 4567".into(),
        note: "Please see the attached documents.\nCall me when they arrive.".into(),
        ..CoverInfo::default()
    });
    o
}

/// The black pixels in the rectangle [x0, x1) × [y0, y1).
pub fn ink(p: &Page, x0: u32, y0: u32, x1: u32, y1: u32) -> u64 {
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| p.get(x, y))
        .count() as u64
}

/// The smallest rectangle holding every black pixel: (x0, y0, x1, y1).
pub fn bbox(p: &Page) -> Option<(u32, u32, u32, u32)> {
    let rows: Vec<u32> = (0..p.height)
        .filter(|&y| p.row(y).iter().any(|&b| b != 0))
        .collect();
    let cols: Vec<u32> = (0..p.width)
        .filter(|&x| rows.iter().any(|&y| p.get(x, y)))
        .collect();
    Some((
        *cols.first()?,
        *rows.first()?,
        cols.last()? + 1,
        rows.last()? + 1,
    ))
}

pub fn tiff_page(rows: u32) -> Page {
    let mut p = Page::blank(FAX_WIDTH, rows, Resolution::Standard);
    for y in 10..rows - 10 {
        for x in (100..1600).step_by(3) {
            p.set(x, y, y % 7 < 3);
        }
    }
    p
}

pub fn assert_sizes(r: &Rendered, height: u32) {
    for (i, p) in r.all_pages().enumerate() {
        assert_eq!((p.width, p.height), (FAX_WIDTH, height), "page {}", i + 1);
        assert_eq!(p.bits.len(), p.stride() * height as usize);
    }
}

// ------------------------------------------------------------------ tests
