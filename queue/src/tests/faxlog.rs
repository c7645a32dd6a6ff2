//! The portal's fax records: searching finished faxes a page at a time,
//! received faxes, usage rows and fax documents.

use super::*;
use crate::{Cursor, FaxQuery, ReceivedQuery, ReceivedRecord, UsageRecord};

fn fax(id: &str, recipient: &str, sender: &str, finished: u64) -> FaxRecord {
    FaxRecord {
        id: id.into(),
        recipient: recipient.into(),
        sender: sender.into(),
        outcome: "sent".into(),
        arrival: finished - 10,
        finished,
        progress: FaxProgress {
            number: format!("+{}", recipient.split('@').next().unwrap_or("")),
            remote_csid: Some(format!("CSID {id}")),
            pages_sent: 1,
            pages_total: 1,
            ..Default::default()
        },
        reply: None,
    }
}

fn ids(records: &[FaxRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{}/{}", r.id, r.recipient))
        .collect()
}

/// Every page of `query`, following the cursors.
fn all_pages(store: &Store, mut query: FaxQuery) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let page = store.fax_history_query(&query).unwrap();
        pages.push(ids(&page.records));
        let Some(next) = page.next else { break };
        // The cursor travels as text (a link in the portal).
        query.after = Some(next.to_string().parse::<Cursor>().unwrap());
        assert!(pages.len() < 20, "the pages end");
    }
    pages
}

