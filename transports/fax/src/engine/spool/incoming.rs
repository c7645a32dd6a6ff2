//! Received faxes from the board: complete pairs `NAME.tif` + `NAME.rx`
//! in `incoming`, taken oldest name first and copied (hard-linked where
//! the file system allows) into `received`. The pair stays in `incoming`
//! until the fax is acknowledged ([`acknowledge`]: its mails are queued);
//! until then it is not taken again, but after a restart it is.
//!
//! What is never taken: a name starting with `.` (a file being written),
//! a `NAME.tif` without its `NAME.rx` (the control file comes last), a
//! `NAME.rx` without its `NAME.tif` (left, with a warning, for someone to
//! look at). A pair whose control file cannot be read is still handed
//! out, as a failed reception naming the problem (and removed when
//! acknowledged, so it is not retried for ever).
//!
//! `NAME.rx` keys: `called` (or `did`, `dnis`), `caller` (or `ani`,
//! `cid`), `tsi`, `pages` (default: the TIFF's page count), `duration`
//! (seconds), `status` (`ok`, `partial`, `failed`), `reason`,
//! `bad_rows`. When it was received: the time of `NAME.rx`.

use super::control::{self, Control};
use super::{files, unique_name, SpoolSettings};
use crate::engine::{ReceivedFax, Reception};
use crate::tiff::{ReadLimits, TiffReader};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

/// Takes the first complete pair in `incoming` not in `handed` (handed
/// out, not yet acknowledged), if any; its name is added to `handed`.
pub fn take_next(
    settings: &SpoolSettings,
    sequence: &AtomicU64,
    handed: &mut HashSet<String>,
) -> Option<ReceivedFax> {
    for name in complete_pairs(&settings.incoming) {
        if handed.contains(&name) {
            continue;
        }
        match take(settings, sequence, &name) {
            Ok(fax) => {
                handed.insert(name);
                return Some(fax);
            }
            Err(e) => tracing::warn!("fax spool: cannot take {name:?} from incoming: {e}"),
        }
    }
    None
}

/// The `NAME`s of complete pairs, sorted.
pub fn complete_pairs(incoming: &Path) -> Vec<String> {
    let entries = match std::fs::read_dir(incoming) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!("fax spool: cannot read {incoming:?}: {e}");
            return Vec::new();
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| !n.starts_with('.'))
        .filter_map(|n| n.strip_suffix(".rx").map(str::to_owned))
        .filter(|stem| !stem.is_empty())
        .filter(|stem| {
            let there = incoming.join(format!("{stem}.tif")).is_file();
            if !there {
                tracing::debug!("fax spool: {stem}.rx in {incoming:?} has no {stem}.tif; left");
            }
            there
        })
        .collect();
    names.sort();
    names
}

/// The fax's mails are queued: its pair leaves `incoming` — the control
/// file first (a `NAME.tif` alone is never taken again).
pub fn acknowledge(settings: &SpoolSettings, name: &str) {
    for ext in ["rx", "tif"] {
        let path = settings.incoming.join(format!("{name}.{ext}"));
        if let Err(e) = files::remove_if_there(&path) {
            tracing::warn!("fax spool: {e}; the fax may come again at the next start");
        }
    }
}

/// Copies the pair `name` into `received` and reads it.
fn take(settings: &SpoolSettings, sequence: &AtomicU64, name: &str) -> Result<ReceivedFax, String> {
    let rx = settings.incoming.join(format!("{name}.rx"));
    let tif = settings.incoming.join(format!("{name}.tif"));
    let received_at = std::fs::metadata(&rx)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    // Read before moving: the text is what we hand out either way.
    let parsed = files::read_control(&rx, control::MAX_CONTROL).and_then(|t| Control::parse(&t));
    let stem = unique_name(sequence, name);
    let document = settings.received.join(format!("{stem}.tif"));
    files::make_dir(&settings.received).map_err(|e| e.to_string())?;
    // The source stays in incoming until acknowledged.
    files::link_or_copy(&tif, &document).map_err(|e| e.to_string())?;
    let kept_rx = settings.received.join(format!("{stem}.rx"));
    if let Err(e) = files::link_or_copy(&rx, &kept_rx) {
        tracing::warn!("fax spool: {e}; the control file is not kept beside the fax");
    }
    let fax = match parsed.and_then(|c| describe(&c, &document)) {
        Ok(mut fax) => {
            fax.received_at = received_at;
            fax
        }
        Err(reason) => ReceivedFax {
            document: document.clone(),
            pages: 0,
            remote_tsi: String::new(),
            caller: None,
            called: None,
            duration: Duration::ZERO,
            status: Reception::Failed {
                reason: format!("the board's control file {name}.rx: {reason}"),
            },
            received_at,
            bad_rows: None,
            source: None,
        },
    };
    let mut fax = fax;
    fax.source = Some(name.to_owned());
    tracing::info!(
        document = ?fax.document, pages = fax.pages, caller = ?fax.caller,
        called = ?fax.called, status = ?fax.status, "fax received from the board"
    );
    Ok(fax)
}

/// The fax described by `control`, its pages counted in `document` when
/// `pages` is not given (a document that cannot be read then makes it a
/// failed reception).
pub(crate) fn describe(control: &Control, document: &Path) -> Result<ReceivedFax, String> {
    let mut status = control::rx_status(control)?;
    let pages = match control.number("pages")? {
        Some(pages) => pages,
        None if matches!(status, Reception::Failed { .. }) => 0,
        None => count_pages(document).unwrap_or_else(|reason| {
            status = Reception::Failed { reason };
            0
        }),
    };
    let text = |keys: &[&str]| control.get(keys).map(str::to_owned);
    Ok(ReceivedFax {
        document: PathBuf::from(document),
        pages,
        remote_tsi: text(&["tsi"]).unwrap_or_default(),
        caller: text(&["caller", "ani", "cid"]),
        called: text(&["called", "did", "dnis"]),
        duration: control.seconds("duration")?.unwrap_or_default(),
        status,
        received_at: SystemTime::now(),
        bad_rows: control.number("bad_rows")?,
        source: None,
    })
}

fn count_pages(document: &Path) -> Result<u32, String> {
    let bytes = std::fs::read(document).map_err(|e| format!("cannot read {document:?}: {e}"))?;
    TiffReader::open(&bytes, &ReadLimits::default())
        .map(|r| r.page_count())
        .map_err(|e| format!("{document:?}: {e}"))
}
