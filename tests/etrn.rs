//! ETRN (RFC 1985) with the real binary against
//! real peers on loopback. The ISP side: faxmta holds the mail of a
//! `kind = "etrn"` domain — accepted from anyone, not attempted, shown in
//! `queue list` as held for ETRN — until a client in the domain's
//! `release_from` sends ETRN; fetchmail (`proto ETRN`) is that client, and
//! the customer's server is an smtp-sink on 127.0.0.3. ETRN from elsewhere
//! releases nothing; `ETRN @domain` covers subdomains and `#queue` is a
//! domain; held mail expires with the usual report. The customer side:
//! `faxmta etrn` against a private Postfix with fast flush, and a scheduled
//! `[[etrn_client]]` that dequeues from a second faxmta as the ISP.
//!
//! Nothing leaves 127.0.0.0/8: [dns] stays pinned at a closed port, except
//! in the test that starts tests/peers/dns.py.

mod common;
mod peers;

use common::*;
use peers::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.test";

/// A `[[domain]]` of kind etrn released by 127.0.0.1 (where the tests'
/// clients and fetchmail connect from), with extra lines.
fn etrn_domain(name: &str, extra: &str) -> String {
    format!(
        "[[domain]]\nname = \"{name}\"\nkind = \"etrn\"\nrelease_from = [\"127.0.0.1/32\"]\n{extra}"
    )
}

/// The same, delivered to `ip:port` once released.
fn etrn_to(name: &str, ip: &str, port: u16) -> String {
    etrn_domain(name, &format!("hosts = [\"{ip}:{port}\"]\n"))
}

/// One message from client address `source` (127.0.0.9 may not relay and
/// is in no release_from); its queue id.
fn send_from(server: &Server, source: &str, rcpt: &str, subject: &str) -> String {
    let out = python(
        r#"
import smtplib, sys
port, source, rcpt, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = smtplib.SMTP('127.0.0.1', port, source_address=(source, 0))
s.ehlo('client.test')
body = 'From: <someone@outside.example>\r\nSubject: %s\r\n\r\nHeld for the customer.\r\n' % subject
s.sendmail('someone@outside.example', [rcpt], body.encode())
print(s.noop())
s.quit()
"#,
        &[&server.mx_port.to_string(), source, rcpt, subject],
    );
    assert_contains(&out, "250");
    let log_line = |l: &&str| l.contains("from=<someone@outside.example>");
    assert!(wait_until(10, || server
        .log()
        .lines()
        .filter(log_line)
        .count()
        > 0));
    // The newest message whose recipient is `rcpt`.
    let list = queue_json(server);
    list.iter()
        .rev()
        .find(|m| m["recipients"][0]["address"] == rcpt)
        .and_then(|m| m["id"].as_str())
        .unwrap_or_else(|| panic!("{rcpt} not queued: {list:?}"))
        .to_string()
}

/// ETRN commands from client address `source`, each answered as `CODE TEXT`
/// (after EHLO, unless `ehlo` is false).
fn etrn_from(server: &Server, source: &str, ehlo: bool, args: &[&str]) -> Vec<String> {
    let port = server.mx_port.to_string();
    let out = python(
        r#"
import smtplib, sys
port, source, ehlo = int(sys.argv[1]), sys.argv[2], sys.argv[3] == '1'
s = smtplib.SMTP('127.0.0.1', port, source_address=(source, 0))
if ehlo:
    s.ehlo('client.test')
for a in sys.argv[4:]:
    code, msg = s.docmd('ETRN', a) if a != '-' else s.docmd('ETRN')
    print(code, msg.decode())
s.quit()
"#,
        &[
            &[port.as_str(), source, if ehlo { "1" } else { "0" }][..],
            args,
        ]
        .concat(),
    );
    out.lines().map(str::to_string).collect()
}

/// Run fetchmail once (`proto ETRN`) against the server for `domains`;
/// its exit code and output. Its rc file, pid and id files live in a
/// temporary directory (fetchmail runs as root here: it only warns).
fn fetchmail(server: &Server, domains: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\npoll 127.0.0.1 port {} proto ETRN fetchdomains {domains}\n",
            server.mx_port
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = Command::new("fetchmail")
        .arg("-f")
        .arg(&rc)
        .args(["--nodetach", "-d0", "-v", "--pidfile"])
        .arg(dir.path().join("fetchmail.pid"))
        .arg("--idfile")
        .arg(dir.path().join("fetchids"))
        .env("HOME", dir.path())
        .env("FETCHMAILHOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fetchmail (Debian package fetchmail) is installed by scripts/test");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), output_text(&out))
}

