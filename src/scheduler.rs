//! The scheduler: takes due messages from the queue, routes their
//! recipients, runs the transports with bounded concurrency, and records
//! each recipient's outcome (transports never touch the store).
//!
//! For every recipient that ends in failure, the non-delivery report is
//! enqueued (and synced) *before* the failure is recorded, so a crash in
//! between repeats the report rather than losing it.
//!
//! A recipient in an ETRN domain that no ETRN released yet is held, not
//! attempted: it is marked held and its next attempt set to its expiry
//! time, so the scheduler does not look at it again until then — no busy
//! retries — and then it fails with the usual report. An ETRN release
//! (`QueueStore::release_etrn`) makes it due and released.

use crate::metrics::Metrics;
use crate::policy::fax::{may_fax, Asker};
use crate::reports::ReportKind;
use crate::router::{Route, Router};
use faxmta_queue::{
    format_duration, now_unix, Envelope, Etrn, Lease, Notify, RcptState, Reply, RetryPolicy, Store,
};
use faxmta_transport::{Job, JobRecipient, NextHop, Outcome, Status, TransportTable};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Seconds before a message is looked at again when the store could not
/// be read or written for it.
const STORE_TROUBLE_PAUSE: u64 = 10;

/// How long a message is leased to its delivery; the lease is renewed
/// every third of that while the delivery runs (a fax call may last
/// longer), and ended with it.
const LEASE: Duration = Duration::from_secs(300);

/// The scheduler's knobs, from `[queue]`.
pub struct Settings {
    pub retry: RetryPolicy,
    /// Seconds after arrival when a delay warning is due; 0 = never.
    pub delay_warning: u64,
    /// Our name in reports.
    pub hostname: String,
    /// Deliveries at once, in all.
    pub concurrency: usize,
    /// Deliveries at once to one destination (domain, relay hop or LMTP
    /// server).
    pub destination_concurrency: usize,
    pub fax_reports: FaxReports,
}

/// What a fax recipient's sender is told besides the usual DSN rules.
#[derive(Clone, Default)]
pub struct FaxReports {
    /// A report for every fax sent, not only on NOTIFY=SUCCESS.
    pub success: bool,
    /// Makes a PNG of a message's first fax page for the reports.
    pub first_page: Option<Arc<FirstPage>>,
}

/// A message's octets → its first fax page as a PNG.
pub type FirstPage = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

/// What a reload may change: the domain table, the retry schedule, the
/// reports' settings and the transports (a delivery takes the plan that
/// stands when it starts and keeps it to its end).
pub struct Plan {
    router: Arc<Router>,
    retry: RetryPolicy,
    delay_warning: u64,
    hostname: String,
    transports: TransportTable,
    fax_reports: FaxReports,
}

impl Plan {
    fn new(router: Arc<Router>, settings: Settings, transports: TransportTable) -> Plan {
        Plan {
            router,
            retry: settings.retry,
            delay_warning: settings.delay_warning,
            hostname: settings.hostname,
            transports,
            fax_reports: settings.fax_reports,
        }
    }
}

/// Delivers what the queue holds.
pub struct Scheduler {
    store: Store,
    plan: std::sync::RwLock<Arc<Plan>>,
    slots: Arc<Semaphore>,
    destinations: Arc<Destinations>,
    metrics: Arc<Metrics>,
    /// How long a delivery leases its message ([`LEASE`]).
    lease: Duration,
}

