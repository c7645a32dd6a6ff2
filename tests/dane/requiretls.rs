//! REQUIRETLS (RFC 8689) end to end: offered only over TLS, refused
//! without it, carried over DANE to a server that offers it, and a
//! message that cannot go on that way returned with 5.7.30 and its
//! header section only.

use crate::common::*;
use crate::peers::*;
use crate::support::*;

/// Whether an EHLO reply lists `keyword` (as a line of its own).
fn offers(ehlo: &str, keyword: &str) -> bool {
    ehlo.lines()
        .any(|l| l.len() > 4 && l[4..].split_whitespace().next() == Some(keyword))
}

#[test]
fn requiretls_is_offered_over_tls_only_and_needs_it() {
    let s = Server::start();
    // In plaintext: not offered, and refused.
    let mut c = s.connect();
    let ehlo = c.cmd("EHLO client.test");
    assert!(offers(&ehlo, "STARTTLS"), "{ehlo}");
    assert!(!offers(&ehlo, "REQUIRETLS"), "{ehlo}");
    let r = c.cmd(&format!("MAIL FROM:<{ALICE}> REQUIRETLS"));
    assert!(r.starts_with("530 5.7.10 "), "{r}");
    // A plain MAIL still works on that connection.
    let r = c.cmd(&format!("MAIL FROM:<{ALICE}>"));
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");

    // After STARTTLS: offered, and taken.
    let steps = smtp_script(
        s.mx_port,
        "127.0.0.1",
        false,
        &[
            "EHLO client.test",
            "!starttls",
            "EHLO client.test",
            &format!("MAIL FROM:<{ALICE}> REQUIRETLS"),
            "QUIT",
        ],
    );
    assert!(!offers(&steps[1].1, "REQUIRETLS"), "{steps:#?}");
    assert!(steps[2].1.starts_with("220"), "{steps:#?}");
    assert!(offers(&steps[3].1, "REQUIRETLS"), "{steps:#?}");
    assert!(steps[4].1.starts_with("250"), "{steps:#?}");
}

#[test]
fn a_requiretls_message_goes_over_dane_to_a_server_that_offers_requiretls() {
    let ip = "127.0.21.8";
    let cert = self_signed("mx.dane.test");
    let tlsa = tlsa_rdata(3, 1, 1, &cert.der);
    let t = Dane::start(
        ip,
        &["dane.test"],
        ReceiverTls::Cert(&cert),
        |port| vec![mail_zone("dane.test", ip, port, &tlsa, Signing::Signed)],
        "",
    );
    // The receiver keeps what it gets queued (its Maildirs are plain
    // files), so its envelopes can be read.
    std::fs::create_dir_all(t.mx.path("mail/dane.test")).unwrap();
    for user in ["carol", "dave"] {
        std::fs::write(t.mx.path(&format!("mail/dane.test/{user}")), "x").unwrap();
    }

    let steps = relay_over_tls(
        &t.sender,
        " REQUIRETLS",
        "carol@dane.test",
        &message("required", "", "Hello."),
    );
    assert!(!offers(&steps[1].1, "REQUIRETLS"), "{steps:#?}");
    assert!(offers(&steps[3].1, "REQUIRETLS"), "{steps:#?}");
    let id = relayed_id(&steps);
    let line = wait_status(&t.sender, &id, "carol@dane.test", "sent", 30);
    assert_contains(&line, "tls=dane (");
    // A message without REQUIRETLS, the same way.
    let plain = relayed_id(&relay_over_tls(
        &t.sender,
        "",
        "dave@dane.test",
        &message("not required", "", "Hello."),
    ));
    wait_status(&t.sender, &plain, "dave@dane.test", "sent", 30);

    // The receiver queued the first with REQUIRETLS, the second without.
    let at_receiver = |rcpt: &str| {
        queue_json(&t.mx)
            .into_iter()
            .find(|m| m["recipients"][0]["address"] == rcpt)
    };
    assert!(
        wait_until(10, || at_receiver("carol@dane.test").is_some()
            && at_receiver("dave@dane.test").is_some()),
        "{}",
        t.mx.log()
    );
    let carol = at_receiver("carol@dane.test").unwrap();
    assert_eq!(carol["requiretls"], true, "{carol}");
    assert_eq!(carol["client"]["protocol"], "ESMTPS", "{carol}");
    let dave = at_receiver("dave@dane.test").unwrap();
    assert!(dave.get("requiretls").is_none(), "{dave}");
}

