//! The scheduler's reports: building a report for recipients of one
//! message and enqueuing it (synced) like any other message.

use super::Scheduler;
use crate::reports::{build_fax_report, build_report, Report, ReportItem, ReportKind};
use faxmta_queue::Envelope;

/// The client protocol of the mails made from a received fax (the
/// envelope's `client.protocol`): the scheduler remembers a failure of
/// these, and only of these, for zero retention.
pub const RECEIVED_FAX_PROTOCOL: &str = "fax";

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
}
