//! The scheduler's concurrency limits, with a transport that counts.

use super::*;
use crate::config::Config;
use faxmta_queue::{NewMessage, NewRecipient};
use std::sync::atomic::{AtomicUsize, Ordering};

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
    let settings = Settings {
        retry: config.retry_policy(),
        delay_warning: 0,
        hostname: "mx.test".into(),
        concurrency,
        destination_concurrency: per_destination,
    };
    let transports = Transports {
        local: counting.clone(),
        smtp: counting.clone(),
        lmtp: counting.clone(),
    };
    let scheduler = Scheduler::new(
        store.clone(),
        Arc::new(Router::new(&config)),
        settings,
        transports,
        Arc::new(Metrics::new()),
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