/// Wait up to `secs` until the sink's dumps hold every one of `needles`
/// (a dump file appears before smtp-sink has written it: wait for the
/// text, not the file); all the dumps, joined.
fn wait_dumped(sink: &Sink, needles: &[&str], secs: u64) -> String {
    let all = || sink.dumps().join("\n");
    wait_until(secs, || needles.iter().all(|n| all().contains(n)));
    let text = all();
    for n in needles {
        assert_contains(&text, n);
    }
    text
}

/// Recipient `i` of message `id` as `queue list --json` shows it.
fn recipient(server: &Server, id: &str, i: usize) -> serde_json::Value {
    let env = find_queued(server, id).unwrap_or_else(|| panic!("{id} is not queued"));
    env["recipients"][i].clone()
}

/// Wait for the log line that says recipient `rcpt` of `id` is held.
fn wait_held(server: &Server, id: &str, rcpt: &str) {
    let line = wait_status(server, id, rcpt, "held", 10);
    assert_contains(&line, "waiting for ETRN");
}

#[test]
fn fetchmail_releases_held_mail_to_the_customers_server() {
    let port = shared_port(&["127.0.0.3"]);
    let s = Server::start_with("", &etrn_to("customer.test", "127.0.0.3", port));
    let customer = Sink::start("127.0.0.3", port, &[]);

    let mut c = s.connect();
    assert_contains(&c.cmd("EHLO client.test"), "250-ETRN");
    c.cmd("QUIT");

    // From a client that may not relay: the domain is ours to take.
    let id = send_from(&s, "127.0.0.9", "user@customer.test", "first");
    wait_held(&s, &id, "user@customer.test");
    let mailq = cli_ok(&s, &["queue", "list"]);
    assert_contains(
        &mailq,
        "user@customer.test  [pending, held for ETRN, expires ",
    );
    let env = find_queued(&s, &id).unwrap();
    let arrival = env["arrival"].as_u64().unwrap();
    let r = &env["recipients"][0];
    assert_eq!(r["etrn"], "held", "{env}");
    assert_eq!(r["attempts"], 0, "{env}");
    // Not retried every second (the queue's retry): looked at again only
    // when it expires (the queue's lifetime here, 1h).
    assert_eq!(r["next_attempt"].as_u64(), Some(arrival + 3600), "{env}");
    // (The window is the thing under test: three of the queue's 1 s
    // retries pass without an attempt.)
    assert!(
        holds_for(Duration::from_secs(3), || customer.connections() == 0),
        "attempted before ETRN"
    );
    assert_eq!(recipient(&s, &id, 0)["attempts"], 0);

    let (code, out) = fetchmail(&s, "customer.test");
    assert_eq!(code, 0, "{out}");
    assert_contains(
        &out,
        "253 2.0.0 OK, 1 pending messages for node customer.test started",
    );
    wait_dumped(&customer, &["X-Rcpt-Args: <user@customer.test>"], 10);
    assert_eq!(customer.dumps().len(), 1);
    let line = wait_status(&s, &id, "user@customer.test", "sent", 10);
    assert_contains(&line, &format!("relay=127.0.0.3[127.0.0.3]:{port}"));
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    assert_contains(&s.log(), "ETRN customer.test from [127.0.0.1]: 253");

    // Mail that arrives after the ETRN is held again until the next one.
    let id = send_from(&s, "127.0.0.9", "other@customer.test", "second");
    wait_held(&s, &id, "other@customer.test");
    // (What must not happen: a delivery without ETRN; only time shows it.)
    assert!(holds_for(Duration::from_secs(2), || customer.dumps().len() == 1));
    let (code, out) = fetchmail(&s, "customer.test");
    assert_eq!(code, 0, "{out}");
    wait_dumped(&customer, &["Subject: second"], 10);
    assert!(wait_queue_empty(&s, 10), "{}", s.log());

    // Nothing left: 251, which fetchmail reports as no mail waiting.
    let (code, out) = fetchmail(&s, "customer.test");
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, "No messages waiting for customer.test");
    assert_contains(
        &out,
        "251 2.0.0 OK, no messages waiting for node customer.test",
    );
}

