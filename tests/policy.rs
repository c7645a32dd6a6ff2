//! Inbound policy with the real binary: SPF (RFC 7208) against SPF records
//! served by the test DNS server (tests/peers/dns.py), per listener and per
//! domain; the headers that record it; `faxmta check spf`; and the IP
//! allow- and deny-lists (clients on 127.0.0.2, .3, .9 … through Python's
//! smtplib and raw sockets bound to those addresses). Nothing leaves
//! 127.0.0.0/8.

mod common;
mod peers;

use common::*;
use peers::Dns;
use std::process::Command;

/// The SPF zone: one domain per result (the client is 127.0.0.1).
fn spf_zone() -> String {
    [
        "$TTL 60",
        "test. SOA ns.test. hostmaster.test. 1 60 60 60 60",
        "pass.test. TXT \"v=spf1 ip4:127.0.0.1 -all\"",
        "fail.test. TXT \"v=spf1 ip4:192.0.2.1 exp=why.fail.test -all\"",
        "why.fail.test. TXT \"%{i} is not a mail server of %{d}\"",
        "soft.test. TXT \"v=spf1 ~all\"",
        "neutral.test. TXT \"v=spf1 ?all\"",
        "none.test. A 192.0.2.7",
        "temp.test. SERVFAIL",
        "two.test. TXT \"v=spf1 ip4:127.0.0.1 -all\"",
        "two.test. TXT \"v=spf1 -all\"",
        "broken.test. TXT \"v=spf1 ip4 -all\"",
        "broken.test. TXT \"site-verification=abc\"",
        "helo-ok.test. TXT \"v=spf1 a:helo-ok.test -all\"",
        "helo-ok.test. A 127.0.0.1",
        "helo-bad.test. TXT \"v=spf1 -all\"",
    ]
    .join("\n")
        + "\n"
}

/// faxmta asking `dns`, with `extra` configuration and `listener` lines
/// added to the MX listener.
fn server(dns: &Dns, listener: &str, extra: &str) -> Server {
    let mut s = Server::start_with("", extra);
    restart_with(
        &mut s,
        &[
            (
                "nameservers = [\"127.0.0.1:9\"]",
                &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
            ),
            ("role = \"mx\"\n", &format!("role = \"mx\"\n{listener}\n")),
        ],
    );
    s
}

/// One transaction from `source` with `helo` and `sender`: each RCPT's
/// reply as `RCPT addr code text`, then `DATA code text` when a
/// recipient was taken (`body` as the message).
fn transaction(
    s: &Server,
    source: &str,
    helo: &str,
    sender: &str,
    rcpts: &[&str],
    body: &str,
) -> String {
    python(
        r#"
import smtplib, sys
port, source, helo, sender, body = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
s = smtplib.SMTP('127.0.0.1', port, source_address=(source, 0))
s.ehlo(helo)
code, msg = s.mail(sender)
print('MAIL', code, msg.decode())
taken = False
for r in sys.argv[6:]:
    code, msg = s.rcpt(r)
    print('RCPT', r, code, msg.decode())
    taken = taken or code == 250
if taken:
    try:
        code, msg = s.data(body.encode())
    except smtplib.SMTPDataError as e:
        code, msg = e.smtp_code, e.smtp_error
    print('DATA', code, msg.decode())
s.quit()
"#,
        &[
            &[&s.mx_port.to_string(), source, helo, sender, body][..],
            rcpts,
        ]
        .concat(),
    )
}

/// The reply line to RCPT `rcpt` in a [`transaction`]'s output.
fn rcpt_reply<'a>(out: &'a str, rcpt: &str) -> &'a str {
    let start = format!("RCPT {rcpt} ");
    out.lines()
        .find_map(|l| l.strip_prefix(start.as_str()))
        .unwrap_or_else(|| panic!("no RCPT {rcpt} in:\n{out}"))
}

const BODY: &str = "From: <x@example.org>\r\nSubject: spf\r\n\r\nhello\r\n";

