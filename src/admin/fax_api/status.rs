//! `GET /fax/status/ID`: the state of the faxes of a transaction (a
//! queue id) or of a broadcast (all its transactions), from the queue
//! while they are in it and from the fax history once they are done.

use super::reply::{ApiError, Code, FaxState, Status};
use crate::router::Router;
use faxmta_queue::{Envelope, FaxProgress, FaxRecord, RcptState, Store};

/// Finished faxes looked through for an id.
const HISTORY: usize = 100_000;

fn reason(fax: &FaxProgress, reply: Option<&faxmta_queue::Reply>) -> String {
    match (fax.last.as_str(), fax.reason.as_str()) {
        ("", _) => reply.map(|r| r.text.clone()).unwrap_or_default(),
        (last, "") => last.to_string(),
        (last, why) => format!("{last}: {why}"),
    }
}

/// The fax recipients of a message in the queue.
fn queued(router: &Router, env: &Envelope) -> Vec<FaxState> {
    env.recipients
        .iter()
        .filter_map(|r| {
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
                transaction_id: env.id.clone(),
                number,
                sender: env.sender.clone(),
                state: state.into(),
                pages_sent: fax.pages_sent,
                pages_total: fax.pages_total,
                calls: fax.calls,
                reason: reason(&fax, r.last_reply.as_ref()),
            })
        })
        .collect()
}

fn finished(record: &FaxRecord) -> FaxState {
    FaxState {
        transaction_id: record.id.clone(),
        number: record.progress.number.clone(),
        sender: record.sender.clone(),
        state: record.outcome.clone(),
        pages_sent: record.progress.pages_sent,
        pages_total: record.progress.pages_total,
        calls: record.progress.calls,
        reason: reason(&record.progress, record.reply.as_ref()),
    }
}

/// The state of one transaction; empty: unknown.
fn transaction(
    store: &Store,
    router: &Router,
    history: &[FaxRecord],
    id: &str,
) -> Result<Vec<FaxState>, ApiError> {
    let unavailable = |e: faxmta_queue::QueueError| {
        ApiError::new(
            Code::QueueUnavailable,
            format!("cannot read the queue: {e}"),
        )
    };
    let mut out = match store.get(id).map_err(unavailable)? {
        Some(env) => queued(router, &env),
        None => Vec::new(),
    };
    // A recipient that is done in the queue may already be in the history.
    for record in history.iter().filter(|r| r.id == id) {
        let state = finished(record);
        match out.iter_mut().find(|f| f.number == state.number) {
            Some(f) => *f = state,
            None => out.push(state),
        }
    }
    Ok(out)
}

/// The answer for `id` (runs on a blocking thread: it reads sled).
pub fn lookup(store: &Store, router: &Router, id: &str) -> Result<Status, ApiError> {
    let unavailable = |e: faxmta_queue::QueueError| {
        ApiError::new(
            Code::QueueUnavailable,
            format!("cannot read the queue: {e}"),
        )
    };
    let history = store.fax_history(HISTORY).map_err(unavailable)?;
    if let Some(ids) = store.broadcast(id).map_err(unavailable)? {
        let mut faxes = Vec::new();
        for t in &ids {
            let found = transaction(store, router, &history, t)?;
            if found.is_empty() {
                // Neither queued nor in the history (pruned, or removed
                // by the administrator).
                faxes.push(FaxState {
                    transaction_id: t.clone(),
                    number: String::new(),
                    sender: String::new(),
                    state: "unknown".into(),
                    pages_sent: 0,
                    pages_total: 0,
                    calls: 0,
                    reason: "no longer in the queue or the fax history".into(),
                });
            }
            faxes.extend(found);
        }
        return Ok(Status {
            broadcast_id: Some(id.to_string()),
            faxes,
        });
    }
    let faxes = transaction(store, router, &history, id)?;
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
