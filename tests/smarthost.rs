//! The smart host with the real binary against a real
//! peer on loopback: a private Postfix that, like an ISP's submission
//! server, offers AUTH only after STARTTLS and lets only authenticated
//! clients send (tests/peers: `Postfix::start_smarthost`, SASL checked by
//! a private Dovecot). Shown: the global `[smarthost]` takes all remote
//! mail with no MX lookup; a refused login defers with Postfix's reply
//! and no report; the second host takes over when the first is down; a
//! `kind = "smarthost"` domain uses its hosts while other mail goes by MX;
//! implicit TLS (wrappermode) works; and the password appears nowhere in
//! faxmta's log (run at RUST_LOG=trace) or in `faxmta route`.
//!
//! Nothing leaves 127.0.0.0/8: DNS comes from tests/peers/dns.py.

mod common;
mod peers;

use common::*;
use peers::*;

const ALICE: &str = "alice@example.test";
const USER: &str = "faxmta@customer.test";
const PASSWORD: &str = "Sm4rt-h0st-s3cret";

/// A small message from Alice.
fn message(subject: &str) -> String {
    format!(
        "From: Alice <alice@example.test>\r\nTo: someone\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}.{}@example.test>\r\n\r\nHello through the smart host.\r\n",
        now()
    )
}

/// A password file (the password and a second line that is not part of
/// it) in its own directory; the TOML `auth = { … }` value for it.
fn password_file(password: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("smarthost.password");
    std::fs::write(&file, format!("{password}\nnot the password\n")).unwrap();
    let auth = format!(
        "{{ user = \"{USER}\", password_file = \"{}\" }}",
        file.display()
    );
    (dir, auth)
}

/// faxmta as [`faxmta`] makes it, restarted with RUST_LOG=trace so that
/// the password check sees everything it could ever log.
fn faxmta_traced(dns: &Dns, port: u16, extra: &str) -> Server {
    let mut s = faxmta(dns, Some(port), extra);
    s.rust_log = "trace".into();
    restart_with(&mut s, &[]);
    s
}

/// The password — plain, in an AUTH PLAIN token, in an AUTH LOGIN line —
/// is in neither the log nor the text given.
fn assert_no_password(server: &Server, password: &str, more: &[&str]) {
    let token = python(
        "import base64, sys; print(base64.b64encode(sys.argv[1].encode()).decode()); \
         print(base64.b64encode(('\\0' + sys.argv[2] + '\\0' + sys.argv[1]).encode()).decode())",
        &[password, USER],
    );
    let log = server.log();
    assert!(log.len() > 1000, "a trace log was expected:\n{log}");
    for text in std::iter::once(log.as_str()).chain(more.iter().copied()) {
        assert!(!text.contains(password), "the password is in:\n{text}");
        for t in token.split_whitespace() {
            assert!(
                !text.contains(t),
                "an encoded password ({t}) is in:\n{text}"
            );
        }
    }
}

/// Postfix's own Received header (the first one) of a delivered message.
fn first_received(mail: &str) -> String {
    let mut lines = mail.lines().skip_while(|l| !l.starts_with("Received: "));
    let mut header = lines.next().unwrap_or_default().to_string();
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        header.push(' ');
        header.push_str(l.trim());
    }
    header
}

