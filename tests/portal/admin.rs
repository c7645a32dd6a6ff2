//! tests/portal.rs, the administrators' settings pages: adding a user
//! who then logs in, disabling a user (their session ends, their login
//! and SMTP AUTH are refused), resetting a password, giving a user a fax
//! number that routes a received fax to them without a restart, the
//! configuration keeping its comments, an invalid change refused with
//! its error and the file unchanged, a domain administrator kept to
//! their domain, a plain user and a form without its token refused.

use crate::common::*;
use crate::fax::{browser_as, fax_site};
use crate::peers::{Browser, Screen};
use crate::support::*;
use faxmta_fax::page::{Compression, Page, Resolution};
use faxmta_fax::tiff::{write_tiff_f, TiffHeader};

/// The session's CSRF token, from a form of the page shown.
fn csrf(b: &Browser) -> String {
    b.attr("input[name=csrf]", "value")
        .expect("a form with a token")
}

/// An administrator's browser on the page of user `name`.
fn user_page(s: &Site, b: &Browser, name: &str) {
    b.goto(&url(s, &format!("/portal/admin/user?name={name}")));
    b.wait_text("Reset the password", 10)
        .unwrap_or_else(|t| panic!("no page for {name}: {t}"));
}

/// Whether SMTP AUTH takes `user` and `password`.
fn smtp_auth(s: &Site, user: &str, password: &str) -> bool {
    let server = format!("127.0.0.1:{}", s.sub_port);
    let (_, out) = swaks(&[
        "--server",
        &server,
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        user,
        "--auth-password",
        password,
        "--quit-after",
        "AUTH",
    ]);
    out.contains("235 ")
}

/// Log in through the form in a new browser; the page's text after it.
fn try_log_in(s: &Site, user: &str, password: &str) -> String {
    let b = Browser::start(Screen::Desktop);
    b.goto(&url(s, "/portal/login"));
    log_in(&b, user, password);
    let mut text = String::new();
    let answered = wait_until(20, || {
        text = b.text();
        ["Log out", "Wrong name or password", "Too many"]
            .iter()
            .any(|t| text.contains(t))
    });
    assert!(answered, "no answer to the login: {text:?}\n{}", b.source());
    text
}

