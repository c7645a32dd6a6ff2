//! What the MX host's certificate must be under DANE (RFC 7672 §3):
//! DANE-EE binds the key itself (no name, no dates), DANE-TA a CA the
//! server sends in its chain (which then must verify for the MX host's
//! name); anything else defers, and never goes on in plaintext.

use crate::common::*;
use crate::peers::*;
use crate::support::*;

#[test]
fn a_matching_dane_ee_record_delivers_over_verified_tls() {
    let ip = "127.0.21.1";
    let cert = self_signed("mx.dane.test");
    let tlsa = tlsa_rdata(3, 1, 1, &cert.der);
    let t = Dane::start(
        ip,
        &["dane.test"],
        ReceiverTls::Cert(&cert),
        |port| vec![mail_zone("dane.test", ip, port, &tlsa, Signing::Signed)],
        "",
    );

    let id = t.send("carol@dane.test", &message("over dane", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@dane.test", "sent", 30);
    assert_contains(&line, &format!("relay=mx.dane.test[{ip}]:{}", t.mx.mx_port));
    assert_contains(
        &line,
        &format!("tls=dane (MX and TLSA records of mx.dane.test are DNSSEC-signed: {tlsa})"),
    );
    // Self-signed: only the TLSA match makes it "Verified".
    let tls = tls_line(&t.sender, &id, "mx.dane.test");
    assert_contains(&tls, ": Verified TLS connection established");
    assert_contains(&tls, "(DANE: DANE-EE 3 1 1 matched)");
    t.mx.wait_mail_with(
        "dane.test",
        "carol",
        &["Subject: over dane", "(faxmta) with ESMTPS"],
        10,
    );
    // `faxmta route` asks the same planner.
    let route = cli_ok(&t.sender, &["route", "carol@dane.test"]);
    assert_contains(&route, "mx:      DNSSEC-signed");
    assert_contains(
        &route,
        &format!(
            "  mx.dane.test: dane (MX and TLSA records of mx.dane.test are DNSSEC-signed: {tlsa})"
        ),
    );
}

#[test]
fn a_tlsa_record_that_does_not_match_defers_and_never_falls_back_to_plaintext() {
    let ip = "127.0.21.2";
    let cert = self_signed("mx.wrong.test");
    let other = self_signed("mx.wrong.test");
    let tlsa = tlsa_rdata(3, 1, 1, &other.der);
    let t = Dane::start(
        ip,
        &["wrong.test"],
        ReceiverTls::Cert(&cert),
        |port| vec![mail_zone("wrong.test", ip, port, &tlsa, Signing::Signed)],
        "",
    );

    let id = t.send("carol@wrong.test", &message("mismatch", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@wrong.test", "deferred", 30);
    // The deferral names the policy it could not meet.
    assert_contains(&line, "tls=dane (");
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(&line, "DANE: the certificate of mx.wrong.test[");
    assert_contains(&line, "does not match its TLSA records");
    // Tried again (retry = 1s), and still the same, never in plaintext.
    wait_attempts(&t.sender, &id, 3);
    let env = find_queued(&t.sender, &id).unwrap();
    assert_eq!(env["recipients"][0]["state"], "deferred", "{env}");
    assert_eq!(env["recipients"][0]["last_reply"]["code"], 451, "{env}");
    // The sender did reach the receiver and finish the handshake (the
    // receiver may log its side a moment after the sender gave up) …
    assert!(
        wait_until(10, || log_lines(&t.mx, &["TLS established"]).len() >= 3),
        "{}",
        t.mx.log()
    );
    // … and sent nothing after it, or without it.
    nothing_received(&t.mx, "wrong.test", "carol");
    assert!(
        log_lines(&t.sender, &["without TLS"]).is_empty(),
        "{}",
        t.sender.log()
    );
}

#[test]
fn a_dane_ta_record_of_the_issuing_ca_delivers() {
    let ip = "127.0.21.5";
    // faxmta's [tls] cert file holds the chain (leaf, then CA); the
    // receiver sends it all, and the TLSA record is the CA's.
    let (ca, leaf) = ca_and_leaf("mx.ta.test");
    let tlsa = tlsa_rdata(2, 0, 1, &ca.der);
    let t = Dane::start(
        ip,
        &["ta.test"],
        ReceiverTls::Cert(&leaf),
        |port| vec![mail_zone("ta.test", ip, port, &tlsa, Signing::Signed)],
        "",
    );

    let id = t.send("carol@ta.test", &message("dane-ta", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@ta.test", "sent", 30);
    assert_contains(
        &line,
        &format!("tls=dane (MX and TLSA records of mx.ta.test are DNSSEC-signed: {tlsa})"),
    );
    let tls = tls_line(&t.sender, &id, "mx.ta.test");
    assert_contains(&tls, ": Verified TLS connection established");
    assert_contains(
        &tls,
        "(DANE: DANE-TA 2 0 1 at depth 1 for mx.ta.test matched)",
    );
    t.mx.wait_mail_with("ta.test", "carol", &["Subject: dane-ta"], 10);
}

#[test]
fn dane_ee_binds_the_key_whatever_the_name_and_dates() {
    let ip = "127.0.21.15";
    // Issued for another name, and expired years ago: DANE-EE does not
    // look at either (RFC 7672 §3.1.1).
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["elsewhere.example".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let cert = Cert {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        key: key.serialize_pem(),
    };
    let tlsa = tlsa_rdata(3, 1, 1, &cert.der);
    let t = Dane::start(
        ip,
        &["old.test"],
        ReceiverTls::Cert(&cert),
        |port| vec![mail_zone("old.test", ip, port, &tlsa, Signing::Signed)],
        "",
    );

    let id = t.send("carol@old.test", &message("old key", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@old.test", "sent", 30);
    assert_contains(&line, "tls=dane (");
    let tls = tls_line(&t.sender, &id, "mx.old.test");
    assert_contains(&tls, "(DANE: DANE-EE 3 1 1 matched)");
    t.mx.wait_mail_with("old.test", "carol", &["Subject: old key"], 10);
}

#[test]
fn a_dane_ta_chain_issued_for_another_name_does_not_verify() {
    let ip = "127.0.21.16";
    let (ca, leaf) = ca_and_leaf("mx.elsewhere.test");
    let tlsa = tlsa_rdata(2, 0, 1, &ca.der);
    let t = Dane::start(
        ip,
        &["taname.test"],
        ReceiverTls::Cert(&leaf),
        |port| vec![mail_zone("taname.test", ip, port, &tlsa, Signing::Signed)],
        "",
    );

    let id = t.send("carol@taname.test", &message("ta name", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@taname.test", "deferred", 30);
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(
        &line,
        "a DANE-TA record matched, but the chain did not verify",
    );
    assert_contains(
        &line,
        "the certificate is not issued for mx.taname.test or taname.test",
    );
    wait_attempts(&t.sender, &id, 2);
    nothing_received(&t.mx, "taname.test", "carol");
}

#[test]
fn a_dane_ta_record_needs_the_ca_in_the_chain_the_server_sends() {
    let ip = "127.0.21.17";
    // The server sends its own certificate only: the CA the record names
    // is not there to match (RFC 7672 §3.1.2).
    let (ca, leaf) = ca_and_leaf("mx.leafonly.test");
    let end = "-----END CERTIFICATE-----";
    let leaf = Cert {
        pem: format!("{}{end}\n", leaf.pem.split(end).next().unwrap()),
        ..leaf
    };
    let tlsa = tlsa_rdata(2, 0, 1, &ca.der);
    let t = Dane::start(
        ip,
        &["leafonly.test"],
        ReceiverTls::Cert(&leaf),
        |port| vec![mail_zone("leafonly.test", ip, port, &tlsa, Signing::Signed)],
        "",
    );

    let id = t.send("carol@leafonly.test", &message("leaf only", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@leafonly.test", "deferred", 30);
    assert_contains(&line, "dsn=4.7.5");
    assert_contains(&line, "no TLSA record matched the certificate chain");
    wait_attempts(&t.sender, &id, 2);
    nothing_received(&t.mx, "leafonly.test", "carol");
}

#[test]
fn a_host_whose_tlsa_does_not_match_makes_way_for_the_next_mx() {
    let ip = "127.0.21.21";
    let cert = self_signed("mx.two.test");
    let good = tlsa_rdata(3, 1, 1, &cert.der);
    let wrong = tlsa_rdata(3, 1, 1, &self_signed("mx.two.test").der);
    // Two names for the same receiver; the preferred one publishes a key
    // that is not the receiver's.
    let t = Dane::start(
        ip,
        &["two.test"],
        ReceiverTls::Cert(&cert),
        |port| {
            vec![Zone::new(
                "two.test",
                &[
                    "@ IN MX 10 mx1",
                    "@ IN MX 20 mx2",
                    &format!("mx1 IN A {ip}"),
                    &format!("mx2 IN A {ip}"),
                    &format!("_{port}._tcp.mx1 IN TLSA {wrong}"),
                    &format!("_{port}._tcp.mx2 IN TLSA {good}"),
                ],
                Signing::Signed,
            )]
        },
        "",
    );

    let id = t.send("carol@two.test", &message("second mx", "", "Hello."));
    let line = wait_status(&t.sender, &id, "carol@two.test", "sent", 30);
    assert_contains(&line, &format!("relay=mx2.two.test[{ip}]:{}", t.mx.mx_port));
    assert_contains(
        &line,
        &format!("tls=dane (MX and TLSA records of mx2.two.test are DNSSEC-signed: {good})"),
    );
    assert_eq!(
        log_lines(
            &t.sender,
            &[
                &format!("{id}: DANE: the certificate of mx1.two.test["),
                "does not match"
            ]
        )
        .len(),
        1,
        "{}",
        t.sender.log()
    );
    t.mx.wait_mail_with("two.test", "carol", &["Subject: second mx"], 10);
    // The connection kept from mx2 is not one to mx1, though the address
    // is the same: the next message again goes to mx2, after mx1 failed.
    let next = t.send("carol@two.test", &message("again", "", "Hello."));
    let line = wait_status(&t.sender, &next, "carol@two.test", "sent", 30);
    assert_contains(&line, &format!("relay=mx2.two.test[{ip}]:{}", t.mx.mx_port));
    assert_eq!(
        log_lines(
            &t.sender,
            &[
                &format!("{next}: DANE: the certificate of mx1.two.test["),
                "does not match"
            ]
        )
        .len(),
        1,
        "{}",
        t.sender.log()
    );
}
