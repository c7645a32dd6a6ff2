//! Enqueueing: durability across reopen, group commit, the streamed body,
//! the reserve, refused addresses, listing and counting.

use super::*;

pub(crate) async fn enqueue_survives_reopen(b: Backend) {
    let id;
    {
        let store = b.open();
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
    let store = b.open();
    let env = store.get(&id).unwrap().unwrap();
    assert_eq!(env.recipients.len(), 2);
    assert_eq!(
        store.body(&id).unwrap().unwrap(),
        b"Subject: hi\r\n\r\nbody\r\n"
    );
    assert_eq!(store.due(now_unix() + 1, 10), vec![id]);
}

pub(crate) async fn concurrent_enqueues_all_land(b: Backend) {
    let store = b.open();
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

pub(crate) async fn finished_messages_leave_the_queue(b: Backend) {
    let store = b.open();
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

pub(crate) async fn an_address_with_a_control_character_is_never_stored(b: Backend) {
    let store = b.open();
    let mut bad_sender = message(&["a@x.test"]);
    bad_sender.sender = "s@x.test\r\nRCPT TO:<evil@y.test>".into();
    let id = store.new_id().unwrap();
    let e = store.enqueue(id.clone(), bad_sender, b"x\r\n").await;
    assert!(matches!(e, Err(QueueError::BadAddress(_))), "{e:?}");
    let id2 = store.new_id().unwrap();
    let queued = id2.clone();
    let e = blocking(&store, move |s| {
        s.enqueue_blocking(queued, message(&["a@x.test", "b\0@x.test"]), b"x\r\n")
    })
    .await;
    assert!(matches!(e, Err(QueueError::BadAddress(_))), "{e:?}");
    assert!(store.get(&id).unwrap().is_none() && store.get(&id2).unwrap().is_none());
    assert!(store.is_empty());
    assert!(store.body(&id).unwrap().is_none());
}

/// A body being streamed is committed whole with the receiver's head
/// above it, and a writer given up leaves nothing.
pub(crate) async fn a_streamed_body_is_committed_with_its_head_and_an_aborted_one_leaves_nothing(
    b: Backend,
) {
    let store = b.open();
    let id = store.new_id().unwrap();
    let mut w = store.begin_body(&id, 0).unwrap();
    let piece = vec![b'y'; 100 * 1024];
    for _ in 0..5 {
        w.write(&piece).await.unwrap();
    }
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
    assert!(store.body(&gone).unwrap().is_none());
    // The reserve is kept while writing: a writer that would eat into it
    // fails, and its file goes.
    let full = store.new_id().unwrap();
    let mut w = store.begin_body(&full, u64::MAX / 4).unwrap();
    let err = w.write(&vec![b'z'; 300 * 1024]).await.unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(store.body(&full).unwrap().is_none());
    assert_eq!(store.len(), 1);
}

pub(crate) async fn room_is_checked_against_the_reserve(b: Backend) {
    let store = b.open();
    let free = available(b.dir.path()).unwrap();
    assert!(
        store.check_room(0, u64::MAX).is_ok(),
        "no reserve: no check"
    );
    assert!(store.check_room(1, 1024).is_ok());
    let err = store.check_room(free + 1, 0).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(matches!(err, QueueError::NoRoom { .. }));
    // The size counts half again on top of the reserve.
    let err = store.check_room(1, free).unwrap_err();
    assert!(err.is_disk_full());
}

pub(crate) async fn envelopes_stream_in_id_order_and_raw_is_one_line(b: Backend) {
    let store = b.open();
    let mut ids = Vec::new();
    for i in 0..5 {
        let msg = NewMessage {
            sender: "s@example.org".into(),
            recipients: vec![NewRecipient::new(format!("r{i}@x.test"))],
            envid: Some("line\nbreak".into()),
            ..Default::default()
        };
        let id = store.new_id().unwrap();
        let queued = id.clone();
        blocking(&store, move |s| s.enqueue_blocking(queued, msg, b"x"))
            .await
            .unwrap();
        ids.push(id);
    }
    let listed: Vec<String> = store.envelopes().map(|e| e.unwrap().id).collect();
    assert_eq!(listed, ids);
    for raw in store.envelopes_raw() {
        let raw = raw.unwrap();
        assert!(!raw.json.contains(&b'\n'), "one line per envelope");
        assert_eq!(raw.parse().unwrap().id, raw.id);
    }
    assert_eq!(store.list().unwrap().len(), 5);
}

pub(crate) async fn the_message_count_follows_the_queue_and_survives_reopen(b: Backend) {
    let msg = || NewMessage {
        sender: "a@b".into(),
        recipients: vec![NewRecipient::new("x@y")],
        ..Default::default()
    };
    let mut ids = Vec::new();
    {
        let store = b.open();
        for _ in 0..4 {
            let id = store.new_id().unwrap();
            store.enqueue(id.clone(), msg(), b"x").await.unwrap();
            ids.push(id);
        }
        assert_eq!(store.len(), 4);
        assert!(store.hold(&ids[0]).unwrap());
        assert!(store.remove(&ids[1]).unwrap());
        assert!(!store.remove(&ids[1]).unwrap(), "counted once");
        store
            .update(&ids[2], |e| e.recipients[0].state = RcptState::Delivered)
            .unwrap();
        assert_eq!(store.len(), 2);
        let counts = store.counts(u64::MAX);
        assert_eq!((counts.due, counts.waiting, counts.held), (1, 0, 1));
        store.sync().await.unwrap();
    }
    let store = b.open();
    assert_eq!(store.len(), 2);
    assert_eq!(store.due(u64::MAX, 10), vec![ids[3].clone()]);
}
