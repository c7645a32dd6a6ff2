//! Relay control with the real binary: nmap's smtp-open-relay battery (its
//! 16 MAIL FROM / RCPT TO combinations) from a client that is neither
//! authenticated nor in `[relay] allow` — nothing relayed, nothing queued
//! — and the same battery after SMTP AUTH: the legitimate forms relayed
//! (queued for the remote domain), the tricks still refused, none turned
//! into another destination.

mod common;
use common::*;

/// nmap's defaults: the test domain, the "from" and "to" users; SRV is
/// the name in our greeting (a local domain here, as usual for an MX),
/// IP our address.
const D: &str = "nmap.scanme.org";
const SRV: &str = "mx.example.test";
const IP: &str = "127.0.0.1";

/// The 16 (MAIL FROM, RCPT TO) pairs of nmap's scripts/smtp-open-relay.nse,
/// in its order.
fn nmap_forms() -> Vec<(String, String)> {
    let (from, to) = ("antispam", "relaytest");
    let lit = format!("{from}@[{IP}]");
    let mut forms = vec![
        (String::new(), format!("{to}@{D}")),
        (format!("{from}@{D}"), format!("{to}@{D}")),
        (format!("{from}@{SRV}"), format!("{to}@{D}")),
        (lit.clone(), format!("{to}@{D}")),
    ];
    for rcpt in [
        format!("{to}%{D}@[{IP}]"),
        format!("{to}%{D}@{SRV}"),
        format!("\"{to}@{D}\""),
        format!("\"{to}%{D}\""),
        format!("{to}@{D}@[{IP}]"),
        format!("\"{to}@{D}\"@[{IP}]"),
        format!("{to}@{D}@{SRV}"),
        format!("@[{IP}]:{to}@{D}"),
        format!("@{SRV}:{to}@{D}"),
        format!("{D}!{to}"),
        format!("{D}!{to}@[{IP}]"),
        format!("{D}!{to}@{SRV}"),
    ] {
        forms.push((lit.clone(), rcpt));
    }
    forms
}

/// What each form gets from a client that may not relay, in order: the
/// plain remote address and the source routes (which are dropped, leaving
/// it) are relaying; address literals and sender-specified routing in our
/// own domain are refused as such; the rest is not an address at all.
const UNAUTHENTICATED: [&str; 16] = [
    "554 5.7.1",
    "554 5.7.1",
    "554 5.7.1",
    "554 5.7.1", // relay access denied
    "550 5.7.1", // relaytest%D@[IP]: an address literal
    "550 5.7.1", // relaytest%D@SRV: the percent hack in our domain
    "501 5.1.3", // "relaytest@D": no domain
    "501 5.1.3", // "relaytest%D": no domain
    "501 5.1.3", // relaytest@D@[IP]: not an address
    "550 5.7.1", // "relaytest@D"@[IP]: an address literal
    "501 5.1.3", // relaytest@D@SRV: not an address
    "554 5.7.1", // @[IP]:relaytest@D is relaytest@D
    "554 5.7.1", // @SRV:relaytest@D is relaytest@D
    "501 5.1.3", // D!relaytest: no domain
    "550 5.7.1", // D!relaytest@[IP]: an address literal
    "550 5.7.1", // D!relaytest@SRV: a bang path in our domain
];

/// The forms an authenticated user may send: to relaytest@D itself.
const LEGITIMATE: [usize; 6] = [0, 1, 2, 3, 11, 12];

/// faxmta with SRV as a local domain, a relay domain, a users file and
/// room for the battery's errors.
fn server(auth: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let server = Server::start_with(
        "max_errors = 100",
        &format!(
            "[[domain]]\nname = \"{SRV}\"\nkind = \"local\"\ndeliver = \"maildir:{d}/{{user}}\"\n\
             [[domain]]\nname = \"branch.test\"\nkind = \"relay\"\nhosts = [\"127.0.0.1:9\"]\n\
             [auth]\nusers_file = \"{d}/users\"\n{auth}\n"
        ),
    );
    (server, dir)
}

#[test]
fn nmap_battery_relays_nothing_for_strangers() {
    let (server, _dir) = server("");
    for port in [server.mx_port, server.sub_port] {
        let mut c = Smtp::connect(port);
        assert!(c.cmd("EHLO nmap.scanme.org").starts_with("250"));
        for (i, (from, to)) in nmap_forms().iter().enumerate() {
            assert!(c.cmd("RSET").starts_with("250"));
            let mail = c.cmd(&format!("MAIL FROM:<{from}>"));
            assert!(mail.starts_with("250 "), "test {}: {from}: {mail}", i + 1);
            let rcpt = c.cmd(&format!("RCPT TO:<{to}>"));
            assert!(
                rcpt.starts_with(UNAUTHENTICATED[i]),
                "test {} <{from}> -> <{to}>: {rcpt}",
                i + 1
            );
        }
        // No recipient was taken: there is nothing to send.
        assert!(c.cmd("DATA").starts_with("554 5.5.1"));
        c.cmd("QUIT");
    }
    assert!(queue_json(&server).is_empty());
    assert_contains(&server.log(), "NOQUEUE: reject: RCPT from [127.0.0.1]: 554 5.7.1 <relaytest@nmap.scanme.org>: Relay access denied");
}

