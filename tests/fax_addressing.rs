//! Fax addressing with the real binary: fax recipients checked at RCPT
//! (Python's smtplib and swaks as clients) — the forms at a fax domain
//! and at a local domain, an unauthorised sender, a blocked destination,
//! a malformed number, the null sender, group rules, who is believed about
//! a sender (`senders`: trusted clients by default, SPF, `trusted_only`), and
//! `FAX=` at a foreign domain, which stays relaying (no open relay through
//! fax forms); `faxmta route` for a fax address; a users file with an
//! error at its line. Nothing here sends a fax: only RCPT is asked.

mod common;
mod peers;
use common::*;

/// The fax domain `fax.test`, a NANP dial plan, two rules and a
/// directory: alice (staff) and everyone at localhost (group local, no
/// international numbers).
const FAX: &str = r#"
[[domain]]
name = "fax.test"
kind = "fax"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
outside_line = "9"
[[fax.rule]]
name = "premium-rate"
match = ["+1900", "+1976"]
action = "deny"
[[fax.rule]]
name = "local-only"
match = ["international"]
action = "deny"
groups = ["local"]
[[fax.group]]
name = "staff"
[[fax.group]]
name = "local"
[[fax.user]]
address = "alice@example.test"
name = "Alice"
groups = ["staff"]
[[fax.user]]
address = "*@localhost"
groups = ["local"]
"#;

/// One transaction from `source` as `sender`: `RCPT addr code text` per
/// recipient, then RSET (nothing is queued).
fn rcpts(s: &Server, source: &str, sender: &str, rcpts: &[&str]) -> String {
    python(
        r#"
import smtplib, sys
port, source, sender = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = smtplib.SMTP('127.0.0.1', port, source_address=(source, 0))
s.ehlo('client.test')
code, msg = s.mail(sender)
print('MAIL', code, msg.decode())
for r in sys.argv[4:]:
    code, msg = s.rcpt(r)
    print('RCPT', r, code, msg.decode())
s.rset()
s.quit()
"#,
        &[&[&s.mx_port.to_string(), source, sender][..], rcpts].concat(),
    )
}

/// The reply to RCPT `rcpt` in [`rcpts`]' output.
fn reply<'a>(out: &'a str, rcpt: &str) -> &'a str {
    let start = format!("RCPT {rcpt} ");
    out.lines()
        .find_map(|l| l.strip_prefix(start.as_str()))
        .unwrap_or_else(|| panic!("no RCPT {rcpt} in:\n{out}"))
}

