//! The scheduler's reports: building a report for recipients of one
//! message and enqueuing it (synced) like any other message.

use super::Scheduler;
use crate::reports::{build_fax_report, build_report, Report, ReportItem, ReportKind};
use faxmta_queue::{Envelope, FaxRecord, RcptState};

/// The client protocol of the mails made from a received fax (the
/// envelope's `client.protocol`): the scheduler remembers a failure of
/// these, and only of these, for zero retention.
pub const RECEIVED_FAX_PROTOCOL: &str = "fax";

/// How long finished faxes stay in `faxmta fax status`.
const FAX_HISTORY: u64 = 30 * 86_400;

impl Scheduler {
    /// Build and enqueue a report; true when it is safely queued (or none
    /// is due: null sender, NOTIFY=NEVER).
    pub(super) async fn send_report(
        &self,
        kind: ReportKind,
        env: &Envelope,
        body: &[u8],
        indexes: &[usize],
        now: u64,
    ) -> bool {
        let items: Vec<ReportItem<'_>> = indexes
            .iter()
            .filter_map(|&i| {
                let r = &env.recipients[i];
                Some(ReportItem {
                    recipient: r,
                    reply: r.last_reply.as_ref()?,
                    remote_mta: r
                        .relay
                        .as_deref()
                        .filter(|relay| relay.contains('['))
                        .and_then(|relay| relay.split('[').next()),
                    will_retry_until: (kind == ReportKind::Delay).then(|| {
                        env.arrival + env.lifetime_of(i).unwrap_or(self.plan().retry.lifetime)
                    }),
                })
            })
            .collect();
        let Some(report) = build_report(kind, &self.plan().hostname, env, body, &items, now) else {
            return true;
        };
        let what = match kind {
            ReportKind::Failure => "non-delivery",
            ReportKind::Delay => "delay",
            ReportKind::Success | ReportKind::Relayed => "success",
        };
        self.enqueue_report(env, report, what).await
    }

    /// A fax report (sent or failed) for fax recipients; true when it is
    /// safely queued or none is due.
    pub(super) async fn send_fax_report(
        &self,
        kind: ReportKind,
        env: &Envelope,
        body: &[u8],
        indexes: &[usize],
        now: u64,
    ) -> bool {
        let items: Vec<ReportItem<'_>> = indexes
            .iter()
            .filter_map(|&i| {
                let r = &env.recipients[i];
                Some(ReportItem {
                    recipient: r,
                    reply: r.last_reply.as_ref()?,
                    remote_mta: None,
                    will_retry_until: None,
                })
            })
            .collect();
        let always = kind == ReportKind::Success && self.plan().fax_reports.success;
        let build = |first_page| {
            build_fax_report(
                kind,
                &self.plan().hostname,
                env,
                body,
                &items,
                first_page,
                always,
                now,
            )
        };
        // No report due (null sender, not asked for): nothing to render.
        let Some(mut report) = build(None) else {
            return true;
        };
        // The first page as a picture: rendering is CPU work, off the
        // scheduler's thread; without a picture the report goes as it is.
        // Not for a message that could not be rendered: that would only
        // run into the same limit again.
        let unrenderable = indexes.iter().any(|&i| {
            env.recipients[i]
                .fax
                .as_ref()
                .is_some_and(|f| f.last.starts_with("render-"))
        });
        let first_page = self.plan().fax_reports.first_page.clone();
        if let Some(render) = first_page.filter(|_| !unrenderable) {
            let message = body.to_vec();
            let picture = tokio::task::spawn_blocking(move || render(&message))
                .await
                .ok()
                .flatten();
            if let Some(with_picture) = picture.and_then(|png| build(Some(png))) {
                report = with_picture;
            }
        }
        self.enqueue_report(env, report, "fax").await
    }

    /// Enqueue a built report; true when it is safely queued.
    /// `FAXMTA_FAILPOINT=report-enqueue-fails-once` makes the first one
    /// fail, as a full queue would (for the tests).
    async fn enqueue_report(&self, env: &Envelope, report: Report, what: &str) -> bool {
        static FAILED_ONCE: std::sync::atomic::AtomicBool =
            std::sync::atomic::AtomicBool::new(false);
        if std::env::var("FAXMTA_FAILPOINT").is_ok_and(|f| f == "report-enqueue-fails-once")
            && !FAILED_ONCE.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tracing::error!("{}: cannot queue a report: failpoint", env.id);
            return false;
        }
        let id = match self.store.new_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!("{}: cannot queue a report: {e}", env.id);
                return false;
            }
        };
        match self
            .store
            .enqueue(id.clone(), report.message, &report.body)
            .await
        {
            Ok(_) => {
                tracing::info!("{}: sender {what} notification: {id}", env.id);
                true
            }
            Err(e) => {
                tracing::error!("{}: cannot queue a report: {e}", env.id);
                false
            }
        }
    }

    /// Keep the fax recipients of `env` that just ended (sent or failed)
    /// in the fax history, note a mail made from a received fax with a
    /// recipient that just failed (fax images' zero retention), and
    /// forget old records. Other mail's failures are not noted: a record
    /// for every bounce would grow the queue database's resident memory
    /// by ~250 bytes a bounce for 30 days.
    pub(super) fn remember_faxes(&self, env: &Envelope, now: u64) {
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
        for r in &env.recipients {
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
        }
        // Pruning scans the trees: at most once an hour, not after every
        // delivery.
        static PRUNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let last = PRUNED.load(std::sync::atomic::Ordering::Relaxed);
        if now < last + 3600
            || PRUNED
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let before = now.saturating_sub(FAX_HISTORY);
        if let Err(e) = self
            .store
            .prune_fax_history(before)
            .and_then(|_| self.store.prune_failures(before))
            .and_then(|_| self.store.prune_broadcasts(before))
        {
            tracing::warn!("cannot prune the fax history: {e}");
        }
    }
}