#[test]
fn an_administrator_adds_a_user_who_then_logs_in() {
    let s = portal_server("");
    let b = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    b.goto(&url(&s, "/portal/admin/"));
    b.click("a[href='/portal/admin/users']");
    b.wait_text("Add a user", 10).unwrap();
    b.fill("#address", "carol@example.test");
    b.fill("#password", "carol-Secret-4");
    b.fill("#fax_name", "Carol Example");
    b.fill("#numbers", "400");
    b.click("#add-user button[type=submit]");
    b.wait_text("User carol@example.test added.", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    let users = b.text_of("#users").unwrap_or_default();
    assert!(
        users.contains("carol@example.test") && users.contains("Carol Example"),
        "{users}"
    );
    shot(&b, "admin-users");
    // She logs in, in another browser.
    let carol = browser_as(&s, "carol@example.test", "carol-Secret-4", Screen::Phone);
    carol.goto(&url(&s, "/portal/"));
    assert_contains(&carol.text(), "carol@example.test");
    // The fax entry went into the configuration.
    let config = std::fs::read_to_string(s.config()).unwrap();
    assert!(
        config.contains("address = \"carol@example.test\""),
        "{config}"
    );
    assert!(config.contains("numbers = [\"400\"]"), "{config}");
    let audit = std::fs::read_to_string(s.file("audit.log")).unwrap();
    assert!(
        audit.contains(r#""action":"user.add","actor":"boss@example.test""#)
            && audit.contains(r#""object":"carol@example.test","result":"ok""#),
        "{audit}"
    );
    assert!(!audit.contains("carol-Secret-4") && !audit.contains("$argon2"));
    // Deleted: her session ends, her line and her fax entry are gone.
    let session = session_cookie(&carol).unwrap();
    user_page(&s, &b, "carol@example.test");
    b.click("#delete button");
    b.wait_text("User carol@example.test deleted.", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    let (status, _) = get_with_session(&s, "/portal/", session.value());
    assert_eq!(status, 303, "her session has ended");
    let users = std::fs::read_to_string(s.file("users")).unwrap();
    assert!(
        !users.contains("carol@") && users.contains("alice@"),
        "{users}"
    );
    let config = std::fs::read_to_string(s.config()).unwrap();
    assert!(!config.contains("carol@example.test"), "{config}");
}

#[test]
fn disabling_a_user_ends_their_session_and_refuses_their_login() {
    let s = portal_server("");
    let alice = browser_as(&s, "alice@example.test", ALICE_PW, Screen::Desktop);
    let session = session_cookie(&alice).unwrap();
    assert!(smtp_auth(&s, "alice@example.test", ALICE_PW));
    let b = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    user_page(&s, &b, "alice@example.test");
    b.click("#toggle button");
    b.wait_text("The user is disabled and logged out.", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    assert_contains(&b.text_of("#state").unwrap_or_default(), "disabled");
    shot(&b, "admin-user");
    let (status, _) = get_with_session(&s, "/portal/", session.value());
    assert_eq!(status, 303, "her session has ended");
    assert_contains(
        &try_log_in(&s, "alice@example.test", ALICE_PW),
        "Wrong name or password",
    );
    assert!(!smtp_auth(&s, "alice@example.test", ALICE_PW));
    let users = std::fs::read_to_string(s.file("users")).unwrap();
    assert!(users.contains("alice@example.test:!$argon2id$"), "{users}");
    // Enabled again: the old password works.
    b.click("#toggle button");
    b.wait_text("The user is enabled.", 20).unwrap();
    assert_contains(&try_log_in(&s, "alice@example.test", ALICE_PW), "Log out");
    assert!(smtp_auth(&s, "alice@example.test", ALICE_PW));
}

#[test]
fn a_reset_password_works_and_the_old_one_does_not() {
    let s = portal_server("");
    let bob = browser_as(&s, "bob@example.test", BOB_PW, Screen::Desktop);
    let session = session_cookie(&bob).unwrap();
    let b = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    user_page(&s, &b, "bob@example.test");
    b.fill("#new-password", "bob-New-Secret-5");
    b.click("#password-form button[type=submit]");
    b.wait_text("The password was changed", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    let (status, _) = get_with_session(&s, "/portal/", session.value());
    assert_eq!(status, 303, "his session has ended");
    assert_contains(
        &try_log_in(&s, "bob@example.test", BOB_PW),
        "Wrong name or password",
    );
    assert_contains(
        &try_log_in(&s, "bob@example.test", "bob-New-Secret-5"),
        "Log out",
    );
    assert!(smtp_auth(&s, "bob@example.test", "bob-New-Secret-5"));
    let audit = std::fs::read_to_string(s.file("audit.log")).unwrap();
    assert!(audit.contains(r#""action":"user.password""#), "{audit}");
    assert!(!audit.contains("bob-New-Secret-5"), "{audit}");
}

/// A one-page fax to send in.
fn document(s: &Site) -> std::path::PathBuf {
    let mut page = Page::blank(1728, 1200, Resolution::Fine);
    for y in 100..300 {
        for x in 200..900 {
            page.set(x, y, true);
        }
    }
    let tif = s.work.path().join("incoming.tif");
    write_tiff_f(&tif, &[page], Compression::Mh, &TiffHeader::default()).unwrap();
    tif
}

#[test]
fn a_number_given_by_the_administrator_routes_received_faxes_without_a_restart() {
    let s = fax_site();
    let before = std::fs::read_to_string(s.config()).unwrap();
    assert!(before.contains("# Never the system resolver"));
    let b = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    user_page(&s, &b, "bob@example.test");
    assert_eq!(b.attr("#numbers", "value").as_deref(), Some("200"));
    b.fill("#numbers", "200, 300");
    b.fill("#tsi", "+1 555 0300");
    b.click("#fax-form button[type=submit]");
    b.wait_text("The fax entry was saved.", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    // The file keeps its comments and the rest of its text.
    let after = std::fs::read_to_string(s.config()).unwrap();
    assert!(after.contains("# Never the system resolver"), "{after}");
    assert!(
        after.contains("numbers = [\"200\", \"300\"]") && after.contains("tsi = \"+1 555 0300\""),
        "{after}"
    );
    let kept = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with("numbers") && !l.starts_with("tsi = \"+1 555 0300\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(kept(&before), kept(&after), "only bob's entry changed");
    b.goto(&url(&s, "/portal/admin/numbers"));
    let numbers = b.text_of("#numbers").unwrap_or_default();
    assert!(numbers.contains("300") && numbers.contains("bob@example.test"));
    shot(&b, "admin-numbers");
    // A fax to 300 is bob's now.
    let out = s.cli(&[
        "fax",
        "simulate-incoming",
        "--did",
        "300",
        "--ani",
        "+15557654321",
        "--tsi",
        "REMOTE FAX",
        document(&s).to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let bob = browser_as(&s, "bob@example.test", BOB_PW, Screen::Desktop);
    let seen = wait_until(60, || {
        bob.goto(&url(&s, "/portal/received"));
        bob.text_of("#received")
            .is_some_and(|t| t.contains("+15557654321"))
    });
    assert!(seen, "not in bob's list: {}\n{}", bob.text(), s.log());
}

#[test]
fn a_change_that_makes_the_configuration_invalid_is_refused_and_nothing_changes() {
    let s = fax_site();
    let before = std::fs::read(s.config()).unwrap();
    let b = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    user_page(&s, &b, "alice@example.test");
    b.fill("#tsi", "A STATION ID FAR TOO LONG");
    b.click("#fax-form button[type=submit]");
    let text = b
        .wait_text("Nothing was changed", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    assert_contains(&text, "at most 20 printable ASCII characters");
    assert_contains(&text, "faxmta.toml:");
    shot(&b, "admin-refused");
    assert_eq!(
        std::fs::read(s.config()).unwrap(),
        before,
        "the file is unchanged"
    );
    // By hand, a retention below the least: refused with its line.
    b.goto(&url(&s, "/portal/admin/retention"));
    let token = csrf(&b);
    let session = session_cookie(&b).unwrap();
    let (status, body) = post_with_session(
        &s,
        "/portal/admin/retention",
        session.value(),
        &format!("csrf={token}&history_days=400&documents_days=90&retention_days=3"),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert_contains(&body, "at least 7");
    assert_eq!(std::fs::read(s.config()).unwrap(), before);
    // A good one is written and in force.
    b.fill("#retention_days", "30");
    b.click("#retention-form button[type=submit]");
    b.wait_text("The retention was saved.", 20).unwrap();
    assert_eq!(b.attr("#retention_days", "value").as_deref(), Some("30"));
    shot(&b, "admin-retention");
}

#[test]
fn a_domain_administrator_sees_and_changes_only_their_domain() {
    let s = portal_server(
        "[portal.domain_admins]\n\"other.test\" = [\"dora@other.test\"]\n\
         [[fax.user]]\naddress = \"alice@example.test\"\nnumbers = [\"100\"]\n",
    );
    add_user(&s, "dora@other.test", "dora-Secret-6", &[]);
    add_user(&s, "carol@other.test", "carol-Secret-4", &[]);
    let b = browser_as(&s, "dora@other.test", "dora-Secret-6", Screen::Desktop);
    b.goto(&url(&s, "/portal/admin/users"));
    let users = b.text_of("#users").unwrap_or_default();
    assert!(users.contains("carol@other.test"), "{users}");
    assert!(!users.contains("alice@example.test"), "{users}");
    let token = csrf(&b);
    let session = session_cookie(&b).unwrap();
    let (status, _) = get_with_session(
        &s,
        "/portal/admin/user?name=alice%40example.test",
        session.value(),
    );
    assert_eq!(status, 404);
    let users_before = std::fs::read(s.file("users")).unwrap();
    for (path, body) in [
        (
            "/portal/admin/user/password",
            "name=alice%40example.test&password=x",
        ),
        (
            "/portal/admin/user/disable",
            "name=alice%40example.test&disable=1",
        ),
        ("/portal/admin/user/delete", "name=alice%40example.test"),
        (
            "/portal/admin/users/add",
            "address=eve%40example.test&password=x",
        ),
        (
            "/portal/admin/user/fax",
            "name=alice%40example.test&numbers=999",
        ),
        (
            "/portal/admin/retention",
            "history_days=1&documents_days=0&retention_days=7",
        ),
        (
            "/portal/admin/numbers/default",
            "default_to=dora%40other.test",
        ),
        ("/portal/admin/groups", "name=mine"),
        ("/portal/admin/rules", "name=x&match=*&action=allow"),
    ] {
        let (status, body) = post_with_session(
            &s,
            path,
            session.value(),
            &format!("csrf={token}&{body}"),
            None,
        );
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert_eq!(std::fs::read(s.file("users")).unwrap(), users_before);
    // Nor take a number of another domain's user.
    let config = std::fs::read(s.config()).unwrap();
    let (status, body) = post_with_session(
        &s,
        "/portal/admin/user/fax",
        session.value(),
        &format!("csrf={token}&name=carol%40other.test&numbers=100"),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert_contains(&body, "number 100 belongs to a group or another domain");
    assert_eq!(std::fs::read(s.config()).unwrap(), config);
    assert_contains(&try_log_in(&s, "alice@example.test", ALICE_PW), "Log out");
    // Her own domain's user she changes.
    user_page(&s, &b, "carol@other.test");
    b.click("#toggle button");
    b.wait_text("The user is disabled", 20).unwrap();
    assert_contains(
        &try_log_in(&s, "carol@other.test", "carol-Secret-4"),
        "Wrong name or password",
    );
}

#[test]
fn a_plain_user_gets_404_on_every_administration_page() {
    let s = portal_server("");
    let b = browser_as(&s, "alice@example.test", ALICE_PW, Screen::Desktop);
    let token = csrf(&b);
    let session = session_cookie(&b).unwrap();
    for path in [
        "/portal/admin/",
        "/portal/admin/users",
        "/portal/admin/user?name=bob%40example.test",
        "/portal/admin/groups",
        "/portal/admin/rules",
        "/portal/admin/numbers",
        "/portal/admin/retention",
    ] {
        let (status, _) = get_with_session(&s, path, session.value());
        assert_eq!(status, 404, "{path}");
    }
    for path in [
        "/portal/admin/users/add",
        "/portal/admin/user/password",
        "/portal/admin/user/disable",
        "/portal/admin/user/delete",
        "/portal/admin/user/fax",
        "/portal/admin/groups",
        "/portal/admin/rules",
        "/portal/admin/rules/move",
        "/portal/admin/numbers/rule",
        "/portal/admin/numbers/rule/move",
        "/portal/admin/numbers/default",
        "/portal/admin/retention",
    ] {
        let (status, _) = post_with_session(
            &s,
            path,
            session.value(),
            &format!("csrf={token}&name=bob%40example.test&disable=1&index=0&action=delete"),
            None,
        );
        assert_eq!(status, 404, "{path}");
    }
    assert_contains(&try_log_in(&s, "bob@example.test", BOB_PW), "Log out");
}

#[test]
fn administration_forms_without_the_token_change_nothing() {
    let s = portal_server("");
    let b = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    let session = session_cookie(&b).unwrap();
    let config = std::fs::read(s.config()).unwrap();
    let users = std::fs::read(s.file("users")).unwrap();
    for csrf in ["", "csrf=&", "csrf=forged&"] {
        for (path, body) in [
            (
                "/portal/admin/user/disable",
                "name=alice%40example.test&disable=1",
            ),
            ("/portal/admin/user/delete", "name=alice%40example.test"),
            (
                "/portal/admin/users/add",
                "address=eve%40example.test&password=x",
            ),
            (
                "/portal/admin/retention",
                "history_days=9&documents_days=9&retention_days=9",
            ),
        ] {
            let (status, _) =
                post_with_session(&s, path, session.value(), &format!("{csrf}{body}"), None);
            assert_eq!(status, 403, "{path} with {csrf:?}");
        }
    }
    assert_eq!(std::fs::read(s.config()).unwrap(), config);
    assert_eq!(std::fs::read(s.file("users")).unwrap(), users);
}

#[test]
fn groups_in_a_fax_users_file_and_the_rules_are_edited_in_place() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    let fax_users = work.path().join("fax-users.toml");
    std::fs::write(
        &fax_users,
        "# fax users, kept by hand and by the portal\n[[user]]\naddress = \"alice@example.test\"\nnumbers = [\"100\"]\n",
    )
    .unwrap();
    let s = portal_server_in(
        work,
        &format!(
            "[fax]\nusers = \"{w}/fax-users.toml\"\nspool = \"{w}/spool\"\n\
             [fax.simulated]\nreceived = \"{w}/remote\"\ninbound = \"{w}/inbound\"\n\
             [fax.incoming]\nstore = \"{w}/faxes\"\n\
             # the routing rules\n[[fax.incoming.rule]]\nname = \"first\"\ndid = \"500\"\nto = [\"bob@example.test\"]\n\
             [[fax.incoming.rule]]\nname = \"second\"\ndid = \"600\"\nto = [\"alice@example.test\"]\n"
        ),
    );
    let b = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    b.goto(&url(&s, "/portal/admin/groups"));
    b.fill("#group-name", "sales");
    b.fill("#group-numbers", "700");
    b.click("#group-form button[type=submit]");
    b.wait_text("The groups were saved.", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    user_page(&s, &b, "alice@example.test");
    b.fill("#groups", "sales");
    b.click("#fax-form button[type=submit]");
    b.wait_text("The fax entry was saved.", 20).unwrap();
    let text = std::fs::read_to_string(&fax_users).unwrap();
    assert!(
        text.starts_with("# fax users, kept by hand and by the portal\n")
            && text.contains("[[group]]\nname = \"sales\"\nnumbers = [\"700\"]")
            && text.contains("groups = [\"sales\"]"),
        "{text}"
    );
    // An outbound rule for the group, in the configuration file.
    b.goto(&url(&s, "/portal/admin/rules"));
    b.fill("#rule-name", "no-premium");
    b.fill("#rule-match", "+1900");
    b.fill("#rule-groups", "sales");
    b.click("#rule-form button[type=submit]");
    b.wait_text("The rule was saved.", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    assert_contains(&b.text_of("#rules").unwrap_or_default(), "no-premium");
    shot(&b, "admin-rules");
    let config = std::fs::read_to_string(s.config()).unwrap();
    assert!(
        config.contains("[[fax.rule]]\nname = \"no-premium\"\nmatch = [\"+1900\"]\naction = \"deny\"\ngroups = [\"sales\"]"),
        "{config}"
    );
    // Renaming the group would leave the rule naming nothing: refused,
    // the fax users file as it was.
    b.goto(&url(&s, "/portal/admin/groups?edit=sales"));
    b.fill("#group-name", "sales-team");
    b.click("#group-form button[type=submit]");
    let refused = b.wait_text("Nothing was changed", 20).unwrap();
    assert_contains(&refused, "group sales is not defined");
    assert_eq!(std::fs::read_to_string(&fax_users).unwrap(), text);
    // The routing rules change order; the comment above them stays.
    b.goto(&url(&s, "/portal/admin/numbers"));
    assert_contains(&b.text_of("#numbers").unwrap_or_default(), "group sales");
    b.click("button[aria-label='up rule 2']");
    b.wait_text("The rules were changed.", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    let rules = b.text_of("#rules").unwrap_or_default();
    assert!(rules.find("second") < rules.find("first"), "{rules}");
    let config = std::fs::read_to_string(s.config()).unwrap();
    let (second, first) = (
        config.find("name = \"second\"").unwrap(),
        config.find("name = \"first\"").unwrap(),
    );
    assert!(second < first, "{config}");
    assert!(
        config.contains("# the routing rules\n[[fax.incoming.rule]]"),
        "{config}"
    );
    let audit = std::fs::read_to_string(s.file("audit.log")).unwrap();
    for action in ["group.add", "fax.rule.save", "incoming.rule.up"] {
        assert!(
            audit.contains(&format!(r#""action":"{action}""#)),
            "{audit}"
        );
    }
    assert!(audit.contains(r#""action":"group.change""#) && audit.contains("refused"));
}
