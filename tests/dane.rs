//! Outbound DANE (RFC 7672) and REQUIRETLS (RFC 8689) with the real
//! binary on both ends: a sending faxmta that validates DNSSEC itself
//! against the signed test tree (tests/peers/dnssec.rs: nsd, anchored at
//! the parent `test.`), and a receiving faxmta on its own loopback address
//! as the MX, showing a certificate the zone publishes (or not) as TLSA.
//!
//! Each case looks at both ends: whether the receiver got the mail (its
//! Maildir, its log of accepted messages) and what the sender logged (the
//! delivery line with its `tls=<policy> (<why>)`, the TLS line). A DANE
//! host that fails is never sent to in plaintext: the failing cases wait
//! for more than one attempt and then find no transaction at the receiver.
//!
//! Here: which policy DNSSEC and the configuration give a domain. The
//! certificate checks are in dane/certificates.rs, REQUIRETLS in
//! dane/requiretls.rs.

#[path = "dane/certificates.rs"]
mod certificates;
mod common;
mod peers;
#[path = "dane/requiretls.rs"]
mod requiretls;
#[path = "dane/support.rs"]
mod support;

use common::*;
use peers::*;
use support::*;

#[test]
fn a_bogus_tlsa_record_defers_without_connecting() {
    let ip = "127.0.21.3";
    let cert = self_signed("mx.bogus.test");
    // The record matches, but the zone's copy of it is tampered with.
    let tlsa = tlsa_rdata(3, 1, 1, &cert.der);
    let t = Dane::start(
        ip,
        &["bogus.test"],
        ReceiverTls::Cert(&cert),
        |port| vec![mail_zone("bogus.test", ip, port, &tlsa, Signing::Bogus)],
        "",
    );

    let id = t.send("carol@bogus.test", &message("bogus", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@bogus.test", "deferred", 30);
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(&line, "DNSSEC validation failed");
    wait_attempts(&t.sender, &id, 2);
    nothing_received(&t.mx, "bogus.test", "carol");
    assert!(
        log_lines(&t.mx, &["TLS established"]).is_empty(),
        "the sender connected to a host whose TLSA records are bogus:\n{}",
        t.mx.log()
    );
    let route = cli_ok(&t.sender, &["route", "carol@bogus.test"]);
    assert_contains(&route, "mx.bogus.test: not used: 451 4.7.5 ");
}

#[test]
fn an_unsigned_domain_gets_opportunistic_tls_and_its_tlsa_records_are_ignored() {
    let ip = "127.0.21.4";
    let cert = self_signed("mx.insecure.test");
    // A record that would not match: unsigned, it must not count.
    let tlsa = tlsa_rdata(3, 1, 1, &self_signed("other").der);
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

    let id = t.send("carol@insecure.test", &message("insecure", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@insecure.test", "sent", 30);
    assert_contains(
        &line,
        "tls=opportunistic (the MX records of insecure.test are not DNSSEC-signed",
    );
    let tls = tls_line(&t.sender, &id, "mx.insecure.test");
    assert_contains(&tls, ": Untrusted TLS connection established");
    t.mx.wait_mail_with(
        "insecure.test",
        "carol",
        &["Subject: insecure", "with ESMTPS"],
        10,
    );
}

#[test]
fn a_domain_configured_for_dane_is_not_sent_to_without_it() {
    let ip = "127.0.21.6";
    let cert = self_signed("mx.insecure.test");
    let tlsa = tlsa_rdata(3, 1, 1, &cert.der);
    let t = Dane::start(
        ip,
        &["insecure.test", "other.test"],
        ReceiverTls::Cert(&cert),
        |port| {
            vec![
                mail_zone("insecure.test", ip, port, &tlsa, Signing::Unsigned),
                mail_zone("other.test", ip, port, &tlsa, Signing::Unsigned),
            ]
        },
        "[outbound.tls_policy]\n\"insecure.test\" = \"dane\"\n",
    );

    let id = t.send("carol@insecure.test", &message("dane only", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@insecure.test", "deferred", 30);
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(
        &line,
        "DANE is required for insecure.test ([outbound.tls_policy]), but the MX records of insecure.test are not DNSSEC-signed",
    );
    // The same MX, for a domain without the policy, takes mail.
    let other = t.send("carol@other.test", &message("no policy", "", "Hello."));
    let line = wait_status(&t.sender, &other, "carol@other.test", "sent", 30);
    assert_contains(&line, "tls=opportunistic (");
    t.mx.wait_mail_with("other.test", "carol", &["Subject: no policy"], 10);
    wait_attempts(&t.sender, &id, 2);
    nothing_received(&t.mx, "insecure.test", "carol");
}

#[test]
fn a_dane_host_without_starttls_is_never_sent_to_in_plaintext() {
    let ip = "127.0.21.7";
    let tlsa = tlsa_rdata(3, 1, 1, &self_signed("mx.plain.test").der);
    let t = Dane::start(
        ip,
        &["plain.test"],
        ReceiverTls::Off,
        |port| vec![mail_zone("plain.test", ip, port, &tlsa, Signing::Signed)],
        "",
    );

    let id = t.send("carol@plain.test", &message("no starttls", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@plain.test", "deferred", 30);
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(&line, "did not offer STARTTLS");
    wait_attempts(&t.sender, &id, 3);
    nothing_received(&t.mx, "plain.test", "carol");
}

#[test]
fn tls_required_no_sets_the_tlsa_records_aside() {
    let ip = "127.0.21.9";
    let cert = self_signed("mx.wrong.test");
    let tlsa = tlsa_rdata(3, 1, 1, &self_signed("mx.wrong.test").der);
    let t = Dane::start(
        ip,
        &["wrong.test"],
        ReceiverTls::Cert(&cert),
        |port| vec![mail_zone("wrong.test", ip, port, &tlsa, Signing::Signed)],
        "",
    );

    // Without the header: the mismatch defers it.
    let kept = t.send("carol@wrong.test", &message("kept", "", "Hello."));
    let line = wait_status(&t.sender, &kept, "carol@wrong.test", "deferred", 30);
    assert_contains(&line, "does not match its TLSA records");
    // With it: delivered, over TLS all the same.
    let id = t.send(
        "carol@wrong.test",
        &message("anyway", "TLS-Required: No\r\n", "Hello."),
    );
    let line = wait_status(&t.sender, &id, "carol@wrong.test", "sent", 30);
    assert_contains(
        &line,
        "tls=opportunistic (the message says TLS-Required: No)",
    );
    t.mx.wait_mail_with(
        "wrong.test",
        "carol",
        &["Subject: anyway", "TLS-Required: No", "with ESMTPS"],
        10,
    );
    assert!(
        !subjects(&t.mx, "wrong.test", "carol").contains(&"kept".to_string()),
        "{}",
        t.sender.log()
    );
}

#[test]
fn a_bogus_address_record_of_the_mx_defers() {
    let ip = "127.0.21.12";
    let cert = self_signed("mx.badaddr.test");
    // No TLSA record: the tampered record is the MX host's address (its
    // last octet changed, so a sender that did not validate would go
    // elsewhere).
    let t = Dane::start(
        ip,
        &["badaddr.test"],
        ReceiverTls::Cert(&cert),
        |_| {
            vec![Zone::new(
                "badaddr.test",
                &["@ IN MX 10 mx", &format!("mx IN A {ip}")],
                Signing::Bogus,
            )]
        },
        "",
    );

    let id = t.send("carol@badaddr.test", &message("bad address", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@badaddr.test", "deferred", 30);
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(&line, "MX host mx.badaddr.test: ");
    assert_contains(&line, "DNSSEC validation failed");
    wait_attempts(&t.sender, &id, 2);
    nothing_received(&t.mx, "badaddr.test", "carol");
}

#[test]
fn with_dane_off_the_tlsa_records_are_not_looked_at() {
    let ip = "127.0.21.13";
    let cert = self_signed("mx.wrong.test");
    let tlsa = tlsa_rdata(3, 1, 1, &self_signed("mx.wrong.test").der);
    let t = Dane::start(
        ip,
        &["wrong.test"],
        ReceiverTls::Cert(&cert),
        |port| vec![mail_zone("wrong.test", ip, port, &tlsa, Signing::Signed)],
        "dane = \"off\"\n",
    );

    let id = t.send("carol@wrong.test", &message("dane off", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@wrong.test", "sent", 30);
    assert_contains(
        &line,
        "tls=opportunistic (DANE is off ([outbound] dane); no MTA-STS policy)",
    );
    t.mx.wait_mail_with("wrong.test", "carol", &["Subject: dane off"], 10);
}

#[test]
fn a_domain_without_mx_whose_bogus_address_defers_rather_than_bounces() {
    let ip = "127.0.21.14";
    let cert = self_signed("nomx.test");
    // No MX (the domain is its own host, RFC 5321 §5.1), and its address
    // record tampered with: bogus is a temporary failure, never "no such
    // domain".
    let t = Dane::start(
        ip,
        &["nomx.test"],
        ReceiverTls::Cert(&cert),
        |_| {
            vec![Zone::new(
                "nomx.test",
                &[&format!("@ IN A {ip}")],
                Signing::Bogus,
            )]
        },
        "",
    );

    let id = t.send("carol@nomx.test", &message("no mx", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@nomx.test", "deferred", 30);
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(
        &line,
        "address lookup for nomx.test: DNSSEC validation failed",
    );
    wait_attempts(&t.sender, &id, 2);
    nothing_received(&t.mx, "nomx.test", "carol");
    assert!(
        t.sender.maildir("example.test", "alice").is_empty(),
        "a report went to the sender:\n{}",
        t.sender.log()
    );
}

#[test]
fn a_signed_domain_without_tlsa_records_gets_opportunistic_tls() {
    let ip = "127.0.21.18";
    let cert = self_signed("mx.notlsa.test");
    // Signed throughout; the TLSA name does not exist (NXDOMAIN) for one
    // MX host and exists without TLSA (NODATA) for the other: both are
    // proven absent (NSEC3), so both hosts are not DANE hosts.
    let t = Dane::start(
        ip,
        &["notlsa.test", "nodata.test"],
        ReceiverTls::Cert(&cert),
        |port| {
            vec![
                Zone::new(
                    "notlsa.test",
                    &["@ IN MX 10 mx", &format!("mx IN A {ip}")],
                    Signing::Signed,
                ),
                Zone::new(
                    "nodata.test",
                    &[
                        "@ IN MX 10 mx",
                        &format!("mx IN A {ip}"),
                        &format!("_{port}._tcp.mx IN TXT \"no TLSA here\""),
                    ],
                    Signing::Signed,
                ),
            ]
        },
        "",
    );

    for domain in ["notlsa.test", "nodata.test"] {
        let rcpt = format!("carol@{domain}");
        let id = t.send(&rcpt, &message(domain, "", "Hello."));
        let line = wait_status(&t.sender, &id, &rcpt, "sent", 30);
        assert_contains(
            &line,
            &format!("tls=opportunistic (mx.{domain} has no TLSA records; no MTA-STS policy)"),
        );
        t.mx.wait_mail_with(domain, "carol", &[&format!("Subject: {domain}")], 10);
    }
}

#[test]
fn a_signed_mx_pointing_into_an_unsigned_zone_is_not_a_dane_host() {
    let ip = "127.0.21.19";
    let cert = self_signed("mx.plainhost.test");
    // The MX record is signed, the host's zone is not: its TLSA record
    // (which would not match) must not count (RFC 7672 §2.2.2).
    let wrong = tlsa_rdata(3, 1, 1, &self_signed("other").der);
    let t = Dane::start(
        ip,
        &["signedmx.test"],
        ReceiverTls::Cert(&cert),
        |port| {
            vec![
                Zone::new(
                    "signedmx.test",
                    &["@ IN MX 10 mx.plainhost.test."],
                    Signing::Signed,
                ),
                mail_zone("plainhost.test", ip, port, &wrong, Signing::Unsigned),
            ]
        },
        "",
    );

    let id = t.send("carol@signedmx.test", &message("split", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@signedmx.test", "sent", 30);
    assert_contains(
        &line,
        "tls=opportunistic (the addresses of mx.plainhost.test are not DNSSEC-signed; no MTA-STS policy)",
    );
    t.mx.wait_mail_with("signedmx.test", "carol", &["Subject: split"], 10);
}

#[test]
fn unusable_tlsa_records_still_mean_tls() {
    let ip = "127.0.21.20";
    let cert = self_signed("mx.unusable.test");
    // PKIX-EE (1): not for SMTP (RFC 7672 §3.1.3), but a secure TLSA
    // RRset still says the server does TLS: mandatory, unauthenticated.
    let unusable = tlsa_rdata(1, 1, 1, &cert.der);
    let t = Dane::start(
        ip,
        &["unusable.test"],
        ReceiverTls::Cert(&cert),
        |port| {
            vec![mail_zone(
                "unusable.test",
                ip,
                port,
                &unusable,
                Signing::Signed,
            )]
        },
        "",
    );

    let id = t.send("carol@unusable.test", &message("unusable", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@unusable.test", "sent", 30);
    assert_contains(
        &line,
        "tls=dane (the TLSA records of mx.unusable.test are all unusable: TLS without authentication)",
    );
    t.mx.wait_mail_with(
        "unusable.test",
        "carol",
        &["Subject: unusable", "with ESMTPS"],
        10,
    );
}

#[test]
fn a_domain_without_mx_is_a_dane_host_itself() {
    let ip = "127.0.21.22";
    let cert = self_signed("selfmx.test");
    let tlsa = tlsa_rdata(3, 1, 1, &cert.der);
    // No MX: the domain is its own host (RFC 5321 §5.1), its TLSA
    // records at _PORT._tcp.DOMAIN; the denial of the MX set is signed.
    let t = Dane::start(
        ip,
        &["selfmx.test"],
        ReceiverTls::Cert(&cert),
        |port| {
            vec![Zone::new(
                "selfmx.test",
                &[
                    &format!("@ IN A {ip}"),
                    &format!("_{port}._tcp IN TLSA {tlsa}"),
                ],
                Signing::Signed,
            )]
        },
        "",
    );

    let id = t.send("carol@selfmx.test", &message("self mx", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@selfmx.test", "sent", 30);
    assert_contains(
        &line,
        &format!("tls=dane (MX and TLSA records of selfmx.test are DNSSEC-signed: {tlsa})"),
    );
    t.mx.wait_mail_with("selfmx.test", "carol", &["Subject: self mx"], 10);
}

#[test]
fn an_mx_host_behind_a_signed_cname_uses_the_tlsa_records_of_its_target() {
    let ip = "127.0.21.23";
    let cert = self_signed("real.cname.test");
    let tlsa = tlsa_rdata(3, 1, 1, &cert.der);
    // RFC 7672 §2.2.2: the TLSA base domain is the target of the MX
    // host's (secure) CNAME chain; without TLSA records there, the MX
    // host name itself.
    let t = Dane::start(
        ip,
        &["cname.test", "cname2.test"],
        ReceiverTls::Cert(&cert),
        |port| {
            vec![
                Zone::new(
                    "cname.test",
                    &[
                        "@ IN MX 10 mx",
                        "mx IN CNAME real",
                        &format!("real IN A {ip}"),
                        &format!("_{port}._tcp.real IN TLSA {tlsa}"),
                    ],
                    Signing::Signed,
                ),
                Zone::new(
                    "cname2.test",
                    &[
                        "@ IN MX 10 mx",
                        "mx IN CNAME real",
                        &format!("real IN A {ip}"),
                        &format!("_{port}._tcp.mx IN TLSA {tlsa}"),
                    ],
                    Signing::Signed,
                ),
            ]
        },
        "",
    );

    for domain in ["cname.test", "cname2.test"] {
        let rcpt = format!("carol@{domain}");
        let id = t.send(&rcpt, &message(domain, "", "Hello."));
        let line = wait_status(&t.sender, &id, &rcpt, "sent", 30);
        assert_contains(
            &line,
            &format!("tls=dane (MX and TLSA records of mx.{domain} are DNSSEC-signed: {tlsa})"),
        );
        let tls = tls_line(&t.sender, &id, &format!("mx.{domain}"));
        assert_contains(&tls, "(DANE: DANE-EE 3 1 1 matched)");
        t.mx.wait_mail_with(domain, "carol", &[&format!("Subject: {domain}")], 10);
    }
}

#[test]
fn tls_required_no_sets_a_configured_dane_requirement_aside() {
    let ip = "127.0.21.24";
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
        "[outbound.tls_policy]\n\"insecure.test\" = \"dane\"\n",
    );

    // `tls = "dane"` cannot be met (the zone is unsigned) and the message
    // asks for no policy: delivered over TLS as offered, not held to a
    // certificate check nobody asked for.
    let id = t.send(
        "carol@insecure.test",
        &message("set aside", "TLS-Required: No\r\n", "Hello."),
    );
    let line = wait_status(&t.sender, &id, "carol@insecure.test", "sent", 30);
    assert_contains(
        &line,
        "tls=opportunistic (the message says TLS-Required: No)",
    );
    t.mx.wait_mail_with(
        "insecure.test",
        "carol",
        &["Subject: set aside", "with ESMTPS"],
        10,
    );
}
