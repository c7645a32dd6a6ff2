//! The fax records: finished faxes, failures, broadcasts.

use super::*;

fn record(id: &str, finished: u64) -> FaxRecord {
    FaxRecord {
        id: id.into(),
        recipient: "+15551234567@fax.test".into(),
        sender: "alice@example.test".into(),
        outcome: "sent".into(),
        arrival: finished - 10,
        finished,
        progress: FaxProgress {
            number: "+15551234567".into(),
            pages_sent: 2,
            pages_total: 2,
            ..Default::default()
        },
        reply: None,
    }
}

fn entry(transaction: &str, recipient: &str) -> BroadcastEntry {
    BroadcastEntry {
        transaction: transaction.into(),
        recipient: recipient.into(),
    }
}

pub(crate) async fn kept_in_order_limited_and_pruned(b: Backend) {
    let store = b.open();
    for (id, t) in [("B", 200), ("A", 100), ("C", 300)] {
        store.record_fax(&record(id, t)).unwrap();
    }
    let ids = |v: Vec<FaxRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.fax_history(10).unwrap()), ["A", "B", "C"]);
    assert_eq!(ids(store.fax_history(2).unwrap()), ["B", "C"]);
    assert_eq!(store.prune_fax_history(250).unwrap(), 2);
    assert_eq!(ids(store.fax_history(10).unwrap()), ["C"]);
}

pub(crate) async fn failures_are_remembered_and_forgotten(b: Backend) {
    let store = b.open();
    store.record_failure("A", 100).unwrap();
    store.record_failure("B", 300).unwrap();
    assert!(store.had_failure("A").unwrap() && !store.had_failure("C").unwrap());
    assert_eq!(store.prune_failures(200).unwrap(), 1);
    assert!(!store.had_failure("A").unwrap() && store.had_failure("B").unwrap());
}

pub(crate) async fn a_broadcast_names_its_transactions(b: Backend) {
    let store = b.open();
    let queue_id = store.new_id().unwrap();
    let id = Store::broadcast_id(&queue_id);
    assert!(id.starts_with('B'));
    let entries = vec![
        entry(&format!("{queue_id}-1"), "5551@fax.test"),
        entry(&format!("{queue_id}-2"), "5552@fax.test"),
    ];
    store.record_broadcast(&id, &entries).unwrap();
    assert_eq!(store.broadcast(&id).unwrap(), Some(entries.clone()));
    assert_eq!(entries[1].queue_id(), queue_id);
    assert_eq!(store.broadcast("B0").unwrap(), None);
    store.remove_broadcast(&id).unwrap();
    assert_eq!(store.broadcast(&id).unwrap(), None);
}

pub(crate) async fn old_broadcasts_are_pruned_unless_their_message_is_queued(b: Backend) {
    let store = b.open();
    // Made at t=0x100 (old), and at t=0x300 (recent).
    store
        .record_broadcast("B0000010000001", &[entry("0000010000001-1", "a@fax.test")])
        .unwrap();
    store
        .record_broadcast("B0000030000001", &[entry("0000030000001-1", "a@fax.test")])
        .unwrap();
    // An old broadcast whose message is still queued stays until it
    // leaves.
    let queued = store.new_id().unwrap();
    let body = b"Subject: x\r\n\r\nx\r\n";
    let message = NewMessage::local("a@b.test", &["5551@fax.test".into()], "h", body);
    store.enqueue(queued.clone(), message, body).await.unwrap();
    let transaction = format!("{queued}-1");
    store
        .record_broadcast("B0000010000002", &[entry(&transaction, "5551@fax.test")])
        .unwrap();

    assert_eq!(store.prune_broadcasts(0x200).unwrap(), 1);
    assert_eq!(store.broadcast("B0000010000001").unwrap(), None);
    assert!(store.broadcast("B0000030000001").unwrap().is_some());
    assert!(store.broadcast("B0000010000002").unwrap().is_some());

    store.remove(&queued).unwrap();
    assert_eq!(store.prune_broadcasts(0x200).unwrap(), 1);
    assert_eq!(store.broadcast("B0000010000002").unwrap(), None);
}
