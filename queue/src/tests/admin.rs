//! The administrator's operations (hold, release, flush, flush by
//! domain) and ETRN's release.

use super::*;

pub(crate) async fn hold_release_and_flush(b: Backend) {
    let store = b.open();
    let id = store.new_id().unwrap();
    store
        .enqueue(id.clone(), message(&["a@x"]), b"x")
        .await
        .unwrap();
    assert!(store.hold(&id).unwrap());
    assert!(store.due(u64::MAX, 10).is_empty());
    assert_eq!(
        store.counts(now_unix()),
        QueueCounts {
            due: 0,
            waiting: 0,
            held: 1
        }
    );
    assert_eq!(store.flush_now(None).unwrap(), 0);
    assert!(store.release(&id).unwrap());
    assert_eq!(store.due(now_unix(), 10), vec![id.clone()]);
    store
        .update(&id, |e| {
            e.recipients[0].state = RcptState::Deferred;
            e.recipients[0].next_attempt = now_unix() + 3600;
        })
        .unwrap();
    assert!(store.due(now_unix(), 10).is_empty());
    assert_eq!(store.flush_now(None).unwrap(), 1);
    assert_eq!(store.due(now_unix(), 10), vec![id.clone()]);
    assert!(store.remove(&id).unwrap());
    assert!(!store.remove(&id).unwrap());
    assert!(!store.hold(&id).unwrap());
}

pub(crate) async fn flush_by_domain_wakes_only_that_domain_and_not_held_mail(b: Backend) {
    let store = b.open();
    let later = now_unix() + 3600;
    let mut ids = Vec::new();
    for rcpts in [
        &["a@partner.test", "b@other.test"][..],
        &["c@other.test"][..],
        &["d@Partner.TEST"][..],
        &["e@sub.partner.test"][..],
    ] {
        let id = store.new_id().unwrap();
        store
            .enqueue(id.clone(), message(rcpts), b"x")
            .await
            .unwrap();
        store
            .update(&id, |e| {
                for r in &mut e.recipients {
                    r.state = RcptState::Deferred;
                    r.next_attempt = later;
                }
            })
            .unwrap();
        ids.push(id);
    }
    assert!(store.hold(&ids[2]).unwrap());
    assert_eq!(store.flush_domain("PARTNER.test.").unwrap(), 1);
    let next = |id: &str, i: usize| store.get(id).unwrap().unwrap().recipients[i].next_attempt;
    assert!(next(&ids[0], 0) <= now_unix(), "partner.test is due now");
    assert_eq!(
        next(&ids[0], 1),
        later,
        "other.test in the same message waits"
    );
    assert_eq!(next(&ids[1], 0), later);
    assert_eq!(next(&ids[2], 0), later, "held messages are left alone");
    assert_eq!(next(&ids[3], 0), later, "subdomains are not included");
    assert_eq!(store.due(now_unix(), 10), vec![ids[0].clone()]);
    assert_eq!(store.flush_domain("nothing.test").unwrap(), 0);
}

pub(crate) async fn etrn_releases_its_domains_only_and_counts_messages(b: Backend) {
    let store = b.open();
    let expiry = now_unix() + 86_400;
    let mut ids = Vec::new();
    for rcpts in [
        &["a@customer.test", "b@other.test"][..],
        &["c@Customer.TEST"][..],
        &["d@sub.customer.test"][..],
        &["e@customer.test"][..],
    ] {
        let id = store.new_id().unwrap();
        let msg = NewMessage {
            recipients: rcpts
                .iter()
                .map(|r| NewRecipient {
                    etrn: Some(Etrn::Held),
                    ..NewRecipient::new(*r)
                })
                .collect(),
            ..message(&[])
        };
        store.enqueue(id.clone(), msg, b"x").await.unwrap();
        store
            .update(&id, |e| {
                for r in &mut e.recipients {
                    r.next_attempt = expiry;
                }
            })
            .unwrap();
        ids.push(id);
    }
    assert!(store.hold(&ids[3]).unwrap());
    let got = store.release_etrn(&["CUSTOMER.test.".into()]).unwrap();
    assert_eq!(
        got,
        EtrnRelease {
            released: 2,
            in_progress: 0
        }
    );
    let rcpt = |id: &str, i: usize| store.get(id).unwrap().unwrap().recipients[i].clone();
    assert!(rcpt(&ids[0], 0).next_attempt <= now_unix());
    assert_eq!(rcpt(&ids[0], 0).etrn, Some(Etrn::Released));
    assert_eq!(rcpt(&ids[0], 1).next_attempt, expiry, "other.test waits");
    assert_eq!(rcpt(&ids[0], 1).etrn, Some(Etrn::Held));
    assert!(rcpt(&ids[1], 0).next_attempt <= now_unix());
    assert_eq!(rcpt(&ids[2], 0).next_attempt, expiry, "not subdomains");
    assert_eq!(rcpt(&ids[3], 0).next_attempt, expiry, "held by the admin");
    // Asked again before delivery: already under way.
    let again = store.release_etrn(&["customer.test".into()]).unwrap();
    assert_eq!((again.released, again.in_progress), (0, 2));
    let none = store.release_etrn(&["nothing.test".into()]).unwrap();
    assert_eq!(none, EtrnRelease::default());
    // The administrator's flush releases ETRN mail too.
    assert_eq!(store.flush_domain("sub.customer.test").unwrap(), 1);
    assert_eq!(rcpt(&ids[2], 0).etrn, Some(Etrn::Released));
}

