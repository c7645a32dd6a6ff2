//! MTA-STS and the choice of host: an unlisted MX makes way for a listed
//! one (matched by a wildcard), a policy host whose certificate does not
//! verify gives no policy, and REQUIRETLS is satisfied by an MX host the
//! policy lists, and only by one.

use crate::common::*;
use crate::dane_support::{
    log_lines, message, receiver, relay_over_tls, relayed_id, ReceiverTls, ALICE,
};
use crate::peers::*;
use crate::support::*;
use crate::RCPT;

#[test]
fn an_unlisted_mx_is_passed_over_for_one_a_wildcard_lists() {
    let (ip, backup_ip) = ("127.0.31.9", "127.0.31.10");
    let backup = "mx.backup.sts.test";
    let w = World::start_with(
        ip,
        Some("one1"),
        &policy("enforce", &["*.backup.sts.test"]),
        Options {
            records: vec![
                format!("{DOMAIN}. MX 20 {backup}."),
                format!("{backup}. A {backup_ip}"),
            ],
            ..Options::default()
        },
    );
    let mx = receiver(backup_ip, &[DOMAIN], ReceiverTls::Cert(&w.ca.issue(backup)));
    // The preferred MX, unlisted: a sink that would take anything.
    let sink = Sink::start(ip, mx.mx_port, &[]);
    let sender = w.sender(mx.mx_port, "");

    let id = send(&sender, ALICE, RCPT, &message("backup", "", "Hello."));
    let line = wait_status(&sender, &id, RCPT, "sent", 30);
    assert_contains(&line, "relay=mx.backup.sts.test[127.0.31.10]:");
    assert_contains(
        &line,
        ", tls=mta-sts (DNSSEC validation is not available; MTA-STS policy one1 of sts.test in enforce mode lists mx.backup.sts.test)",
    );
    mx.wait_mail_with(DOMAIN, "carol", &["Subject: backup", "with ESMTPS"], 10);
    assert_eq!(sink.connections(), 0, "{}", sink.output());
}

#[test]
fn a_policy_host_whose_certificate_does_not_verify_gives_no_policy() {
    let ip = "127.0.31.11";
    // The right name, but not from a CA the sender trusts: its enforce
    // policy must not count.
    let w = World::start_with(
        ip,
        Some("one1"),
        &policy("enforce", &[MX]),
        Options {
            policy_cert: Some(self_signed(&format!("mta-sts.{DOMAIN}"))),
            ..Options::default()
        },
    );
    let mx = receiver(ip, &[DOMAIN], ReceiverTls::Cert(&self_signed(MX)));
    let sender = w.sender(mx.mx_port, "");

    let id = send(&sender, ALICE, RCPT, &message("untrusted", "", "Hello."));
    let line = wait_status(&sender, &id, RCPT, "sent", 30);
    assert_contains(
        &line,
        ", tls=opportunistic (DNSSEC validation is not available; no MTA-STS policy)",
    );
    mx.wait_mail_with(DOMAIN, "carol", &["Subject: untrusted", "with ESMTPS"], 10);
    let failed = log_lines(&sender, &["MTA-STS policy of sts.test (id one1): "]);
    assert_eq!(failed.len(), 1, "{}", sender.log());
    assert_contains(&failed[0], "UnknownIssuer");
    assert_eq!(w.policy.fetches(), 0, "{:#?}", w.policy.requests());
    assert!(
        w.policy
            .requests()
            .iter()
            .any(|l| l.starts_with("TLS-ERROR")),
        "{:#?}",
        w.policy.requests()
    );
}

#[test]
fn requiretls_goes_only_to_an_mx_the_policy_lists() {
    let ip = "127.0.31.12";
    // Testing mode: the listing is what REQUIRETLS needs (RFC 8689 §4.1),
    // the mode does not matter.
    let w = World::start(ip, Some("one1"), &policy("testing", &[MX]));
    let mx = receiver(ip, &[DOMAIN], ReceiverTls::Cert(&w.ca.issue(MX)));
    let sender = w.sender(mx.mx_port, "");

    let id = relayed_id(&relay_over_tls(
        &sender,
        " REQUIRETLS",
        RCPT,
        &message("listed", "", "Hi."),
    ));
    let line = wait_status(&sender, &id, RCPT, "sent", 30);
    assert_contains(
        &line,
        ", tls=verify (REQUIRETLS, MX host listed by MTA-STS, DNSSEC validation is not available)",
    );
    mx.wait_mail_with(DOMAIN, "carol", &["Subject: listed", "with ESMTPS"], 10);

    // A new policy that lists another host: the MX set is neither signed
    // nor covered, the message comes back (5.7.30).
    w.policy.set_policy(&policy("testing", &["mx.other.test"]));
    w.set_txt(Some("two2"));
    let id = relayed_id(&relay_over_tls(
        &sender,
        " REQUIRETLS",
        RCPT,
        &message("unlisted", "", "Hi."),
    ));
    let line = wait_status(&sender, &id, RCPT, "bounced", 30);
    assert_contains(&line, "dsn=5.7.30");
    assert_contains(
        &line,
        "the MX records of sts.test are neither DNSSEC-signed nor covered by MTA-STS",
    );
    assert!(
        !subjects(&mx, DOMAIN, "carol").contains(&"unlisted".to_string()),
        "{}",
        sender.log()
    );
}

#[test]
fn enforce_outranks_a_global_tls_off_but_not_a_domains_own_off() {
    // `[outbound] tls = "off"` is the default for hosts no policy covers:
    // an enforce policy still gets verified TLS. `tls_policy` "off" for
    // the domain itself is the administrator's word for that domain.
    let ip = "127.0.31.13";
    let w = World::start(ip, Some("one1"), &policy("enforce", &[MX]));
    let mx = receiver(ip, &[DOMAIN], ReceiverTls::Cert(&w.ca.issue(MX)));
    let sender = w.sender(mx.mx_port, "tls = \"off\"\n");
    let id = send(&sender, ALICE, RCPT, &message("global off", "", "Hello."));
    let line = wait_status(&sender, &id, RCPT, "sent", 30);
    assert_contains(&line, ", tls=mta-sts (");
    mx.wait_mail_with(DOMAIN, "carol", &["Subject: global off", "with ESMTPS"], 10);

    let own = w.sender(
        mx.mx_port,
        &format!("[outbound.tls_policy]\n\"{DOMAIN}\" = \"off\"\n"),
    );
    let id = send(&own, ALICE, RCPT, &message("domain off", "", "Hello."));
    let line = wait_status(&own, &id, RCPT, "sent", 30);
    assert_contains(&line, ", tls=off (");
    let got = mx.wait_mail_with(DOMAIN, "carol", &["Subject: domain off"], 10);
    assert!(!got.contains("with ESMTPS"), "{got}");
}
