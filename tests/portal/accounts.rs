//! tests/portal.rs, the users page with the SMTP AUTH users in the
//! queue's database (`[accounts] backend = "database"`, a private
//! PostgreSQL): a user added through the portal logs in, a disabled one
//! cannot, a reset password replaces the old one.

use crate::common::*;
use crate::fax::browser_as;
use crate::peers::{Browser, Postgres, Screen};
use crate::support::*;

#[test]
fn users_in_the_database_are_added_disabled_and_reset_through_the_portal() {
    let pg = Postgres::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display();
    let server = Server::start_node(
        "127.0.0.1",
        &format!(
            "backend = \"postgres\"\nurl = \"{}\"\nnode = \"n1\"\npool_size = 4\n",
            pg.url
        ),
        &format!(
            "[accounts]\nbackend = \"database\"\n\
             [portal]\nadmins = [\"boss@example.test\"]\naudit_log = \"{w}/audit.log\"\n"
        ),
    );
    add_user(&server, "boss@example.test", BOSS_PW, &[]);
    add_user(&server, "alice@example.test", ALICE_PW, &[]);
    let s = Site { server, work };
    let b = browser_as(&s, "boss@example.test", BOSS_PW, Screen::Desktop);
    b.goto(&url(&s, "/portal/admin/users"));
    b.fill("#address", "carol@example.test");
    b.fill("#password", "carol-Secret-4");
    b.click("#add-user button[type=submit]");
    b.wait_text("User carol@example.test added.", 20)
        .unwrap_or_else(|t| panic!("{t}\n{}", s.log()));
    assert_contains(&cli_ok(&s, &["user", "list"]), "carol@example.test");
    let carol = browser_as(&s, "carol@example.test", "carol-Secret-4", Screen::Desktop);
    let session = session_cookie(&carol).unwrap();
    // Disabled: her session ends and the password no longer works.
    b.goto(&url(&s, "/portal/admin/user?name=carol@example.test"));
    b.click("#toggle button");
    b.wait_text("The user is disabled and logged out.", 20)
        .unwrap();
    let (status, _) = get_with_session(&s, "/portal/", session.value());
    assert_eq!(status, 303, "her session has ended");
    let again = Browser::start(Screen::Desktop);
    again.goto(&url(&s, "/portal/login"));
    log_in(&again, "carol@example.test", "carol-Secret-4");
    again.wait_text("Wrong name or password", 20).unwrap();
    // Alice gets a new password; the old one is refused.
    b.goto(&url(&s, "/portal/admin/user?name=alice@example.test"));
    b.fill("#new-password", "alice-New-Secret-7");
    b.click("#password-form button[type=submit]");
    b.wait_text("The password was changed", 20).unwrap();
    log_in(&again, "alice@example.test", ALICE_PW);
    again.wait_text("Wrong name or password", 20).unwrap();
    let alice = browser_as(
        &s,
        "alice@example.test",
        "alice-New-Secret-7",
        Screen::Desktop,
    );
    assert!(session_cookie(&alice).is_some());
}
