//! Tests of the sled backend inside: its files (bodies, orphans, the
//! quarantine), the reopening after a write error, the records of older
//! versions. What every backend does is tested in `crate::tests`.

use super::*;
use crate::broadcast::BroadcastEntry;
use crate::envelope::{NewMessage, NewRecipient};
use crate::store::QueueStore;

fn message(rcpts: &[&str]) -> NewMessage {
    NewMessage {
        sender: "sender@example.org".into(),
        recipients: rcpts.iter().map(|r| NewRecipient::new(*r)).collect(),
        ..Default::default()
    }
}

fn entry(transaction: &str, recipient: &str) -> BroadcastEntry {
    BroadcastEntry {
        transaction: transaction.into(),
        recipient: recipient.into(),
    }
}

#[tokio::test]
async fn a_poisoned_database_is_reopened_with_every_synced_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
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

#[test]
fn orphan_bodies_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        let id = store.new_id().unwrap();
        store
            .enqueue_blocking(id, message(&["a@x"]), b"kept")
            .unwrap();
    }
    std::fs::write(dir.path().join("bodies/ORPHAN"), b"half").unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert!(store.body("ORPHAN").unwrap().is_none());
    assert!(!dir.path().join("bodies/ORPHAN").exists());
    assert_eq!(store.len(), 1, "the committed message stays");
}

#[test]
fn a_corrupt_envelope_is_quarantined_and_the_rest_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad);
    {
        let store = SledStore::open(dir.path()).unwrap();
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
    let store = SledStore::open(dir.path()).unwrap();
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
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(store.body(&good).unwrap().unwrap(), good.as_bytes());
}

#[tokio::test]
async fn bodies_are_files_and_leave_with_their_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
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
    let store = SledStore::open(dir.path()).unwrap();
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

/// A body being streamed is not an orphan to a reopening (after a write
/// error), is committed whole with the receiver's head above it, and a
/// writer given up removes its file.
#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_body_survives_a_reopen_and_an_aborted_one_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
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

#[test]
fn records_of_older_versions_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let tree = store.db().unwrap().open_tree("broadcasts").unwrap();
    tree.insert("B1", br#"["A1","A2"]"#.to_vec()).unwrap();
    let got = store.broadcast("B1").unwrap().unwrap();
    assert_eq!(got, vec![entry("A1", ""), entry("A2", "")]);
    assert_eq!(got[0].queue_id(), "A1");
}

#[tokio::test]
async fn broadcasts_of_the_older_form_and_unreadable_ones_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // Made at t=0x100 (old), and at t=0x300 (recent).
    store
        .record_broadcast("B0000010000001", &[entry("0000010000001-1", "a@fax.test")])
        .unwrap();
    store
        .record_broadcast("B0000030000001", &[entry("0000030000001-1", "a@fax.test")])
        .unwrap();
    // An old broadcast (of the older form) whose message is still
    // queued stays until it leaves.
    let queued = store.new_id().unwrap();
    let body = b"Subject: x\r\n\r\nx\r\n";
    let message = NewMessage::local("a@b.test", &["5551@fax.test".into()], "h", body);
    store.enqueue(queued.clone(), message, body).await.unwrap();
    let old_ids = serde_json::to_vec(std::slice::from_ref(&queued)).unwrap();
    let tree = store.db().unwrap().open_tree("broadcasts").unwrap();
    tree.insert("B0000010000002", old_ids).unwrap();
    // And an unreadable old one.
    tree.insert("B0000010000003", b"garbage".to_vec()).unwrap();

    assert_eq!(store.prune_broadcasts(0x200).unwrap(), 2);
    assert_eq!(store.broadcast("B0000010000001").unwrap(), None);
    assert!(store.broadcast("B0000030000001").unwrap().is_some());
    assert!(store.broadcast("B0000010000002").unwrap().is_some());
    assert!(!tree.contains_key("B0000010000003").unwrap());

    store.remove(&queued).unwrap();
    assert_eq!(store.prune_broadcasts(0x200).unwrap(), 1);
    assert_eq!(store.broadcast("B0000010000002").unwrap(), None);
}

/// A database still held a moment (as a just-dropped handle's background
/// task holds sled's file lock) is waited for, not refused; one held for
/// good is an error once the wait is over.
#[test]
fn opening_waits_for_a_lock_released_soon() {
    let dir = tempfile::tempdir().unwrap();
    let held = sled::Config::new().path(dir.path()).open().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
    });
    let store = SledStore::open(dir.path());
    release.join().unwrap();
    assert!(store.is_ok(), "{:?}", store.err());
    drop(store);

    let _held = sled::Config::new().path(dir.path()).open().unwrap();
    let started = std::time::Instant::now();
    assert!(SledStore::open(dir.path()).is_err(), "a lock held for good");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
}

