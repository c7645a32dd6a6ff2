//! SMTP AUTH (RFC 4954) with the real binary: only on submission
//! listeners and only over TLS (530 before STARTTLS); PLAIN and LOGIN;
//! failures answered later and later, then 421; the user recorded in the
//! Received header and the queue, allowed to relay, and held to its own
//! envelope senders; `faxmta user add|passwd|del|list`.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

/// faxmta with a users file (made by `faxmta user add` in each test), an
/// implicit-TLS submission listener as well, and `[auth]` lines `auth`.
fn start(auth: &str) -> (Server, tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let smtps = free_port();
    let server = Server::start_with(
        "",
        &format!(
            "[[listener]]\naddr = \"127.0.0.1:{smtps}\"\nrole = \"submission\"\ntls = \"implicit\"\n\
             [auth]\nusers_file = \"{}/users\"\n{auth}\n",
            dir.path().display()
        ),
    );
    (server, dir, smtps)
}

#[test]
fn auth_only_on_submission_and_only_after_starttls() {
    let (server, _dir, smtps) = start("");
    add_user(&server, "alice@example.test", "s3cret", &[]);
    // The MX listener has no AUTH at all.
    let mut c = server.connect();
    let ehlo = c.cmd("EHLO c.test");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert!(c
        .cmd(&auth_plain("alice@example.test", "s3cret"))
        .starts_with("503 5.5.1"));
    // Submission before STARTTLS: not announced, refused with 530.
    let mut c = Smtp::connect(server.sub_port);
    let ehlo = c.cmd("EHLO c.test");
    assert!(
        !ehlo.contains("AUTH") && ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert_eq!(
        c.cmd(&auth_plain("alice@example.test", "s3cret")),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    assert_eq!(
        c.cmd("AUTH LOGIN"),
        "530 5.7.0 Must issue a STARTTLS command first"
    );

    // After STARTTLS: announced; a wrong password fails, the right one
    // succeeds, and the user may relay and sends as itself.
    let wrong = auth_plain("alice@example.test", "guess");
    let right = auth_plain("alice@example.test", "s3cret");
    let out = smtp_script(
        server.sub_port,
        "127.0.0.1",
        false,
        &[
            "EHLO c.test",
            "!starttls",
            "EHLO c.test",
            "MAIL FROM:<alice@example.test>",
            &right,
            "QUIT",
        ],
    );
    assert!(
        out[3].1.lines().any(|l| l == "250 AUTH PLAIN LOGIN"),
        "{out:#?}"
    );
    // Without AUTH the submission listener is like the MX one; AUTH is
    // not allowed inside a transaction.
    assert!(out[4].1.starts_with("250 2.1.0"), "{out:#?}");
    assert!(out[5].1.starts_with("503 5.5.1"), "{out:#?}");
    let out = smtp_script(
        server.sub_port,
        "127.0.0.1",
        false,
        &[
            "EHLO c.test",
            "!starttls",
            "EHLO c.test",
            &wrong,
            &right,
            &right,
            "MAIL FROM:<alice@example.test>",
            "RCPT TO:<someone@elsewhere.test>",
            "RCPT TO:<bob@example.test>",
            "!maybe-data:Subject: from alice\r\n\r\nhello\r\n",
            "QUIT",
        ],
    );
    assert_eq!(
        out[4].1, "535 5.7.8 Error: authentication failed",
        "{out:#?}"
    );
    assert_eq!(out[5].1, "235 2.7.0 Authentication successful", "{out:#?}");
    assert!(out[6].1.starts_with("503 5.5.1"), "{out:#?}");
    assert!(out[7].1.starts_with("250 2.1.0"), "{out:#?}");
    assert!(out[8].1.starts_with("250 2.1.5"), "relayed: {out:#?}");
    assert!(out[9].1.starts_with("250 2.1.5"), "{out:#?}");
    let id = queued_id(out[10].1.lines().last().unwrap_or(""));

    // The queue and the Received header record the user.
    let bob = server.wait_maildir("example.test", "bob", 1, 10);
    assert_eq!(bob.len(), 1);
    let text = String::from_utf8_lossy(&read(&bob[0])).into_owned();
    assert_contains(&text, "\t(Authenticated sender: alice@example.test)\n");
    assert_contains(&text, " with ESMTPSA id ");
    let env = find_queued(&server, &id).expect("the remote recipient is still queued");
    assert_eq!(env["client"]["auth_user"], "alice@example.test", "{env:#}");
    assert_eq!(env["client"]["trusted"], true, "{env:#}");
    assert_eq!(env["client"]["protocol"], "ESMTPSA", "{env:#}");

    // AUTH LOGIN on the implicit-TLS listener, where it is offered at once.
    let out = smtp_script(
        smtps,
        "127.0.0.1",
        true,
        &[
            "EHLO c.test",
            "AUTH LOGIN",
            &base64_encode(b"Alice@Example.test"),
            &base64_encode(b"s3cret"),
            "QUIT",
        ],
    );
    assert!(
        out[1].1.lines().any(|l| &l[4..] == "AUTH PLAIN LOGIN"),
        "{out:#?}"
    );
    assert_eq!(out[2].1, "334 VXNlcm5hbWU6", "{out:#?}");
    assert_eq!(out[3].1, "334 UGFzc3dvcmQ6", "{out:#?}");
    assert!(out[4].1.starts_with("235 2.7.0"), "{out:#?}");
    // Cancelled, and an unknown mechanism.
    let out = smtp_script(
        smtps,
        "127.0.0.1",
        true,
        &["EHLO c.test", "AUTH PLAIN", "*", "AUTH CRAM-MD5"],
    );
    assert_eq!(out[2].1, "334 ", "{out:#?}");
    assert!(out[3].1.starts_with("501 5.7.0"), "{out:#?}");
    assert!(out[4].1.starts_with("504 5.5.4"), "{out:#?}");

    let metrics = server.http_get("/metrics");
    assert_contains(
        &metrics,
        "faxmta_smtp_auth_total{mechanism=\"PLAIN\",result=\"success\"} 1",
    );
    assert_contains(
        &metrics,
        "faxmta_smtp_auth_total{mechanism=\"PLAIN\",result=\"failure\"} 1",
    );
    assert_contains(
        &metrics,
        "faxmta_smtp_auth_total{mechanism=\"LOGIN\",result=\"success\"} 1",
    );
    assert!(!server.log().contains("s3cret"), "a password was logged");
}

#[test]
fn failed_attempts_are_slowed_then_refused() {
    let (server, _dir, _) = start("max_failures = 3\nfailure_delay = \"1s\"");
    add_user(&server, "alice@example.test", "s3cret", &[]);
    let wrong = auth_plain("alice@example.test", "nope");
    let unknown = auth_plain("mallory@example.test", "nope");
    let out = smtp_script(
        server.sub_port,
        "127.0.0.1",
        false,
        &[
            "EHLO c.test",
            "!starttls",
            "EHLO c.test",
            &wrong,
            &unknown,
            &wrong,
            "NOOP",
            "NOOP",
        ],
    );
    let (first, second, third) = (&out[4], &out[5], &out[6]);
    assert_eq!(
        first.1, "535 5.7.8 Error: authentication failed",
        "{out:#?}"
    );
    assert_eq!(second.1, first.1, "an unknown user fails the same way");
    assert_eq!(third.1, first.1, "{out:#?}");
    // The last one allowed: 421 after it, and the connection is closed.
    assert_eq!(
        out[7].1,
        "421 4.7.0 Error: too many failed authentication attempts from [127.0.0.1], try again later",
        "{out:#?}"
    );
    assert_eq!(out[8].1, "<closed>", "{out:#?}");
    // Each failure waits longer than the one before (1 s, 2 s, 3 s here).
    assert!(second.2 > first.2 + 0.5, "{out:#?}");
    assert!(third.2 > first.2 + 1.5, "{out:#?}");
    // The address stays blocked, even with the right password.
    let right = auth_plain("alice@example.test", "s3cret");
    let out = smtp_script(
        server.sub_port,
        "127.0.0.1",
        false,
        &["EHLO c.test", "!starttls", "EHLO c.test", &right],
    );
    assert!(
        out[4].1.starts_with("421 4.7.0 Error: too many failed"),
        "{out:#?}"
    );
    assert!(out[4].2 < 1.0, "no delay needed to refuse: {out:#?}");
    // Another address is not.
    let out = smtp_script(
        server.sub_port,
        "127.0.0.2",
        false,
        &["EHLO c.test", "!starttls", "EHLO c.test", &right],
    );
    assert!(out[4].1.starts_with("235 2.7.0"), "{out:#?}");
    let metrics = server.http_get("/metrics");
    assert_contains(
        &metrics,
        "faxmta_smtp_auth_total{mechanism=\"PLAIN\",result=\"failure\"} 3",
    );
    assert_contains(
        &metrics,
        "faxmta_smtp_limits_total{limit=\"auth_failures\"} 2",
    );
}

/// MAIL FROM after AUTH as `user`: the reply to each sender.
fn senders(server: &Server, user: &str, password: &str, from: &[&str]) -> Vec<String> {
    let auth = auth_plain(user, password);
    let mut steps = vec![
        "EHLO c.test".to_string(),
        "!starttls".into(),
        "EHLO c.test".into(),
        auth,
    ];
    for f in from {
        steps.push(format!("MAIL FROM:<{f}>"));
        steps.push("RSET".into());
    }
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = smtp_script(server.sub_port, "127.0.0.1", false, &steps);
    assert!(out[4].1.starts_with("235"), "{out:#?}");
    out[5..].iter().step_by(2).map(|s| s.1.clone()).collect()
}

#[test]
fn the_envelope_sender_belongs_to_the_user() {
    let (server, _dir, _) = start("");
    add_user(&server, "alice@example.test", "pw-a", &[]);
    add_user(
        &server,
        "scanner",
        "pw-s",
        &["scanner@example.test", "@fax.example.test"],
    );
    let r = senders(
        &server,
        "alice@example.test",
        "pw-a",
        &[
            "alice@example.test",
            "Bob@EXAMPLE.test",
            "",
            "alice@elsewhere.test",
        ],
    );
    assert!(
        r[0].starts_with("250") && r[1].starts_with("250") && r[2].starts_with("250"),
        "{r:?}"
    );
    assert_eq!(
        r[3],
        "553 5.7.1 <alice@elsewhere.test>: Sender address rejected: not owned by user alice@example.test"
    );
    let r = senders(
        &server,
        "scanner",
        "pw-s",
        &[
            "scanner@example.test",
            "x@fax.example.test",
            "alice@example.test",
        ],
    );
    assert!(r[0].starts_with("250") && r[1].starts_with("250"), "{r:?}");
    assert!(r[2].starts_with("553 5.7.1"), "{r:?}");

    // any_sender = true lifts the rule.
    let (open, _dir2, _) = start("any_sender = true");
    add_user(&open, "alice@example.test", "pw-a", &[]);
    let r = senders(&open, "alice@example.test", "pw-a", &["ceo@elsewhere.test"]);
    assert!(r[0].starts_with("250 2.1.0"), "{r:?}");
}

#[test]
fn user_commands_edit_the_file() {
    let (server, dir, _) = start("");
    let users = dir.path().join("users");
    let run = |args: &[&str], stdin: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_faxmta"));
        cmd.arg("user")
            .args(args)
            .arg("--config")
            .arg(server.config());
        user_cli(&mut cmd, stdin)
    };
    let out = run(&["add", "alice@example.test"], "first\n");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_contains(&output_text(&out), "added user alice@example.test");
    let mode = std::fs::metadata(&users).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.starts_with("alice@example.test:$argon2id$"), "{text}");
    assert!(!text.contains("first"), "{text}");
    // A comment and another user are kept through later edits.
    std::fs::write(&users, format!("# our users\n{text}")).unwrap();
    assert!(run(&["add", "bot", "--sender", "bot@example.test"], "pw\n")
        .status
        .success());
    let dup = run(&["add", "ALICE@example.test"], "x\n");
    assert!(!dup.status.success());
    assert_contains(&output_text(&dup), "exists already");
    assert!(
        !run(&["add", "carol"], "\n").status.success(),
        "empty password"
    );
    assert!(!run(&["add", "bad name"], "x\n").status.success());
    let list = run(&["list"], "");
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "alice@example.test (default)\nbot bot@example.test\n"
    );
    // passwd: the new password works, the old one does not.
    assert!(run(&["passwd", "alice@example.test"], "second\n")
        .status
        .success());
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(
        text.starts_with("# our users\nalice@example.test:$argon2id$"),
        "{text}"
    );
    assert!(
        text.contains("\nbot:$argon2id$") && text.ends_with(":bot@example.test\n"),
        "{text}"
    );
    let out = smtp_script(
        server.sub_port,
        "127.0.0.1",
        false,
        &[
            "EHLO c.test",
            "!starttls",
            "EHLO c.test",
            &auth_plain("alice@example.test", "second"),
        ],
    );
    assert!(out[4].1.starts_with("235"), "{out:#?}");
    assert!(run(&["del", "bot"], "").status.success());
    assert!(!run(&["del", "bot"], "").status.success());
    assert!(!run(&["passwd", "nobody"], "x\n").status.success());
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(!text.contains("\nbot:"), "{text}");
    // Only the users file is in the directory: no temporary file left.
    assert_eq!(dir.path().read_dir().unwrap().count(), 1);
}