#[test]
fn etrn_from_outside_release_from_releases_nothing() {
    let port = shared_port(&["127.0.0.3"]);
    let s = Server::start_with("", &etrn_to("customer.test", "127.0.0.3", port));
    let customer = Sink::start("127.0.0.3", port, &[]);
    let id = send_from(&s, "127.0.0.9", "user@customer.test", "held");
    wait_held(&s, &id, "user@customer.test");

    let before = etrn_from(&s, "127.0.0.9", false, &["customer.test"]);
    assert_eq!(before, ["503 5.5.1 Error: send HELO/EHLO first"]);
    let replies = etrn_from(
        &s,
        "127.0.0.9",
        true,
        &[
            "customer.test",
            "@customer.test",
            "#customer.test",
            "elsewhere.test",
            "-",
            "bad..name",
        ],
    );
    let expected = [
        "459 4.7.1 Node customer.test not allowed: client 127.0.0.9 may not release it",
        "459 4.7.1 Node @customer.test not allowed: client 127.0.0.9 may not release it",
        "459 4.7.1 Node #customer.test not allowed: client 127.0.0.9 may not release it",
        "459 4.7.1 Node elsewhere.test not allowed: no mail is held for it here",
        "501 5.5.4 Syntax: ETRN name",
        "501 5.5.4 Syntax: ETRN domain, ETRN @domain or ETRN #queue",
    ];
    assert_eq!(replies, expected);

    // (What must not happen: a release by a stranger; only time shows it.)
    assert!(
        holds_for(Duration::from_secs(2), || customer.connections() == 0),
        "released by a stranger"
    );
    let r = recipient(&s, &id, 0);
    assert_eq!((&r["etrn"], &r["attempts"]), (&"held".into(), &0.into()));
    assert_contains(&cli_ok(&s, &["queue", "list"]), "held for ETRN");
    assert_contains(&s.log(), "ETRN customer.test from [127.0.0.9]: 459 4.7.1");

    // The customer's own address may.
    let ok = etrn_from(&s, "127.0.0.1", true, &["customer.test"]);
    assert_eq!(
        ok,
        ["253 2.0.0 OK, 1 pending messages for node customer.test started"]
    );
    wait_dumped(&customer, &["Subject: held"], 10);
}

#[test]
fn etrn_at_domain_covers_subdomains_and_hash_names_a_domain() {
    let port = shared_port(&["127.0.0.3", "127.0.0.4"]);
    let domains = [
        etrn_to("customer.test", "127.0.0.3", port),
        etrn_to("branch.customer.test", "127.0.0.4", port),
        etrn_to("other.test", "127.0.0.3", port),
    ]
    .concat();
    let s = Server::start_with("", &domains);
    let main = Sink::start("127.0.0.3", port, &[]);
    let branch = Sink::start("127.0.0.4", port, &[]);
    let ids: Vec<String> = ["a@customer.test", "b@branch.customer.test", "c@other.test"]
        .iter()
        .map(|rcpt| {
            let id = send_from(&s, "127.0.0.9", rcpt, rcpt);
            wait_held(&s, &id, rcpt);
            id
        })
        .collect();

    let mut c = s.connect();
    c.cmd("EHLO client.test");
    assert_eq!(
        c.cmd("ETRN @Customer.Test"),
        "253 2.0.0 OK, 2 pending messages for node @Customer.Test started"
    );
    wait_dumped(&main, &["X-Rcpt-Args: <a@customer.test>"], 10);
    wait_dumped(&branch, &["X-Rcpt-Args: <b@branch.customer.test>"], 10);
    wait_status(&s, &ids[0], "a@customer.test", "sent", 10);
    wait_status(&s, &ids[1], "b@branch.customer.test", "sent", 10);
    // other.test was not covered (what must not happen: only time shows
    // it).
    assert!(holds_for(Duration::from_secs(1), || main.dumps().len() == 1));
    assert_eq!(recipient(&s, &ids[2], 0)["etrn"], "held");

    // `#queue` is taken as a domain name, exactly (as Postfix does).
    assert_eq!(
        c.cmd("ETRN #other.test"),
        "253 2.0.0 OK, 1 pending messages for node #other.test started"
    );
    wait_dumped(&main, &["X-Rcpt-Args: <c@other.test>"], 10);
    assert_eq!(main.dumps().len(), 2);
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    assert_eq!(
        c.cmd("ETRN customer.test"),
        "251 2.0.0 OK, no messages waiting for node customer.test"
    );
    c.cmd("QUIT");
}

