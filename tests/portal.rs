//! The web portal in a real browser (headless chromium through
//! chromedriver, tests/peers/browser.rs) against the real binary: logging
//! in and out, login throttling, the session cookie's attributes, session
//! fixation and cross-site requests refused. The fax user's pages are
//! tests/portal/fax.rs, the administrators' settings tests/portal/admin.rs.
//!
//! Screenshots of the pages go to target/portal-screenshots/, or to
//! docs/portal/ with `FAXMTA_SCREENSHOTS=docs/portal` (how the pictures
//! of docs/portal.md are made).

#[path = "portal/access.rs"]
mod access;
#[path = "portal/accounts.rs"]
mod accounts;
#[path = "portal/admin.rs"]
mod admin;
mod common;
#[path = "portal/fax.rs"]
mod fax;
#[path = "../transports/fax/tests/fixtures/fax/messages.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "portal/operations.rs"]
mod operations;
mod peers;
#[path = "portal/support.rs"]
mod support;

use common::*;
use peers::{Browser, Screen};
use std::process::Command;
use support::*;

#[test]
fn a_user_logs_in_and_out_and_a_wrong_password_is_refused() {
    let s = portal_server("");
    let b = Browser::start(Screen::Desktop);
    b.goto(&url(&s, "/portal/faxes"));
    assert!(b.url().contains("/portal/login?next="), "{}", b.url());
    shot(&b, "login");
    log_in(&b, "alice@example.test", "not her password");
    assert_contains(&b.text(), "Wrong name or password");
    log_in(&b, "alice@example.test", ALICE_PW);
    // Back where she wanted to go.
    assert!(b.url().ends_with("/portal/faxes"), "{}", b.url());
    b.goto(&url(&s, "/portal/"));
    assert_contains(&b.text(), "alice@example.test");
    shot(&b, "home");
    let cookie = session_cookie(&b).expect("a session cookie");
    assert!(cookie.http_only() == Some(true), "{cookie:?}");
    assert!(cookie.secure() == Some(true), "{cookie:?}");
    assert_eq!(
        format!("{:?}", cookie.same_site()),
        "Some(Strict)",
        "{cookie:?}"
    );
    assert!(
        cookie.domain().is_none_or(|d| !d.starts_with('.')),
        "{cookie:?}"
    );
    b.click("form.logout button[type=submit]");
    b.wait_text("Log in", 10).unwrap();
    assert!(session_cookie(&b).is_none(), "the cookie is gone");
    // The old session is worth nothing now.
    let (status, _) = get_with_session(&s, "/portal/", cookie.value());
    assert_eq!(status, 303, "an ended session is sent to the login");
    let audit = std::fs::read_to_string(s.file("audit.log")).unwrap();
    assert!(
        audit.contains(r#""action":"login""#) && audit.contains(r#""action":"logout""#),
        "{audit}"
    );
    assert!(!audit.contains(ALICE_PW), "no password in the audit log");
}

#[test]
fn failed_logins_are_throttled_like_smtp_auth() {
    // max_failures = 3 for the whole server: the portal and SMTP AUTH
    // share the budget of an address.
    let s = portal_server("");
    let b = Browser::start(Screen::Desktop);
    b.goto(&url(&s, "/portal/login"));
    for _ in 0..3 {
        log_in(&b, "alice@example.test", "wrong");
        assert_contains(&b.text(), "Wrong name or password");
    }
    // Blocked now, even with the right password.
    log_in(&b, "alice@example.test", ALICE_PW);
    assert_contains(&b.text(), "Too many failed logins");
    // And SMTP AUTH from the same address is blocked too.
    let server = format!("127.0.0.1:{}", s.sub_port);
    let (_, out) = swaks(&[
        "--server",
        &server,
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.test",
        "--auth-password",
        ALICE_PW,
        "--quit-after",
        "AUTH",
    ]);
    assert_contains(&out, "421 4.7.0");
}

#[test]
fn a_session_id_planted_before_the_login_is_replaced() {
    let s = portal_server("");
    let b = Browser::start(Screen::Desktop);
    b.goto(&url(&s, "/portal/login"));
    b.set_cookie(SESSION, "planted-by-an-attacker");
    log_in(&b, "alice@example.test", ALICE_PW);
    b.wait_text("Send a fax", 10).unwrap();
    let cookie = session_cookie(&b).unwrap();
    assert_ne!(cookie.value(), "planted-by-an-attacker");
    let (status, _) = get_with_session(&s, "/portal/", "planted-by-an-attacker");
    assert_eq!(status, 303, "the planted id logs nobody in");
    let (status, body) = get_with_session(&s, "/portal/", cookie.value());
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_form_posted_from_another_site_changes_nothing() {
    let s = portal_server("");
    let b = Browser::start(Screen::Desktop);
    b.goto(&url(&s, "/portal/login"));
    log_in(&b, "alice@example.test", ALICE_PW);
    b.wait_text("Send a fax", 10).unwrap();
    let cookie = session_cookie(&b).unwrap();
    // Another site (another host: 127.0.0.2) whose page posts a logout
    // form to the portal as soon as it loads.
    let evil = EvilSite::start(&format!(
        r#"<form id="f" method="post" action="{}"><input name="csrf" value="guess"></form>
           <script>document.getElementById("f").submit()</script>"#,
        url(&s, "/portal/logout")
    ));
    b.goto(&evil.url());
    b.wait_text("refused", 10)
        .or_else(|_| b.wait_text("not logged in", 1))
        .unwrap();
    // Still logged in.
    let (status, _) = get_with_session(&s, "/portal/", cookie.value());
    assert_eq!(status, 200, "the session survived the cross-site post");
    // Without a browser: the right cookie but no token, or a token from
    // another session, or a foreign Origin, is refused.
    let (status, _) = post_with_session(&s, "/portal/logout", cookie.value(), "csrf=", None);
    assert_eq!(status, 403);
    let (status, _) = post_with_session(
        &s,
        "/portal/logout",
        cookie.value(),
        "csrf=x",
        Some("http://127.0.0.2:8080"),
    );
    assert_eq!(status, 403);
    let (status, _) = get_with_session(&s, "/portal/", cookie.value());
    assert_eq!(status, 200, "still logged in");
    // Every other form of a user is held to the token too.
    for path in ["/portal/send/confirm", "/portal/fax/resend"] {
        let (status, body) = post_with_session(
            &s,
            path,
            cookie.value(),
            "csrf=guess&draft=x&id=x&rcpt=x",
            None,
        );
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, body) = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Cookie: {SESSION}={}", cookie.value()))
        .args(["-F", "csrf=guess", "-F", "numbers=+15551234567"])
        .arg(url(&s, "/portal/send"))
        .output()
        .map(|o| (String::from_utf8_lossy(&o.stdout).into_owned(), o))
        .unwrap();
    assert_eq!(status, "403", "{body:?}");
}

#[test]
fn the_pages_fit_a_phone_and_every_field_has_a_label() {
    let s = portal_server("");
    let b = Browser::start(Screen::Phone);
    b.goto(&url(&s, "/portal/login"));
    log_in(&b, "boss@example.test", BOSS_PW);
    b.wait_text("Log out", 10).unwrap();
    for (path, name) in [
        ("/portal/", "phone-home"),
        ("/portal/send", "phone-send"),
        ("/portal/faxes", "phone-faxes"),
        ("/portal/admin/queue", "phone-queue"),
    ] {
        b.goto(&url(&s, path));
        let width = b.script("return [document.documentElement.scrollWidth, window.innerWidth]");
        let (page, window) = (width[0].as_u64().unwrap(), width[1].as_u64().unwrap());
        assert!(window <= 400, "a phone's width: {window}");
        assert!(
            page <= window,
            "{path}: {page} px wide on a {window} px screen"
        );
        // Every visible form field is named by a label (or an aria-label).
        let unlabelled = b.script(
            "return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))\
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))\
             .map(e => e.name)",
        );
        assert_eq!(unlabelled, serde_json::json!([]), "{path}");
        shot(&b, name);
    }
}