pub(crate) async fn fax_history_is_searched_newest_first_a_page_at_a_time(b: Backend) {
    let store = b.open();
    store
        .record_fax(&fax("A1", "5551@fax.test", "Alice@Example.test", 100))
        .unwrap();
    store
        .record_fax(&fax("A1", "5552@fax.test", "alice@example.test", 100))
        .unwrap();
    store
        .record_fax(&fax("B1", "5553@fax.test", "bob@example.test", 200))
        .unwrap();
    store
        .record_fax(&fax("A2", "5554@fax.test", "alice@example.test", 300))
        .unwrap();
    store
        .record_fax(&fax("C1", "5551@fax.test", "carol@example.test", 400))
        .unwrap();

    // All, newest first; two a page; the same key at one time in order.
    let everything = FaxQuery {
        limit: 2,
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, everything.clone()),
        [
            vec!["C1/5551@fax.test", "A2/5554@fax.test"],
            vec!["B1/5553@fax.test", "A1/5552@fax.test"],
            vec!["A1/5551@fax.test"],
        ]
    );
    // A page that ends exactly at the last record says so.
    let page = store
        .fax_history_query(&FaxQuery {
            limit: 5,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((page.records.len(), page.next), (5, None));

    // One user's own, in any case of the address.
    let alice = FaxQuery {
        senders: Some(vec!["ALICE@example.TEST".into()]),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, alice.clone()),
        [vec![
            "A2/5554@fax.test",
            "A1/5552@fax.test",
            "A1/5551@fax.test"
        ]]
    );
    // Text: a number, a CSID, a sender — any case.
    let text = |t: &str| {
        let page = store
            .fax_history_query(&FaxQuery {
                text: Some(t.into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        ids(&page.records)
    };
    assert_eq!(text("+5551"), ["C1/5551@fax.test", "A1/5551@fax.test"]);
    assert_eq!(text("csid b1"), ["B1/5553@fax.test"]);
    assert_eq!(text("BOB@"), ["B1/5553@fax.test"]);
    assert!(text("nobody").is_empty());
    // A period: since inclusive, until exclusive; with the sender filter.
    let period = FaxQuery {
        since: Some(100),
        until: Some(300),
        ..alice.clone()
    };
    assert_eq!(
        all_pages(&store, period),
        [vec!["A1/5552@fax.test", "A1/5551@fax.test"]]
    );
    // A domain administrator's view: the senders of a domain, besides
    // the ones named.
    store
        .record_fax(&fax("D1", "5559@fax.test", "dave@Other.test", 50))
        .unwrap();
    let domain = |senders: Option<Vec<String>>, domains: &[&str]| {
        let page = store
            .fax_history_query(&FaxQuery {
                senders,
                domains: Some(domains.iter().map(|d| d.to_string()).collect()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        ids(&page.records)
    };
    assert_eq!(domain(None, &["OTHER.test"]), ["D1/5559@fax.test"]);
    assert_eq!(
        domain(Some(vec!["bob@example.test".into()]), &["other.test"]),
        ["B1/5553@fax.test", "D1/5559@fax.test"]
    );
    assert!(domain(None, &["example"]).is_empty(), "whole domains only");
    // An empty list of senders finds nothing.
    let none = FaxQuery {
        senders: Some(vec![]),
        ..alice
    };
    assert!(store.fax_history_query(&none).unwrap().records.is_empty());

    // A fax recorded while paging (newer) does not disturb the next page.
    let first = store.fax_history_query(&everything).unwrap();
    store
        .record_fax(&fax("D1", "5555@fax.test", "dan@example.test", 500))
        .unwrap();
    let second = store
        .fax_history_query(&FaxQuery {
            after: first.next,
            ..everything
        })
        .unwrap();
    assert_eq!(
        ids(&second.records),
        ["B1/5553@fax.test", "A1/5552@fax.test"]
    );

    // One record by id and recipient.
    let one = store.fax_record("A1", "5552@fax.test").unwrap().unwrap();
    assert_eq!(
        (one.finished, one.sender.as_str()),
        (100, "alice@example.test")
    );
    assert_eq!(store.fax_record("A1", "5559@fax.test").unwrap(), None);
    // Pruned with the history: gone from the search and the look-up.
    assert_eq!(store.prune_fax_history(150).unwrap(), 3, "A1 twice and D1");
    assert_eq!(store.fax_record("A1", "5552@fax.test").unwrap(), None);
    assert!(store.fax_record("B1", "5553@fax.test").unwrap().is_some());
}

fn received(key: &str, at: u64, recipients: &[&str]) -> ReceivedRecord {
    ReceivedRecord {
        key: key.into(),
        received_at: at,
        called: "+15550100".into(),
        caller: format!("+1666{at}"),
        remote_tsi: format!("TSI {key}"),
        pages: 2,
        duration_ms: 30_000,
        status: "received".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        queue_id: None,
    }
}

pub(crate) async fn received_faxes_are_searched_by_recipient_and_pruned(b: Backend) {
    let store = b.open();
    store
        .record_received(&received("r1", 100, &["Alice@example.test"]))
        .unwrap();
    store
        .record_received(&received(
            "r2",
            200,
            &["bob@example.test", "alice@example.test"],
        ))
        .unwrap();
    store
        .record_received(&received("r3", 300, &["bob@example.test"]))
        .unwrap();
    let keys = |query: &ReceivedQuery| -> (Vec<String>, Option<Cursor>) {
        let page = store.received_query(query).unwrap();
        (page.records.into_iter().map(|r| r.key).collect(), page.next)
    };
    let alice = ReceivedQuery {
        recipients: Some(vec!["alice@EXAMPLE.test".into()]),
        limit: 1,
        ..Default::default()
    };
    let (first, next) = keys(&alice);
    assert_eq!(first, ["r2"]);
    let (second, next) = keys(&ReceivedQuery {
        after: next,
        ..alice.clone()
    });
    assert_eq!((second, next), (vec!["r1".to_string()], None));
    let all = ReceivedQuery {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(keys(&all).0, ["r3", "r2", "r1"]);
    // A domain administrator's view.
    let domain = ReceivedQuery {
        domains: Some(vec!["Example.TEST".into()]),
        ..all.clone()
    };
    assert_eq!(keys(&domain).0, ["r3", "r2", "r1"]);
    let other = ReceivedQuery {
        domains: Some(vec!["other.test".into()]),
        ..all.clone()
    };
    assert!(keys(&other).0.is_empty());
    let tsi = ReceivedQuery {
        text: Some("tsi R3".into()),
        ..all.clone()
    };
    assert_eq!(keys(&tsi).0, ["r3"]);
    let period = ReceivedQuery {
        since: Some(200),
        until: Some(300),
        ..all.clone()
    };
    assert_eq!(keys(&period).0, ["r2"]);

    // Written again (its mail queued): replaced, not doubled, even at
    // another time.
    let mut again = received("r1", 150, &["alice@example.test"]);
    again.queue_id = Some("0ABC".into());
    store.record_received(&again).unwrap();
    assert_eq!(store.received_record("r1").unwrap(), Some(again));
    assert_eq!(keys(&all).0, ["r3", "r2", "r1"]);
    assert_eq!(store.received_record("r9").unwrap(), None);

    assert_eq!(store.prune_received(250).unwrap(), 2);
    assert_eq!(keys(&all).0, ["r3"]);
    assert_eq!(store.received_record("r1").unwrap(), None);
}

fn usage(at: u64, fax: &str, user: &str, direction: &str) -> UsageRecord {
    UsageRecord {
        at,
        direction: direction.into(),
        user: user.into(),
        groups: vec!["sales".into()],
        number: "+15551234".into(),
        pages: 3,
        line_ms: 45_000,
        outcome: "sent".into(),
        fax: fax.into(),
    }
}

pub(crate) async fn usage_rows_are_read_by_period_once_each_and_pruned(b: Backend) {
    let store = b.open();
    for row in [
        usage(100, "A", "alice@example.test", "sent"),
        usage(100, "A", "bob@example.test", "sent"),
        usage(200, "r1", "alice@example.test", "received"),
        usage(300, "B", "alice@example.test", "sent"),
    ] {
        store.record_usage(&row).unwrap();
    }
    // The same row again (a repeat after a crash) counts once.
    store
        .record_usage(&usage(100, "A", "alice@example.test", "sent"))
        .unwrap();
    let period = |since, until| -> Vec<(u64, String)> {
        store
            .usage(since, until)
            .unwrap()
            .into_iter()
            .map(|u| (u.at, u.user))
            .collect()
    };
    assert_eq!(period(0, u64::MAX).len(), 4);
    assert_eq!(
        period(100, 300),
        [
            (100, "alice@example.test".to_string()),
            (100, "bob@example.test".to_string()),
            (200, "alice@example.test".to_string()),
        ]
    );
    assert!(period(300, 300).is_empty());
    assert_eq!(store.usage(200, 201).unwrap()[0].direction, "received");
    assert_eq!(store.prune_usage(200).unwrap(), 2);
    assert_eq!(period(0, u64::MAX).len(), 2);
}

pub(crate) async fn documents_are_kept_replaced_and_pruned_by_age(b: Backend) {
    let store = b.open();
    let sent = crate::sent_document_key("0ABC", "5551@fax.test");
    let got = crate::received_document_key("fax-1");
    assert_eq!(sent, "sent/0ABC/5551@fax.test");
    assert_eq!(got, "received/fax-1");
    // A few pages' worth of TIFF, every octet value.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    store.put_document(&sent, 100, &big).unwrap();
    store.put_document(&got, 300, b"II*\0small").unwrap();
    assert_eq!(store.document(&sent).unwrap().as_deref(), Some(&big[..]));
    assert_eq!(store.document("sent/none").unwrap(), None);
    // Replaced later: its new time counts.
    store.put_document(&sent, 250, b"II*\0again").unwrap();
    assert_eq!(store.prune_documents(200).unwrap(), 0);
    assert_eq!(
        store.document(&sent).unwrap().as_deref(),
        Some(&b"II*\0again"[..])
    );
    assert_eq!(store.prune_documents(260).unwrap(), 1);
    assert_eq!(store.document(&sent).unwrap(), None);
    assert!(store.document(&got).unwrap().is_some());
    // Kept across a reopen (after a sync).
    store.sync().await.unwrap();
    drop(store);
    let store = b.open();
    assert_eq!(
        store.document(&got).unwrap().as_deref(),
        Some(&b"II*\0small"[..])
    );
}