#[test]
fn the_global_smart_host_takes_remote_mail_after_starttls_and_auth() {
    let port = shared_port(&["127.0.0.2", "127.0.0.3"]);
    let dns = Dns::start(&zone(&[
        "remote.test. MX 10 mx.remote.test.",
        "mx.remote.test. A 127.0.0.3",
        "smtp.isp.test. A 127.0.0.2",
    ]));
    // The MX from DNS is a sink that must get nothing.
    let mx = Sink::start("127.0.0.3", port, &[]);
    let pf = Postfix::start_smarthost(
        "127.0.0.2",
        port,
        None,
        "remote.test",
        &["bob"],
        &[(USER, PASSWORD)],
    );
    let (_pw, auth) = password_file(PASSWORD);
    let s = faxmta_traced(
        &dns,
        port,
        &format!("[smarthost]\nhosts = [\"smtp.isp.test:{port}\"]\nauth = {auth}\n"),
    );

    let id = send(&s, ALICE, "bob@remote.test", &message("smarthosted"));
    let line = wait_status(&s, &id, "bob@remote.test", "sent", 20);
    assert_contains(&line, &format!("relay=smtp.isp.test[127.0.0.2]:{port}"));
    let mail = pf.wait_maildir("bob", 1, 10);
    assert_eq!(mail.len(), 1, "{}", pf.log());
    assert_contains(&mail[0], "Subject: smarthosted");
    // Postfix says how it got it: TLS, then AUTH as our user.
    let received = first_received(&mail[0]);
    assert_contains(&received, "with ESMTPSA");
    assert_contains(&received, &format!("(Authenticated sender: {USER})"));
    assert_contains(
        &pf.log(),
        &format!("sasl_method=PLAIN, sasl_username={USER}"),
    );
    assert_contains(&s.log(), "TLS connection established to smtp.isp.test");
    assert!(mx.dumps().is_empty(), "the MX from DNS got mail");
    let queries = dns.queries();
    assert!(
        !queries.contains("remote.test. MX"),
        "an MX lookup was made:\n{queries}"
    );
    assert_contains(&queries, "smtp.isp.test. A");
    assert!(wait_queue_empty(&s, 5), "{}", s.log());

    // faxmta route says where it goes, how, and as whom — not the password.
    let route = cli_ok(&s, &["route", "someone@remote.test"]);
    assert_contains(
        &route,
        "not our domain (accepted only from clients in [relay] allow: 127.0.0.1/32); \
         every such domain goes to [smarthost]",
    );
    assert_contains(&route, "smart host, no MX lookup for remote.test");
    assert_contains(&route, &format!("1. smtp.isp.test:{port}\n"));
    assert_contains(&route, "tls:     required");
    assert_contains(
        &route,
        &format!("auth:    AUTH as {USER} (PLAIN, else LOGIN"),
    );
    let check = cli_ok(&s, &["check-config"]);
    assert_no_password(&s, PASSWORD, &[&route, &check]);
}

#[test]
fn a_smart_host_that_refuses_the_login_defers_with_its_reply() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[]));
    let pf = Postfix::start_smarthost(
        "127.0.0.2",
        port,
        None,
        "remote.test",
        &["bob"],
        &[(USER, PASSWORD)],
    );
    let wrong = "Wr0ng-passw0rd";
    let (_pw, auth) = password_file(wrong);
    let s = faxmta_traced(
        &dns,
        port,
        &format!("[smarthost]\nhosts = [\"127.0.0.2:{port}\"]\nauth = {auth}\n"),
    );

    let id = send(&s, ALICE, "bob@remote.test", &message("refused login"));
    let line = wait_status(&s, &id, "bob@remote.test", "deferred", 20);
    assert_contains(&line, "dsn=4.7.8");
    assert_contains(&line, "said: 535 5.7.8 Error: authentication failed");
    // Retried (every 1s here), never bounced.
    assert!(
        wait_until(20, || find_queued(&s, &id).is_some_and(|m| m["recipients"]
            [0]["attempts"]
            .as_u64()
            .unwrap_or(0)
            >= 2)),
        "{}",
        s.log()
    );
    let env = find_queued(&s, &id).expect("still queued");
    let r = &env["recipients"][0];
    assert_eq!(r["state"], "deferred", "{env}");
    // Postfix's reply, word for word, in a temporary reply of ours: the
    // smart host is ours to choose, so its refusal never bounces.
    let reply_line = pf
        .log()
        .lines()
        .find(|l| l.contains("SASL PLAIN authentication failed"))
        .map(str::to_string);
    assert!(reply_line.is_some(), "{}", pf.log());
    assert_eq!(r["last_reply"]["code"], 451, "{env}");
    assert_eq!(r["last_reply"]["status"], "4.7.8", "{env}");
    let text = r["last_reply"]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "host 127.0.0.2[127.0.0.2:{port}] said: 535 5.7.8 Error: authentication failed"
        )) && text.ends_with("(in reply to AUTH)"),
        "{env}"
    );
    let log = s.log();
    assert!(!log.contains(&format!("{id}: sender ")), "a report:\n{log}");
    assert!(!log.contains("status=bounced"), "{log}");
    assert!(s.maildir("example.test", "alice").is_empty(), "a report");
    assert!(pf.maildir("bob").is_empty(), "{}", pf.log());
    assert_no_password(&s, wrong, &[&env.to_string()]);
}

