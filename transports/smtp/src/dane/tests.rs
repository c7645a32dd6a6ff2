//! TLSA matching against certificates made here (rcgen): DANE-EE by
//! certificate and by key, every matching type, DANE-TA through the chain
//! with its name and issuer checks, and the unusable usages.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

struct Chain {
    leaf: CertificateDer<'static>,
    ca: CertificateDer<'static>,
}

/// A CA and a server certificate for `name` issued by it.
fn chain(name: &str) -> Chain {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    Chain {
        leaf: leaf.der().clone(),
        ca: ca.der().clone(),
    }
}

fn spki(cert: &CertificateDer<'_>) -> Vec<u8> {
    webpki::EndEntityCert::try_from(cert)
        .unwrap()
        .subject_public_key_info()
        .as_ref()
        .to_vec()
}

fn record(usage: u8, selector: u8, matching: u8, cert: &CertificateDer<'_>) -> Tlsa {
    let selected = if selector == 0 {
        cert.as_ref().to_vec()
    } else {
        spki(cert)
    };
    let data = match matching {
        0 => selected,
        1 => Sha256::digest(&selected).to_vec(),
        _ => Sha512::digest(&selected).to_vec(),
    };
    Tlsa {
        usage,
        selector,
        matching,
        data,
    }
}

fn check(records: Vec<Tlsa>) -> DaneCheck {
    DaneCheck::new(&records, vec!["mx.dane.test".into(), "dane.test".into()]).unwrap()
}

#[test]
fn dane_ee_matches_the_servers_certificate_or_key_by_every_matching_type() {
    let c = chain("mx.dane.test");
    for selector in 0..=1 {
        for matching in 0..=2 {
            let dane = check(vec![record(3, selector, matching, &c.leaf)]);
            let got = dane.verify(&[c.leaf.clone(), c.ca.clone()], UnixTime::now());
            assert!(got.is_ok(), "3 {selector} {matching}: {got:?}");
        }
    }
    // The SPKI digest is the one `openssl pkey -pubin -outform DER | sha256sum` gives:
    // the whole SubjectPublicKeyInfo, not the bare key.
    assert_eq!(spki(&c.leaf)[0], 0x30, "an SPKI is a DER SEQUENCE");
}

#[test]
fn dane_ee_ignores_the_name_and_the_issuer_but_not_the_key() {
    // DANE-EE: the DNS is the authority; the certificate may be for any
    // name and self-signed (RFC 7672 §3.1.1).
    let other = chain("somewhere.else");
    let dane = check(vec![record(3, 1, 1, &other.leaf)]);
    assert!(dane
        .verify(std::slice::from_ref(&other.leaf), UnixTime::now())
        .is_ok());
    let wrong = chain("mx.dane.test");
    let err = dane.verify(&[wrong.leaf], UnixTime::now()).unwrap_err();
    assert!(err.contains("no TLSA record matched"), "{err}");
}

#[test]
fn dane_ta_verifies_the_chain_to_the_matched_ca_and_the_name() {
    let c = chain("mx.dane.test");
    let dane = check(vec![record(2, 0, 1, &c.ca)]);
    let ok = dane
        .verify(&[c.leaf.clone(), c.ca.clone()], UnixTime::now())
        .unwrap();
    assert!(ok.starts_with("DANE-TA 2 0 1 at depth 1"), "{ok}");
    // Issued by that CA, but for another name.
    let stranger = {
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = p.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["not-the-mx.test".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (leaf.der().clone(), ca.der().clone())
    };
    let dane = check(vec![record(2, 1, 1, &stranger.1)]);
    let err = dane
        .verify(&[stranger.0, stranger.1], UnixTime::now())
        .unwrap_err();
    assert!(err.contains("not issued for mx.dane.test"), "{err}");
    // The TA record names a CA that did not issue the server certificate.
    let a = chain("mx.dane.test");
    let b = chain("mx.dane.test");
    let dane = check(vec![record(2, 0, 1, &b.ca)]);
    let err = dane
        .verify(&[a.leaf.clone(), b.ca.clone()], UnixTime::now())
        .unwrap_err();
    assert!(err.contains("did not verify"), "{err}");
    // A TA record is never matched by the server's own certificate.
    let dane = check(vec![record(2, 0, 1, &a.leaf)]);
    assert!(dane
        .verify(std::slice::from_ref(&a.leaf), UnixTime::now())
        .is_err());
}

#[test]
fn pkix_usages_and_unknown_types_are_unusable() {
    let c = chain("mx.dane.test");
    let pkix = vec![record(0, 0, 1, &c.ca), record(1, 1, 1, &c.leaf)];
    assert!(DaneCheck::new(&pkix, vec![]).is_none());
    let mut odd = record(3, 1, 1, &c.leaf);
    odd.matching = 7;
    assert!(!odd.usable());
    let mut mixed = pkix.clone();
    mixed.push(record(3, 1, 1, &c.leaf));
    let dane = DaneCheck::new(&mixed, vec![]).unwrap();
    assert_eq!(dane.records.len(), 1);
    assert_eq!(dane.describe().len(), 1);
    assert!(dane.describe()[0].starts_with("3 1 1 "));
}

#[test]
fn no_certificate_is_no_match() {
    let c = chain("mx.dane.test");
    let dane = check(vec![record(3, 1, 1, &c.leaf)]);
    assert!(dane.verify(&[], UnixTime::now()).is_err());
}
