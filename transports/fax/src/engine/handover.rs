//! The record of a received fax that an engine made itself (the
//! simulated engine) and handed out, kept until the fax is acknowledged
//! ([`super::FaxEngine::acknowledge`]): `NAME.rx` beside `NAME.tif`, in
//! the format of the spool engine's `NAME.rx` ([`super::spool::control`]:
//! `called`, `caller`, `tsi`, `pages`, `duration`, `status`, `reason`,
//! `bad_rows`). It is written (synced) before the fax is handed out and
//! removed once its mails are queued; an engine started anew reads the
//! records left ([`pending`]) and hands those faxes out again.

use super::spool::control::{self, one_line, Control};
use super::spool::{files, incoming};
use super::{ReceivedFax, Reception};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where the record of a fax whose document is `document` is kept.
pub fn record_path(document: &Path) -> PathBuf {
    document.with_extension("rx")
}

/// Writes the record of `fax` (synced); its path, as the fax's `source`.
pub fn write(fax: &ReceivedFax) -> Result<String, files::FileError> {
    let (status, reason) = match &fax.status {
        Reception::Complete => ("ok", ""),
        Reception::Partial { reason } => ("partial", reason.as_str()),
        Reception::Failed { reason } => ("failed", reason.as_str()),
    };
    let mut text = String::from("# faxmta: a received fax not yet queued as mail\n");
    let mut put = |key: &str, value: &str| {
        if !value.is_empty() {
            text.push_str(&format!("{key}: {}\n", one_line(value)));
        }
    };
    put("called", fax.called.as_deref().unwrap_or(""));
    put("caller", fax.caller.as_deref().unwrap_or(""));
    put("tsi", &fax.remote_tsi);
    put("pages", &fax.pages.to_string());
    put("duration", &fax.duration.as_secs().to_string());
    put("status", status);
    put("reason", reason);
    if let Some(bad) = fax.bad_rows {
        put("bad_rows", &bad.to_string());
    }
    let path = record_path(&fax.document);
    files::write_atomic(&path, text.as_bytes())?;
    Ok(path.to_string_lossy().into_owned())
}

/// The faxes whose records are left in `dir` (not acknowledged before
/// the last stop), oldest name first. A record that cannot be read is
/// handed out as a failed reception naming the problem.
pub fn pending(dir: &Path) -> Vec<ReceivedFax> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new(); // not made yet
    };
    let mut records: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rx"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    records.sort();
    records.iter().map(|r| read(r)).collect()
}

fn read(record: &Path) -> ReceivedFax {
    let document = record.with_extension("tif");
    let received_at = std::fs::metadata(record)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    let parsed = files::read_control(record, control::MAX_CONTROL)
        .and_then(|t| Control::parse(&t))
        .and_then(|c| incoming::describe(&c, &document));
    let mut fax = parsed.unwrap_or_else(|reason| ReceivedFax {
        document: document.clone(),
        pages: 0,
        remote_tsi: String::new(),
        caller: None,
        called: None,
        duration: std::time::Duration::ZERO,
        status: Reception::Failed {
            reason: format!("the record {record:?}: {reason}"),
        },
        received_at,
        bad_rows: None,
        source: None,
    });
    fax.received_at = received_at;
    fax.source = Some(record.to_string_lossy().into_owned());
    tracing::info!(document = ?fax.document, pages = fax.pages, "a received fax not queued before the last stop is handed out again");
    fax
}

/// The fax is queued: its record goes.
pub fn remove(fax: &ReceivedFax) {
    if let Some(record) = &fax.source {
        if let Err(e) = files::remove_if_there(Path::new(record)) {
            tracing::warn!(
                "received fax {:?}: {e}; it may come again at the next start",
                fax.document
            );
        }
    }
}
