//! The schedule and the leases.

use super::*;
use std::time::Duration;

pub(crate) async fn postponing_moves_only_the_index(b: Backend) {
    let store = b.open();
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
    let store = b.open();
    assert_eq!(store.due(now + 1, 10), vec![id], "the disk kept its time");
}

/// A due message is leased to one deliverer at a time: not handed out
/// again while the lease holds (renewed), again once it ended or expired.
pub(crate) async fn a_leased_message_is_handed_out_once_until_its_lease_ends(b: Backend) {
    let store = b.open();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = store.new_id().unwrap();
        store
            .enqueue(id.clone(), message(&["a@x"]), b"x")
            .await
            .unwrap();
        ids.push(id);
    }
    let now = now_unix();
    let long = Duration::from_secs(300);
    assert!(store.lease_due(now, 0, long).await.unwrap().is_empty());
    let first = store.lease_due(now, 2, long).await.unwrap();
    let leased: Vec<&String> = first.iter().map(|l| l.id()).collect();
    assert_eq!(leased, vec![&ids[0], &ids[1]], "earliest first");
    // Leased ones are passed over; still due in the schedule.
    let second = store.lease_due(now, 5, long).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id(), &ids[2]);
    assert_eq!(store.due(now, 10).len(), 3);
    assert!(store.lease_due(now, 5, long).await.unwrap().is_empty());
    // Renewed, it holds; ended, the message is handed out again.
    assert!(store.renew_lease(&first[0], long).await.unwrap());
    let mut first = first.into_iter();
    let one = first.next().unwrap();
    store.end_lease(one);
    let again = store.lease_due(now, 5, long).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id(), &ids[0]);
    // A lease that expired is handed out again; the old holder's renewal
    // then fails, and its end does not end the new lease.
    let old = first.next().unwrap();
    assert!(store
        .renew_lease(&old, Duration::from_millis(1))
        .await
        .unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let taken = loop {
        let got = store.lease_due(now, 5, long).await.unwrap();
        if !got.is_empty() {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id(), &ids[1]);
    assert!(!store.renew_lease(&old, long).await.unwrap());
    store.end_lease(old);
    assert!(store.lease_due(now, 5, long).await.unwrap().is_empty());
    // A finished message is no longer due, leased or not.
    assert!(store.remove(&ids[2]).unwrap());
    for lease in second.into_iter().chain(again).chain(taken) {
        store.end_lease(lease);
    }
    let left: Vec<QueueId> = store
        .lease_due(now, 5, long)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id().clone())
        .collect();
    assert_eq!(left, vec![ids[0].clone(), ids[1].clone()]);
}
