//! Outbound MTA-STS (RFC 8461) with the real binary on both ends: a
//! sending faxmta that asks only our DNS server (tests/peers/dns.py: the
//! MX of `sts.test`, the `_mta-sts` TXT record, the addresses of the MX and
//! of `mta-sts.sts.test`), fetches the policy from our HTTPS policy host
//! (tests/peers/https_policy.py) and trusts our test CA (`[outbound]
//! ca_file`); a receiving faxmta on its own loopback address as the MX,
//! with a certificate the CA issued for `mx.sts.test` — or one that does
//! not verify.
//!
//! DANE stays out: dns.py does not sign, so the sender's DNSSEC probe
//! fails and only MTA-STS and the configured policy are left. Each case
//! looks at both ends: the sender's delivery line with its
//! `tls=<policy> (<why>)` and its TLS line, and what the receiver took.
//!
//! Here: the modes, certificates and the cache. Several MX hosts, an
//! untrusted policy host and REQUIRETLS are in mta_sts/hosts.rs.

mod common;
#[allow(dead_code)] // the DANE tests' helpers; this binary uses a few
#[path = "dane/support.rs"]
mod dane_support;
#[path = "mta_sts/hosts.rs"]
mod hosts;
mod peers;
#[path = "mta_sts/support.rs"]
mod support;

use common::*;
use dane_support::{
    log_lines, message, nothing_received, receiver, tls_line, wait_attempts, ReceiverTls, ALICE,
};
use peers::*;
use support::*;

const RCPT: &str = "carol@sts.test";

/// The sender's delivery line for message `id` once it was `status`.
fn status(sender: &Server, id: &str, status: &str) -> String {
    wait_status(sender, id, RCPT, status, 30)
}

#[test]
fn enforce_delivers_to_a_listed_mx_over_verified_tls() {
    let ip = "127.0.31.1";
    let w = World::start(ip, Some("one1"), &policy("enforce", &[MX]));
    let mx = receiver(ip, &[DOMAIN], ReceiverTls::Cert(&w.ca.issue(MX)));
    let sender = w.sender(mx.mx_port, "");

    let id = send(&sender, ALICE, RCPT, &message("enforced", "", "Hello."));
    let line = status(&sender, &id, "sent");
    assert_contains(
        &line,
        ", tls=mta-sts (DNSSEC validation is not available; MTA-STS policy one1 of sts.test in enforce mode lists mx.sts.test)",
    );
    let tls = tls_line(&sender, &id, MX);
    assert_contains(
        &tls,
        ": Verified TLS connection established to mx.sts.test[",
    );
    mx.wait_mail_with(DOMAIN, "carol", &["Subject: enforced", "with ESMTPS"], 10);
    assert_eq!(w.policy.fetches(), 1, "{:#?}", w.policy.requests());

    // `faxmta route` plans as delivery does.
    let route = cli_ok(&sender, &["route", "someone@sts.test"]);
    assert_contains(
        &route,
        "  mx.sts.test: mta-sts (DNSSEC validation is not available; MTA-STS policy one1 of sts.test in enforce mode lists mx.sts.test)",
    );
}

#[test]
fn enforce_defers_when_the_certificate_is_self_signed() {
    let ip = "127.0.31.2";
    let w = World::start(ip, Some("one1"), &policy("enforce", &[MX]));
    let mx = receiver(ip, &[DOMAIN], ReceiverTls::Cert(&self_signed(MX)));
    let sender = w.sender(mx.mx_port, "");

    let id = send(&sender, ALICE, RCPT, &message("self-signed", "", "Hello."));
    let line = status(&sender, &id, "deferred");
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(
        &line,
        ", tls=mta-sts (DNSSEC validation is not available; MTA-STS policy",
    );
    assert_contains(
        &line,
        "did not verify: invalid peer certificate: UnknownIssuer",
    );
    // Tried again, never in plaintext: the receiver took nothing.
    wait_attempts(&sender, &id, 2);
    nothing_received(&mx, DOMAIN, "carol");

    // `TLS-Required: No` (RFC 8689 §4.2.2) sets the policy aside.
    let id = send(
        &sender,
        ALICE,
        RCPT,
        &message("anyway", "TLS-Required: No\r\n", "Hello."),
    );
    let line = status(&sender, &id, "sent");
    assert_contains(
        &line,
        ", tls=opportunistic (the message says TLS-Required: No)",
    );
    mx.wait_mail_with(DOMAIN, "carol", &["Subject: anyway", "with ESMTPS"], 10);
}

