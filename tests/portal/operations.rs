//! tests/portal.rs, the administrator's operations pages: the mail queue
//! (a deferred message found by the filter, held, released, flushed,
//! deleted — and the queue as `faxmta queue` sees it after each), usage
//! per user and group with its CSV, and the fax lines.

use crate::access::receive;
use crate::common::*;
use crate::fax::{browser_as, fax_site, send_pdf, NUMBER};
use crate::peers::Screen;
use crate::support::*;

/// The state `faxmta queue list --json` gives message `id`.
fn held(s: &Site, id: &str) -> Option<bool> {
    find_queued(s, id).map(|m| m["held"].as_bool().unwrap_or(false))
}

#[test]
fn an_administrator_holds_releases_and_deletes_queued_mail() {
    // This client may relay; mail for a domain whose MX cannot be found
    // stays deferred.
    let s = portal_server("[relay]\nallow = [\"127.0.0.1/32\"]\n");
    let id = send(
        &s,
        "alice@example.test",
        "someone@remote.example",
        "Subject: stuck\r\n\r\nwaiting\r\n",
    );
    let other = send(
        &s,
        "bob@example.test",
        "else@elsewhere.example",
        "Subject: other\r\n\r\nwaiting too\r\n",
    );
    let b = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    b.goto(&url(&s, "/portal/admin/queue?domain=remote.example"));
    let table = b.text_of("#queue").unwrap_or_default();
    assert!(table.contains(&id) && !table.contains(&other), "{table}");
    shot(&b, "admin-queue");
    b.click("#queue button[value=hold]");
    b.wait_text("hold: 1 message(s)", 10).unwrap();
    assert_eq!(held(&s, &id), Some(true), "held in the queue");
    b.goto(&url(&s, "/portal/admin/queue?state=held"));
    assert!(b.text_of("#queue").unwrap_or_default().contains(&id));
    b.click("#queue button[value=release]");
    b.wait_text("release: 1 message(s)", 10).unwrap();
    assert_eq!(held(&s, &id), Some(false), "released");
    // Its page: the envelope and the text.
    b.goto(&url(&s, &format!("/portal/admin/queue/message?id={id}")));
    assert_contains(&b.text(), "someone@remote.example");
    assert_contains(&b.text(), "Subject: stuck");
    b.click("main form button[value=delete]");
    b.wait_text("delete: 1 message(s)", 10).unwrap();
    assert_eq!(held(&s, &id), None, "deleted");
    assert!(find_queued(&s, &other).is_some(), "the other stays");
    let audit = std::fs::read_to_string(s.file("audit.log")).unwrap();
    for action in ["queue.hold", "queue.release", "queue.delete"] {
        assert!(
            audit.contains(&format!(r#""action":"{action}""#)) && audit.contains(&id),
            "{action}: {audit}"
        );
    }
}

#[test]
fn usage_per_user_and_group_with_csv_and_the_lines() {
    let s = fax_site();
    let b = browser_as(&s, "alice@example.test", ALICE_PW, Screen::Desktop);
    send_pdf(&s, &b, NUMBER);
    b.click("#send");
    b.wait_text("sent 4 of 4 pages", 90)
        .unwrap_or_else(|t| panic!("never sent: {t}\n{}", s.log()));
    receive(&s, "200");
    let boss = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    assert!(
        wait_until(30, || {
            boss.goto(&url(&s, "/portal/admin/usage"));
            boss.text_of("#usage")
                .is_some_and(|t| t.contains("bob@example.test"))
        }),
        "{}",
        boss.text()
    );
    let table = boss.text_of("#usage").unwrap();
    let alice = table
        .lines()
        .find(|l| l.starts_with("alice@example.test"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(alice.starts_with("alice@example.test 1 0 4 "), "{alice}");
    shot(&boss, "admin-usage");
    let session = session_cookie(&boss).unwrap();
    let csv = boss.attr("#csv", "href").unwrap();
    let (status, body) = get_bytes_with_session(&s, &csv, session.value());
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.starts_with("user,faxes_sent,faxes_failed,pages_sent,minutes_sent,faxes_received"),
        "{text}"
    );
    assert!(text.contains("\r\nalice@example.test,1,0,4,"), "{text}");
    assert!(
        text.contains("\r\nbob@example.test,0,0,0,0.0,1,2,"),
        "{text}"
    );
    let detail = boss.attr("#detail-csv", "href").unwrap();
    let (_, body) = get_bytes_with_session(&s, &detail, session.value());
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        text.lines().count(),
        3,
        "a header and a row per fax: {text}"
    );
    // The lines: the simulated engine, one line, idle now.
    boss.goto(&url(&s, "/portal/admin/lines"));
    assert_eq!(boss.text_of("#engine").as_deref(), Some("simulated"));
    assert_eq!(boss.text_of("#lines").as_deref(), Some("0 in use of 1"));
}