#[test]
fn the_second_smart_host_takes_the_mail_when_the_first_is_down() {
    let port = shared_port(&["127.0.0.2", "127.0.0.3"]);
    let dns = Dns::start(&zone(&[]));
    // Nothing listens on 127.0.0.3.
    let pf = Postfix::start_smarthost(
        "127.0.0.2",
        port,
        None,
        "remote.test",
        &["bob"],
        &[(USER, PASSWORD)],
    );
    let (_pw, auth) = password_file(PASSWORD);
    let s = faxmta_traced(
        &dns,
        port,
        &format!(
            "[smarthost]\nhosts = [\"127.0.0.3:{port}\", \"127.0.0.2:{port}\"]\nauth = {auth}\n"
        ),
    );

    let id = send(&s, ALICE, "bob@remote.test", &message("second host"));
    let line = wait_status(&s, &id, "bob@remote.test", "sent", 20);
    assert_contains(&line, &format!("relay=127.0.0.2[127.0.0.2]:{port}"));
    let log = s.log();
    assert_contains(&log, &format!("connect to 127.0.0.3[127.0.0.3:{port}]"));
    let mail = pf.wait_maildir("bob", 1, 10);
    assert_eq!(mail.len(), 1, "{}", pf.log());
    assert_contains(&first_received(&mail[0]), "with ESMTPSA");
    let route = cli_ok(&s, &["route", "bob@remote.test"]);
    assert_contains(
        &route,
        &format!("1. 127.0.0.3:{port}\n  2. 127.0.0.2:{port}\n"),
    );
    assert_no_password(&s, PASSWORD, &[&route]);
}

#[test]
fn a_smarthost_domain_uses_its_hosts_and_other_mail_goes_by_mx() {
    let port = shared_port(&["127.0.0.2", "127.0.0.3"]);
    let dns = Dns::start(&zone(&[
        "remote.test. MX 10 mx.remote.test.",
        "mx.remote.test. A 127.0.0.3",
        "other.test. MX 10 mx.other.test.",
        "mx.other.test. A 127.0.0.3",
    ]));
    let mx = Sink::start("127.0.0.3", port, &[]);
    let pf = Postfix::start_smarthost(
        "127.0.0.2",
        port,
        None,
        "remote.test",
        &["bob"],
        &[(USER, PASSWORD)],
    );
    let (_pw, auth) = password_file(PASSWORD);
    let s = faxmta_traced(
        &dns,
        port,
        &format!(
            "[[domain]]\nname = \"remote.test\"\nkind = \"smarthost\"\n\
             hosts = [\"127.0.0.2:{port}\"]\nauth = {auth}\n"
        ),
    );

    let id1 = send(&s, ALICE, "bob@remote.test", &message("per domain"));
    let id2 = send(&s, ALICE, "carol@other.test", &message("by mx"));
    let line = wait_status(&s, &id1, "bob@remote.test", "sent", 20);
    assert_contains(&line, &format!("relay=127.0.0.2[127.0.0.2]:{port}"));
    let line = wait_status(&s, &id2, "carol@other.test", "sent", 20);
    assert_contains(&line, &format!("relay=mx.other.test[127.0.0.3]:{port}"));
    let mail = pf.wait_maildir("bob", 1, 10);
    assert_eq!(mail.len(), 1, "{}", pf.log());
    assert_contains(&first_received(&mail[0]), "with ESMTPSA");
    let dumps = mx.wait_dumps(1, 10);
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert_contains(&dumps[0], "X-Rcpt-Args: <carol@other.test>");
    let queries = dns.queries();
    assert!(!queries.contains("remote.test. MX"), "{queries}");
    assert_contains(&queries, "other.test. MX");

    // Not ours: a client that may not relay cannot send there.
    let out = python(
        r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), source_address=('127.0.0.9', 0))
s.ehlo('outside.example')
print(s.mail('someone@outside.example'), s.rcpt('bob@remote.test'))
s.quit()
"#,
        &[&s.mx_port.to_string()],
    );
    assert_contains(&out, "(554, ");
    let route = cli_ok(&s, &["route", "bob@remote.test"]);
    assert_contains(
        &route,
        "smarthost domain remote.test (not ours: accepted only from clients in [relay] allow: \
         127.0.0.1/32)",
    );
    assert_contains(&route, "tls:     required");
    assert_contains(
        &cli_ok(&s, &["route", "x@other.test"]),
        "MX hosts of other.test",
    );
    assert_no_password(&s, PASSWORD, &[&route]);
}