#[test]
fn enforce_defers_when_the_certificate_is_for_another_name() {
    let ip = "127.0.31.3";
    let w = World::start(ip, Some("one1"), &policy("enforce", &[MX]));
    // Issued by the trusted CA, but not for the MX host's name.
    let mx = receiver(
        ip,
        &[DOMAIN],
        ReceiverTls::Cert(&w.ca.issue("mx.elsewhere.test")),
    );
    let sender = w.sender(mx.mx_port, "");

    let id = send(&sender, ALICE, RCPT, &message("other name", "", "Hello."));
    let line = status(&sender, &id, "deferred");
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(
        &line,
        ", tls=mta-sts (DNSSEC validation is not available; MTA-STS policy",
    );
    assert_contains(
        &line,
        "did not verify: invalid peer certificate: certificate not valid for name \"mx.sts.test\"",
    );
    wait_attempts(&sender, &id, 2);
    nothing_received(&mx, DOMAIN, "carol");
}

#[test]
fn enforce_never_contacts_an_mx_the_policy_does_not_list() {
    let ip = "127.0.31.4";
    let w = World::start(ip, Some("one1"), &policy("enforce", &["mx.other.test"]));
    // A plain sink that would take anything: it must not even be
    // connected to.
    let port = shared_port(&[ip]);
    let sink = Sink::start(ip, port, &[]);
    let sender = w.sender(port, "");

    let id = send(&sender, ALICE, RCPT, &message("unlisted", "", "Hello."));
    let line = status(&sender, &id, "deferred");
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(
        &line,
        "MX host mx.sts.test is not listed in the MTA-STS policy of sts.test (mx: mx.other.test)",
    );
    wait_attempts(&sender, &id, 2);
    assert_eq!(sink.connections(), 0, "{}", sink.output());
    assert!(sink.dumps().is_empty());

    let route = cli_ok(&sender, &["route", "someone@sts.test"]);
    assert_contains(
        &route,
        "  mx.sts.test: not used: 451 4.7.5 MX host mx.sts.test is not listed in the MTA-STS policy of sts.test",
    );
}

#[test]
fn testing_mode_reports_but_delivers_despite_a_bad_certificate() {
    let ip = "127.0.31.5";
    let w = World::start(ip, Some("test1"), &policy("testing", &[MX]));
    let mx = receiver(ip, &[DOMAIN], ReceiverTls::Cert(&self_signed(MX)));
    let sender = w.sender(mx.mx_port, "");

    let id = send(&sender, ALICE, RCPT, &message("testing", "", "Hello."));
    let line = status(&sender, &id, "sent");
    assert_contains(
        &line,
        ", tls=opportunistic (DNSSEC validation is not available; MTA-STS policy test1 of sts.test in testing mode: failures are reported, not enforced)",
    );
    // Verified first, as enforce would; the failure is reported, then
    // the host is used as configured.
    let tried = log_lines(
        &sender,
        &[
            &format!("{id}: certificate of mx.sts.test["),
            "UnknownIssuer (MTA-STS testing mode: reported, delivering as configured)",
        ],
    );
    assert_eq!(tried.len(), 1, "{}", sender.log());
    let tls = tls_line(&sender, &id, MX);
    assert_contains(&tls, ": Untrusted TLS connection established");
    mx.wait_mail_with(DOMAIN, "carol", &["Subject: testing", "with ESMTPS"], 10);
    assert_eq!(w.policy.fetches(), 1, "{:#?}", w.policy.requests());
    // Counted for the TLS report (the counts are saved every few seconds).
    let counts = || std::fs::read_to_string(sender.path("tls-report.json")).unwrap_or_default();
    assert!(
        wait_until(30, || counts().contains("certificate-not-trusted")),
        "{}",
        counts()
    );
}

#[test]
fn no_txt_or_mode_none_is_opportunistic_until_enforce_is_published() {
    let ip = "127.0.31.6";
    // The host serves an enforce policy the certificate would fail, but
    // without the TXT record it is not even asked for.
    let w = World::start(ip, None, &policy("enforce", &[MX]));
    let mx = receiver(ip, &[DOMAIN], ReceiverTls::Cert(&self_signed(MX)));
    let sender = w.sender(mx.mx_port, "");

    let id = send(&sender, ALICE, RCPT, &message("no txt", "", "Hello."));
    let line = status(&sender, &id, "sent");
    assert_contains(
        &line,
        ", tls=opportunistic (DNSSEC validation is not available; no MTA-STS policy)",
    );
    mx.wait_mail_with(DOMAIN, "carol", &["Subject: no txt", "with ESMTPS"], 10);
    assert!(w.policy.requests().is_empty(), "{:#?}", w.policy.requests());

    // Mode none: fetched, and it is as if there were no policy.
    w.policy.set_policy(&policy("none", &[MX]));
    w.set_txt(Some("none1"));
    let id = send(&sender, ALICE, RCPT, &message("mode none", "", "Hello."));
    let line = status(&sender, &id, "sent");
    assert_contains(
        &line,
        ", tls=opportunistic (DNSSEC validation is not available; no MTA-STS policy)",
    );
    mx.wait_mail_with(DOMAIN, "carol", &["Subject: mode none", "with ESMTPS"], 10);
    assert_eq!(w.policy.fetches(), 1, "{:#?}", w.policy.requests());
    assert_eq!(
        log_lines(
            &sender,
            &["MTA-STS policy of sts.test: id none1, mode none"]
        )
        .len(),
        1,
        "{}",
        sender.log()
    );

    // Now enforce: the connection kept from the opportunistic delivery
    // (its certificate never verified) is not reused, the mail waits.
    w.policy.set_policy(&policy("enforce", &[MX]));
    w.set_txt(Some("enf1"));
    let id = send(&sender, ALICE, RCPT, &message("enforced", "", "Hello."));
    let line = status(&sender, &id, "deferred");
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(
        &line,
        ", tls=mta-sts (DNSSEC validation is not available; MTA-STS policy",
    );
    assert_contains(
        &line,
        "did not verify: invalid peer certificate: UnknownIssuer",
    );
    wait_attempts(&sender, &id, 2);
    assert!(
        !subjects(&mx, DOMAIN, "carol").contains(&"enforced".to_string()),
        "{}",
        sender.log()
    );
}