/// The header section of the one message in a Maildir, waiting for it.
/// The header of the delivered message (of at least `n` in the Maildir)
/// whose header holds `needle`: Maildir names do not keep arrival order.
fn delivered_header(s: &Server, domain: &str, user: &str, n: usize, needle: &str) -> String {
    let files = s.wait_maildir(domain, user, n, 10);
    assert!(files.len() >= n, "{}", s.log());
    let heads: Vec<String> = files
        .iter()
        .map(|f| {
            let text = String::from_utf8_lossy(&read(f)).into_owned();
            text.split("\n\n").next().unwrap_or_default().to_string()
        })
        .collect();
    match heads.iter().find(|h| h.contains(needle)) {
        Some(h) => h.clone(),
        None => panic!(
            "no message with {needle:?} among:\n{}",
            heads.join("\n--\n")
        ),
    }
}

#[test]
fn each_spf_result_gets_its_configured_reply() {
    let dns = Dns::start(&spf_zone());
    let s = server(
        &dns,
        "",
        "[policy]\nspf = \"reject-fail\"\nsoftfail = \"reject\"\npermerror = \"reject\"\n",
    );
    let cases = [
        ("pass.test", "250 "),
        ("neutral.test", "250 "),
        ("none.test", "250 "),
        ("fail.test", "550 5.7.23 "),
        ("soft.test", "550 5.7.23 "),
        ("temp.test", "451 4.4.3 "),
        ("two.test", "550 5.7.24 "),
        ("broken.test", "550 5.7.24 "),
    ];
    for (domain, want) in cases {
        let sender = format!("someone@{domain}");
        let out = transaction(
            &s,
            "127.0.0.1",
            "client.test",
            &sender,
            &["alice@example.test"],
            BODY,
        );
        let reply = rcpt_reply(&out, "alice@example.test");
        assert!(reply.starts_with(want), "{domain}: {reply}\n{}", s.log());
    }
    // The refusal names the result and carries the domain's explanation.
    let out = transaction(
        &s,
        "127.0.0.1",
        "c.test",
        "x@fail.test",
        &["alice@example.test"],
        BODY,
    );
    assert_contains(
        rcpt_reply(&out, "alice@example.test"),
        "SPF fail: domain of x@fail.test does not designate 127.0.0.1 as permitted sender; \
         explanation: 127.0.0.1 is not a mail server of fail.test",
    );
    let out = transaction(
        &s,
        "127.0.0.1",
        "c.test",
        "x@two.test",
        &["alice@example.test"],
        BODY,
    );
    assert_contains(
        rcpt_reply(&out, "alice@example.test"),
        "publishes 2 SPF records",
    );

    // The null sender: the HELO name is checked instead.
    let out = transaction(
        &s,
        "127.0.0.1",
        "helo-ok.test",
        "",
        &["alice@example.test"],
        BODY,
    );
    assert!(
        rcpt_reply(&out, "alice@example.test").starts_with("250 "),
        "{out}"
    );
    let out = transaction(
        &s,
        "127.0.0.1",
        "helo-bad.test",
        "",
        &["alice@example.test"],
        BODY,
    );
    assert!(
        rcpt_reply(&out, "alice@example.test").starts_with("550 5.7.23 <postmaster@helo-bad.test>"),
        "{out}"
    );

    // A client that may relay is not checked (as policyd-spf behind
    // permit_mynetworks).
    let s2 = server(
        &dns,
        "",
        "[relay]\nallow = [\"127.0.0.2/32\"]\n[policy]\nspf = \"reject-fail\"\n",
    );
    let out = transaction(
        &s2,
        "127.0.0.2",
        "c.test",
        "x@fail.test",
        &["alice@example.test"],
        BODY,
    );
    assert!(
        rcpt_reply(&out, "alice@example.test").starts_with("250 "),
        "{out}"
    );
    let head = delivered_header(&s2, "example.test", "alice", 1, "");
    assert!(!head.contains("Received-SPF"), "{head}");

    // Refusals are counted.
    let metrics = s.http_get("/metrics");
    assert_contains(
        &metrics,
        "faxmta_smtp_rejects_total{class=\"5xx\",status=\"5.7.23\"} 4",
    );
    assert_contains(
        &metrics,
        "faxmta_smtp_rejects_total{class=\"4xx\",status=\"4.4.3\"} 1",
    );
}