pub(crate) async fn etrn_is_answered_from_the_index_before_the_release_and_after_reopen(
    b: Backend,
) {
    let mut ids = Vec::new();
    {
        let store = b.open();
        for rcpt in ["a@customer.test", "b@customer.test", "c@other.test"] {
            let id = store.new_id().unwrap();
            let msg = NewMessage {
                recipients: vec![NewRecipient {
                    etrn: Some(Etrn::Held),
                    ..NewRecipient::new(rcpt)
                }],
                ..message(&[])
            };
            store.enqueue(id.clone(), msg, b"x").await.unwrap();
            ids.push(id);
        }
        store.sync().await.unwrap();
    }
    // The index is built again when the queue is opened.
    let store = b.open();
    let held = |id: &str| store.get(id).unwrap().unwrap().recipients[0].etrn;
    let start = store.etrn_start(&["Customer.Test".into()]);
    assert_eq!(
        start.counts,
        EtrnRelease {
            released: 2,
            in_progress: 0
        }
    );
    // Answered, nothing released yet: the envelopes still say held.
    assert_eq!(held(&ids[0]), Some(Etrn::Held));
    // A second ETRN meanwhile finds them under way.
    let again = store.etrn_start(&["customer.test".into()]);
    assert_eq!((again.counts.released, again.counts.in_progress), (0, 2));
    assert_eq!(start.release(&*store).unwrap(), 2);
    assert_eq!(again.release(&*store).unwrap(), 0);
    assert_eq!(held(&ids[0]), Some(Etrn::Released));
    assert_eq!(held(&ids[1]), Some(Etrn::Released));
    assert_eq!(held(&ids[2]), Some(Etrn::Held), "other.test waits");
    // Delivered: out of the index.
    for id in &ids[..2] {
        store
            .update(id, |e| e.recipients[0].state = RcptState::Delivered)
            .unwrap();
    }
    let after = store.etrn_start(&["customer.test".into()]);
    assert_eq!(after.counts, EtrnRelease::default());
}

pub(crate) async fn etrn_releases_addresses_in_any_case_and_form(b: Backend) {
    let store = b.open();
    let later = now_unix() + 3600;
    let mut ids = Vec::new();
    for rcpt in [
        "A@Customer.TEST.",
        "b@customer.test",
        "customer.test@other.test",
    ] {
        let id = store.new_id().unwrap();
        store
            .enqueue(id.clone(), message(&[rcpt]), b"x")
            .await
            .unwrap();
        store
            .update(&id, |e| {
                e.recipients[0].etrn = Some(Etrn::Held);
                e.recipients[0].next_attempt = later;
            })
            .unwrap();
        ids.push(id);
    }
    let got = store.release_etrn(&["customer.test".into()]).unwrap();
    assert_eq!(got.released, 2);
    let mut due = store.due(now_unix(), 10);
    due.sort();
    assert_eq!(due, vec![ids[0].clone(), ids[1].clone()]);
    assert_eq!(store.flush_domain("CUSTOMER.test").unwrap(), 2);
}