#[test]
fn the_policy_is_cached_in_memory_and_on_disk_when_its_host_is_gone() {
    let ip = "127.0.31.7";
    let mut w = World::start(ip, Some("one1"), &policy("enforce", &[MX]));
    let mut mx = receiver(ip, &[DOMAIN], ReceiverTls::Cert(&w.ca.issue(MX)));
    let mut sender = w.sender(mx.mx_port, "");
    let under_policy_one1 =
        "tls=mta-sts (DNSSEC validation is not available; MTA-STS policy one1 of sts.test in enforce mode lists mx.sts.test)";

    let id = send(&sender, ALICE, RCPT, &message("first", "", "Hello."));
    assert_contains(&status(&sender, &id, "sent"), under_policy_one1);
    // Kept on disk, by default beside the queue directory.
    let cache = std::fs::read_to_string(sender.path("mta-sts.json")).unwrap();
    assert_contains(&cache, "\"domain\": \"sts.test\"");
    assert_contains(&cache, "\"id\": \"one1\"");

    // The same id: from memory, not fetched again.
    let id = send(&sender, ALICE, RCPT, &message("second", "", "Hello."));
    assert_contains(&status(&sender, &id, "sent"), under_policy_one1);
    assert_eq!(w.policy.fetches(), 1, "{:#?}", w.policy.requests());

    // The policy host is gone: the cached policy still applies (a failed
    // fetch would have meant no policy, opportunistic TLS).
    w.policy.stop();
    let id = send(&sender, ALICE, RCPT, &message("third", "", "Hello."));
    assert_contains(&status(&sender, &id, "sent"), under_policy_one1);
    // `faxmta route` says so too: it reads the server's cache file.
    let route = cli_ok(&sender, &["route", "someone@sts.test"]);
    assert_contains(
        &route,
        "  mx.sts.test: mta-sts (DNSSEC validation is not available; MTA-STS policy one1 of sts.test in enforce mode lists mx.sts.test)",
    );

    // After a restart: from the cache file.
    restart_with(&mut sender, &[]);
    let id = send(&sender, ALICE, RCPT, &message("fourth", "", "Hello."));
    assert_contains(&status(&sender, &id, "sent"), under_policy_one1);

    // A new id that cannot be fetched leaves the old policy in force.
    w.set_txt(Some("two2"));
    let id = send(&sender, ALICE, RCPT, &message("fifth", "", "Hello."));
    assert_contains(&status(&sender, &id, "sent"), under_policy_one1);
    assert_eq!(
        log_lines(&sender, &["MTA-STS policy of sts.test (id two2): "]).len(),
        1,
        "the new id was not tried:\n{}",
        sender.log()
    );
    for subject in ["first", "second", "third", "fourth", "fifth"] {
        mx.wait_mail_with(
            DOMAIN,
            "carol",
            &[&format!("Subject: {subject}"), "with ESMTPS"],
            10,
        );
    }

    // And it is enforced, not only named: a certificate that does not
    // verify now defers the mail.
    let bad = self_signed(MX);
    std::fs::write(mx.path("mx.crt"), &bad.pem).unwrap();
    std::fs::write(mx.path("mx.key"), &bad.key).unwrap();
    restart_with(&mut mx, &[]);
    let id = send(&sender, ALICE, RCPT, &message("sixth", "", "Hello."));
    let line = status(&sender, &id, "deferred");
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(
        &line,
        ", tls=mta-sts (DNSSEC validation is not available; MTA-STS policy",
    );
    assert_contains(&line, "UnknownIssuer");
    wait_attempts(&sender, &id, 2);
    assert!(
        !subjects(&mx, DOMAIN, "carol").contains(&"sixth".to_string()),
        "{}",
        sender.log()
    );
}