#[test]
fn a_domain_can_be_stricter_than_its_listener_and_headers_record_the_result() {
    let dns = Dns::start(&spf_zone());
    let fax = tempfile::tempdir().unwrap();
    let s = server(
        &dns,
        "spf = \"tag\"",
        &format!(
            "[[domain]]\nname = \"fax.test\"\nkind = \"local\"\ndeliver = \"maildir:{}/{{user}}\"\n\
             spf = \"reject-fail\"\nsoftfail = \"reject\"\n",
            fax.path().display()
        ),
    );
    // Same client, same sender: the listener only tags, the fax domain
    // refuses; the message goes to the one recipient taken.
    for sender in ["x@fail.test", "x@soft.test"] {
        let out = transaction(
            &s,
            "127.0.0.1",
            "client.test",
            sender,
            &["alice@example.test", "+15551234@fax.test"],
            BODY,
        );
        assert!(
            rcpt_reply(&out, "alice@example.test").starts_with("250 "),
            "{out}"
        );
        assert!(
            rcpt_reply(&out, "+15551234@fax.test").starts_with("550 5.7.23 "),
            "{out}"
        );
        assert_contains(&out, "DATA 250 ");
    }
    let head = delivered_header(&s, "example.test", "alice", 2, "x@fail.test");
    assert_contains(
        &head,
        "Authentication-Results: mx.example.test;\n\tspf=fail (domain of x@fail.test does not \
         designate 127.0.0.1 as permitted sender) smtp.mailfrom=x@fail.test\n",
    );
    assert_contains(
        &head,
        "Received-SPF: fail (mx.example.test: domain of x@fail.test does not designate 127.0.0.1 \
         as permitted sender)\n\treceiver=mx.example.test; client-ip=127.0.0.1; \
         envelope-from=\"x@fail.test\"; helo=client.test; identity=mailfrom;\n",
    );
    // Our headers come first: Authentication-Results, Received-SPF, then
    // our Received (RFC 7208 §9.1).
    let order: Vec<&str> = head
        .lines()
        .filter(|l| !l.starts_with('\t'))
        .skip(2) // Return-Path, Delivered-To
        .take(3)
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        order,
        ["Authentication-Results", "Received-SPF", "Received"],
        "{head}"
    );
    assert_contains(
        &delivered_header(&s, "example.test", "alice", 2, "x@soft.test"),
        "spf=softfail",
    );

    // A pass is accepted by both and recorded as such.
    let out = transaction(
        &s,
        "127.0.0.1",
        "client.test",
        "x@pass.test",
        &["+15551234@fax.test"],
        BODY,
    );
    assert!(
        rcpt_reply(&out, "+15551234@fax.test").starts_with("250 "),
        "{out}"
    );
    let files = s_wait(fax.path().join("+15551234/new"));
    let text = String::from_utf8_lossy(&read(&files[0])).into_owned();
    assert_contains(&text, "Received-SPF: pass (mx.example.test: domain of x@pass.test designates 127.0.0.1 as permitted sender)");
    assert_contains(&text, "\tspf=pass ");
}

/// The files in a Maildir new/ directory, waiting up to 10 s for one.
fn s_wait(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let list = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };
    wait_until(10, || !list().is_empty());
    let files = list();
    assert!(!files.is_empty(), "nothing in {}", dir.display());
    files
}

#[test]
fn softfail_tag_marks_the_message() {
    let dns = Dns::start(&spf_zone());
    let s = server(&dns, "", "[policy]\nspf = \"tag\"\nsoftfail = \"tag\"\n");
    let out = transaction(
        &s,
        "127.0.0.1",
        "c.test",
        "x@soft.test",
        &["alice@example.test"],
        BODY,
    );
    assert_contains(&out, "DATA 250 ");
    let head = delivered_header(&s, "example.test", "alice", 1, "");
    assert_contains(&head, "\nX-Spam-Flag: YES\n");
    assert_contains(&head, "Received-SPF: softfail ");
}