#[test]
fn held_mail_expires_with_the_report() {
    let port = shared_port(&["127.0.0.3"]);
    let s = Server::start_with(
        "",
        &etrn_domain(
            "brief.test",
            &format!("hosts = [\"127.0.0.3:{port}\"]\nlifetime = \"3s\"\n"),
        ),
    );
    let customer = Sink::start("127.0.0.3", port, &[]);
    let id = send(&s, ALICE, "user@brief.test", "Subject: brief\r\n\r\nb\r\n");
    assert_eq!(find_queued(&s, &id).unwrap()["lifetime"], 3);
    let line = wait_status(&s, &id, "user@brief.test", "bounced", 15);
    assert_contains(&line, "5.4.7");
    let reports = s.wait_maildir("example.test", "alice", 1, 10);
    assert_eq!(reports.len(), 1, "{}", s.log());
    let report = String::from_utf8_lossy(&read(&reports[0])).into_owned();
    assert_contains(&report, "Final-Recipient: rfc822; user@brief.test");
    assert_contains(&report, "Status: 5.4.7");
    assert_contains(&report, "expired after 3s in the queue, held for ETRN");
    assert_contains(&report, "no ETRN released brief.test");
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
    assert_eq!(customer.connections(), 0);
}

#[test]
fn faxmta_etrn_asks_a_postfix_with_fast_flush() {
    let port = shared_port(&["127.0.0.2", "127.0.0.3"]);
    // The ISP: Postfix relays customer.test to the customer's server at
    // 127.0.0.3, which is down; the deferred mail waits an hour for its
    // next try, or for ETRN (the flush service, fast_flush_domains).
    let isp = Postfix::start_with_master(
        "127.0.0.2",
        port,
        "isp.test",
        "relay_domains = customer.test\n\
         fast_flush_domains = $relay_domains\n\
         transport_maps = hash:${config_directory}/transport.map\n\
         minimal_backoff_time = 1h\nmaximal_backoff_time = 2h\nqueue_run_delay = 1h",
        "smtp unix - - n - - smtp",
        &[(
            "transport",
            &format!("customer.test smtp:[127.0.0.3]:{port}\n"),
        )],
    );
    swaks(&[
        "--server",
        &format!("127.0.0.2:{port}"),
        "--from",
        "someone@outside.example",
        "--to",
        "user@customer.test",
        "--header",
        "Subject: via postfix",
    ]);
    let deferred =
        || isp.log().contains("to=<user@customer.test>") && isp.log().contains("status=deferred");
    assert!(wait_until(20, deferred), "{}", isp.log());
    let customer = Sink::start("127.0.0.3", port, &[]);
    // (What must not happen: Postfix retrying before the hour is up.)
    assert!(
        holds_for(Duration::from_secs(2), || customer.connections() == 0),
        "Postfix retried by itself"
    );

    // faxmta as the customer's server asks for its mail.
    let s = Server::start();
    let out = s.cli(&[
        "etrn",
        "--server",
        &format!("127.0.0.2:{port}"),
        "customer.test",
    ]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "250 Queuing started"
    );
    wait_dumped(
        &customer,
        &["X-Rcpt-Args: <user@customer.test>", "Subject: via postfix"],
        20,
    );
    assert_eq!(customer.dumps().len(), 1, "{}", isp.log());

    // A domain Postfix does not flush: its refusal, and a failure.
    let out = s.cli(&[
        "etrn",
        "--server",
        &format!("127.0.0.2:{port}"),
        "elsewhere.test",
    ]);
    assert!(!out.status.success());
    assert_contains(&String::from_utf8_lossy(&out.stdout), "459");
    // Nobody there: a failure that says why.
    let out = s.cli(&["etrn", "--server", "127.0.0.3:9", "customer.test"]);
    assert!(!out.status.success());
    assert_contains(&output_text(&out), "connect to 127.0.0.3[127.0.0.3:9]");
}

