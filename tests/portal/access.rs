//! tests/portal.rs: received faxes reach their user's list and no one
//! else's; every page of a fax is refused to a user whose fax it is not
//! (asked for by hand, with their own valid session and token); the
//! administration pages are refused to users and shown to the
//! administrator: the queue (hold, release, delete), usage with CSV, the
//! lines.

use crate::common::*;
use crate::fax::{browser_as, fax_site, send_pdf, NUMBER};
use crate::peers::Screen;
use crate::support::*;
use faxmta_fax::page::{Compression, Page, Resolution};
use faxmta_fax::tiff::{write_tiff_f, TiffHeader};
use std::path::Path;

/// A 2-page fax to receive: a black box on each page.
fn incoming(work: &Path) -> std::path::PathBuf {
    let pages: Vec<Page> = (0..2u32)
        .map(|n| {
            let mut p = Page::blank(1728, 1100, Resolution::Fine);
            for y in 100 + n * 300..400 + n * 300 {
                for x in 200..900 {
                    p.set(x, y, true);
                }
            }
            p
        })
        .collect();
    let tif = work.join("incoming.tif");
    write_tiff_f(&tif, &pages, Compression::Mh, &TiffHeader::default()).unwrap();
    tif
}

/// A fax comes in on `did` from a simulated caller.
pub fn receive(s: &Site, did: &str) {
    let file = incoming(s.work.path());
    let out = s.cli(&[
        "fax",
        "simulate-incoming",
        "--did",
        did,
        "--ani",
        "+15559990000",
        "--tsi",
        "REMOTE FAX",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
}

#[test]
fn a_received_fax_shows_up_for_its_user_and_no_one_else() {
    let s = fax_site();
    receive(&s, "100");
    let b = browser_as(&s, "alice@example.test", ALICE_PW, Screen::Desktop);
    assert!(
        wait_until(30, || {
            b.goto(&url(&s, "/portal/received"));
            b.text_of("#received")
                .is_some_and(|t| t.contains("REMOTE FAX"))
        }),
        "{}\n{}",
        b.text(),
        s.log()
    );
    wait_pictures(&b);
    shot(&b, "received");
    b.click("#received a");
    b.wait_text("Download as PDF", 10).unwrap();
    assert_eq!(b.count(".pages img"), 2, "{}", b.text());
    wait_pictures(&b);
    assert_contains(&b.text(), "+15559990000");
    let detail = b.url();
    let path = &detail[detail.find("/portal/").unwrap()..];
    let picture = b.attr(".pages li:nth-child(1) img", "src").unwrap();
    let pdf = b.attr("#pdf", "href").unwrap();
    let alice = CurlSession::login(&s, "alice@example.test", ALICE_PW);
    let (status, png) = get_bytes_with_session(&s, &picture, &alice.session);
    assert_eq!(status, 200);
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    // Bob: not in his list, and nothing of it by hand.
    let bob = CurlSession::login(&s, "bob@example.test", BOB_PW);
    let (status, list) = bob.get(&s, "/portal/received");
    assert_eq!(status, 200);
    assert!(!list.contains("REMOTE FAX"), "{list}");
    for p in [path, picture.as_str(), pdf.as_str()] {
        let (status, body) = bob.get(&s, p);
        assert_eq!(status, 404, "{p}: {body}");
    }
    // The administrator sees it.
    let boss = CurlSession::login(&s, "boss@example.test", BOSS_PW);
    let (_, list) = boss.get(&s, "/portal/received");
    assert!(list.contains("REMOTE FAX"), "{list}");
}

#[test]
fn every_page_of_a_fax_is_refused_to_a_user_whose_fax_it_is_not() {
    let s = fax_site();
    let b = browser_as(&s, "alice@example.test", ALICE_PW, Screen::Desktop);
    send_pdf(&s, &b, NUMBER);
    b.click("#send");
    b.wait_text("sent 4 of 4 pages", 90)
        .unwrap_or_else(|t| panic!("never sent: {t}\n{}", s.log()));
    b.goto(&url(&s, "/portal/faxes"));
    b.click("#history a");
    b.wait_text("Download as PDF", 10).unwrap();
    let detail = b.url();
    let detail = detail[detail.find("/portal/").unwrap()..].to_string();
    let query = detail.split_once('?').unwrap().1.to_string();
    let picture = b.attr(".pages li:nth-child(1) img", "src").unwrap();
    let pdf = b.attr("#pdf", "href").unwrap();
    let live = format!("/portal/fax/live?{query}");
    let alice = CurlSession::login(&s, "alice@example.test", ALICE_PW);
    for p in [&detail, &picture, &pdf, &live] {
        assert_eq!(alice.get(&s, p).0, 200, "{p}: alice's own");
    }
    let bob = CurlSession::login(&s, "bob@example.test", BOB_PW);
    for p in [&detail, &picture, &pdf, &live] {
        let (status, body) = bob.get(&s, p);
        assert_eq!(status, 404, "{p}: {body}");
    }
    let (_, list) = bob.get(&s, "/portal/faxes");
    assert!(!list.contains(NUMBER), "{list}");
    // Sending it again in his name: refused, nothing queued.
    let (id, rcpt) = {
        let mut id = String::new();
        let mut rcpt = String::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("id", v)) => id = v.to_string(),
                Some(("rcpt", v)) => rcpt = v.replace("%40", "@").replace("%2B", "+"),
                _ => {}
            }
        }
        (id, rcpt)
    };
    let before = queue_json(&s).len();
    let (status, _) = bob.post(&s, "/portal/fax/resend", &[("id", &id), ("rcpt", &rcpt)]);
    assert_eq!(status, 404);
    assert_eq!(queue_json(&s).len(), before, "nothing queued");
    // The same request from alice works (the ids were right).
    let (status, _) = alice.post(&s, "/portal/fax/resend", &[("id", &id), ("rcpt", &rcpt)]);
    assert_eq!(status, 303);
    // Administration: nothing for users.
    for p in [
        "/portal/admin/",
        "/portal/admin/queue",
        "/portal/admin/usage",
        "/portal/admin/usage.csv",
        "/portal/admin/lines",
    ] {
        let (status, _) = bob.get(&s, p);
        assert_eq!(status, 404, "{p}");
    }
    let (status, _) = bob.post(&s, "/portal/admin/queue", &[("action", "flush-all")]);
    assert_eq!(status, 404);
    // The administrator sees alice's fax.
    let boss = CurlSession::login(&s, "boss@example.test", BOSS_PW);
    assert_eq!(boss.get(&s, &detail).0, 200);
}
