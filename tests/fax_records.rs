//! What the portal reads of faxes, with the real binary: a fax sent over
//! the simulated line leaves its record, a usage row (with the sender's
//! fax groups) and its document (the TIFF-F that went on the line) in the
//! queue's store, and so does one that failed (a busy line); a received fax leaves its record (numbers, TSI, pages,
//! where it went, its mail), a usage row per address and its document.
//! They are read from the store once the server stopped (sled is one
//! process's). And a reload changes where received faxes go: a new
//! `[fax.incoming]` rule and a user's new `numbers` hold for the next
//! fax, without a restart.

mod common;
use common::*;
use faxmta_fax::page::{Compression, Page, Resolution};
use faxmta_fax::tiff::{decode_tiff, write_tiff_f, ReadLimits, TiffHeader};
use faxmta_queue::{FaxQuery, ReceivedQuery, Store};
use std::path::{Path, PathBuf};

fn config(work: &Path) -> String {
    let w = work.display();
    format!(
        r#"
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
senders = "any"
tsi = "+1 555 0100"
retries = 0
cover_page = false
spool = "{w}/spool"
[fax.simulated]
received = "{w}/remote"
inbound = "{w}/inbound"
csid = "REMOTE {{number}}"
busy = ["+15550000001", "15550000001", "5550000001"]
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
[fax.incoming]
default_to = ["postmaster@example.test"]
store = "{w}/faxes"
[[fax.incoming.rule]]
name = "sales"
did = "200"
to = ["bob@example.test"]
format = "tiff"
[[fax.group]]
name = "sales"
[[fax.user]]
address = "alice@example.test"
groups = ["sales"]
numbers = ["100"]
[[fax.user]]
address = "bob@example.test"
groups = ["sales"]
"#
    )
}

/// A 1-page fine fax with a black box.
fn document(work: &Path) -> PathBuf {
    let mut page = Page::blank(1728, 1200, Resolution::Fine);
    for y in 100..400 {
        for x in 200..900 {
            page.set(x, y, true);
        }
    }
    let tif = work.join("incoming.tif");
    write_tiff_f(&tif, &[page], Compression::Mh, &TiffHeader::default()).unwrap();
    tif
}

