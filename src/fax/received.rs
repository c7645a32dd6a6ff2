//! What is kept of a received fax once its mails are queued: its record
//! (the portal's inbox: time, numbers, TSI, pages, status, the addresses
//! it was routed to), a usage row per address (billing, with the user's
//! fax groups at the time) and its document (the TIFF as received) — in
//! the queue's store, so that every node of a cluster shows them. A
//! failure to write them is logged, never a reason to keep the fax from
//! its mail. Written again when a fax is handed over again (after a
//! crash), they replace the first ones.

use crate::config::Config;
use faxmta_fax::engine::{ReceivedFax, Reception};
use faxmta_queue::{ReceivedRecord, Store, UsageRecord, USAGE_RECEIVED};
use std::time::UNIX_EPOCH;

/// The key of a received fax's records: its image's file stem.
pub fn key(fax: &ReceivedFax) -> String {
    fax.document
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "fax".into())
}

/// `received`, `partial: REASON` or `failed: REASON`.
fn status(fax: &ReceivedFax) -> String {
    match &fax.status {
        Reception::Complete => "received".into(),
        Reception::Partial { reason } => format!("partial: {reason}"),
        Reception::Failed { reason } => format!("failed: {reason}"),
    }
}

/// Keep the record, the usage rows and (`image`) the document of `fax`,
/// routed to `recipients`, its mail `queue_id`.
pub fn remember(
    config: &Config,
    store: &Store,
    fax: &ReceivedFax,
    recipients: &[String],
    queue_id: Option<String>,
    image: Option<&[u8]>,
) {
    let at = fax
        .received_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let record = ReceivedRecord {
        key: key(fax),
        received_at: at,
        called: fax.called.clone().unwrap_or_default(),
        caller: fax.caller.clone().unwrap_or_default(),
        remote_tsi: fax.remote_tsi.clone(),
        pages: fax.pages,
        duration_ms: fax.duration.as_millis().min(u128::from(u64::MAX)) as u64,
        status: status(fax),
        recipients: recipients.to_vec(),
        queue_id,
    };
    let what = &record.key;
    if let Err(e) = store.record_received(&record) {
        tracing::warn!("received fax {what}: cannot keep its record: {e}");
    }
    let directory = config.fax.policy().directory;
    // One row per address it went to; one for nobody when it went
    // nowhere (the line time was used all the same).
    let users: Vec<&str> = match recipients {
        [] => vec![""],
        some => some.iter().map(String::as_str).collect(),
    };
    for user in users {
        let usage = UsageRecord {
            at,
            direction: USAGE_RECEIVED.into(),
            user: user.to_string(),
            groups: directory.lookup(user).map(|u| u.groups).unwrap_or_default(),
            number: record.called.clone(),
            pages: record.pages,
            line_ms: record.duration_ms,
            outcome: record.status.clone(),
            fax: record.key.clone(),
        };
        if let Err(e) = store.record_usage(&usage) {
            tracing::warn!("received fax {what}: cannot record its usage: {e}");
        }
    }
    // `documents_days = 0`: none is kept.
    if let Some(image) = image.filter(|_| config.fax.documents_days > 0) {
        if let Err(e) = store.put_document(&record.document_key(), at, image) {
            tracing::warn!("received fax {what}: cannot keep its document: {e}");
        }
    }
}