#[test]
fn a_fax_recorded_before_the_look_up_tree_is_found_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let record = crate::history::FaxRecord {
        id: "0ABC".into(),
        recipient: "5551@fax.test".into(),
        sender: "a@b.test".into(),
        outcome: "sent".into(),
        arrival: 90,
        finished: 100,
        progress: Default::default(),
        reply: None,
    };
    store.record_fax(&record).unwrap();
    // As an older faxmta wrote it: no entry in the look-up tree.
    let ids = store.db().unwrap().open_tree("fax_history_ids").unwrap();
    assert!(ids.remove("0ABC/5551@fax.test").unwrap().is_some());
    assert_eq!(
        store.fax_record("0ABC", "5551@fax.test").unwrap(),
        Some(record)
    );
    assert_eq!(store.fax_record("0ABC", "5552@fax.test").unwrap(), None);
}

/// The files in `bodies/`, sorted.
fn body_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("bodies"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Small bodies get no file of their own: they share a segment, are read
/// back from it with their head, and the segment goes with the last of
/// them — at once when it no longer takes appends, else at the next open.
#[tokio::test]
async fn small_bodies_share_a_segment_that_goes_with_the_last_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    {
        let store = SledStore::open(dir.path()).unwrap();
        for i in 0..3 {
            let id = store.new_id().unwrap();
            let mut w = store.begin_body(&id, 0).unwrap();
            w.write(format!("body {i}\r\n").as_bytes()).await.unwrap();
            store
                .enqueue_body(message(&["a@x"]), w, format!("Head: {i}\r\n"))
                .await
                .unwrap();
            ids.push(id);
        }
        let files = body_files(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].starts_with("seg-"), "{files:?}");
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(
                store.body(id).unwrap().unwrap(),
                format!("Head: {i}\r\nbody {i}\r\n").as_bytes()
            );
        }
        assert!(store.remove(&ids[0]).unwrap());
        assert!(store.remove(&ids[1]).unwrap());
        store.sync().await.unwrap();
        assert_eq!(store.inner.shared.segments.live().values().sum::<u64>(), 1);
    }
    // Opened again: the body left is read from the same segment.
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(
        store.body(&ids[2]).unwrap().unwrap(),
        b"Head: 2\r\nbody 2\r\n"
    );
    assert!(store.body(&ids[0]).unwrap().is_none());
    // It no longer takes appends: it goes with its last body.
    assert!(store.remove(&ids[2]).unwrap());
    store.sync().await.unwrap();
    assert!(body_files(dir.path()).is_empty());
}

/// A crash between a body's location and its envelope (sled recovers the
/// first insert, not the second): the location is dropped at the next
/// open, and a segment with no body left in it is deleted.
#[test]
fn a_location_without_its_envelope_is_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let kept = {
        let store = SledStore::open(dir.path()).unwrap();
        let id = store.new_id().unwrap();
        store
            .enqueue_blocking(id.clone(), message(&["a@x"]), b"kept")
            .unwrap();
        id
    };
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let at = db.open_tree("body-at").unwrap();
        let loc = segments::Loc {
            seg: 0x77,
            off: 0,
            len: 4,
            crc: None,
        };
        at.insert("GHOST", &loc.encode()[..]).unwrap();
        db.flush().unwrap();
    }
    std::fs::write(dir.path().join("bodies/seg-0000000000000077"), b"lost").unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert!(store
        .handles()
        .unwrap()
        .body_at
        .get("GHOST")
        .unwrap()
        .is_none());
    assert!(!dir.path().join("bodies/seg-0000000000000077").exists());
    assert_eq!(store.body(&kept).unwrap().unwrap(), b"kept");
    // New segments are numbered after every one seen.
    let id = store.new_id().unwrap();
    store
        .enqueue_blocking(id.clone(), message(&["b@x"]), b"next")
        .unwrap();
    assert!(
        body_files(dir.path()).contains(&"seg-0000000000000078".to_string()),
        "{:?}",
        body_files(dir.path())
    );
}