#[test]
fn a_requiretls_message_to_an_unsigned_domain_bounces_with_its_header_only() {
    let ip = "127.0.21.10";
    let cert = self_signed("mx.insecure.test");
    let tlsa = tlsa_rdata(3, 1, 1, &cert.der);
    let t = Dane::start(
        ip,
        &["insecure.test"],
        ReceiverTls::Cert(&cert),
        |port| {
            vec![mail_zone(
                "insecure.test",
                ip,
                port,
                &tlsa,
                Signing::Unsigned,
            )]
        },
        "",
    );

    let body = "This body line must not come back.";
    let steps = relay_over_tls(
        &t.sender,
        " REQUIRETLS",
        "carol@insecure.test",
        &message("unsigned", "X-Marker: requiretls-header\r\n", body),
    );
    let id = relayed_id(&steps);
    let line = wait_status(&t.sender, &id, "carol@insecure.test", "bounced", 30);
    assert_contains(&line, "dsn=5.7.30");
    assert_contains(&line, "REQUIRETLS support required");
    // The report to Alice: 5.7.30, the original's header, not its body.
    let report = t.sender.wait_mail_with(
        "example.test",
        "alice",
        &["5.7.30", "X-Marker: requiretls-header"],
        10,
    );
    assert_contains(&report, "Final-Recipient: rfc822; carol@insecure.test");
    assert_contains(&report, "text/rfc822-headers");
    assert!(!report.contains(body), "the body came back:\n{report}");
    assert!(
        t.mx.maildir("insecure.test", "carol").is_empty(),
        "{}",
        t.mx.log()
    );
}

#[test]
fn a_requiretls_message_bounces_when_the_dane_host_does_not_offer_requiretls() {
    // Postfix as the MX: its certificate matches the TLSA record, but it
    // does not know REQUIRETLS.
    let ip = "127.0.21.11";
    let port = shared_port(&[ip]);
    let cert = self_signed("mx.norequire.test");
    let tlsa = tlsa_rdata(3, 1, 1, &cert.der);
    let certs = tempfile::tempdir().unwrap();
    let (crt, key) = (certs.path().join("mx.crt"), certs.path().join("mx.key"));
    std::fs::write(&crt, &cert.pem).unwrap();
    std::fs::write(&key, &cert.key).unwrap();
    let postfix = Postfix::start(
        ip,
        port,
        "norequire.test",
        &["carol"],
        &format!(
            "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n",
            crt.display(),
            key.display()
        ),
    );
    let dns = SignedDns::start(
        "127.0.0.1",
        &[mail_zone(
            "norequire.test",
            ip,
            port,
            &tlsa,
            Signing::Signed,
        )],
    );
    let s = sender(&dns, port, "");

    // Without REQUIRETLS: over DANE to Postfix.
    let plain = relayed_id(&relay_over_tls(
        &s,
        "",
        "carol@norequire.test",
        &message("dane to postfix", "", "Hello."),
    ));
    let line = wait_status(&s, &plain, "carol@norequire.test", "sent", 30);
    assert_contains(&line, "tls=dane (");
    let got = postfix.wait_maildir("carol", 1, 10);
    assert!(
        got.iter().any(|m| m.contains("Subject: dane to postfix")),
        "{got:#?}\n{}",
        postfix.log()
    );

    // With it: Postfix does not offer REQUIRETLS, so 5.7.30 and a report.
    let body = "Not for a server without REQUIRETLS.";
    let id = relayed_id(&relay_over_tls(
        &s,
        " REQUIRETLS",
        "carol@norequire.test",
        &message("required", "", body),
    ));
    let line = wait_status(&s, &id, "carol@norequire.test", "bounced", 30);
    assert_contains(&line, "dsn=5.7.30");
    assert_contains(&line, "does not offer REQUIRETLS");
    let report = s.wait_mail_with(
        "example.test",
        "alice",
        &["5.7.30", "Subject: required"],
        10,
    );
    assert!(!report.contains(body), "the body came back:\n{report}");
    assert_eq!(postfix.maildir("carol").len(), 1, "{}", postfix.log());
}

#[test]
fn a_requiretls_message_to_a_signed_mx_whose_certificate_does_not_verify_bounces() {
    // Signed MX records, no TLSA records, a self-signed certificate: the
    // MX set is protected but the certificate verifies neither by DANE nor
    // by PKIX, which is final for REQUIRETLS (RFC 8689 §5), not a delay.
    let ip = "127.0.21.12";
    let cert = self_signed("mx.notlsa.test");
    let t = Dane::start(
        ip,
        &["notlsa.test"],
        ReceiverTls::Cert(&cert),
        |_port| {
            vec![Zone::new(
                "notlsa.test",
                &["@ IN MX 10 mx", &format!("mx IN A {ip}")],
                Signing::Signed,
            )]
        },
        "",
    );
    let id = relayed_id(&relay_over_tls(
        &t.sender,
        " REQUIRETLS",
        "carol@notlsa.test",
        &message("unverified", "", "Hello."),
    ));
    let line = wait_status(&t.sender, &id, "carol@notlsa.test", "bounced", 30);
    assert_contains(&line, "dsn=5.7.30");
    assert_contains(&line, "did not verify");
    assert_contains(&line, "tls=verify (REQUIRETLS, MX records DNSSEC-signed");
    assert!(
        t.mx.maildir("notlsa.test", "carol").is_empty(),
        "{}",
        t.mx.log()
    );
}
