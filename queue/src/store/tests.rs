//! The store's unit tests: durability across reopen, group commit,
//! removal, orphans, the reopening after a write error, postponing.

use super::*;
use crate::envelope::{NewRecipient, RcptState};

fn message(rcpts: &[&str]) -> NewMessage {
    NewMessage {
        sender: "sender@example.org".into(),
        recipients: rcpts.iter().map(|r| NewRecipient::new(*r)).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn enqueue_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let store = Store::open(dir.path()).unwrap();
        id = store.new_id().unwrap();
        store
            .enqueue(
                id.clone(),
                message(&["a@x", "b@x"]),
                b"Subject: hi\r\n\r\nbody\r\n",
            )
            .await
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let env = store.get(&id).unwrap().unwrap();
    assert_eq!(env.recipients.len(), 2);
    assert_eq!(
        store.body(&id).unwrap().unwrap(),
        b"Subject: hi\r\n\r\nbody\r\n"
    );
    assert_eq!(store.due(now_unix() + 1, 10), vec![id]);
}

#[tokio::test]
async fn concurrent_enqueues_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = s.new_id().unwrap();
            s.enqueue(id, message(&["a@x"]), format!("body {i}").as_bytes())
                .await
                .unwrap()
                .id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    assert_eq!(store.len(), 50);
}

#[tokio::test]
async fn finished_messages_leave_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = store.new_id().unwrap();
    store
        .enqueue(id.clone(), message(&["a@x", "b@x"]), b"x")
        .await
        .unwrap();
    store
        .update(&id, |e| e.recipients[0].state = RcptState::Delivered)
        .unwrap()
        .unwrap();
    assert!(store.get(&id).unwrap().is_some());
    store
        .update(&id, |e| e.recipients[1].state = RcptState::Failed)
        .unwrap()
        .unwrap();
    assert!(store.get(&id).unwrap().is_none());
    store.sync().await.unwrap();
    assert!(store.body(&id).unwrap().is_none());
    assert!(store.due(u64::MAX, 10).is_empty());
}

#[tokio::test]
async fn a_poisoned_database_is_reopened_with_every_synced_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..3 {
        let id = store.new_id().unwrap();
        store
            .enqueue(id, message(&["a@x"]), format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    // What a write error of sled's leaves behind: the sync thread
    // reopens the database by itself, within its one-second tick.
    std::fs::write(dir.path().join("bodies/ORPHAN"), b"half").unwrap();
    store.inner.shared.broken.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.is_broken() {
        assert!(std::time::Instant::now() < deadline, "never reopened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!dir.path().join("bodies/ORPHAN").exists(), "read again");
    assert_eq!(store.len(), 3);
    assert_eq!(store.due(u64::MAX, 10).len(), 3, "index rebuilt");
    let id = store.new_id().unwrap();
    store
        .enqueue(id.clone(), message(&["b@x"]), b"after")
        .await
        .unwrap();
    assert_eq!(store.body(&id).unwrap().unwrap(), b"after");
}

#[tokio::test]
async fn postponing_moves_only_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = store.new_id().unwrap();
    store
        .enqueue(id.clone(), message(&["a@x"]), b"x")
        .await
        .unwrap();
    let now = now_unix();
    store.postpone(&id, now + 60);
    assert!(store.due(now + 1, 10).is_empty());
    assert_eq!(store.due(now + 60, 10), vec![id.clone()]);
    store.postpone("NOSUCHID", now);
    assert_eq!(store.due(u64::MAX, 10), vec![id.clone()]);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.due(now + 1, 10), vec![id], "the disk kept its time");
}

#[test]
fn orphan_bodies_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let id = store.new_id().unwrap();
        store
            .enqueue_blocking(id, message(&["a@x"]), b"kept")
            .unwrap();
    }
    std::fs::write(dir.path().join("bodies/ORPHAN"), b"half").unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.body("ORPHAN").unwrap().is_none());
    assert!(!dir.path().join("bodies/ORPHAN").exists());
    assert_eq!(store.len(), 1, "the committed message stays");
}

#[test]
fn a_corrupt_envelope_is_quarantined_and_the_rest_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad);
    {
        let store = Store::open(dir.path()).unwrap();
        good = store.new_id().unwrap();
        bad = store.new_id().unwrap();
        for id in [&good, &bad] {
            store
                .enqueue_blocking(id.clone(), message(&["a@x"]), id.as_bytes())
                .unwrap();
        }
    }
    {
        // Damage one record behind the store's back.
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("envelopes").unwrap();
        tree.insert(bad.as_bytes(), &b"{\"held\": tru"[..]).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.len(), 1);
    assert!(store.get(&good).unwrap().is_some());
    assert!(store.get(&bad).unwrap().is_none());
    let q = dir.path().join("quarantine");
    assert_eq!(
        std::fs::read(q.join(format!("{bad}.envelope"))).unwrap(),
        b"{\"held\": tru"
    );
    assert_eq!(
        std::fs::read(q.join(format!("{bad}.body"))).unwrap(),
        bad.as_bytes()
    );
    assert!(!dir.path().join("bodies").join(&bad).exists());
    drop(store);
    // Opened again: nothing more to move, the good message still there.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(store.body(&good).unwrap().unwrap(), good.as_bytes());
}

