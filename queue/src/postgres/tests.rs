//! What the PostgreSQL backend does beyond the suite every backend runs
//! (`crate::tests`): several nodes on one database, the group commit,
//! durability across a crash of the database, the schema's version, and
//! the password kept out of every printout, old fax records searchable
//! after the migration that added the search.

use super::{PgSettings, PgStore};
use crate::envelope::{NewMessage, NewRecipient};
use crate::store::QueueStore;
use crate::tests::pg::Instance;
use crate::time::now_unix;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn settings(instance: &Instance, dir: &Path, node: &str) -> PgSettings {
    let mut s = PgSettings::new(&instance.url, &dir.join(format!("spool-{node}")));
    s.node = node.to_string();
    s
}

/// Node `node`, alive for one second after each heartbeat.
fn short_lived(instance: &Instance, dir: &Path, node: &str) -> PgStore {
    let mut s = settings(instance, dir, node);
    s.node_ttl = Duration::from_secs(1);
    PgStore::open(&s).unwrap()
}

fn message(rcpt: &str) -> NewMessage {
    NewMessage {
        sender: "sender@example.org".into(),
        recipients: vec![NewRecipient::new(rcpt)],
        ..Default::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn psql(instance: &Instance, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-d", &instance.url, "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Wait for `f` up to `secs`.
fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn two_nodes_asking_at_once_never_lease_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Instance::start(&dir.path().join("pg"));
    runtime().block_on(async {
        let a = PgStore::open(&settings(&pg, dir.path(), "a")).unwrap();
        let b = PgStore::open(&settings(&pg, dir.path(), "b")).unwrap();
        for _ in 0..40 {
            let id = QueueStore::new_id(&a).unwrap();
            QueueStore::enqueue(&a, id, message("r@x"), b"x")
                .await
                .unwrap();
        }
        let ttl = Duration::from_secs(60);
        let now = now_unix();
        let (la, lb) = tokio::join!(
            QueueStore::lease_due(&a, now, 30, ttl),
            QueueStore::lease_due(&b, now, 30, ttl)
        );
        let (la, lb) = (la.unwrap(), lb.unwrap());
        assert_eq!(la.len() + lb.len(), 40, "every message once");
        let ids_a: std::collections::HashSet<_> = la.iter().map(|l| l.id().clone()).collect();
        assert!(
            lb.iter().all(|l| !ids_a.contains(l.id())),
            "no message twice"
        );
        // Node b cannot renew or end a's lease.
        let theirs = &la[0];
        let forged = crate::store::Lease::new(theirs.id().clone(), theirs.token() + 100_000);
        assert!(!QueueStore::renew_lease(&b, &forged, ttl).await.unwrap());
    });
}

#[test]
fn a_dead_nodes_parked_messages_come_back_after_its_lease_time() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Instance::start(&dir.path().join("pg"));
    runtime().block_on(async {
        // Node a says it is alive for 6 s at each renewal (every 2 s): at
        // least 4 s after it dies, time enough for b to open under any
        // load before the check that the message is still parked.
        let mut s = settings(&pg, dir.path(), "a");
        s.node_ttl = Duration::from_secs(6);
        let a = PgStore::open(&s).unwrap();
        let id = QueueStore::new_id(&a).unwrap();
        QueueStore::enqueue(&a, id.clone(), message("r@x"), b"x")
            .await
            .unwrap();
        // Node a parks it for five minutes, then dies.
        assert!(QueueStore::postpone(&a, &id, now_unix() + 300));
        drop(a);
        let b = short_lived(&pg, dir.path(), "b");
        assert!(QueueStore::due(&b, now_unix(), 10).is_empty(), "parked");
        let back = tokio::task::spawn_blocking(move || {
            wait_until(15, || {
                QueueStore::due(&b, now_unix(), 10) == vec![id.clone()]
            })
        })
        .await
        .unwrap();
        assert!(back, "node b gives a's parked message back to the schedule");
    });
}

#[test]
fn the_rows_of_nodes_gone_for_a_day_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Instance::start(&dir.path().join("pg"));
    // The schema first (an open makes it), then two nodes that stopped:
    // one a day and an hour ago, one an hour ago.
    drop(short_lived(&pg, dir.path(), "first"));
    psql(
        &pg,
        "INSERT INTO faxmta_node (name, started, alive_until) VALUES \
         ('gone', now() - interval '2 days', now() - interval '25 hours'), \
         ('recent', now() - interval '2 hours', now() - interval '1 hour')",
    );
    let _b = short_lived(&pg, dir.path(), "b");
    let names = || {
        psql(
            &pg,
            "SELECT string_agg(name, ',' ORDER BY name) FROM faxmta_node",
        )
    };
    assert!(
        wait_until(15, || !names().split(',').any(|n| n == "gone")),
        "{}",
        names()
    );
    let left = names();
    assert!(left.split(',').any(|n| n == "recent"), "{left}");
    assert!(left.split(',').any(|n| n == "b"), "{left}");
}

