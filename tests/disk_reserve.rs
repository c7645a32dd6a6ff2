//! The disk reserve (`[queue] min_free`, issue 15, point 10) on the HTTP
//! fax API: while less than the reserve (plus the request's size and
//! half again) is free on the queue's filesystem, `sendfax` answers `507
//! QUEUE_FULL` in the API's envelope and queues nothing; with room it is
//! taken. (SMTP: tests/disk_full.rs; the POP3 gateway: tests/pop3.rs;
//! received faxes: tests/fax_inbound.rs.) A reserve larger than any disk
//! stands for a full one here: the check is the same.

mod common;
use common::*;

#[path = "fax_api/client.rs"]
#[allow(dead_code)]
mod client;
use client::*;

#[path = "../transports/tests/fixtures/fax/messages.rs"]
#[allow(dead_code)]
mod fixtures;

#[test]
fn below_the_disk_reserve_the_api_answers_queue_full_and_queues_nothing() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut s = start(&fax_config(w), "");
    restart_with(
        &mut s,
        &[(
            "lifetime = \"1h\"\n",
            "lifetime = \"1h\"\nmin_free = \"1000000G\"\n",
        )],
    );
    let token = new_token(&s, &["scanner"]);
    let pdf = write(
        w,
        "memo.pdf",
        &fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)]),
    );
    let meta = write(
        w,
        "job.xml",
        job("alice@example.test", &["+15551234567"], &["memo.pdf"]).as_bytes(),
    );
    let body = refused(
        post(&http(&s), &token, &meta, &[&pdf], &[]),
        507,
        "QUEUE_FULL",
    );
    assert_contains(&body, "insufficient system storage");
    refused_xml(
        post(
            &http(&s),
            &token,
            &meta,
            &[&pdf],
            &["-H", "Accept: application/xml"],
        ),
        507,
        "QUEUE_FULL",
    );
    assert!(queue_json(&s).is_empty(), "{:?}", queue_json(&s));

    restart_with(&mut s, &[("min_free = \"1000000G\"", "min_free = \"0\"")]);
    let (code, body) = post(&http(&s), &token, &meta, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}");
}
