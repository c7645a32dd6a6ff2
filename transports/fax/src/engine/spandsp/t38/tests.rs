//! Tests of the T.38 terminal: two terminals back to back in memory (each
//! one's IFPs handed straight to the other, simulated 20 ms ticks), and
//! the document helpers the T.38 session tests share.

use super::*;
use crate::engine::spandsp::modem::{Job, T30_ERR_OK};
use crate::page::{Compression, Page, Resolution};
use crate::tiff::{read_tiff, write_tiff_f, TiffHeader};
use std::path::{Path, PathBuf};

/// A page of scattered black blocks and rules, different per `seed`.
pub(crate) fn test_page(seed: u64) -> Page {
    let mut page = Page::blank(1728, 1200, Resolution::Fine);
    let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) as u32
    };
    for _ in 0..400 {
        let (x0, y0) = (next() % 1700, next() % 1180);
        let (w, h) = (2 + next() % 24, 2 + next() % 16);
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                page.set(x, y, true);
            }
        }
    }
    for x in 0..1728 {
        page.set(x, 10 + (seed as u32 % 50), true);
    }
    page
}

/// A two-page TIFF-F document in `dir` and its pages.
pub(crate) fn document(dir: &Path) -> (PathBuf, Vec<Page>) {
    let pages = vec![test_page(1), test_page(2)];
    let path = dir.join("document.tif");
    write_tiff_f(&path, &pages, Compression::Mr, &TiffHeader::default())
        .unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
    (path, pages)
}

/// Every page of the received `file` equals `want`, pixel for pixel.
pub(crate) fn assert_received(file: &Path, want: &[Page]) {
    let got = read_tiff(file).unwrap_or_else(|e| panic!("reading {file:?}: {e}"));
    assert_eq!(got.len(), want.len(), "{file:?}: page count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let page = g
            .to_fax_page()
            .unwrap_or_else(|| panic!("{file:?}: page {} is not a fax page: {g:?}", i + 1));
        assert!(
            page == *w,
            "{file:?}: page {} differs: {page:?} vs {w:?}",
            i + 1
        );
    }
}

pub(crate) fn sender(file: &Path) -> Setup<'_> {
    Setup {
        calling: true,
        ident: "+1 555 0100",
        tag: c"t38-tx",
        job: Job::Send {
            file,
            first: 1,
            last: None,
            header: None,
        },
    }
}

pub(crate) fn receiver(file: &Path) -> Setup<'_> {
    Setup {
        calling: false,
        ident: "+1 555 0199",
        tag: c"t38-rx",
        job: Job::Receive { file },
    }
}

/// Moves `from`'s queued IFPs to `to`, numbering them from `seq`.
fn pass(from: &mut T38Terminal, to: &mut T38Terminal, seq: &mut u16, counts: &mut Vec<u32>) {
    for ifp in from.take_tx() {
        counts.push(ifp.count);
        to.rx_ifp(&ifp.data, *seq);
        *seq = seq.wrapping_add(1);
    }
}

/// Runs `caller` and `answerer` back to back (IFPs handed over directly,
/// simulated 20 ms ticks) until both have ended or 3 simulated minutes
/// passed; returns the repeat counts spandsp asked for.
fn back_to_back(caller: &mut T38Terminal, answerer: &mut T38Terminal) -> Vec<u32> {
    let (mut seq_a, mut seq_b) = (0u16, 0u16);
    let mut counts = Vec::new();
    let mut ticks = 0u32;
    while (caller.completion().is_none() || answerer.completion().is_none()) && ticks < 9000 {
        caller.send_timeout(160);
        answerer.send_timeout(160);
        pass(caller, answerer, &mut seq_a, &mut counts);
        pass(answerer, caller, &mut seq_b, &mut counts);
        ticks += 1;
    }
    counts
}

#[test]
fn engine_t38_back_to_back_two_pages_arrive_pixel_for_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pages) = document(dir.path());
    let rx_file = dir.path().join("received.tif");
    let params = T38Params::default();
    let mut caller = T38Terminal::new(&sender(&doc), &params).unwrap();
    let mut answerer = T38Terminal::new(&receiver(&rx_file), &params).unwrap();
    let counts = back_to_back(&mut caller, &mut answerer);
    assert_eq!(caller.completion(), Some(T30_ERR_OK), "caller");
    assert_eq!(answerer.completion(), Some(T30_ERR_OK), "answerer");
    assert_eq!(caller.stats().pages_tx, 2);
    assert_eq!(answerer.stats().pages_rx, 2);
    assert_eq!(caller.stats().bit_rate, 14_400);
    assert!(answerer.phase_d_count() >= 2);
    assert_eq!(caller.remote_ident(), "+1 555 0199");
    assert_eq!(answerer.remote_ident(), "+1 555 0100");
    // spandsp repeats indicators and end-of-data packets: the session
    // sends what it asks for.
    assert!(counts.iter().all(|&c| c >= 1));
    assert!(counts.iter().any(|&c| c > 1), "{counts:?}");
    drop(answerer);
    assert_received(&rx_file, &pages);
}

#[test]
fn engine_t38_max_bit_rate_9600_sends_with_v29() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pages) = document(dir.path());
    let rx_file = dir.path().join("received.tif");
    let params = T38Params {
        max_bit_rate: 9600,
        ..T38Params::default()
    };
    let mut caller = T38Terminal::new(&sender(&doc), &params).unwrap();
    let mut answerer = T38Terminal::new(&receiver(&rx_file), &params).unwrap();
    back_to_back(&mut caller, &mut answerer);
    assert_eq!(caller.completion(), Some(T30_ERR_OK));
    assert_eq!(caller.stats().bit_rate, 9600);
    drop(answerer);
    assert_received(&rx_file, &pages);
}

#[test]
fn engine_t38_bit_rate_limits_the_modems() {
    assert_eq!(
        supported_modems(14_400),
        ffi::T30_SUPPORT_V17 | ffi::T30_SUPPORT_V29 | ffi::T30_SUPPORT_V27TER
    );
    assert_eq!(
        supported_modems(9600),
        ffi::T30_SUPPORT_V29 | ffi::T30_SUPPORT_V27TER
    );
    assert_eq!(supported_modems(4800), ffi::T30_SUPPORT_V27TER);
}

#[test]
fn engine_t38_refuses_paths_spandsp_would_cut_and_stops_on_terminate() {
    let long = Path::new("/tmp").join("x".repeat(300));
    assert!(matches!(
        T38Terminal::new(&sender(&long), &T38Params::default()),
        Err(ModemError::PathTooLong { .. })
    ));
    let mut t = T38Terminal::new(
        &sender(Path::new("/nonexistent.tif")),
        &T38Params::default(),
    )
    .unwrap();
    t.send_timeout(160);
    // CNG goes out as an indicator at once.
    assert!(!t.take_tx().is_empty());
    t.terminate();
    assert!(t.completion().is_some());
}