#[test]
fn a_live_nodes_parked_messages_stay_parked() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Instance::start(&dir.path().join("pg"));
    runtime().block_on(async {
        let a = short_lived(&pg, dir.path(), "a");
        let b = short_lived(&pg, dir.path(), "b");
        let id = QueueStore::new_id(&a).unwrap();
        QueueStore::enqueue(&a, id.clone(), message("r@x"), b"x")
            .await
            .unwrap();
        assert!(QueueStore::postpone(&a, &id, now_unix() + 300));
        // Several of b's heartbeats later it is still parked.
        let b2 = b.clone();
        let kept = tokio::task::spawn_blocking(move || {
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                if !QueueStore::due(&b2, now_unix(), 10).is_empty() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            true
        })
        .await
        .unwrap();
        assert!(kept);
        drop(a);
    });
}

#[test]
fn concurrent_enqueues_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Instance::start(&dir.path().join("pg"));
    let store = PgStore::open(&settings(&pg, dir.path(), "a")).unwrap();
    // Hold every commit back until all messages wait for theirs.
    let mut locker = Command::new("psql")
        .args(["-X", "-q", "-d", &pg.url])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let stdin = locker.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        "BEGIN; LOCK TABLE queue_message IN EXCLUSIVE MODE; SELECT pg_sleep(0);"
    )
    .unwrap();
    stdin.flush().unwrap();
    assert!(wait_until(10, || {
        psql(
        &pg,
        "SELECT count(*) FROM pg_locks WHERE relation = 'queue_message'::regclass AND mode = 'ExclusiveLock' AND granted"
    ) == "1"
    }));
    let before = store.commit_stats();
    let rt = runtime();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let s = store.clone();
            rt.spawn(async move {
                let id = QueueStore::new_id(&s).unwrap();
                QueueStore::enqueue(&s, id, message("r@x"), b"body").await
            })
        })
        .collect();
    // All 64 are waiting: the first batch is blocked, the rest queued.
    assert!(wait_until(20, || store.commit_stats().2 >= before.2 + 64));
    writeln!(stdin, "COMMIT;").unwrap();
    stdin.flush().unwrap();
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    drop(locker.stdin.take());
    let _ = locker.wait();
    let after = store.commit_stats();
    let (batches, messages) = (after.0 - before.0, after.1 - before.1);
    assert_eq!(messages, 64);
    assert!(batches <= 3, "64 messages in {batches} commits");
    assert_eq!(QueueStore::len(&store), 64);
}