impl Scheduler {
    pub fn new(
        store: Store,
        router: Arc<Router>,
        settings: Settings,
        transports: TransportTable,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Scheduler {
            metrics,
            destinations: Destinations::new(store.clone(), settings.destination_concurrency),
            store,
            slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            plan: std::sync::RwLock::new(Arc::new(Plan::new(router, settings, transports))),
            lease: LEASE,
        })
    }

    /// A reload: deliveries that start from now on use the new domain
    /// table, retry schedule and transports; running ones finish with
    /// theirs. (`concurrency` and `destination_concurrency` stay as they
    /// were at start.)
    pub fn reconfigure(&self, router: Arc<Router>, settings: Settings, transports: TransportTable) {
        let plan = Arc::new(Plan::new(router, settings, transports));
        *self.plan.write().unwrap_or_else(|e| e.into_inner()) = plan;
    }

    /// The plan that stands now.
    fn plan(&self) -> Arc<Plan> {
        self.plan.read().unwrap_or_else(|e| e.into_inner()).clone()
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
            // As many as there are free slots; a message being delivered
            // is leased, and not handed out again.
            let free = self.slots.available_permits();
            let leases = match self.store.lease_due(now, free, self.lease).await {
                Ok(leases) => leases,
                Err(e) => {
                    tracing::error!("cannot take due messages from the queue: {e}");
                    Vec::new()
                }
            };
            for lease in leases {
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    self.store.end_lease(lease);
                    continue;
                };
                let me = self.clone();
                tasks.spawn(async move {
                    me.deliver_leased(lease).await;
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

    /// [`Scheduler::process`] for a leased message, renewing the lease
    /// while it runs; the lease ends with it.
    async fn deliver_leased(&self, lease: Lease) {
        let id = lease.id().clone();
        let work = self.process(&id);
        tokio::pin!(work);
        let every = self.lease / 3;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                () = &mut work => break,
                _ = renew.tick() => match self.store.renew_lease(&lease, self.lease).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("{id}: the delivery outlived its lease"),
                    Err(e) => tracing::warn!("{id}: cannot renew the lease: {e}"),
                },
            }
        }
        self.store.end_lease(lease);
    }

    /// One delivery attempt for the due recipients of one message.
    async fn process(&self, id: &str) {
        let plan = self.plan();
        let (env, body) = match (self.store.get(id), self.store.body(id)) {
            (Ok(Some(env)), Ok(Some(body))) => (env, body),
            (Ok(None), _) => return, // deleted meanwhile
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("{id}: cannot read from the queue: {e}");
                // Not again at once (the store may be reopening).
                self.store.postpone(id, now_unix() + STORE_TROUBLE_PAUSE);
                return;
            }
            (Ok(Some(env)), Ok(None)) => {
                // The content is gone (storage trouble or outside
                // interference): say so to the sender rather than retry
                // forever or drop the recipients silently.
                tracing::error!("{id}: the message content is missing from the queue");
                let lost = Reply::new(554, "5.3.0", "the message content was lost from the queue");
                let outcomes = env
                    .active()
                    .map(|(i, _)| Outcome::local(i, Status::Failed, "none", lost.clone()))
                    .collect();
                self.record(env, &[], outcomes, &[], now_unix()).await;
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
        // Recipients whose failure is decided but whose report could not
        // be queued: only the report is tried again (the same outcome),
        // never the delivery — a fax number is not dialled again.
        let (pending, due): (Vec<usize>, Vec<usize>) = due
            .into_iter()
            .partition(|&i| env.recipients[i].report_pending);
        for &i in &pending {
            let r = &env.recipients[i];
            let reply = r
                .last_reply
                .clone()
                .unwrap_or_else(|| Reply::new(554, "5.0.0", "delivery failed"));
            let relay = r.relay.clone().unwrap_or_else(|| "none".into());
            outcomes.push(Outcome {
                fax: r.fax.clone(),
                ..Outcome::local(i, Status::Failed, relay, reply)
            });
        }
        // Each recipient's lifetime: its own, the message's or the queue's.
        let (gone, due): (Vec<usize>, Vec<usize>) = due
            .into_iter()
            .partition(|&i| plan.retry.expired(now, env.arrival, env.lifetime_of(i)));
        for &i in &gone {
            outcomes.push(self.expired(&env, i));
        }
        // Group the due recipients by next hop: one job per hop.
        let mut jobs: Vec<(NextHop, Vec<JobRecipient>)> = Vec::new();
        // Recipients of ETRN domains not released yet: held, not attempted.
        let mut holds = Vec::new();
        for &i in &due {
            let address = env.recipients[i].address.clone();
            let (hop, mailbox) = match plan.router.resolve(&address) {
                Ok(Route::Maildir { mailbox }) => (NextHop::Local, Some(mailbox)),
                Ok(Route::Remote { domain }) => (NextHop::Mx { domain }, None),
                Ok(Route::Relay { hop } | Route::Smarthost { hop, .. }) => {
                    (NextHop::Relay(hop), None)
                }
                Ok(Route::Lmtp { target }) => (NextHop::Lmtp(target), None),
                Ok(Route::BackupMx(route)) => (NextHop::BackupMx(route.hop), None),
                Ok(Route::Etrn(_)) if env.recipients[i].etrn != Some(Etrn::Released) => {
                    holds.push(i);
                    continue;
                }
                Ok(Route::Etrn(route)) => (route.hop, None),
                // Authorised again at delivery (a report to a fax address,
                // a directory changed since RCPT): refused → failed.
                Ok(Route::Fax(target)) => {
                    let login = env.client.auth_user.as_deref();
                    let sender = &env.sender;
                    match may_fax(&plan.router, &target, &Asker::trusted(sender, login)) {
                        Ok(sender) => (NextHop::Fax(target.hop_for(&sender)), None),
                        Err(reply) => {
                            outcomes.push(Outcome::local(i, Status::Failed, "none", reply));
                            continue;
                        }
                    }
                }
                Err(reply) => {
                    let status = if reply.is_permanent() {
                        Status::Failed
                    } else {
                        Status::Deferred
                    };
                    outcomes.push(Outcome::local(i, status, "none", reply));
                    continue;
                }
            };
            let rcpt = JobRecipient {
                index: i,
                address,
                mailbox,
            };
            match jobs.iter_mut().find(|(h, _)| *h == hop) {
                Some((_, list)) => list.push(rcpt),
                None => jobs.push((hop, vec![rcpt])),
            }
        }
        // A destination whose slots are all in use: its recipients wait,
        // parked, without holding this worker (see destinations.rs).
        let mut busy = None;
        for (hop, recipients) in &jobs {
            let _slot = match self.destinations.try_slot(hop) {
                Taken::Busy => {
                    busy.get_or_insert(hop);
                    continue;
                }
                Taken::Slot(slot) => Some(slot),
                Taken::Unlimited => None,
            };
            let Some(transport) = plan.transports.for_hop(hop) else {
                // The router only routes to kinds this build has; should
                // one be missing, the mail waits for a build that has it.
                let reply = Reply::new(
                    451,
                    "4.3.5",
                    format!("no {} transport in this build", hop.kind().name()),
                );
                for r in recipients {
                    outcomes.push(Outcome::local(
                        r.index,
                        Status::Deferred,
                        "none",
                        reply.clone(),
                    ));
                }
                continue;
            };
            let job = Job {
                envelope: &env,
                body: &body,
                recipients,
                next_hop: hop,
            };
            let active = self
                .metrics
                .deliveries_active
                .with_label_values(&[transport.name()]);
            active.inc();
            let results = transport.deliver(job).await;
            active.dec();
            for o in &results {
                let word = o.status.log_word();
                self.metrics
                    .deliveries
                    .with_label_values(&[transport.name(), word])
                    .inc();
                if o.status == Status::Delivered {
                    let delay = now_unix().saturating_sub(env.arrival) as f64;
                    self.metrics
                        .delivery_delay
                        .with_label_values(&[transport.name()])
                        .observe(delay);
                }
                if let (Some(fax), Status::Delivered | Status::Failed) = (&o.fax, o.status) {
                    let outcome = match o.status {
                        Status::Delivered => "sent",
                        _ => "failed",
                    };
                    self.metrics
                        .faxes
                        .with_label_values(&[outcome, &fax.last])
                        .inc();
                }
                if let Some(version) = &o.tls {
                    self.metrics.tls.with_label_values(&["out", version]).inc();
                }
            }
            outcomes.extend(results);
        }
        let id = env.id.clone();
        let quarantined: Vec<usize> = outcomes
            .iter()
            .filter(|o| o.quarantine)
            .map(|o| o.index)
            .collect();
        if !outcomes.is_empty() || !holds.is_empty() {
            self.record(env, &body, outcomes, &holds, now).await;
        }
        if !quarantined.is_empty() {
            self.quarantine(&id, &body, &quarantined).await;
        }
        if let Some(hop) = busy {
            self.destinations.park(&id, hop);
        }
    }

    /// Hold message `id` (its recipients `indexes` made a transport ask
    /// for it: a fax renderer that keeps crashing on it) so that it stops
    /// being tried, and tell the sender (a delay report with the reason).
    /// `faxmta queue release ID` tries it again.
    async fn quarantine(&self, id: &str, body: &[u8], indexes: &[usize]) {
        match self.store.hold(id) {
            Ok(true) => tracing::error!(
                "{id}: quarantined: held after repeated crashes while making its fax \
                 (faxmta queue release {id} tries it again)"
            ),
            Ok(false) => return,
            Err(e) => {
                tracing::error!("{id}: cannot quarantine (hold) the message: {e}");
                return;
            }
        }
        if let Ok(Some(env)) = self.store.get(id) {
            self.send_report(ReportKind::Delay, &env, body, indexes, now_unix())
                .await;
        }
    }

    fn expired(&self, env: &Envelope, i: usize) -> Outcome {
        let lifetime = env.lifetime_of(i).unwrap_or(self.plan().retry.lifetime);
        let r = &env.recipients[i];
        let last = match &r.last_reply {
            Some(reply) => format!("; last reply: {reply}"),
            None if r.etrn_held() => {
                let domain = r.address.rsplit_once('@').map_or("", |(_, d)| d);
                format!(", held for ETRN: no ETRN released {domain}")
            }
            None => String::new(),
        };
        Outcome::local(
            i,
            Status::Failed,
            env.recipients[i]
                .relay
                .clone()
                .unwrap_or_else(|| "none".into()),
            Reply::new(
                554,
                "5.4.7",
                format!(
                    "message expired after {} in the queue{last}",
                    format_duration(lifetime)
                ),
            ),
        )
    }

    /// Apply outcomes: reports first, then the new recipient states; and
    /// hold the recipients in `holds` (ETRN domains, not released).
    async fn record(
        &self,
        env: Envelope,
        body: &[u8],
        outcomes: Vec<Outcome>,
        holds: &[usize],
        started: u64,
    ) {
        // Retries count from the end of the attempt, not its start.
        let now = started.max(now_unix());
        let mut updated = env.clone();
        for &i in holds {
            // Looked at again only when it expires (or ETRN releases it).
            let expires = env.arrival + env.lifetime_of(i).unwrap_or(self.plan().retry.lifetime);
            let r = &mut updated.recipients[i];
            r.etrn = Some(Etrn::Held);
            r.next_attempt = expires.max(now);
            tracing::info!(
                "{}: to=<{}>, relay=none, delay={}, status=held (waiting for ETRN; expires in {})",
                env.id,
                r.address,
                now.saturating_sub(env.arrival),
                format_duration(expires.saturating_sub(now))
            );
        }
        let mut failed = Vec::new();
        let mut delivered = Vec::new();
        let mut relayed = Vec::new();
        for mut o in outcomes {
            let Some(r) = updated.recipients.get_mut(o.index) else {
                continue;
            };
            // A report tried again is not another attempt.
            if !r.report_pending {
                r.attempts += 1;
            }
            r.last_attempt = now;
            r.relay = Some(o.relay.clone());
            if let Some(fax) = o.fax.take() {
                r.fax = Some(fax);
            }
            if o.status == Status::Deferred {
                let lifetime = env.lifetime_of(o.index);
                // A transport's own interval (a busy fax line), within
                // the lifetime; else the queue's schedule.
                let own = o.retry_after.map(|after| now + after).filter(|&next| {
                    next < env.arrival + lifetime.unwrap_or(self.plan().retry.lifetime)
                });
                let next = match o.retry_after {
                    Some(_) => own,
                    None => self
                        .plan()
                        .retry
                        .next_attempt(now, env.arrival, r.attempts, lifetime),
                };
                match next {
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
            if r.etrn.is_some() {
                // Attempted: no longer waiting for ETRN.
                r.etrn = Some(Etrn::Released);
            }
            match o.status {
                Status::Delivered => {
                    r.state = RcptState::Delivered;
                    if o.relayed {
                        relayed.push(o.index);
                    } else if o.remote_mta.is_none() {
                        delivered.push(o.index);
                    }
                    // Else a remote host that does DSN took it, NOTIFY
                    // and all: any success notice is that host's to send
                    // (RFC 3461 §5.2.1), not ours.
                }
                Status::Failed => {
                    r.state = RcptState::Failed;
                    r.report_pending = false;
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
        // recipient stays deferred, marked `report_pending`, and only the
        // report is tried again later (its outcome stays as decided).
        // Fax recipients get fax reports (number, pages, calls).
        let (fax_failed, failed): (Vec<usize>, Vec<usize>) = failed
            .into_iter()
            .partition(|&i| updated.recipients[i].fax.is_some());
        let (fax_sent, delivered): (Vec<usize>, Vec<usize>) = delivered
            .into_iter()
            .partition(|&i| updated.recipients[i].fax.is_some());
        let mut unreported: Vec<usize> = Vec::new();
        if !failed.is_empty()
            && !self
                .send_report(ReportKind::Failure, &updated, body, &failed, now)
                .await
        {
            unreported.extend(&failed);
        }
        if !fax_failed.is_empty()
            && !self
                .send_fax_report(ReportKind::Failure, &updated, body, &fax_failed, now)
                .await
        {
            unreported.extend(&fax_failed);
        }
        if !fax_sent.is_empty() {
            // A lost notice is not worth a second fax.
            self.send_fax_report(ReportKind::Success, &updated, body, &fax_sent, now)
                .await;
        }
        {
            let failed = unreported;
            for &i in &failed {
                let r = &mut updated.recipients[i];
                r.state = RcptState::Deferred;
                r.report_pending = true;
                r.next_attempt = now + self.plan().retry.interval(1);
            }
        }
        // One delay warning per recipient, once the message waited long enough.
        if self.plan().delay_warning > 0
            && now.saturating_sub(env.arrival) >= self.plan().delay_warning
        {
            let late: Vec<usize> = updated
                .active()
                .filter(|(_, r)| {
                    !r.delay_warned
                        && !r.report_pending
                        && r.attempts > 0
                        && Notify::wants_delay(r.notify)
                })
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
        // Success notices (NOTIFY=SUCCESS): "delivered" when the final
        // hop was ours, "relayed" when the next hop could not take DSN
        // requests on (RFC 3461 §5.2.2); none when it could (above).
        // A lost notice is not worth a redelivery.
        for (kind, list) in [
            (ReportKind::Success, delivered),
            (ReportKind::Relayed, relayed),
        ] {
            let wanted: Vec<usize> = list
                .into_iter()
                .filter(|&i| Notify::wants_success(updated.recipients[i].notify))
                .collect();
            if !wanted.is_empty() {
                self.send_report(kind, &updated, body, &wanted, now).await;
            }
        }

        let saved = self.store.update(&env.id, |current| {
            let before = std::mem::replace(&mut current.recipients, updated.recipients.clone());
            // An ETRN that released a recipient while we decided to hold
            // it wins.
            for &i in holds {
                if before
                    .get(i)
                    .is_some_and(|r| r.etrn == Some(Etrn::Released))
                {
                    current.recipients[i] = before[i].clone();
                }
            }
        });
        self.remember_faxes(&updated, now);
        match saved {
            Ok(Some(e)) if e.is_done() => tracing::info!("{}: removed", env.id),
            Ok(_) => {}
            Err(e) => {
                // Delivered but not recorded (a full disk): it will be
                // attempted again — a duplicate rather than a loss —, but
                // not at once, or the peer would get it in a loop.
                tracing::error!("{}: cannot record delivery results: {e}", env.id);
                let attempts = env.recipients.iter().map(|r| r.attempts).max().unwrap_or(0);
                let pause = self.plan().retry.interval(attempts + 1);
                self.store
                    .postpone(&env.id, now + pause.max(STORE_TROUBLE_PAUSE));
            }
        }
        // Make the result durable (shared with other syncs), so that a
        // crash right after a delivery rarely repeats it.
        if let Err(e) = self.store.sync().await {
            tracing::error!("{}: cannot sync delivery results: {e}", env.id);
        }
    }
}

mod destinations;
mod notify;
use destinations::{Destinations, Taken};
#[cfg(test)]
mod tests;
