//! tests/portal.rs, the fax user's pages: sending a PDF through the
//! portal to the simulated line and watching it go, its pages, the PDF,
//! sending it again; a received fax in its user's list; and every fax
//! page refused to a user whose fax it is not.

use crate::common::*;
use crate::fixtures;
use crate::peers::{Browser, Screen};
use crate::support::*;
use std::path::Path;

pub const NUMBER: &str = "+15551234567";

/// The fax part of the configuration: the simulated line at five times
/// real time (a page is on the line about 3 s), no header line (so the
/// pages the far end gets are the pages rendered), alice and bob fax
/// users, the inbound routing of DID 100 to alice.
pub fn fax_config(work: &Path) -> String {
    let w = work.display();
    format!(
        r#"
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
lines = 1
tsi = "+1 555 0100"
header = ""
spool = "{w}/spool"
[fax.simulated]
received = "{w}/remote"
inbound = "{w}/inbound"
pace = 5
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
[fax.incoming]
default_to = ["postmaster@example.test"]
store = "{w}/faxes"
[[fax.user]]
address = "alice@example.test"
name = "Alice Example"
numbers = ["100"]
[[fax.user]]
address = "bob@example.test"
name = "Bob Example"
numbers = ["200"]
"#
    )
}

/// A portal server with the fax configuration.
pub fn fax_site() -> Site {
    let work = tempfile::tempdir().unwrap();
    let extra = fax_config(work.path());
    portal_server_in(work, &extra)
}

/// The TIFF files the simulated far end received (a directory per
/// number dialled).
fn remote_faxes(s: &Site) -> Vec<std::path::PathBuf> {
    let list = |dir: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    list(&s.work.path().join("remote"))
        .iter()
        .flat_map(|d| list(d))
        .filter(|p| p.extension().is_some_and(|e| e == "tif"))
        .collect()
}

/// Logged in as `user` in a new browser.
pub fn browser_as(s: &Site, user: &str, password: &str, screen: Screen) -> Browser {
    let b = Browser::start(screen);
    b.goto(&url(s, "/portal/login"));
    log_in(&b, user, password);
    b.wait_text("Log out", 10)
        .unwrap_or_else(|t| panic!("{user} could not log in: {t}"));
    b
}

/// Send a two-page PDF to `number` through the form, looking at the
/// preview on the way; the preview's page count.
pub fn send_pdf(s: &Site, b: &Browser, number: &str) -> u32 {
    let pdf = s.work.path().join("memo.pdf");
    std::fs::write(
        &pdf,
        fixtures::pdf(&[
            (612, 792, fixtures::PDF_PAGE),
            (612, 792, "0 0 0 rg 300 300 100 300 re f"),
        ]),
    )
    .unwrap();
    b.goto(&url(s, "/portal/send"));
    b.fill("#numbers", number);
    b.attach("#files", &pdf);
    b.fill("#subject", "Quarterly figures");
    b.fill("#note", "Bob, the figures.");
    b.click("main form button[type=submit]");
    b.wait_text("The pages as the line sends them", 60)
        .unwrap_or_else(|t| panic!("no preview: {t}"));
    let count: u32 = b
        .text_of("#page-count")
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(b.count(".pages img"), count as usize, "a picture per page");
    count
}