#[test]
fn an_acknowledged_message_survives_a_crash_of_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let pgdir = dir.path().join("pg");
    let pg = Instance::start(&pgdir);
    let ids = runtime().block_on(async {
        let store = PgStore::open(&settings(&pg, dir.path(), "a")).unwrap();
        let mut ids = Vec::new();
        for _ in 0..20 {
            let id = QueueStore::new_id(&store).unwrap();
            QueueStore::enqueue(&store, id.clone(), message("r@x"), b"kept")
                .await
                .unwrap();
            ids.push(id);
        }
        ids
    });
    // At once after the last acknowledgement: an immediate shutdown
    // loses whatever the write-ahead log did not flush.
    let status = Command::new(crate::tests::pg::script())
        .arg("restart")
        .arg(&pgdir)
        .status()
        .unwrap();
    assert!(status.success());
    let store = PgStore::open(&settings(&pg, dir.path(), "a")).unwrap();
    for id in &ids {
        assert_eq!(
            QueueStore::body(&store, id).unwrap().as_deref(),
            Some(&b"kept"[..]),
            "{id}"
        );
    }
}

#[test]
fn a_schema_from_a_newer_faxmta_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Instance::start(&dir.path().join("pg"));
    drop(PgStore::open(&settings(&pg, dir.path(), "a")).unwrap());
    psql(
        &pg,
        "INSERT INTO faxmta_schema (version, name) VALUES (999, 'future')",
    );
    let err = PgStore::open(&settings(&pg, dir.path(), "a"))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer faxmta"), "{err}");
}

#[test]
fn the_password_is_in_no_printout() {
    let mut s = PgSettings::new(
        "postgres://faxmta:urlsecret@db.example:5433/queue",
        Path::new("/var/spool/faxmta"),
    );
    s.password = Some("filesecret".into());
    for text in [format!("{s:?}"), s.display()] {
        assert!(
            !text.contains("urlsecret") && !text.contains("filesecret"),
            "{text}"
        );
        assert!(text.contains("db.example:5433/queue"), "{text}");
    }
    assert!(s.config().is_ok());
}

#[test]
fn fax_history_kept_before_migration_2_is_searchable_after_it() {
    use crate::envelope::FaxProgress;
    use crate::history::FaxRecord;
    use crate::query::FaxQuery;
    let dir = tempfile::tempdir().unwrap();
    let pg = Instance::start(&dir.path().join("pg"));
    // A database at schema version 1 with two old records: one readable,
    // one that no longer parses.
    let (version, name, sql) = super::schema::MIGRATIONS[0];
    psql(&pg, sql);
    psql(
        &pg,
        &format!(
            "CREATE TABLE faxmta_schema (version integer PRIMARY KEY, name text NOT NULL, \
             applied timestamptz NOT NULL DEFAULT now()); \
             INSERT INTO faxmta_schema (version, name) VALUES ({version}, '{name}')"
        ),
    );
    let old = FaxRecord {
        id: "0ABC".into(),
        recipient: "+15551234567@fax.test".into(),
        sender: "Alice@Example.test".into(),
        outcome: "sent".into(),
        arrival: 90,
        finished: 100,
        progress: FaxProgress {
            number: "+15551234567".into(),
            remote_csid: Some("Remote Co".into()),
            ..Default::default()
        },
        reply: None,
    };
    let json = serde_json::to_string(&old).unwrap().replace('\'', "''");
    psql(
        &pg,
        &format!(
            "INSERT INTO fax_history (finished, id, recipient, record) VALUES \
             (100, '0ABC', '+15551234567@fax.test', convert_to('{json}', 'UTF8')), \
             (200, '0DEF', 'x@fax.test', '\\xff00'::bytea)"
        ),
    );
    let store = PgStore::open(&settings(&pg, dir.path(), "a")).unwrap();
    let find = |query: FaxQuery| {
        store
            .fax_history_query(&FaxQuery { limit: 10, ..query })
            .unwrap()
            .records
    };
    let alice = FaxQuery {
        senders: Some(vec!["alice@example.test".into()]),
        ..Default::default()
    };
    assert_eq!(find(alice), std::slice::from_ref(&old));
    let csid = FaxQuery {
        text: Some("remote co".into()),
        ..Default::default()
    };
    assert_eq!(find(csid), std::slice::from_ref(&old));
    // The unreadable one is skipped, not fatal.
    assert_eq!(find(FaxQuery::default()), [old]);
}