#[tokio::test]
async fn bodies_are_files_and_leave_with_their_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = store.new_id().unwrap();
    let big = vec![b'x'; 3 * 1024 * 1024];
    store
        .enqueue(id.clone(), message(&["a@x"]), &big)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("bodies").join(&id)).unwrap(),
        big
    );
    assert_eq!(store.get(&id).unwrap().unwrap().size, big.len() as u64);
    assert!(store.remove(&id).unwrap());
    // Deleted only once the envelope's removal is synced.
    assert!(dir.path().join("bodies").join(&id).exists());
    store.sync().await.unwrap();
    assert!(!dir.path().join("bodies").join(&id).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reopen_waits_for_an_enqueue_between_body_and_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // An enqueue that wrote its body and has yet to insert its envelope.
    let writing = store.inner.shared.writing.read().await;
    let body = dir.path().join("bodies/PENDING");
    std::fs::write(&body, b"on its way").unwrap();
    store.inner.shared.broken.store(true, Ordering::SeqCst);
    // The sync thread tries to reopen within its one-second tick, and
    // must not scan for orphans while the enqueue is half done.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(store.is_broken(), "reopened under a half-done enqueue");
    assert!(
        body.exists(),
        "the body of a message being queued was removed"
    );
    drop(writing);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.is_broken() {
        assert!(std::time::Instant::now() < deadline, "never reopened");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // No envelope came: now it is an orphan, and goes.
    assert!(!body.exists());
}

#[tokio::test]
async fn an_address_with_a_control_character_is_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut bad_sender = message(&["a@x.test"]);
    bad_sender.sender = "s@x.test\r\nRCPT TO:<evil@y.test>".into();
    let id = store.new_id().unwrap();
    let e = store.enqueue(id.clone(), bad_sender, b"x\r\n").await;
    assert!(matches!(e, Err(QueueError::BadAddress(_))), "{e:?}");
    let id2 = store.new_id().unwrap();
    let e = store.enqueue_blocking(id2.clone(), message(&["a@x.test", "b\0@x.test"]), b"x\r\n");
    assert!(matches!(e, Err(QueueError::BadAddress(_))), "{e:?}");
    assert!(store.get(&id).unwrap().is_none() && store.get(&id2).unwrap().is_none());
    assert!(store.body(&id).unwrap().is_none());
}

/// A body being streamed is not an orphan to a reopening (after a write
/// error), is committed whole with the receiver's head above it, and a
/// writer given up removes its file.
#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_body_survives_a_reopen_and_an_aborted_one_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = store.new_id().unwrap();
    let mut w = store.begin_body(&id, 0).unwrap();
    let piece = vec![b'y'; 100 * 1024];
    for _ in 0..5 {
        w.write(&piece).await.unwrap();
    }
    store.inner.shared.broken.store(true, Ordering::SeqCst);
    store.recover().unwrap();
    assert!(!store.is_broken());
    assert!(
        dir.path().join("bodies").join(&id).exists(),
        "the reopening took a body being written for an orphan"
    );
    w.write(b"end\r\n").await.unwrap();
    let env = store
        .enqueue_body(message(&["a@x"]), w, "Received: here\r\n".into())
        .await
        .unwrap();
    let body = store.body(&id).unwrap().unwrap();
    assert!(body.starts_with(b"Received: here\r\nyyy"));
    assert!(body.ends_with(b"yend\r\n"));
    assert_eq!(env.size, body.len() as u64);
    assert_eq!(body.len(), 16 + 5 * 100 * 1024 + 5);

    let gone = store.new_id().unwrap();
    let mut w = store.begin_body(&gone, 0).unwrap();
    w.write(&piece).await.unwrap();
    drop(w);
    assert!(!dir.path().join("bodies").join(&gone).exists());
    // The reserve is kept while writing: a writer that would eat into it
    // fails, and its file goes.
    let full = store.new_id().unwrap();
    let mut w = store.begin_body(&full, u64::MAX / 4).unwrap();
    let err = w.write(&vec![b'z'; 300 * 1024]).await.unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(!dir.path().join("bodies").join(&full).exists());
}
