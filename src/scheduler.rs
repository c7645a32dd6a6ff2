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
    format_duration, now_unix, Envelope, Etrn, Lease, Notify, QueueError, RcptState, Reply,
    RetryPolicy, Store,
};
use faxmta_transport::{Job, JobRecipient, NextHop, Outcome, Status, TransportTable};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Seconds before a message is looked at again when the store could not
/// be read or written for it.
const STORE_TROUBLE_PAUSE: u64 = 10;

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
    /// What is kept of finished faxes, and for how long.
    pub fax_history: FaxHistory,
    /// How long a delivery leases its message (`[queue] lease_time`);
    /// the lease is renewed every third of that while the delivery runs
    /// (a fax call may last longer) and ended with it. On a shared queue,
    /// how long a dead node's deliveries wait before another node takes
    /// them.
    pub lease: Duration,
}

/// What a fax recipient's sender is told besides the usual DSN rules.
#[derive(Clone, Default)]
pub struct FaxReports {
    /// A report for every fax sent, not only on NOTIFY=SUCCESS.
    pub success: bool,
    /// Makes a PNG of a message's first fax page for the reports.
    pub first_page: Option<Arc<FirstPage>>,
}

/// What the scheduler keeps of a finished fax (its record, a usage row
/// per recipient, its document), and for how long (`[fax]
/// history_days`, `documents_days`).
#[derive(Clone)]
pub struct FaxHistory {
    /// Seconds records and usage rows are kept.
    pub keep: u64,
    /// Seconds documents are kept.
    pub documents: u64,
    /// A sender's fax groups (from the directory), for the usage rows.
    pub groups: Arc<GroupsOf>,
}

/// A user's address → its fax groups.
pub type GroupsOf = dyn Fn(&str) -> Vec<String> + Send + Sync;

impl Default for FaxHistory {
    fn default() -> FaxHistory {
        FaxHistory {
            keep: 400 * 86_400,
            documents: 90 * 86_400,
            groups: Arc::new(|_| Vec::new()),
        }
    }
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
    fax_history: FaxHistory,
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
            fax_history: settings.fax_history,
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
    /// How long a delivery leases its message (`[queue] lease_time`).
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
        let lease = settings.lease.max(Duration::from_secs(1));
        Arc::new(Scheduler {
            metrics,
            destinations: Destinations::new(store.clone(), settings.destination_concurrency),
            store,
            slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            plan: std::sync::RwLock::new(Arc::new(Plan::new(router, settings, transports))),
            lease,
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
            // Lines of parked messages whose destination has free slots
            // here (their woken messages may have gone to another node).
            self.destinations.wake_idle();
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

    /// The store could not be read for message `id`: not again at once
    /// (the store may be reopening).
    fn unreadable(&self, id: &str, e: &QueueError) {
        tracing::error!("{id}: cannot read from the queue: {e}");
        self.store.postpone(id, now_unix() + STORE_TROUBLE_PAUSE);
    }

    /// One delivery attempt for the due recipients of one message.
    async fn process(&self, id: &str) {
        let plan = self.plan();
        let env = match self.store.get(id) {
            Ok(Some(env)) => env,
            Ok(None) => return, // deleted meanwhile
            Err(e) => {
                self.unreadable(id, &e);
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
        // The content is read only now, and only when a delivery or a
        // report needs it: a message whose due recipients are all held
        // for ETRN is not read at all (a 30 MiB one would cost 30 MiB of
        // memory at each look).
        let body = if jobs.is_empty() && outcomes.is_empty() && self.late(&env, now).is_empty() {
            Vec::new()
        } else {
            match self.store.body(id) {
                Ok(Some(body)) => body,
                // Deleted since its envelope was read.
                Ok(None) if matches!(self.store.get(id), Ok(None)) => return,
                Ok(None) => {
                    // The content is gone (storage trouble or outside
                    // interference): say so to the sender rather than
                    // retry forever or drop the recipients silently.
                    tracing::error!("{id}: the message content is missing from the queue");
                    let lost =
                        Reply::new(554, "5.3.0", "the message content was lost from the queue");
                    let outcomes = env
                        .active()
                        .map(|(i, _)| Outcome::local(i, Status::Failed, "none", lost.clone()))
                        .collect();
                    self.record(env, &[], outcomes, &[], now_unix()).await;
                    return;
                }
                Err(e) => {
                    self.unreadable(id, &e);
                    return;
                }
            }
        };
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
}

mod destinations;
mod history;
mod notify;
#[cfg_attr(not(feature = "fax"), allow(unused_imports))] // used by src/fax/
pub use notify::RECEIVED_FAX_PROTOCOL;
mod record;
use destinations::{Destinations, Taken};
#[cfg(test)]
mod tests;
