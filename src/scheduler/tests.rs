//! The scheduler's concurrency limits, with a transport that counts.

use super::*;
use crate::config::Config;
use faxmta_queue::{NewMessage, NewRecipient};
use faxmta_transport::{HopKind, Transport};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A transport that holds each job a while and records how many ran
/// at once, in all and per domain.
#[derive(Default)]
struct Counting {
    running: AtomicUsize,
    max: AtomicUsize,
    per_domain: Mutex<HashMap<String, (usize, usize)>>,
}

#[async_trait::async_trait]
impl Transport for Counting {
    fn name(&self) -> &'static str {
        "smtp"
    }
    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome> {
        let NextHop::Mx { domain } = job.next_hop else {
            panic!("unexpected hop");
        };
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        {
            let mut map = lock(&self.per_domain);
            let entry = map.entry(domain.clone()).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(entry.0);
        }
        // (A slow delivery, so that concurrent ones overlap: the test.)
        tokio::time::sleep(Duration::from_millis(100)).await;
        lock(&self.per_domain).entry(domain.clone()).or_default().0 -= 1;
        self.running.fetch_sub(1, Ordering::SeqCst);
        job.recipients
            .iter()
            .map(|r| {
                Outcome::local(
                    r.index,
                    Status::Delivered,
                    "test",
                    Reply::new(250, "2.0.0", "ok"),
                )
            })
            .collect()
    }
}

/// One outcome per recipient of `job`: `status` with `reply`.
fn every(job: &Job<'_>, status: Status, reply: Reply) -> Vec<Outcome> {
    job.recipients
        .iter()
        .map(|r| Outcome::local(r.index, status, "test", reply.clone()))
        .collect()
}

/// A scheduler over `store` whose every transport is `transport`.
fn scheduler(
    store: &Store,
    config: &Config,
    transport: Arc<dyn Transport>,
    concurrency: usize,
    destination_concurrency: usize,
) -> Arc<Scheduler> {
    let settings = Settings {
        retry: config.retry_policy(),
        delay_warning: 0,
        hostname: "mx.test".into(),
        concurrency,
        destination_concurrency,
        fax_reports: Default::default(),
        fax_history: Default::default(),
        lease: std::time::Duration::from_secs(300),
    };
    let mut transports = TransportTable::new();
    for kind in [HopKind::Local, HopKind::Smtp, HopKind::Lmtp, HopKind::Fax] {
        transports.register(kind, transport.clone());
    }
    Scheduler::new(
        store.clone(),
        Arc::new(Router::new(config)),
        settings,
        transports,
        Arc::new(Metrics::new()),
    )
}