#[test]
fn a_scheduled_etrn_client_dequeues_from_an_isp_faxmta() {
    // The customer's in-house faxmta, for customer.test.
    let mut customer = Server::start_with("", "# customer\n");
    // The ISP's faxmta holds customer.test for it.
    let isp = Server::start_with("", &etrn_to("customer.test", "127.0.0.1", customer.mx_port));
    let first = send_from(&isp, "127.0.0.9", "user@customer.test", "one");
    wait_held(&isp, &first, "user@customer.test");

    let d = customer.dir.path().display().to_string();
    restart_with(
        &mut customer,
        &[(
            "# customer\n",
            &format!(
                "[[domain]]\nname = \"customer.test\"\nkind = \"local\"\n\
                 deliver = \"maildir:{d}/mail/{{domain}}/{{user}}\"\n\
                 [[etrn_client]]\nserver = \"127.0.0.1:{}\"\ndomain = \"customer.test\"\n\
                 every = \"4s\"\n",
                isp.mx_port
            ),
        )],
    );
    // The first ETRN goes at start.
    let mail = customer.wait_maildir("customer.test", "user", 1, 10);
    assert_eq!(mail.len(), 1, "{}\n{}", customer.log(), isp.log());
    assert_contains(&String::from_utf8_lossy(&read(&mail[0])), "Subject: one");
    assert_contains(
        &customer.log(),
        &format!(
            "etrn client: 127.0.0.1:{}: ETRN customer.test: 253 2.0.0 OK, 1 pending messages",
            isp.mx_port
        ),
    );
    assert!(wait_queue_empty(&isp, 10), "{}", isp.log());

    // Mail that arrives later is held until the next run, within `every`.
    let second = send_from(&isp, "127.0.0.9", "user@customer.test", "two");
    let held_at = Instant::now();
    wait_held(&isp, &second, "user@customer.test");
    let mail = customer.wait_maildir("customer.test", "user", 2, 10);
    assert_eq!(mail.len(), 2, "{}\n{}", customer.log(), isp.log());
    assert!(
        held_at.elapsed() < Duration::from_secs(8),
        "{:?}",
        held_at.elapsed()
    );
    let runs = customer
        .log()
        .lines()
        .filter(|l| l.contains("etrn client: 127.0.0.1:"))
        .count();
    assert!(runs >= 2, "{}", customer.log());
}

#[test]
fn without_hosts_released_mail_goes_to_a_more_preferred_mx() {
    let dns = Dns::start(
        "$TTL 60\ntest. SOA ns.test. hostmaster.test. 1 60 60 60 60\n\
         dyn.test. MX 10 home.dyn.test.\ndyn.test. MX 20 mx.example.test.\n\
         home.dyn.test. A 127.0.0.5\nmx.example.test. A 127.0.0.1\n\
         solo.test. MX 10 mx.example.test.\n",
    );
    let s = faxmta(
        &dns,
        None,
        &[
            etrn_domain("dyn.test", "lifetime = \"2d\"\n"),
            etrn_to("solo.test", "127.0.0.3", 2525),
        ]
        .concat(),
    );
    let home = Sink::start("127.0.0.5", s.mx_port, &[]);

    let route = cli_ok(&s, &["route", "user@dyn.test"]);
    for line in [
        "rule:    ETRN domain dyn.test (ours to relay: accepted from any client), held: not \
         attempted until an ETRN releases it",
        "release: ETRN dyn.test, ETRN #dyn.test or ETRN @dyn.test (or @ a parent domain) from \
         clients in release_from: 127.0.0.1/32",
        "queue:   held up to 2d",
        "after:   ETRN: SMTP only to MX hosts of dyn.test more preferred than this host",
        "1. home.dyn.test preference 10: 127.0.0.5 — more preferred: may be tried",
        "2. mx.example.test preference 20: 127.0.0.1 — this host (our entry)",
        "tries:   home.dyn.test\n",
    ] {
        assert_contains(&route, line);
    }
    let solo = cli_ok(&s, &["route", "user@solo.test"]);
    assert_contains(&solo, "queue:   held up to 1h");
    assert_contains(&solo, "after:   ETRN: no MX lookup");
    assert_contains(&solo, "  1. 127.0.0.3:2525\n");

    let id = send_from(&s, "127.0.0.9", "user@dyn.test", "dynamic");
    wait_held(&s, &id, "user@dyn.test");
    // (What must not happen: an attempt before ETRN; only time shows it.)
    assert!(holds_for(Duration::from_secs(2), || home.connections() == 0));
    let mut c = s.connect();
    c.cmd("EHLO client.test");
    assert_eq!(
        c.cmd("ETRN dyn.test"),
        "253 2.0.0 OK, 1 pending messages for node dyn.test started"
    );
    c.cmd("QUIT");
    wait_dumped(&home, &["Subject: dynamic"], 10);
    wait_status(&s, &id, "user@dyn.test", "sent", 10);
}