/// 48 wrong passwords sent at once from one address
/// (each its own connection) once all ran argon2 — RSS 18 → 955 MB —
/// although `max_failures = 5`: the limit was checked before and counted
/// after the verification. Now a failure is counted before: at most
/// `max_failures` passwords are verified (each logged as a failed AUTH),
/// and every other attempt gets 421 without one.
#[test]
fn parallel_wrong_passwords_are_verified_at_most_max_failures_times() {
    let (server, _dir, _) = start("max_failures = 5\nfailure_delay = \"0s\"");
    add_user(&server, "alice@example.test", "s3cret", &[]);
    let wrong = auth_plain("alice@example.test", "guess");
    let port = server.sub_port;
    let clients: Vec<_> = (0..48)
        .map(|_| {
            let wrong = wrong.clone();
            std::thread::spawn(move || {
                smtp_script(
                    port,
                    "127.0.0.1",
                    false,
                    &["EHLO c.test", "!starttls", "EHLO c.test", &wrong],
                )
            })
        })
        .collect();
    let replies: Vec<String> = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .map(|out| out.get(4).map(|s| s.1.clone()).unwrap_or_default())
        .collect();
    let failed = replies
        .iter()
        .filter(|r| *r == "535 5.7.8 Error: authentication failed")
        .count();
    let blocked = replies
        .iter()
        .filter(|r| r.starts_with("421 4.7.0 Error: too many failed authentication attempts"))
        .count();
    assert_eq!((failed, blocked), (5, 43), "{replies:#?}");
    // Exactly five passwords were verified.
    let log = server.log();
    assert_eq!(log.matches("AUTH PLAIN failed for").count(), 5, "{log}");
    let metrics = server.http_get("/metrics");
    assert_contains(&metrics, "faxmta_smtp_auth_verifications_total 5\n");
    assert_contains(
        &metrics,
        "faxmta_smtp_auth_total{mechanism=\"PLAIN\",result=\"failure\"} 5",
    );
}