/// Enqueue one message to a@x per body; their ids, in order.
async fn enqueue_bodies(store: &SledStore, bodies: &[&[u8]]) -> Vec<QueueId> {
    let mut ids = Vec::new();
    for body in bodies {
        let id = store.new_id().unwrap();
        store
            .enqueue(id.clone(), message(&["a@x"]), body)
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// A message that waits (saved undelivered) has its body moved to a file
/// of its own, so its segment can go with the others' bodies; a move cut
/// short by a crash (a file beside the body in the segment) is undone at
/// the next open.
#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_message_takes_its_body_out_of_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (waiting, delivered, half_moved);
    {
        let store = SledStore::open(dir.path()).unwrap();
        let ids = enqueue_bodies(&store, &[b"waits", b"delivered", b"half moved"]).await;
        (waiting, delivered, half_moved) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
        store
            .update(&waiting, &mut |e| e.recipients[0].next_attempt += 600)
            .unwrap();
        let file = dir.path().join("bodies").join(&waiting);
        wait_until("moved", || {
            !store
                .handles()
                .unwrap()
                .body_at
                .contains_key(waiting.as_bytes())
                .unwrap()
        });
        assert_eq!(std::fs::read(&file).unwrap(), b"waits");
        assert_eq!(store.body(&waiting).unwrap().unwrap(), b"waits");
        assert!(store.remove(&delivered).unwrap());
        store.sync().await.unwrap();
        // Only the half-moved one still lies in the segment.
        assert_eq!(store.inner.shared.segments.live().values().sum::<u64>(), 1);
    }
    // A crash in the middle of a move: the file is there, the entry too.
    std::fs::write(dir.path().join("bodies").join(&half_moved), b"half").unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert!(!dir.path().join("bodies").join(&half_moved).exists());
    assert_eq!(store.body(&half_moved).unwrap().unwrap(), b"half moved");
    assert_eq!(store.body(&waiting).unwrap().unwrap(), b"waits");
    // With the last body in it gone, the segment goes at the next open.
    assert!(store.remove(&half_moved).unwrap());
    store.sync().await.unwrap();
    drop(store);
    let _store = SledStore::open(dir.path()).unwrap();
    assert_eq!(body_files(dir.path()), vec![waiting.clone()]);
}

/// Wait (deadline 10 s) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_out_of_a_segment_keeps_the_reserve_and_gives_the_old_place_back() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let body = vec![b'x'; 200 * 1024];
    let id = store.new_id().unwrap();
    store
        .enqueue(id.clone(), message(&["a@x"]), &body)
        .await
        .unwrap();
    let in_segment = || {
        store
            .handles()
            .unwrap()
            .body_at
            .contains_key(id.as_bytes())
            .unwrap()
    };
    assert!(in_segment());
    // A writer asked for a reserve the disk cannot keep: the body waits
    // in its segment rather than take room twice.
    assert!(store.check_room(u64::MAX / 4, 0).is_err());
    store
        .update(&id, &mut |e| e.recipients[0].next_attempt += 600)
        .unwrap();
    let kept = &store.inner.shared.kept_for_room;
    wait_until("kept for room", || kept.load(Ordering::Relaxed) == 1);
    assert!(in_segment());
    assert!(!dir.path().join("bodies").join(&id).exists());
    // With room again, the next update moves it; once that is synced its
    // old place is punched out of the segment, which stays (it takes
    // appends).
    store.check_room(0, 0).unwrap();
    store
        .update(&id, &mut |e| e.recipients[0].next_attempt += 600)
        .unwrap();
    wait_until("moved", || !in_segment());
    let segment = std::fs::read_dir(dir.path().join("bodies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .unwrap();
    let allocated = || std::fs::metadata(&segment).unwrap().blocks() * 512;
    assert!(allocated() >= 200 * 1024, "{}", allocated());
    store.sync().await.unwrap();
    assert!(
        allocated() < 16 * 1024,
        "{} octets still taken",
        allocated()
    );
    assert_eq!(store.body(&id).unwrap().unwrap(), body);
    assert_eq!(kept.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_body_that_never_reached_the_disk_takes_its_unacknowledged_message_along() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let (acked, unsynced, loc_a, loc_b);
    {
        let store = SledStore::open(dir.path()).unwrap();
        let ids = enqueue_bodies(&store, &[b"acknowledged", b"never synced"]).await;
        (acked, unsynced) = (ids[0].clone(), ids[1].clone());
        let at = |id: &str| {
            let v = store.handles().unwrap().body_at.get(id).unwrap().unwrap();
            segments::Loc::decode(&v).unwrap()
        };
        (loc_a, loc_b) = (at(&acked), at(&unsynced));
    }
    let segment = dir
        .path()
        .join("bodies")
        .join(format!("seg-{:016X}", loc_b.seg));
    let overwrite = |loc: segments::Loc| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap();
        f.write_all_at(&vec![0u8; loc.len as usize], loc.off)
            .unwrap();
    };
    // A crash after sled wrote the second envelope out but before the
    // sync of its segment: its octets are not there (zeros, as a file
    // extended but never written reads).
    overwrite(loc_b);
    {
        let store = SledStore::open(dir.path()).unwrap();
        assert!(store.get(&unsynced).unwrap().is_none());
        assert!(!store
            .handles()
            .unwrap()
            .body_at
            .contains_key(unsynced.as_bytes())
            .unwrap());
        assert_eq!(store.body(&acked).unwrap().unwrap(), b"acknowledged");
        assert_eq!(lock(&store.inner.shared.index).messages(), 1);
    }
    // A body in a segment below the mark was synced before the mark was
    // recorded: not read at open. Damaged later behind the store's back,
    // its message stays and reads as lost (its delivery reports it).
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.insert(segments::UNSYNCED_FROM, &(loc_a.seg + 1).to_be_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    overwrite(loc_a);
    let store = SledStore::open(dir.path()).unwrap();
    assert!(store.get(&acked).unwrap().is_some());
    assert!(store.body(&acked).unwrap().is_none());
}