/// Run 12 one-recipient messages, alternating two domains, through a
/// scheduler; return the most jobs seen at once, in all and per domain.
async fn run(
    concurrency: usize,
    per_destination: usize,
) -> (usize, HashMap<String, (usize, usize)>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = Config::parse(std::path::Path::new("t.toml"), "hostname = \"mx.test\"\n").unwrap();
    let counting = Arc::new(Counting::default());
    let scheduler = scheduler(
        &store,
        &config,
        counting.clone(),
        concurrency,
        per_destination,
    );
    for i in 0..12 {
        let domain = if i % 2 == 0 { "a.example" } else { "b.example" };
        let msg = NewMessage {
            sender: String::new(),
            recipients: vec![NewRecipient::new(format!("u{i}@{domain}"))],
            ..Default::default()
        };
        let id = store.new_id().unwrap();
        store
            .enqueue(id, msg, b"Subject: x\r\n\r\nx\r\n")
            .await
            .unwrap();
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(scheduler.run(stop_rx, Duration::from_secs(5)));
    for _ in 0..200 {
        if store.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    task.await.unwrap();
    assert!(store.is_empty(), "all 12 delivered");
    let per = lock(&counting.per_domain).clone();
    (counting.max.load(Ordering::SeqCst), per)
}

#[tokio::test]
async fn concurrency_is_bounded_per_destination() {
    let (max, per) = run(3, 1).await;
    assert_eq!(per["a.example"].1, 1, "{per:?}");
    assert_eq!(per["b.example"].1, 1, "{per:?}");
    assert_eq!(max, 2, "one per domain, two domains");
}

#[tokio::test]
async fn concurrency_is_bounded_in_all() {
    let (max, _) = run(3, 10).await;
    assert_eq!(max, 3, "the global limit is reached and never passed");
}

/// A transport that records each job's recipients and delivers them.
#[derive(Default)]
struct Recording(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl Transport for Recording {
    fn name(&self) -> &'static str {
        "smtp"
    }
    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome> {
        for r in job.recipients {
            lock(&self.0).push(r.address.clone());
        }
        every(&job, Status::Delivered, Reply::new(250, "2.0.0", "ok"))
    }
}

#[tokio::test]
async fn etrn_mail_is_held_without_attempts_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = Config::parse(
        std::path::Path::new("t.toml"),
        "[queue]\nlifetime = \"2h\"\n[[domain]]\nname = \"customer.test\"\nkind = \"etrn\"\n\
         release_from = [\"192.0.2.0/24\"]\nhosts = [\"127.0.0.3\"]\n",
    )
    .unwrap();
    let recording = Arc::new(Recording::default());
    let scheduler = scheduler(&store, &config, recording.clone(), 4, 4);
    // Not marked (as a report the server makes itself would be): the
    // scheduler holds it all the same.
    let msg = NewMessage {
        sender: String::new(),
        recipients: vec![NewRecipient::new("user@customer.test")],
        ..Default::default()
    };
    let id = store.new_id().unwrap();
    let env = store.enqueue(id.clone(), msg, b"x").await.unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(scheduler.run(stop_rx, Duration::from_secs(5)));
    let held = || {
        store
            .get(&id)
            .unwrap()
            .is_some_and(|e| e.recipients[0].etrn == Some(Etrn::Held))
    };
    for _ in 0..100 {
        if held() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = store.get(&id).unwrap().unwrap().recipients[0].clone();
    assert_eq!(r.etrn, Some(Etrn::Held));
    assert_eq!((r.attempts, r.state), (0, RcptState::Pending));
    assert_eq!(
        r.next_attempt,
        env.arrival + 7200,
        "looked at again at expiry"
    );
    assert!(lock(&recording.0).is_empty(), "attempted while held");

    let released = store.release_etrn(&["customer.test".into()]).unwrap();
    assert_eq!(released.released, 1);
    for _ in 0..100 {
        if store.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    task.await.unwrap();
    assert!(store.is_empty(), "delivered once released");
    assert_eq!(*lock(&recording.0), ["user@customer.test"]);
}

/// A transport that never finishes a delivery to `stuck.example` (a peer
/// that accepted TCP and went silent) and records and delivers the rest.
#[derive(Default)]
struct Stalling(Recording);

#[async_trait::async_trait]
impl Transport for Stalling {
    fn name(&self) -> &'static str {
        "smtp"
    }
    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome> {
        if matches!(job.next_hop, NextHop::Mx { domain } if domain == "stuck.example") {
            std::future::pending::<()>().await;
        }
        self.0.deliver(job).await
    }
}

#[tokio::test]
async fn a_stuck_destination_does_not_hold_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = Config::parse(std::path::Path::new("t.toml"), "hostname = \"mx.test\"\n").unwrap();
    let stalling = Arc::new(Stalling::default());
    let scheduler = scheduler(&store, &config, stalling.clone(), 3, 1);
    // The stuck destination's mail first: it is due before the rest.
    for (i, domain) in ["stuck.example"; 5]
        .iter()
        .chain(&["fast.example"; 3])
        .enumerate()
    {
        let msg = NewMessage {
            sender: String::new(),
            recipients: vec![NewRecipient::new(format!("u{i}@{domain}"))],
            ..Default::default()
        };
        let id = store.new_id().unwrap();
        store
            .enqueue(id, msg, b"Subject: x\r\n\r\nx\r\n")
            .await
            .unwrap();
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(scheduler.run(stop_rx, Duration::from_millis(100)));
    for _ in 0..100 {
        if lock(&stalling.0 .0).len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = lock(&stalling.0 .0).clone();
    let _ = stop_tx.send(true);
    task.await.unwrap();
    assert_eq!(
        delivered.len(),
        3,
        "the fast domain waited for the stuck one: {delivered:?}"
    );
    assert_eq!(store.len(), 5, "the stuck domain's mail stays queued");
}

/// A transport that counts the jobs started for each recipient and takes
/// a while over each.
#[derive(Default)]
struct Slow(Mutex<HashMap<String, usize>>);

#[async_trait::async_trait]
impl Transport for Slow {
    fn name(&self) -> &'static str {
        "smtp"
    }
    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome> {
        for r in job.recipients {
            *lock(&self.0).entry(r.address.clone()).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        every(&job, Status::Delivered, Reply::new(250, "2.0.0", "ok"))
    }
}

/// A delivery that outlasts its lease (a long fax call) renews it: the
/// message is not handed to a second delivery meanwhile, though a slot
/// is free and the scheduler looks again every second.
#[tokio::test]
async fn a_delivery_longer_than_its_lease_is_not_started_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = Config::parse(std::path::Path::new("t.toml"), "hostname = \"mx.test\"\n").unwrap();
    let slow = Arc::new(Slow::default());
    let mut scheduler = scheduler(&store, &config, slow.clone(), 2, 2);
    Arc::get_mut(&mut scheduler).expect("not shared yet").lease = Duration::from_millis(300);
    let msg = NewMessage {
        sender: String::new(),
        recipients: vec![NewRecipient::new("u@slow.example")],
        ..Default::default()
    };
    let id = store.new_id().unwrap();
    store
        .enqueue(id, msg, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(scheduler.run(stop_rx, Duration::from_secs(5)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !store.is_empty() {
        assert!(std::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    task.await.unwrap();
    assert_eq!(lock(&slow.0)["u@slow.example"], 1, "delivered twice");
}

/// A transport that refuses every recipient for good (550).
struct Refusing;

#[async_trait::async_trait]
impl Transport for Refusing {
    fn name(&self) -> &'static str {
        "smtp"
    }
    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome> {
        every(
            &job,
            Status::Failed,
            Reply::new(550, "5.1.1", "no such user"),
        )
    }
}

/// The long soak: a record of every failed message
/// kept 30 days grew the resident memory without bound under bounces.
/// Only a mail made from a received fax (zero retention needs it) is
/// remembered when it fails; a bounced SMTP mail is not.
#[tokio::test]
async fn only_failed_received_fax_mail_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = Config::parse(std::path::Path::new("t.toml"), "hostname = \"mx.test\"\n").unwrap();
    let scheduler = scheduler(&store, &config, Arc::new(Refusing), 2, 2);
    let mut ids = Vec::new();
    for protocol in ["ESMTP", crate::fax::retention::PROTOCOL] {
        let mut msg = NewMessage {
            sender: String::new(),
            recipients: vec![NewRecipient::new("u@gone.example")],
            ..Default::default()
        };
        msg.client.protocol = protocol.into();
        let id = store.new_id().unwrap();
        store
            .enqueue(id.clone(), msg, b"Subject: x\r\n\r\nx\r\n")
            .await
            .unwrap();
        ids.push(id);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(scheduler.run(stop_rx, Duration::from_secs(5)));
    for _ in 0..200 {
        if store.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    task.await.unwrap();
    assert!(store.is_empty(), "both failed and left the queue");
    assert!(
        !store.had_failure(&ids[0]).unwrap(),
        "a bounced SMTP mail is not remembered"
    );
    assert!(
        store.had_failure(&ids[1]).unwrap(),
        "a failed received-fax mail is remembered (zero retention)"
    );
}

/// A next hop whose kind has no transport in the table (a build without
/// it) defers its recipients with the reason: nothing is lost, nothing
/// bounced.
#[tokio::test]
async fn a_hop_without_a_transport_defers_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = Config::parse(std::path::Path::new("t.toml"), "hostname = \"mx.test\"\n").unwrap();
    let settings = Settings {
        retry: config.retry_policy(),
        delay_warning: 0,
        hostname: "mx.test".into(),
        concurrency: 2,
        destination_concurrency: 2,
        fax_reports: Default::default(),
        fax_history: Default::default(),
        lease: std::time::Duration::from_secs(300),
    };
    // Local only: the remote recipient's MX hop has no transport.
    let mut transports = TransportTable::new();
    transports.register(HopKind::Local, Arc::new(Refusing));
    let scheduler = Scheduler::new(
        store.clone(),
        Arc::new(Router::new(&config)),
        settings,
        transports,
        Arc::new(Metrics::new()),
    );
    let msg = NewMessage {
        sender: "a@mx.test".into(),
        recipients: vec![NewRecipient::new("u@remote.example")],
        ..Default::default()
    };
    let id = store.new_id().unwrap();
    store
        .enqueue(id.clone(), msg, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(scheduler.run(stop_rx, Duration::from_secs(5)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rcpt = loop {
        let env = store.get(&id).unwrap().expect("still queued");
        if env.recipients[0].attempts > 0 {
            break env.recipients[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "never attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = stop_tx.send(true);
    task.await.unwrap();
    assert_eq!(rcpt.state, RcptState::Deferred);
    let reply = rcpt.last_reply.expect("the reason");
    assert_eq!((reply.code, reply.status.as_str()), (451, "4.3.5"));
    assert!(reply.text.contains("no smtp transport"), "{reply}");
}