#[test]
fn nmap_battery_after_auth_relays_only_the_real_destination() {
    let (server, _dir) = server("any_sender = true");
    add_user(&server, "alice@example.test", "s3cret", &[]);
    let mut steps = vec![
        "EHLO nmap.scanme.org".to_string(),
        "!starttls".into(),
        "EHLO nmap.scanme.org".into(),
        auth_plain("alice@example.test", "s3cret"),
    ];
    for (from, to) in nmap_forms() {
        steps.push("RSET".into());
        steps.push(format!("MAIL FROM:<{from}>"));
        steps.push(format!("RCPT TO:<{to}>"));
        steps.push(format!("!maybe-data:Subject: {to}\r\n\r\nrelay test\r\n"));
    }
    steps.push("QUIT".into());
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = smtp_script(server.sub_port, "127.0.0.1", false, &steps);
    assert!(out[4].1.starts_with("235 2.7.0"), "{out:#?}");
    let mut relayed = Vec::new();
    for (i, chunk) in out[5..5 + 64].chunks(4).enumerate() {
        let (rcpt, data) = (&chunk[2], &chunk[3]);
        if LEGITIMATE.contains(&i) {
            assert!(rcpt.1.starts_with("250 2.1.5"), "test {}: {rcpt:?}", i + 1);
            assert!(data.1.contains("250 2.0.0 Ok: queued as "), "{data:?}");
            relayed.push(queued_id(data.1.lines().last().unwrap()));
        } else {
            // The tricks are refused as they are for strangers, except
            // that nothing is "relay access denied" any more.
            assert!(!rcpt.1.starts_with('2'), "test {}: {rcpt:?}", i + 1);
            assert!(
                rcpt.1.starts_with(UNAUTHENTICATED[i]),
                "test {}: {rcpt:?}",
                i + 1
            );
            assert!(data.1.starts_with("554 5.5.1"), "{data:?}");
        }
    }
    // Queued: one message per legitimate form, each for relaytest@D only,
    // from the authenticated user; no other destination anywhere.
    let queue = queue_json(&server);
    assert_eq!(queue.len(), LEGITIMATE.len(), "{queue:#?}");
    for m in &queue {
        assert!(relayed.iter().any(|id| m["id"] == id.as_str()), "{m:#}");
        let rcpts = m["recipients"].as_array().unwrap();
        assert_eq!(rcpts.len(), 1, "{m:#}");
        assert_eq!(rcpts[0]["address"], "relaytest@nmap.scanme.org", "{m:#}");
        assert_eq!(m["client"]["auth_user"], "alice@example.test", "{m:#}");
        assert_eq!(m["client"]["trusted"], true, "{m:#}");
    }
    let srv_mail = _dir.path().read_dir().unwrap().count();
    assert_eq!(
        srv_mail, 1,
        "only the users file: nothing delivered locally"
    );
}

#[test]
fn no_relay_by_default_and_relay_when_allowed() {
    let server = Server::start();
    let mut c = server.connect();
    c.cmd("EHLO relay.test");
    assert!(c.cmd("MAIL FROM:<s@relay.test>").starts_with("250 2.1.0"));
    assert!(c
        .cmd("RCPT TO:<someone@elsewhere.org>")
        .starts_with("554 5.7.1"));
    assert!(c.cmd("DATA").starts_with("554 5.5.1"));
    drop(c);

    let server = Server::start_with("", "[relay]\nallow = [\"127.0.0.1/32\"]");
    let mut c = server.connect();
    c.cmd("EHLO relay.test");
    assert!(c.cmd("MAIL FROM:<s@relay.test>").starts_with("250 2.1.0"));
    assert!(c
        .cmd("RCPT TO:<someone@elsewhere.org>")
        .starts_with("250 2.1.5"));
    // Even a client that may relay gets no routing through our domains.
    for trick in [
        "<bob%elsewhere.org@example.test>",
        "<\"bob@elsewhere.org\"@localhost>",
        "<elsewhere.org!bob@localhost>",
        "<bob@[10.0.0.1]>",
    ] {
        let r = c.cmd(&format!("RCPT TO:{trick}"));
        assert!(r.starts_with("550 5.7.1"), "{trick}: {r}");
    }
    assert!(c.cmd("RSET").starts_with("250 2.0.0"));
}

#[test]
fn quoted_local_parts_keep_their_quotes() {
    // localhost takes any local part: a quoted one without routing
    // characters is delivered to the mailbox of that name, quotes and
    // all, and a needlessly quoted one to the plain name.
    let server = Server::start();
    let mut c = server.connect();
    c.cmd("EHLO quote.test");
    assert!(c.cmd("MAIL FROM:<\"s x\"@quote.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<\"a b\"@localhost>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<\"carol\"@localhost>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: quoted\r\n\r\nx\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0"));
    assert_eq!(server.wait_maildir("localhost", "\"a b\"", 1, 10).len(), 1);
    let carol = server.wait_maildir("localhost", "carol", 1, 10);
    assert_eq!(carol.len(), 1);
    let text = String::from_utf8_lossy(&read(&carol[0])).into_owned();
    assert!(
        text.starts_with("Return-Path: <\"s x\"@quote.test>\nDelivered-To: carol@localhost\n"),
        "{text}"
    );
}