#[test]
fn fax_recipients_are_checked_at_rcpt() {
    // The directory decides here: every client is believed.
    let s = Server::start_with("", &format!("{FAX}[fax]\nsenders = \"any\"\n"));
    let good = [
        "+15551234567@fax.test",
        "5551234567@FAX.test",
        "FAX=+1-555-123-4567@fax.test",
        "FAX=+15551234567/T33S=12@example.test",
        "fax=15551234567@localhost",
        "IMCEAFAX-+2B15551234567@example.test",
        "IMCEAFAX-Somebody+20at+20The+20Office+402505555555@localhost",
        "+442079460958@fax.test",
    ];
    let blocked = "+19005551234@fax.test";
    let malformed = "1-800-FLOWERS@fax.test";
    let imcea_bad = "IMCEAFAX-+2G15551234567@example.test";
    let foreign = "FAX=+15551234567@elsewhere.test";
    let mut all: Vec<&str> = good.to_vec();
    all.extend([blocked, malformed, imcea_bad, foreign, "alice@example.test"]);
    let out = rcpts(&s, "127.0.0.1", "alice@example.test", &all);
    for rcpt in good {
        assert_eq!(reply(&out, rcpt), "250 2.1.5 Ok", "{rcpt}\n{out}");
    }
    assert_eq!(
        reply(&out, blocked),
        "550 5.7.1 Fax to +19005551234 is not allowed for alice@example.test (rule: premium-rate)"
    );
    assert_eq!(
        reply(&out, malformed),
        "550 5.1.3 Bad fax number <1-800-FLOWERS@fax.test>: \"1-800-FLOWERS\": letters are not \
         accepted (spell a vanity number out in digits)"
    );
    let r = reply(&out, imcea_bad);
    assert!(r.starts_with("550 5.1.3 Bad fax number <IMCEAFAX-"), "{r}");
    assert!(r.contains("bad IMCEA encoding"), "{r}");
    // A fax form at a foreign domain is an ordinary remote address:
    // relaying, refused for this client.
    assert_eq!(
        reply(&out, foreign),
        "554 5.7.1 <FAX=+15551234567@elsewhere.test>: Relay access denied"
    );
    assert_eq!(reply(&out, "alice@example.test"), "250 2.1.5 Ok");

    // Unknown sender, the null sender.
    let out = rcpts(
        &s,
        "127.0.0.1",
        "eve@evil.test",
        &["+15551234567@fax.test", "FAX=+15551234567@example.test"],
    );
    for rcpt in ["+15551234567@fax.test", "FAX=+15551234567@example.test"] {
        assert_eq!(
            reply(&out, rcpt),
            "550 5.7.1 <eve@evil.test> may not send faxes (not in the fax user directory)"
        );
    }
    let out = rcpts(
        &s,
        "127.0.0.1",
        "",
        &["+15551234567@fax.test", "alice@example.test"],
    );
    let r = reply(&out, "+15551234567@fax.test");
    assert!(r.starts_with("550 5.7.1 <> may not send faxes"), "{r}");
    assert_eq!(reply(&out, "alice@example.test"), "250 2.1.5 Ok");

    // A group rule: *@localhost may fax nationally only; alice anywhere.
    let out = rcpts(
        &s,
        "127.0.0.1",
        "bob@localhost",
        &["+442079460958@fax.test", "+15551234567@fax.test"],
    );
    assert_eq!(
        reply(&out, "+442079460958@fax.test"),
        "550 5.7.1 Fax to +442079460958 is not allowed for bob@localhost (rule: local-only)"
    );
    assert_eq!(reply(&out, "+15551234567@fax.test"), "250 2.1.5 Ok");

    // The refusals are logged like any other.
    assert_contains(
        &s.log(),
        "NOQUEUE: reject: RCPT from [127.0.0.1]: 550 5.7.1 Fax to +19005551234",
    );
    assert!(queue_json(&s).is_empty(), "nothing was queued");

    // swaks as the client: the unauthorised sender's reply as it sees it.
    let (ok, transcript) = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", s.mx_port),
        "--from",
        "mallory@example.org",
        "--to",
        "IMCEAFAX-+2B15551234567@example.test",
        "--quit-after",
        "RCPT",
    ]);
    assert!(!ok, "{transcript}");
    assert_contains(
        &transcript,
        "<** 550 5.7.1 <mallory@example.org> may not send faxes (not in the fax user directory)",
    );
}

#[test]
fn faxmta_route_explains_a_fax_address() {
    let s = Server::start_with("", FAX);
    let route = cli_ok(&s, &["route", "FAX=+1-900-555-1234/T33S=7@example.test"]);
    for line in [
        "rule:    fax recipient (RFC 3192 FAX= address): accepted from any client, for senders in \
         the fax user directory",
        "number:  +19005551234",
        "dial:    919005551234 (national: national prefix and national number)",
        "sub:     7 (T.33 sub-address)",
        "  1. premium-rate: deny for every sender",
        "senders: 2 users and 2 groups in the fax user directory",
    ] {
        assert_contains(&route, line);
    }
    let route = cli_ok(&s, &["route", "IMCEAFAX-Bob+40+2B442079460958@fax.test"]);
    for line in [
        "number:  +442079460958",
        "dial:    9011442079460958 (international: international prefix and all digits)",
        "name:    Bob",
        "  1. local-only: deny for group local",
    ] {
        assert_contains(&route, line);
    }
    let route = cli_ok(&s, &["route", "12@fax.test"]);
    assert_contains(
        &route,
        "refused at RCPT: 550 5.1.3 Bad fax number <12@fax.test>: ",
    );
}

