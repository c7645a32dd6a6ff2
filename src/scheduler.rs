//! The scheduler: takes due messages from the queue, routes their
//! recipients, runs the transports with bounded concurrency, and records
//! each recipient's outcome (transports never touch the store).
//!
//! For every recipient that ends in failure, the non-delivery report is
//! enqueued (and synced) *before* the failure is recorded, so a crash in
//! between repeats the report rather than losing it.

use crate::reports::{build_report, ReportItem, ReportKind};
use crate::router::{Route, Router};
use faxmta_queue::{
    format_duration, now_unix, Envelope, Notify, QueueId, RcptState, Reply, RetryPolicy, Store,
};
use faxmta_transports::{Job, JobRecipient, Outcome, Status, Transport};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Delivers what the queue holds.
pub struct Scheduler {
    store: Store,
    router: Arc<Router>,
    retry: RetryPolicy,
    /// Seconds after arrival when a delay warning is due; 0 = never.
    delay_warning: u64,
    hostname: String,
    local: Arc<dyn Transport>,
    slots: Arc<Semaphore>,
    inflight: Mutex<HashSet<QueueId>>,
}

impl Scheduler {
    pub fn new(
        store: Store,
        router: Arc<Router>,
        retry: RetryPolicy,
        delay_warning: u64,
        hostname: String,
        local: Arc<dyn Transport>,
        concurrency: usize,
    ) -> Arc<Self> {
        Arc::new(Scheduler {
            store,
            router,
            retry,
            delay_warning,
            hostname,
            local,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            inflight: Mutex::new(HashSet::new()),
        })
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, HashSet<QueueId>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run until `shutdown` turns true; then let running deliveries end
    /// (up to `grace`) and cut the rest, which are simply tried again
    /// after the restart.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut tasks = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = now_unix();
            for id in self.store.due(now, 1000) {
                if self.inflight().contains(&id) {
                    continue;
                }
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    break;
                };
                self.inflight().insert(id.clone());
                let me = self.clone();
                tasks.spawn(async move {
                    me.process(&id).await;
                    me.inflight().remove(&id);
                    drop(permit);
                });
            }
            let wait = match self.store.next_due() {
                Some(t) if t > now => Duration::from_secs(t - now).min(Duration::from_secs(60)),
                // Due but not started (no free slot, or already running):
                // a finishing task or a queue change wakes us earlier.
                Some(_) => Duration::from_secs(1),
                None => Duration::from_secs(60),
            };
            tokio::select! {
                _ = self.store.changed() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = shutdown.changed() => break,
            }
        }
        if !tasks.is_empty() {
            tracing::info!(
                "waiting up to {grace:?} for {} delivery task(s)",
                tasks.len()
            );
            let drained =
                tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
                    .await;
            if drained.is_err() {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
            }
        }
    }

    /// One delivery attempt for the due recipients of one message.
    async fn process(&self, id: &str) {
        let (env, body) = match (self.store.get(id), self.store.body(id)) {
            (Ok(Some(env)), Ok(Some(body))) => (env, body),
            (Ok(None), _) => return, // deleted meanwhile
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("{id}: cannot read from the queue: {e}");
                return;
            }
            (Ok(Some(_)), Ok(None)) => {
                tracing::error!(
                    "{id}: envelope without body in the queue; message left for the administrator"
                );
                return;
            }
        };
        let now = now_unix();
        let due: Vec<usize> = env
            .active()
            .filter(|(_, r)| r.next_attempt <= now)
            .map(|(i, _)| i)
            .collect();
        if env.held || due.is_empty() {
            return;
        }
        let mut outcomes = Vec::new();
        if self.retry.expired(now, env.arrival, env.lifetime) {
            for &i in &due {
                outcomes.push(self.expired(&env, i));
            }
        } else {
            let mut local = Vec::new();
            for &i in &due {
                let address = env.recipients[i].address.clone();
                match self.router.resolve(&address) {
                    Ok(Route::Maildir { mailbox }) => local.push(JobRecipient {
                        index: i,
                        address,
                        mailbox: Some(mailbox),
                    }),
                    Ok(Route::Remote { domain }) => outcomes.push(Outcome {
                        index: i,
                        status: Status::Deferred,
                        relay: "none".into(),
                        reply: Reply::new(
                            451,
                            "4.4.0",
                            format!("no transport for remote domain {domain}: outbound SMTP is not available in this version"),
                        ),
                    }),
                    Err(reply) => outcomes.push(Outcome {
                        index: i,
                        status: if reply.is_permanent() { Status::Failed } else { Status::Deferred },
                        relay: "none".into(),
                        reply,
                    }),
                }
            }
            if !local.is_empty() {
                let job = Job {
                    envelope: &env,
                    body: &body,
                    recipients: &local,
                };
                outcomes.extend(self.local.deliver(job).await);
            }
        }
        self.record(env, &body, outcomes, now).await;
    }

    fn expired(&self, env: &Envelope, i: usize) -> Outcome {
        let lifetime = env.lifetime.unwrap_or(self.retry.lifetime);
        let last = env.recipients[i]
            .last_reply
            .as_ref()
            .map(|r| format!("; last reply: {r}"))
            .unwrap_or_default();
        Outcome {
            index: i,
            status: Status::Failed,
            relay: env.recipients[i]
                .relay
                .clone()
                .unwrap_or_else(|| "none".into()),
            reply: Reply::new(
                554,
                "5.4.7",
                format!(
                    "message expired after {} in the queue{last}",
                    format_duration(lifetime)
                ),
            ),
        }
    }

    /// Apply outcomes: reports first, then the new recipient states.
    async fn record(&self, env: Envelope, body: &[u8], outcomes: Vec<Outcome>, now: u64) {
        let mut updated = env.clone();
        let mut failed = Vec::new();
        let mut delivered = Vec::new();
        for mut o in outcomes {
            let Some(r) = updated.recipients.get_mut(o.index) else {
                continue;
            };
            r.attempts += 1;
            r.last_attempt = now;
            r.relay = Some(o.relay.clone());
            if o.status == Status::Deferred {
                match self
                    .retry
                    .next_attempt(now, env.arrival, r.attempts, env.lifetime)
                {
                    Some(next) => {
                        r.state = RcptState::Deferred;
                        r.next_attempt = next;
                    }
                    None => {
                        r.last_reply = Some(o.reply.clone());
                        o = self.expired(&updated, o.index);
                    }
                }
            }
            let r = &mut updated.recipients[o.index];
            r.last_reply = Some(o.reply.clone());
            match o.status {
                Status::Delivered => {
                    r.state = RcptState::Delivered;
                    delivered.push(o.index);
                }
                Status::Failed => {
                    r.state = RcptState::Failed;
                    failed.push(o.index);
                }
                Status::Deferred => {}
            }
            let delay = now.saturating_sub(env.arrival);
            let word = o.status.log_word();
            tracing::info!(
                "{}: to=<{}>, relay={}, delay={delay}, dsn={}, status={word} ({})",
                env.id,
                r.address,
                o.relay,
                o.reply.status,
                o.reply.text
            );
        }

        // Reports before states: if the report cannot be queued, the
        // recipient stays deferred and the report is tried again later.
        if !failed.is_empty()
            && !self
                .send_report(ReportKind::Failure, &updated, body, &failed, now)
                .await
        {
            for &i in &failed {
                let r = &mut updated.recipients[i];
                r.state = RcptState::Deferred;
                r.next_attempt = now + self.retry.interval(1);
            }
        }
        // One delay warning per recipient, once the message waited long enough.
        if self.delay_warning > 0 && now.saturating_sub(env.arrival) >= self.delay_warning {
            let late: Vec<usize> = updated
                .active()
                .filter(|(_, r)| !r.delay_warned && r.attempts > 0 && Notify::wants_delay(r.notify))
                .map(|(i, _)| i)
                .collect();
            if !late.is_empty()
                && self
                    .send_report(ReportKind::Delay, &updated, body, &late, now)
                    .await
            {
                for i in late {
                    updated.recipients[i].delay_warned = true;
                }
            }
        }
        let wanted: Vec<usize> = delivered
            .into_iter()
            .filter(|&i| Notify::wants_success(updated.recipients[i].notify))
            .collect();
        if !wanted.is_empty() {
            // A lost success notice is not worth a redelivery: no rollback.
            self.send_report(ReportKind::Success, &updated, body, &wanted, now)
                .await;
        }

        let saved = self.store.update(&env.id, |current| {
            current.recipients = updated.recipients.clone();
        });
        match saved {
            Ok(Some(e)) if e.is_done() => tracing::info!("{}: removed", env.id),
            Ok(_) => {}
            Err(e) => tracing::error!("{}: cannot record delivery results: {e}", env.id),
        }
        // Make the result durable (shared with other syncs), so that a
        // crash right after a delivery rarely repeats it.
        if let Err(e) = self.store.sync().await {
            tracing::error!("{}: cannot sync delivery results: {e}", env.id);
        }
    }

    /// Build and enqueue a report; true when it is safely queued (or none
    /// is due: null sender, NOTIFY=NEVER).
    async fn send_report(
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
                    will_retry_until: (kind == ReportKind::Delay)
                        .then(|| env.arrival + env.lifetime.unwrap_or(self.retry.lifetime)),
                })
            })
            .collect();
        let Some(report) = build_report(kind, &self.hostname, env, body, &items, now) else {
            return true;
        };
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
                let what = match kind {
                    ReportKind::Failure => "non-delivery",
                    ReportKind::Delay => "delay",
                    ReportKind::Success | ReportKind::Relayed => "success",
                };
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