#[test]
fn implicit_tls_reaches_a_wrappermode_smart_host() {
    let port = shared_port(&["127.0.0.2"]);
    let smtps = loop {
        let p = shared_port(&["127.0.0.2"]);
        if p != port {
            break p;
        }
    };
    let dns = Dns::start(&zone(&[]));
    let pf = Postfix::start_smarthost(
        "127.0.0.2",
        port,
        Some(smtps),
        "remote.test",
        &["bob"],
        &[(USER, PASSWORD)],
    );
    let (_pw, auth) = password_file(PASSWORD);
    let s = faxmta_traced(
        &dns,
        port,
        &format!(
            "[smarthost]\nhosts = [\"127.0.0.2:{smtps}\"]\nimplicit_tls = true\nauth = {auth}\n"
        ),
    );

    let id = send(&s, ALICE, "bob@remote.test", &message("smtps"));
    let line = wait_status(&s, &id, "bob@remote.test", "sent", 20);
    assert_contains(&line, &format!("relay=127.0.0.2[127.0.0.2]:{smtps}"));
    let mail = pf.wait_maildir("bob", 1, 10);
    assert_eq!(mail.len(), 1, "{}", pf.log());
    assert_contains(&first_received(&mail[0]), "with ESMTPSA");
    let route = cli_ok(&s, &["route", "bob@remote.test"]);
    assert_contains(
        &route,
        &format!("1. 127.0.0.2:{smtps} (implicit TLS from the first byte)"),
    );
    assert_no_password(&s, PASSWORD, &[&route]);

    // TLS from the first byte: Postfix's summary of the session (written
    // when faxmta lets go of its pooled connection) has one EHLO and no
    // STARTTLS.
    let mut s = s;
    assert!(s.stop(), "{}", s.log());
    let summary = || {
        pf.log()
            .lines()
            .find(|l| l.contains("disconnect from") && l.contains(" auth=1"))
            .map(str::to_string)
    };
    wait_until(10, || summary().is_some());
    let summary = summary().unwrap_or_else(|| panic!("no AUTH session:\n{}", pf.log()));
    assert_contains(&summary, " ehlo=1 auth=1 mail=1 ");
    assert!(!summary.contains("starttls"), "{summary}");
}

/// `faxmta ARGS --config CONFIG` as the unprivileged user nobody.
fn as_nobody(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_faxmta"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn only_serve_needs_the_password_file() {
    // Every command read the smart host's password file, so an
    // administrator who may not read it could not even list the queue.
    let (pw, auth) = password_file(PASSWORD);
    let file = pw.path().join("smarthost.password");
    let mut s = Server::start_with(
        "",
        &format!("[relay]\nallow = [\"127.0.0.1/32\"]\n[smarthost]\nhosts = [\"smtp.isp.test:587\"]\nauth = {auth}\n"),
    );
    let id = send(
        &s,
        ALICE,
        "bob@remote.test",
        &message("held for the smart host"),
    );
    // The file is gone: the other commands do not need it.
    std::fs::rename(&file, pw.path().join("elsewhere")).unwrap();
    let list = cli_ok(&s, &["queue", "list"]);
    assert_contains(&list, &id);
    s.stop();
    let list = cli_ok(&s, &["queue", "list"]);
    assert_contains(&list, &id);
    let route = cli_ok(&s, &["route", "bob@remote.test"]);
    assert_contains(&route, &format!("auth:    AUTH as {USER}"));
    // check-config says what serve would say: a missing file is an error.
    let check = s.cli(&["check-config"]);
    let text = output_text(&check);
    assert!(!check.status.success(), "{text}");
    assert_contains(
        &text,
        &format!("cannot read password_file {}", file.display()),
    );
    // serve refuses to start, naming the file.
    let serve = s.cli(&["serve"]);
    let text = output_text(&serve);
    assert!(!serve.status.success(), "{text}");
    assert_contains(
        &text,
        &format!("cannot read password_file {}: No such file", file.display()),
    );

    // A file this user may not read (root's, mode 0600; the commands run
    // as nobody): check-config warns and succeeds, queue list works.
    std::fs::rename(pw.path().join("elsewhere"), &file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let open = std::fs::Permissions::from_mode(0o755);
    for dir in [s.dir.path(), pw.path()] {
        std::fs::set_permissions(dir, open.clone()).unwrap();
    }
    std::fs::set_permissions(s.config(), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = as_nobody(&s.config(), &["check-config"]);
    let text = output_text(&check);
    assert!(check.status.success(), "{text}");
    assert_contains(&text, &format!("warning: {}", s.config().display()));
    assert_contains(
        &text,
        &format!(
            "cannot read password_file {}: Permission denied",
            file.display()
        ),
    );
    assert_contains(&text, ": ok (");
    let serve = as_nobody(&s.config(), &["serve"]);
    let text = output_text(&serve);
    assert!(!serve.status.success(), "{text}");
    assert_contains(&text, "Permission denied");
    // And with the file back, the server starts and has the message.
    s.spawn();
    assert!(find_queued(&s, &id).is_some(), "{}", s.log());
}