/// `faxmta check spf ARGS` with the server's configuration: its exit
/// status and standard output.
fn check_spf(s: &Server, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["check", "spf"];
    all.extend_from_slice(args);
    let out = s.cli(&all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_spf_prints_the_result_and_explanation() {
    let dns = Dns::start(&spf_zone());
    let s = server(&dns, "", "");
    let (code, pass) = check_spf(
        &s,
        &[
            "--ip",
            "127.0.0.1",
            "--helo",
            "c.test",
            "--from",
            "a@pass.test",
        ],
    );
    assert_eq!(code, Some(2), "pass is exit status 2 (libspf2 spfquery)");
    assert_contains(&pass, "result:      pass\n");
    assert_contains(
        &pass,
        "comment:     domain of a@pass.test designates 127.0.0.1 as permitted sender\n",
    );
    assert_contains(&pass, "Received-SPF: pass (mx.example.test: ");
    let (code, fail) = check_spf(
        &s,
        &[
            "--ip",
            "127.0.0.1",
            "--helo",
            "c.test",
            "--from",
            "a@fail.test",
        ],
    );
    assert_eq!(code, Some(3), "fail is exit status 3");
    assert_contains(&fail, "result:      fail\n");
    assert_contains(&fail, "mechanism:   -all\n");
    assert_contains(
        &fail,
        "explanation: 127.0.0.1 is not a mail server of fail.test\n",
    );
    let (code, helo) = check_spf(
        &s,
        &["--ip", "127.0.0.1", "--helo", "helo-ok.test", "--from", ""],
    );
    assert_eq!(code, Some(2));
    assert_contains(&helo, "identity:    helo postmaster@helo-ok.test");
    assert_contains(&helo, "result:      pass\n");
    // --helo alone checks the HELO identity too.
    let (code, _) = check_spf(&s, &["--ip", "127.0.0.1", "--helo", "helo-bad.test"]);
    assert_eq!(code, Some(3), "helo-bad.test says -all");
    // The other results and their statuses.
    for (from, result, status) in [
        ("a@soft.test", "softfail", 4),
        ("a@neutral.test", "neutral", 1),
        ("a@none.test", "none", 5),
        ("a@temp.test", "temperror", 6),
        ("a@two.test", "permerror", 7),
        ("a@broken.test", "permerror", 7),
    ] {
        let (code, out) = check_spf(&s, &["--ip", "127.0.0.1", "--from", from]);
        assert_eq!(code, Some(status), "{from}: {out}");
        assert_contains(&out, &format!("result:      {result}\n"));
    }
    // Command-line errors are 64, apart from the results.
    let bad = s.cli(&["check", "spf", "--ip", "nowhere", "--helo", "c.test"]);
    assert_eq!(bad.status.code(), Some(64), "{}", output_text(&bad));
    let bad = s.cli(&["check", "spf", "--helo", "c.test"]);
    assert_eq!(bad.status.code(), Some(64), "{}", output_text(&bad));
    let bad = s.cli(&["check", "spf", "--ip", "127.0.0.1"]);
    assert_eq!(
        bad.status.code(),
        Some(64),
        "nothing to check: {}",
        output_text(&bad)
    );
    // Every question went to the test's DNS server.
    assert_contains(&dns.queries(), "pass.test. TXT");
}

#[test]
fn check_spf_needs_no_configuration_with_nameserver_and_speaks_json() {
    let dns = Dns::start(&spf_zone());
    let ns = format!("127.0.0.1:{}", dns.port);
    // No configuration file at all: --nameserver is enough.
    let out = Command::new(env!("CARGO_BIN_EXE_faxmta"))
        .args(["--config", "/nonexistent/faxmta.toml", "check", "spf"])
        .args(["--nameserver", &ns, "--json", "--ip", "192.0.2.9"])
        .args(["--helo", "c.test", "--from", "fail.test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "fail");
    assert_eq!(v["exit_status"], 3);
    // A bare domain is postmaster@ it.
    assert_eq!(v["sender"], "postmaster@fail.test");
    assert_eq!(v["identity"], "mailfrom");
    assert_eq!(v["domain"], "fail.test");
    assert_eq!(v["ip"], "192.0.2.9");
    assert_eq!(v["mechanism"], "-all");
    assert_eq!(v["dns_lookups"], 0, "ip4 and all ask nothing");
    assert_eq!(
        v["explanation"],
        "192.0.2.9 is not a mail server of fail.test"
    );
    assert!(
        v["received_spf"]
            .as_str()
            .unwrap()
            .starts_with("Received-SPF: fail ("),
        "{v}"
    );
    assert_contains(&dns.queries(), "fail.test. TXT");
}

/// Connect from `source` with a raw socket and read the greeting (and
/// whether the server closed the connection after it).
fn greeting(port: u16, source: &str) -> String {
    python(
        r#"
import socket, sys
s = socket.socket()
s.settimeout(10)
s.bind((sys.argv[2], 0))
s.connect(('127.0.0.1', int(sys.argv[1])))
data = b''
while True:
    chunk = s.recv(4096)
    if not chunk:
        print(data.decode().strip())
        print('<closed>')
        break
    data += chunk
    if data.startswith(b'220 ') and data.endswith(b'\r\n'):
        print(data.decode().strip())
        break
"#,
        &[&port.to_string(), source],
    )
    .trim()
    .to_string()
}

#[test]
fn deny_and_allow_lists_refuse_at_connect_and_rcpt() {
    let dns = Dns::start(&spf_zone());
    let partner = tempfile::tempdir().unwrap();
    let s = server(
        &dns,
        "allow = [\"127.0.0.0/29\", \"::1/128\"]\ndeny = [\"127.0.0.5/32\"]",
        &format!(
            "[policy]\ndeny = [\"127.0.0.9/32\", \"2001:db8::/32\"]\n\
             [[domain]]\nname = \"partner.test\"\nkind = \"local\"\ndeliver = \"maildir:{}/{{user}}\"\n\
             allow_from = [\"127.0.0.2/32\"]\n",
            partner.path().display()
        ),
    );
    // Global deny list: on every listener.
    for port in [s.mx_port, s.sub_port] {
        let g = greeting(port, "127.0.0.9");
        assert!(
            g.starts_with("554 5.7.1 Access denied: client [127.0.0.9] is on the deny list"),
            "{g}"
        );
        assert!(g.ends_with("<closed>"), "{g}");
    }
    // The MX listener's own lists.
    let g = greeting(s.mx_port, "127.0.0.5");
    assert!(
        g.starts_with("554 5.7.1 ") && g.contains("this listener's deny list"),
        "{g}"
    );
    let g = greeting(s.mx_port, "127.0.0.20");
    assert!(
        g.contains("not on this listener's allow list") && g.ends_with("<closed>"),
        "{g}"
    );
    assert!(greeting(s.mx_port, "127.0.0.3").starts_with("220 "));
    // The submission listener has no allow list of its own.
    assert!(greeting(s.sub_port, "127.0.0.20").starts_with("220 "));

    // A domain's allow_from: only 127.0.0.2 may send to partner.test.
    let out = transaction(
        &s,
        "127.0.0.3",
        "c.test",
        "x@pass.test",
        &["a@partner.test", "alice@example.test"],
        BODY,
    );
    assert!(
        rcpt_reply(&out, "a@partner.test").starts_with("550 5.7.1 "),
        "{out}"
    );
    assert_contains(
        rcpt_reply(&out, "a@partner.test"),
        "client [127.0.0.3] may not send mail to partner.test",
    );
    assert!(
        rcpt_reply(&out, "alice@example.test").starts_with("250 "),
        "{out}"
    );
    let out = transaction(
        &s,
        "127.0.0.2",
        "c.test",
        "x@pass.test",
        &["a@partner.test"],
        BODY,
    );
    assert!(
        rcpt_reply(&out, "a@partner.test").starts_with("250 "),
        "{out}"
    );
    assert_contains(&out, "DATA 250 ");
    s_wait(partner.path().join("a/new"));

    let metrics = s.http_get("/metrics");
    // 2 global, 2 listener, 1 allow_from.
    assert_contains(
        &metrics,
        "faxmta_smtp_rejects_total{class=\"5xx\",status=\"5.7.1\"} 5",
    );
    let log = s.log();
    assert_contains(&log, "NOQUEUE: reject: CONNECT from [127.0.0.9]: 554 5.7.1");
}
