//! The fax address table: every form a fax recipient may take (number at
//! a fax domain, RFC 3192 `FAX=`, Exchange `IMCEAFAX-`, `fax:` URIs),
//! malformed ones too, each classified and normalised to E.164 by a dial
//! plan as docs/configuration.md documents it.

use faxmta_fax::address::{parse_local_part, parse_uri, At, Form};
use faxmta_fax::dialplan::DialPlan;
use faxmta_fax::directory::FaxPolicy;

/// A NANP site: country 1, trunk prefix 1, international 011, area 555,
/// 10-digit national numbers, outside line 9.
fn nanp() -> FaxPolicy {
    FaxPolicy {
        plan: DialPlan {
            country_code: "1".into(),
            national_prefix: "1".into(),
            international_prefix: "011".into(),
            area_code: "555".into(),
            national_digits: Some(10),
            outside_line: "9".into(),
        },
        ..FaxPolicy::default()
    }
}

/// A German site: country 49, national 0, international 00, area 30.
fn germany() -> FaxPolicy {
    FaxPolicy {
        plan: DialPlan {
            country_code: "49".into(),
            area_code: "30".into(),
            ..DialPlan::default()
        },
        ..FaxPolicy::default()
    }
}

/// What a row expects.
enum Want {
    /// A fax recipient: form, E.164, dial string, sub-address, extension,
    /// name.
    Fax(
        Form,
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    ),
    /// Not a fax address (an ordinary mailbox at our domain).
    Mailbox,
    /// Refused; the reason contains this.
    Bad(&'static str),
}

use Form::{Imcea, Number, Rfc3192, Uri};
use Want::{Bad, Fax, Mailbox};

const US: &str = "+15551234567";
const US_DIAL: &str = "915551234567";

#[rustfmt::skip]
fn table() -> Vec<(&'static str, Option<At>, Want)> {
    let fax = Some(At::FaxDomain);
    let own = Some(At::OwnDomain);
    vec![
        // number@fax-domain, every way of writing it
        ("+15551234567", fax, Fax(Number, US, US_DIAL, None, None, None)),
        ("\"+1 (555) 123-4567\"", fax, Fax(Number, US, US_DIAL, None, None, None)),
        ("5551234567", fax, Fax(Number, US, US_DIAL, None, None, None)),
        ("555.123.4567", fax, Fax(Number, US, US_DIAL, None, None, None)),
        ("1234567", fax, Fax(Number, US, US_DIAL, None, None, None)),
        ("15551234567", fax, Fax(Number, US, US_DIAL, None, None, None)),
        ("011442079460958", fax, Fax(Number, "+442079460958", "9011442079460958", None, None, None)),
        ("+15551234567x12", fax, Fax(Number, US, US_DIAL, None, Some("12"), None)),
        ("+15551234567ext.12", fax, Fax(Number, US, US_DIAL, None, Some("12"), None)),
        ("\"+15551234567,,123,,4\"", fax, Fax(Number, US, US_DIAL, None, Some("123,,4"), None)),
        ("\"+15551234567;ext=9\"", fax, Fax(Number, US, US_DIAL, None, Some("9"), None)),
        ("+15551234567/T33S=55", fax, Fax(Number, US, US_DIAL, Some("55"), None, None)),
        // RFC 3192 at a fax domain and at our own domain
        ("FAX=+15551234567", own, Fax(Rfc3192, US, US_DIAL, None, None, None)),
        ("fax=+1-555-123-4567", own, Fax(Rfc3192, US, US_DIAL, None, None, None)),
        ("Fax=+15551234567", fax, Fax(Rfc3192, US, US_DIAL, None, None, None)),
        ("FAX=+15551234567/T33S=123", own, Fax(Rfc3192, US, US_DIAL, Some("123"), None, None)),
        ("/FAX=+1.555.123.4567/t33s=7/", own, Fax(Rfc3192, US, US_DIAL, Some("7"), None, None)),
        ("FAX=+442079460958", own, Fax(Rfc3192, "+442079460958", "9011442079460958", None, None, None)),
        // Exchange IMCEA: [FAX:…] through a send connector for fax:*
        ("IMCEAFAX-+2B15551234567", own, Fax(Imcea, US, US_DIAL, None, None, None)),
        ("imceafax-+2B1+20+28555+29+20123-4567", own, Fax(Imcea, US, US_DIAL, None, None, None)),
        ("IMCEAFAX-5551234567", fax, Fax(Imcea, US, US_DIAL, None, None, None)),
        ("IMCEAFAX-Somebody+20at+20The+20Office+402505555555", own,
            Fax(Imcea, "+12505555555", "912505555555", None, None, Some("Somebody at The Office"))),
        ("IMCEAFAX-+5BFAX+3ABob+40+2B442079460958+5D", own,
            Fax(Imcea, "+442079460958", "9011442079460958", None, None, Some("Bob"))),
        ("IMCEAFAX-+2B15551234567_T33S=44", own, Fax(Imcea, US, US_DIAL, Some("44"), None, None)),
        // Not fax addresses at our own domains
        ("alice", own, Mailbox),
        ("faxes", own, Mailbox),
        ("IMCEAEX-_O=ORG_OU=EXCHANGE_CN=RECIPIENTS_CN=BOB", own, Mailbox),
        // Malformed
        ("1-800-FLOWERS", fax, Bad("letters are not accepted")),
        ("alice", fax, Bad("letters are not accepted")),
        ("FAX=", own, Bad("no number")),
        ("FAX=+1555", own, Bad("too short")),
        ("+1234567890123456", fax, Bad("at most 15 digits")),
        ("+0441234567", fax, Bad("no country code starts with 0")),
        ("IMCEAFAX-+2G15551234567", own, Bad("bad IMCEA encoding")),
        ("IMCEAFAX-", own, Bad("no number")),
        ("FAX=+15551234567/T33S=12a", own, Bad("sub-address")),
        ("FAX=+15551234567/T33S=1/T33S=2", own, Bad("T33S is given twice")),
        ("\"+15551234567;ext=\"", fax, Bad("without digits")),
        ("\"+1555123#4567\"", fax, Bad("neither a digit nor a separator")),
        ("1", fax, Bad("only a prefix")),
        ("+1 555 123", fax, Bad("national numbers of +1 have 10 digits, not 6")),
    ]
}

fn check(
    policy: &FaxPolicy,
    label: &str,
    result: Result<Option<faxmta_fax::address::FaxAddress>, String>,
    want: &Want,
) {
    let target = result.and_then(|a| match a {
        Some(a) => policy.target(&a).map(Some).map_err(|e| e.0),
        None => Ok(None),
    });
    match (want, target) {
        (Fax(form, e164, dial, sub, ext, name), Ok(Some(t))) => {
            assert_eq!(t.form, *form, "{label}");
            assert_eq!(t.number.as_str(), *e164, "{label}");
            assert_eq!(t.dial, *dial, "{label}");
            assert_eq!(t.subaddress.as_deref(), *sub, "{label}");
            assert_eq!(t.extension.as_deref(), *ext, "{label}");
            assert_eq!(t.name.as_deref(), *name, "{label}");
        }
        (Mailbox, Ok(None)) => {}
        (Bad(why), Err(e)) => assert!(e.contains(why), "{label}: {e:?} should say {why:?}"),
        (_, got) => panic!("{label}: unexpected {got:?}"),
    }
}

#[test]
fn every_address_form_is_classified_and_normalised() {
    let policy = nanp();
    let rows = table();
    assert!(rows.len() >= 20);
    for (local, at, want) in &rows {
        let at = at.expect("each row says where");
        let label = format!("{local} ({at:?})");
        let parsed = parse_local_part(local, at).map_err(|e| e.0);
        check(&policy, &label, parsed, want);
    }
}

#[rustfmt::skip]
#[test]
fn uris_are_the_same_recipient_kind() {
    let policy = nanp();
    let rows: Vec<(&str, Want)> = vec![
        ("fax:+1-555-123-4567;tsub=12", Fax(Uri, US, US_DIAL, Some("12"), None, None)),
        ("FAX:+15551234567", Fax(Uri, US, US_DIAL, None, None, None)),
        ("tel:+15551234567;ext=22", Fax(Uri, US, US_DIAL, None, Some("22"), None)),
        ("fax:555-123-4567", Fax(Uri, US, US_DIAL, None, None, None)),
        ("fax:+1%20555%20123%204567;postd=,,5", Fax(Uri, US, US_DIAL, None, Some("5"), None)),
        ("fax:1234567;phone-context=+1-555", Fax(Uri, US, US_DIAL, None, None, None)),
        ("fax:+44 20 7946 0958", Fax(Uri, "+442079460958", "9011442079460958", None, None, None)),
        ("fax:+1-800-FLOWERS", Bad("letters")),
        ("fax:;tsub=1", Bad("no number")),
        ("mailto:alice@example.com", Bad("not a fax: URI")),
    ];
    for (uri, want) in &rows {
        check(&policy, uri, parse_uri(uri).map(Some).map_err(|e| e.0), want);
    }
}

#[rustfmt::skip]
#[test]
fn a_german_dial_plan() {
    let policy = germany();
    let de = |n: &'static str, d: &'static str| Fax(Rfc3192, n, d, None, None, None);
    let rows: Vec<(&str, Want)> = vec![
        ("FAX=0201/1234567", de("+492011234567", "02011234567")),
        ("FAX=0049 30 1234567", de("+49301234567", "0301234567")),
        ("FAX=1234567", de("+49301234567", "0301234567")),
        ("FAX=+1 555 123 4567", de(US, "0015551234567")),
        ("FAX=(030) 123-45-67", de("+49301234567", "0301234567")),
    ];
    for (local, want) in &rows {
        let parsed = parse_local_part(local, At::OwnDomain).map_err(|e| e.0);
        check(&policy, local, parsed, want);
    }
}
