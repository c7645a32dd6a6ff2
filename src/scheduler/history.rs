//! What the scheduler keeps of faxes that ended: for each fax recipient
//! sent or failed in an attempt, its record (the fax history), a usage
//! row for its sender (billing, with the sender's fax groups at the
//! time) and its document (the TIFF-F the transport handed back with
//! the outcome: transports never touch the store); and the hourly
//! pruning of everything the portal reads, received faxes included, by
//! `[fax] history_days` and `documents_days`.

use super::notify::RECEIVED_FAX_PROTOCOL;
use super::Scheduler;
use faxmta_queue::{Envelope, FaxRecord, RcptState, UsageRecord, USAGE_SENT};
use faxmta_transport::FaxDocument;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

impl Scheduler {
    /// Keep the fax recipients of `env` that just ended (sent or failed)
    /// in the fax history, with a usage row and their document (from
    /// `documents`, by recipient index); note a mail made from a received
    /// fax with a recipient that just failed (fax images' zero
    /// retention); and forget old records. Other mail's failures are not
    /// noted: a record for every bounce would grow the queue database's
    /// resident memory by ~250 bytes a bounce for as long as records are
    /// kept.
    pub(super) fn remember_faxes(
        &self,
        env: &Envelope,
        now: u64,
        documents: &HashMap<usize, FaxDocument>,
    ) {
        if env.client.protocol == RECEIVED_FAX_PROTOCOL
            && env
                .recipients
                .iter()
                .any(|r| r.state == RcptState::Failed && r.last_attempt == now)
        {
            if let Err(e) = self.store.record_failure(&env.id, now) {
                tracing::warn!("{}: cannot record the failure: {e}", env.id);
            }
        }
        let plan = self.plan();
        let mut groups = None;
        for (i, r) in env.recipients.iter().enumerate() {
            let (Some(progress), true) = (&r.fax, r.last_attempt == now) else {
                continue;
            };
            let outcome = match r.state {
                RcptState::Delivered => "sent",
                RcptState::Failed => "failed",
                _ => continue,
            };
            let record = FaxRecord {
                id: env.id.clone(),
                recipient: r.address.clone(),
                sender: env.sender.clone(),
                outcome: outcome.into(),
                arrival: env.arrival,
                finished: now,
                progress: progress.clone(),
                reply: r.last_reply.clone(),
            };
            if let Err(e) = self.store.record_fax(&record) {
                tracing::warn!("{}: cannot keep the fax in the history: {e}", env.id);
            }
            let groups = groups
                .get_or_insert_with(|| (plan.fax_history.groups)(&env.sender))
                .clone();
            let usage = UsageRecord {
                at: now,
                direction: USAGE_SENT.into(),
                user: env.sender.clone(),
                groups,
                number: progress.number.clone(),
                pages: progress.pages_sent,
                line_ms: progress.line_ms,
                outcome: outcome.into(),
                fax: env.id.clone(),
            };
            if let Err(e) = self.store.record_usage(&usage) {
                tracing::warn!("{}: cannot record the fax usage: {e}", env.id);
            }
            // `documents_days = 0`: none is kept.
            let keep_document = plan.fax_history.documents > 0;
            if let Some(document) = documents.get(&i).filter(|_| keep_document) {
                if let Err(e) = self
                    .store
                    .put_document(&record.document_key(), now, &document.0)
                {
                    tracing::warn!("{}: cannot keep the fax document: {e}", env.id);
                }
            }
        }
        // Pruning scans the trees: at most once an hour, not after every
        // delivery.
        static PRUNED: AtomicU64 = AtomicU64::new(0);
        let last = PRUNED.load(Ordering::Relaxed);
        if now < last + 3600
            || PRUNED
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let before = now.saturating_sub(plan.fax_history.keep);
        let documents_before = now.saturating_sub(plan.fax_history.documents);
        if let Err(e) = self
            .store
            .prune_fax_history(before)
            .and_then(|_| self.store.prune_failures(before))
            .and_then(|_| self.store.prune_broadcasts(before))
            .and_then(|_| self.store.prune_received(before))
            .and_then(|_| self.store.prune_usage(before))
            .and_then(|_| self.store.prune_documents(documents_before))
        {
            tracing::warn!("cannot prune the fax history: {e}");
        }
    }
}