#[test]
fn trusted_only_and_a_users_file() {
    let files = tempfile::tempdir().unwrap();
    let users = files.path().join("fax-users.toml");
    std::fs::write(
        &users,
        "[[group]]\nname = \"local\"\n\n[[user]]\naddress = \"alice@example.test\"\n",
    )
    .unwrap();
    let directory = FAX
        .find("[[fax.group]]")
        .expect("the directory is last in FAX");
    let extra = format!(
        "{}[relay]\nallow = [\"127.0.0.2/32\"]\n[fax]\ntrusted_only = true\nusers = \"{}\"\n",
        &FAX[..directory],
        users.display()
    );
    let s = Server::start_with("", &extra);
    let fax = "+15551234567@fax.test";
    let out = rcpts(&s, "127.0.0.1", "alice@example.test", &[fax]);
    assert_eq!(
        reply(&out, fax),
        "550 5.7.1 Fax to +15551234567 is accepted only from authenticated users and trusted \
         networks"
    );
    let out = rcpts(
        &s,
        "127.0.0.2",
        "alice@example.test",
        &[fax, "FAX=+15551234567@elsewhere.test"],
    );
    assert_eq!(reply(&out, fax), "250 2.1.5 Ok");
    // From a client that may relay, FAX= at a foreign domain is relayed
    // as an ordinary address (to that domain), not faxed.
    assert_eq!(
        reply(&out, "FAX=+15551234567@elsewhere.test"),
        "250 2.1.5 Ok"
    );

    // A broken users file: check-config names its line.
    std::fs::write(
        &users,
        "[[user]]\naddress = \"alice@example.test\"\ngroups = [\"nobody\"]\n",
    )
    .unwrap();
    let out = s.cli(&["check-config"]);
    assert!(!out.status.success());
    let text = output_text(&out);
    assert_contains(
        &text,
        &format!(
            "{}:3:11: fax user alice@example.test: group nobody is not defined",
            users.display()
        ),
    );
}

#[test]
fn by_default_a_forged_sender_from_an_untrusted_client_may_not_fax() {
    // alice is a fax user; anyone can say MAIL FROM:<alice@example.test>.
    let s = Server::start_with("", &format!("{FAX}[relay]\nallow = [\"127.0.0.2/32\"]\n"));
    let fax = "+15551234567@fax.test";
    let out = rcpts(&s, "127.0.0.1", "alice@example.test", &[fax]);
    assert_eq!(
        reply(&out, fax),
        "550 5.7.1 Fax to +15551234567 is accepted only from authenticated users and trusted \
         networks"
    );
    let out = rcpts(&s, "127.0.0.2", "alice@example.test", &[fax]);
    assert_eq!(reply(&out, fax), "250 2.1.5 Ok");
}

#[test]
fn with_spf_pass_a_sender_whose_domain_designates_the_client_may_fax() {
    let dns = peers::Dns::start(&peers::zone(&[
        "example.test. TXT \"v=spf1 ip4:127.0.0.3 -all\"",
    ]));
    let mut s = Server::start_with("", &format!("{FAX}[fax]\nsenders = \"spf-pass\"\n"));
    restart_with(
        &mut s,
        &[(
            "nameservers = [\"127.0.0.1:9\"]",
            &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
        )],
    );
    let fax = "+15551234567@fax.test";
    let out = rcpts(&s, "127.0.0.3", "alice@example.test", &[fax]);
    assert_eq!(reply(&out, fax), "250 2.1.5 Ok", "{}", s.log());
    let out = rcpts(&s, "127.0.0.1", "alice@example.test", &[fax]);
    assert_eq!(
        reply(&out, fax),
        "550 5.7.1 Fax to +15551234567 is accepted only from authenticated users and trusted \
         networks and senders whose domain's SPF passes for the client"
    );
}