/// A simulated fax machine calls `did` from `ani`.
fn call(s: &Server, did: &str, ani: &str, file: &Path) {
    let o = s.cli(&[
        "fax",
        "simulate-incoming",
        "--did",
        did,
        "--ani",
        ani,
        "--tsi",
        "REMOTE FAX",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}\n{}", output_text(&o), s.log());
}

/// Wait for the mail of a received fax in a Maildir.
fn wait_one(s: &Server, domain: &str, user: &str) {
    let files = s.wait_maildir(domain, user, 1, 60);
    assert_eq!(files.len(), 1, "{user}@{domain}: {files:?}\n{}", s.log());
}

/// Pages in a TIFF held in memory.
fn pages(tiff: &[u8]) -> usize {
    decode_tiff(tiff, &ReadLimits::default()).unwrap().len()
}

#[test]
fn a_sent_fax_leaves_its_record_usage_row_and_document() {
    let work = tempfile::tempdir().unwrap();
    let mut s = Server::start_with("", &config(work.path()));
    let rcpt = "+15551234567@fax.localhost";
    let id = send(
        &s,
        "Alice@Example.test",
        rcpt,
        "Subject: records\r\n\r\nHello, fax\r\n",
    );
    wait_status(&s, &id, rcpt, "sent", 60);
    assert!(s.stop());

    let store = Store::open(&s.path("queue")).unwrap();
    // Alice's own faxes (any case of her address).
    let page = store
        .fax_history_query(&FaxQuery {
            senders: Some(vec!["alice@example.test".into()]),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.records.len(), 1, "{page:?}");
    let record = &page.records[0];
    assert_eq!(
        (record.id.as_str(), record.outcome.as_str()),
        (id.as_str(), "sent")
    );
    assert_eq!(record.progress.number, "+15551234567");
    assert_eq!(store.fax_record(&id, rcpt).unwrap().as_ref(), Some(record));
    // Nobody else's.
    let bob = FaxQuery {
        senders: Some(vec!["bob@example.test".into()]),
        limit: 10,
        ..Default::default()
    };
    assert!(store.fax_history_query(&bob).unwrap().records.is_empty());

    let usage = store.usage(0, u64::MAX).unwrap();
    assert_eq!(usage.len(), 1, "{usage:?}");
    let row = &usage[0];
    assert_eq!(
        (
            row.direction.as_str(),
            row.user.as_str(),
            row.number.as_str()
        ),
        ("sent", "Alice@Example.test", "+15551234567")
    );
    assert_eq!(row.groups, ["sales"]);
    assert_eq!(
        (row.pages, row.outcome.as_str(), row.fax.as_str()),
        (1, "sent", id.as_str())
    );
    assert!(row.line_ms > 0, "{row:?}");

    let tiff = store
        .document(&faxmta_queue::sent_document_key(&id, rcpt))
        .unwrap()
        .expect("the document of the fax sent");
    assert_eq!(pages(&tiff), record.progress.pages_total as usize);
}

#[test]
fn a_failed_fax_is_kept_too_with_its_document() {
    let work = tempfile::tempdir().unwrap();
    let mut s = Server::start_with("", &config(work.path()));
    let rcpt = "+15550000001@fax.localhost";
    let id = send(
        &s,
        "alice@example.test",
        rcpt,
        "Subject: busy\r\n\r\nHello, fax\r\n",
    );
    wait_status(&s, &id, rcpt, "bounced", 60);
    assert!(s.stop());

    let store = Store::open(&s.path("queue")).unwrap();
    let record = store.fax_record(&id, rcpt).unwrap().expect("its record");
    assert_eq!(
        (record.outcome.as_str(), record.progress.last.as_str()),
        ("failed", "busy")
    );
    let usage = store.usage(0, u64::MAX).unwrap();
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!((usage[0].outcome.as_str(), usage[0].pages), ("failed", 0));
    // What would have been sent: for a resend from the portal.
    let tiff = store
        .document(&faxmta_queue::sent_document_key(&id, rcpt))
        .unwrap()
        .expect("the document of the fax that failed");
    assert_eq!(pages(&tiff), record.progress.pages_total as usize);
}

#[test]
fn a_received_fax_leaves_its_record_usage_rows_and_document() {
    let work = tempfile::tempdir().unwrap();
    let mut s = Server::start_with("", &config(work.path()));
    let doc = document(work.path());
    call(&s, "200", "+4930123456", &doc);
    wait_one(&s, "example.test", "bob");
    assert!(s.stop());

    let store = Store::open(&s.path("queue")).unwrap();
    let page = store
        .received_query(&ReceivedQuery {
            recipients: Some(vec!["BOB@example.test".into()]),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.records.len(), 1, "{page:?}");
    let record = &page.records[0];
    assert_eq!(
        (
            record.called.as_str(),
            record.caller.as_str(),
            record.remote_tsi.as_str()
        ),
        ("200", "+4930123456", "REMOTE FAX")
    );
    assert_eq!((record.pages, record.status.as_str()), (1, "received"));
    assert_eq!(record.recipients, ["bob@example.test"]);
    let queue_id = record.queue_id.clone().expect("its mail's queue id");
    assert_contains(&s.log(), &format!("{queue_id}: incoming fax from"));
    assert!(record.duration_ms > 0);
    assert_eq!(
        store.received_record(&record.key).unwrap().as_ref(),
        Some(record)
    );

    let usage = store.usage(0, u64::MAX).unwrap();
    assert_eq!(usage.len(), 1, "{usage:?}");
    let row = &usage[0];
    assert_eq!(
        (
            row.direction.as_str(),
            row.user.as_str(),
            row.number.as_str()
        ),
        ("received", "bob@example.test", "200")
    );
    assert_eq!(
        (row.groups.as_slice(), row.pages),
        (&["sales".to_string()][..], 1)
    );
    assert_eq!(row.fax, record.key);

    // The document is the image as stored.
    let stored = work
        .path()
        .join("faxes")
        .join(format!("{}.tif", record.key));
    let tiff = store
        .document(&faxmta_queue::received_document_key(&record.key))
        .unwrap()
        .expect("the document of the fax received");
    assert_eq!(tiff, read(&stored));
    assert_eq!(pages(&tiff), 1);
}

#[test]
fn a_reload_changes_where_received_faxes_go() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &config(work.path()));
    let doc = document(work.path());
    // Before: DID 300 has no rule (the default recipient), and nobody
    // has number 400.
    call(&s, "300", "+4930123456", &doc);
    wait_one(&s, "example.test", "postmaster");

    let text = std::fs::read_to_string(s.config()).unwrap();
    let text = text.replace(
        "[[fax.group]]",
        "[[fax.incoming.rule]]\nname = \"support\"\ndid = \"300\"\nto = [\"carol@localhost\"]\n[[fax.group]]",
    );
    let text = text.replace("numbers = [\"100\"]", "numbers = [\"100\", \"400\"]");
    std::fs::write(s.config(), text).unwrap();
    let out = s.cli(&["reload"]);
    assert!(out.status.success(), "{}\n{}", output_text(&out), s.log());

    // After: the new rule, and alice's new number.
    call(&s, "300", "+4930123456", &doc);
    wait_one(&s, "localhost", "carol");
    call(&s, "400", "+4930123456", &doc);
    wait_one(&s, "example.test", "alice");
    assert_eq!(
        s.maildir("example.test", "postmaster").len(),
        1,
        "{}",
        s.log()
    );
}