#[test]
fn a_pdf_sent_through_the_portal_is_watched_on_the_line_and_found_in_the_history() {
    let s = fax_site();
    let b = browser_as(&s, "alice@example.test", ALICE_PW, Screen::Desktop);
    let pages = send_pdf(&s, &b, NUMBER);
    // The cover page, the note (a page of its own), the PDF's two pages.
    assert_eq!(pages, 4, "{}", b.text());
    shot(&b, "preview");
    b.click("#send");
    b.wait_text("is queued", 10).unwrap();
    assert!(
        !b.text().contains("Reload the page to see"),
        "JavaScript runs here"
    );
    // The status changes in place (the page is not reloaded).
    b.script("document.body.setAttribute('data-marker', 'same page')");
    let seen = b
        .wait_text("sending page", 60)
        .unwrap_or_else(|t| panic!("never on the line: {t}\n{}", s.log()));
    assert!(seen.contains(NUMBER), "{seen}");
    shot(&b, "sending");
    b.wait_text("sent 4 of 4 pages", 90)
        .unwrap_or_else(|t| panic!("never sent: {t}\n{}", s.log()));
    assert_eq!(
        b.attr("body", "data-marker").as_deref(),
        Some("same page"),
        "live status without reloading"
    );
    // In the history, found by the search.
    b.goto(&url(&s, "/portal/faxes?q=5551234567"));
    let history = b.text_of("#history").unwrap_or_default();
    assert!(
        history.contains(NUMBER) && history.contains("sent"),
        "{history}"
    );
    wait_pictures(&b);
    shot(&b, "faxes");
    b.goto(&url(&s, "/portal/faxes?q=5550000000"));
    assert!(b.text_of("#history").is_none(), "{}", b.text());
    // Its page: the pictures are the pages the far end received.
    b.goto(&url(&s, "/portal/faxes"));
    b.click("#history a");
    b.wait_text("Download as PDF", 10).unwrap();
    assert_eq!(b.count(".pages img"), 4);
    wait_pictures(&b);
    shot(&b, "fax");
    let remote = remote_faxes(&s);
    assert_eq!(remote.len(), 1, "{remote:?}");
    let received = std::fs::read(&remote[0]).unwrap();
    let session = session_cookie(&b).unwrap();
    for n in 1..=4u32 {
        let src = b
            .attr(&format!(".pages li:nth-child({n}) img"), "src")
            .unwrap();
        let (status, png) = get_bytes_with_session(&s, &src, session.value());
        assert_eq!(status, 200);
        let (expected, _) = faxmta_fax::thumbnail::tiff_page_png(&received, n - 1, 300).unwrap();
        assert!(
            png == expected,
            "page {n} differs from what the far end got"
        );
    }
    let pdf = b.attr("#pdf", "href").unwrap();
    let (status, bytes) = get_bytes_with_session(&s, &pdf, session.value());
    assert_eq!(status, 200);
    assert!(bytes.starts_with(b"%PDF-"), "a PDF");
    assert_eq!(
        String::from_utf8_lossy(&bytes)
            .matches("/Type /Page ")
            .count()
            + String::from_utf8_lossy(&bytes)
                .matches("/Type/Page ")
                .count(),
        4,
        "four pages in the PDF"
    );
    // Sent again: a new fax with the same pages.
    b.click("#resend");
    b.wait_text("is queued", 10).unwrap();
    b.wait_text("sent 4 of 4 pages", 90)
        .unwrap_or_else(|t| panic!("the resend was never sent: {t}\n{}", s.log()));
    assert!(wait_until(10, || remote_faxes(&s).len() == 2));
    let audit = std::fs::read_to_string(s.file("audit.log")).unwrap();
    assert!(
        audit.contains(r#""action":"fax.send""#) && audit.contains(r#""action":"fax.resend""#),
        "{audit}"
    );
}

#[test]
fn a_long_history_is_paged_and_searched() {
    // As fast as the CPU goes: 30 faxes queued with `faxmta fax send`.
    let work = tempfile::tempdir().unwrap();
    let extra = fax_config(work.path()).replace("pace = 5\n", "");
    let s = portal_server_in(work, &extra);
    let doc = s.work.path().join("note.txt");
    std::fs::write(&doc, "A short note.\n").unwrap();
    let numbers: Vec<String> = (0..30).map(|i| format!("+1555123{i:04}")).collect();
    for n in &numbers {
        let out = s.cli(&[
            "fax",
            "send",
            "--to",
            n,
            "--from",
            "alice@example.test",
            doc.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let alice = CurlSession::login(&s, "alice@example.test", ALICE_PW);
    assert!(
        wait_until(120, || {
            let (_, page) = alice.get(&s, "/portal/faxes");
            page.contains("No fax of yours is waiting")
                && numbers.iter().filter(|n| page.contains(n.as_str())).count() == 25
        }),
        "{}",
        s.log()
    );
    let b = browser_as(&s, "alice@example.test", ALICE_PW, Screen::Desktop);
    b.goto(&url(&s, "/portal/faxes"));
    let first = b.text_of("#history").unwrap();
    assert_eq!(b.count("#history tbody tr"), 25);
    b.click("a[rel=next]");
    b.wait_text("Sent and failed", 10).unwrap();
    let second = b.text_of("#history").unwrap();
    assert_eq!(b.count("#history tbody tr"), 5);
    assert!(b.count("a[rel=next]") == 0, "the last page");
    // Every fax once, on one page or the other.
    for n in &numbers {
        let on = [&first, &second]
            .iter()
            .filter(|t| t.contains(n.as_str()))
            .count();
        assert_eq!(on, 1, "{n}");
    }
    // Search: one number, then the paging of a search.
    b.goto(&url(&s, "/portal/faxes?q=15551230007"));
    assert_eq!(b.count("#history tbody tr"), 1);
    assert!(b.text_of("#history").unwrap().contains("+15551230007"));
}

#[test]
fn sending_works_without_javascript() {
    let s = fax_site();
    let b = Browser::without_javascript(Screen::Desktop);
    b.goto(&url(&s, "/portal/login"));
    log_in(&b, "alice@example.test", ALICE_PW);
    b.wait_text("Log out", 10).unwrap();
    send_pdf(&s, &b, NUMBER);
    b.click("#send");
    b.wait_text("is queued", 10).unwrap();
    // JavaScript is off indeed: the page says how to follow the status.
    assert_contains(&b.text(), "Reload the page to see the status change.");
    // The state as of each load; reloading shows it move on.
    assert!(
        wait_until(90, || {
            b.goto(&url(&s, "/portal/faxes"));
            b.text_of("#history").is_some_and(|t| t.contains(NUMBER))
        }),
        "{}",
        b.text()
    );
    assert_contains(&b.text_of("#history").unwrap(), "sent");
}
