//! The status call (`GET /restservice/status/ID`, `/fax/status/ID`): the
//! state of the fax of a transaction (`QUEUEID-N`: recipient N of a
//! message), of all faxes of a message (its queue id) or of a broadcast
//! (all its transactions), from the queue while they are in it and from
//! the fax history once they are done. A fax of the queue with an attempt
//! under way (or just ended) also has its live state (dialling, page N of
//! M) from the live board.

use super::reply::{ApiError, Code, FaxState, LiveFields, Status};
use crate::router::Router;
use faxmta_fax::live::LiveBoard;
use faxmta_queue::{split_transaction, Envelope, FaxProgress, FaxRecord, RcptState, Store};

/// Finished faxes looked through for an id.
const HISTORY: usize = 100_000;

fn reason(fax: &FaxProgress, reply: Option<&faxmta_queue::Reply>) -> String {
    match (fax.last.as_str(), fax.reason.as_str()) {
        ("", _) => reply.map(|r| r.text.clone()).unwrap_or_default(),
        (last, "") => last.to_string(),
        (last, why) => format!("{last}: {why}"),
    }
}

/// The fax recipients of a message in the queue (only recipient `only`,
/// counted from 1, when given); each one's transaction id is
/// `QUEUEID-N`.
fn queued(router: &Router, live: &LiveBoard, env: &Envelope, only: Option<usize>) -> Vec<FaxState> {
    env.recipients
        .iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|n| n == i + 1))
        .filter_map(|(i, r)| {
            let number = match (&r.fax, router.fax_number(&r.address)) {
                (Some(p), _) if !p.number.is_empty() => p.number.clone(),
                (_, Some(n)) => n,
                _ => return None,
            };
            let fax = r.fax.clone().unwrap_or_default();
            let state = match r.state {
                RcptState::Pending | RcptState::Deferred if env.held => "held",
                RcptState::Pending => "queued",
                RcptState::Deferred => "deferred",
                RcptState::Delivered => "sent",
                RcptState::Failed => "failed",
            };
            Some(FaxState {
                transaction_id: format!("{}-{}", env.id, i + 1),
                number,
                sender: env.sender.clone(),
                state: state.into(),
                pages_sent: fax.pages_sent,
                pages_total: fax.pages_total,
                calls: fax.calls,
                reason: reason(&fax, r.last_reply.as_ref()),
                live: live.get(&format!("{}/{i}", env.id)).map(|p| LiveFields {
                    live_state: serde_json::to_value(p.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    live_page: p.page,
                    live_since: p.since,
                    live_text: p.describe(),
                }),
            })
        })
        .collect()
}

fn finished(record: &FaxRecord, transaction_id: String) -> FaxState {
    FaxState {
        transaction_id,
        number: record.progress.number.clone(),
        sender: record.sender.clone(),
        state: record.outcome.clone(),
        pages_sent: record.progress.pages_sent,
        pages_total: record.progress.pages_total,
        calls: record.progress.calls,
        reason: reason(&record.progress, record.reply.as_ref()),
        live: None,
    }
}

fn unavailable(e: faxmta_queue::QueueError) -> ApiError {
    ApiError::new(
        Code::QueueUnavailable,
        format!("cannot read the queue: {e}"),
    )
}

/// The faxes of message `queue_id` (only its recipient `only`, counted
/// from 1, when given), from the queue and the fax history; empty:
/// unknown.
fn transaction(
    store: &Store,
    router: &Router,
    live: &LiveBoard,
    history: &[FaxRecord],
    queue_id: &str,
    only: Option<usize>,
) -> Result<Vec<FaxState>, ApiError> {
    let env = store.get(queue_id).map_err(unavailable)?;
    // The recipients in their order: from the message while it is
    // queued, else from its broadcast record.
    let addresses: Vec<String> = match &env {
        Some(env) => env.recipients.iter().map(|r| r.address.clone()).collect(),
        None => store
            .broadcast(&Store::broadcast_id(queue_id))
            .map_err(unavailable)?
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.recipient)
            .collect(),
    };
    let mut out = match &env {
        Some(env) => queued(router, live, env, only),
        None => Vec::new(),
    };
    // A recipient that is done in the queue may already be in the history.
    for record in history.iter().filter(|r| r.id == queue_id) {
        let n = addresses
            .iter()
            .position(|a| *a == record.recipient)
            .map(|i| i + 1);
        if only.is_some() && n != only {
            continue;
        }
        // A message of an older version (one per number): its queue id.
        let id = match n {
            Some(n) => format!("{queue_id}-{n}"),
            None => queue_id.to_string(),
        };
        let state = finished(record, id);
        match out
            .iter_mut()
            .find(|f| f.transaction_id == state.transaction_id)
        {
            Some(f) => *f = state,
            None => out.push(state),
        }
    }
    Ok(out)
}

/// The answer for `id`: a broadcast (`B…`), a transaction
/// (`QUEUEID-N`) or a queue id (all its faxes). Runs on a blocking
/// thread: it reads sled.
pub fn lookup(
    store: &Store,
    router: &Router,
    live: &LiveBoard,
    id: &str,
) -> Result<Status, ApiError> {
    let history = store.fax_history(HISTORY).map_err(unavailable)?;
    if let Some(entries) = store.broadcast(id).map_err(unavailable)? {
        let mut faxes: Vec<FaxState> = Vec::new();
        for e in &entries {
            let (queue_id, n) = split_transaction(&e.transaction);
            let found = transaction(store, router, live, &history, queue_id, n)?;
            if found.is_empty() {
                // Neither queued nor in the history (pruned, or removed
                // by the administrator).
                faxes.push(FaxState {
                    transaction_id: e.transaction.clone(),
                    number: String::new(),
                    sender: String::new(),
                    state: "unknown".into(),
                    pages_sent: 0,
                    pages_total: 0,
                    calls: 0,
                    reason: "no longer in the queue or the fax history".into(),
                    live: None,
                });
            }
            for f in found {
                if !faxes.iter().any(|g| g.transaction_id == f.transaction_id) {
                    faxes.push(f);
                }
            }
        }
        return Ok(Status {
            broadcast_id: Some(id.to_string()),
            faxes,
        });
    }
    let (queue_id, n) = split_transaction(id);
    let faxes = transaction(store, router, live, &history, queue_id, n)?;
    if faxes.is_empty() {
        return Err(ApiError::new(
            Code::NotFound,
            format!("{id}: no fax or broadcast with this id"),
        ));
    }
    Ok(Status {
        broadcast_id: None,
        faxes,
    })
}
