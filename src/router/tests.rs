//! Tests of the router: each kind of domain and what it accepts.
use super::*;
use crate::policy::fax::{may_fax, may_fax_address, Asker};
use faxmta_transport::HostPort;
use std::path::Path;

fn router() -> Router {
    let config = Config::parse(
        Path::new("t.toml"),
        r#"
hostname = "mx.example.test"
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:/var/mail/{domain}/{user}"
users = ["Alice", "bob"]
[[domain]]
name = "open.test"
kind = "local"
deliver = "maildir:/m/{user}"
[[domain]]
name = "branch.test"
kind = "relay"
hosts = ["127.0.0.3:2525", "backup.branch.test"]
tls = "required"
[[domain]]
name = "store.test"
kind = "local"
deliver = "lmtp:unix:/run/dovecot/lmtp"
[[domain]]
name = "listed.test"
kind = "local"
deliver = "lmtp:[::1]:24"
users = ["ann"]
"#,
    )
    .unwrap();
    Router::new(&config)
}

#[test]
fn local_users_and_remote_domains() {
    let r = router();
    assert_eq!(
        r.resolve("alice@Example.TEST"),
        Ok(Route::Maildir {
            mailbox: "/var/mail/example.test/alice".into()
        })
    );
    assert_eq!(r.resolve("carol@example.test").unwrap_err().status, "5.1.1");
    assert_eq!(
        r.resolve("anyone@open.test"),
        Ok(Route::Maildir {
            mailbox: "/m/anyone".into()
        })
    );
    assert_eq!(
        r.resolve("x@elsewhere.org"),
        Ok(Route::Remote {
            domain: "elsewhere.org".into()
        })
    );
    assert!(r.resolve("x@elsewhere.org").unwrap().is_relay());
}

#[test]
fn a_trailing_dot_names_the_same_domain_and_the_same_mailbox() {
    let r = router();
    assert_eq!(
        r.resolve("bob@Example.Test."),
        Ok(Route::Maildir {
            mailbox: "/var/mail/example.test/bob".into()
        })
    );
    assert_eq!(r.resolve("bob@.").unwrap_err().code, 553);
    assert_eq!(r.resolve("bob@..").unwrap_err().code, 553);
}

#[test]
fn relay_domains_go_to_their_hosts_and_are_ours() {
    let r = router();
    let Ok(Route::Relay { hop }) = r.resolve("anyone@Branch.Test") else {
        panic!("not a relay route");
    };
    assert!(
        !Route::Relay { hop: hop.clone() }.is_relay(),
        "ours: accepted from anyone"
    );
    assert_eq!(hop.tls, faxmta_smtp::TlsPolicy::Required);
    let hosts: Vec<(&str, u16)> = hop
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.port))
        .collect();
    assert_eq!(hosts, vec![("127.0.0.3", 2525), ("backup.branch.test", 25)]);
    assert!(
        r.resolve("x@sub.branch.test").unwrap().is_relay(),
        "subdomains are not"
    );
}

#[test]
fn lmtp_domains_go_to_their_server_and_user_lists_still_apply() {
    let r = router();
    let unix = LmtpTarget::Unix("/run/dovecot/lmtp".into());
    for address in ["Anyone@Store.Test", "postmaster@store.test"] {
        assert_eq!(
            r.resolve(address),
            Ok(Route::Lmtp {
                target: unix.clone()
            })
        );
    }
    assert!(!r.resolve("x@store.test").unwrap().is_relay(), "ours");
    let tcp = LmtpTarget::Tcp(HostPort {
        name: "::1".into(),
        port: 24,
    });
    assert_eq!(
        r.resolve("ANN@listed.test"),
        Ok(Route::Lmtp { target: tcp })
    );
    assert_eq!(r.resolve("bob@listed.test").unwrap_err().status, "5.1.1");
}

#[test]
fn smart_hosts_take_what_is_not_ours_and_are_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let mut config = Config::parse(
        Path::new("t.toml"),
        &format!(
            r#"
[smarthost]
hosts = ["smtp.isp.test:587"]
auth = {{ user = "me", password_file = "{}" }}
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:/m/{{user}}"
[[domain]]
name = "branch.test"
kind = "relay"
hosts = ["127.0.0.3"]
[[domain]]
name = "partner.test"
kind = "smarthost"
hosts = ["127.0.0.4:465"]
"#,
            pw.display()
        ),
    )
    .unwrap();
    config.read_passwords(Path::new("t.toml")).unwrap();
    let r = Router::new(&config);
    let Ok(Route::Smarthost {
        domain,
        hop,
        global: true,
    }) = r.resolve("x@Elsewhere.Org")
    else {
        panic!("not the global smart host");
    };
    assert_eq!(domain, "elsewhere.org");
    assert_eq!(hop.hosts[0].port, 587);
    assert_eq!(hop.auth.as_ref().unwrap().password(), Some("secret"));
    assert!(r.resolve("x@elsewhere.org").unwrap().is_relay());

    let Ok(route @ Route::Smarthost { global: false, .. }) = r.resolve("x@partner.test") else {
        panic!("not the domain's smart host");
    };
    assert!(route.is_relay(), "a smarthost domain is not ours");
    let Route::Smarthost { hop, .. } = route else {
        unreachable!()
    };
    assert!(hop.auth.is_none() && hop.implicit_tls_for(&hop.hosts[0]));

    // Ours stay ours.
    assert!(matches!(
        r.resolve("x@branch.test"),
        Ok(Route::Relay { .. })
    ));
    assert!(matches!(
        r.resolve("x@example.test"),
        Ok(Route::Maildir { .. })
    ));
}

#[test]
fn backup_mx_domains_are_ours_with_their_lists_and_lifetimes() {
    let config = Config::parse(
        Path::new("t.toml"),
        r#"
[[domain]]
name = "partner.test"
kind = "backup-mx"
[[domain]]
name = "listed.test"
kind = "backup-mx"
users = ["Ann"]
lifetime = "2d"
[[domain]]
name = "asked.test"
kind = "backup-mx"
verify = "callout"
"#,
    )
    .unwrap();
    let r = Router::new(&config);
    let Ok(Route::BackupMx(route)) = r.resolve("Anyone@Partner.Test") else {
        panic!("not a backup route");
    };
    assert!(!Route::BackupMx(route.clone()).is_relay(), "ours");
    assert_eq!(route.hop.domain, "partner.test");
    assert_eq!(route.lifetime, 30 * 86_400);
    assert!(route.callout.is_none() && !route.listed);

    let Ok(Route::BackupMx(route)) = r.resolve("ann@listed.test") else {
        panic!("ann is listed");
    };
    assert_eq!(route.lifetime, 2 * 86_400);
    assert!(route.listed);
    assert!(r.resolve("postmaster@listed.test").is_ok());
    assert_eq!(r.resolve("bob@listed.test").unwrap_err().status, "5.1.1");

    let Ok(Route::BackupMx(route)) = r.resolve("x@asked.test") else {
        panic!("not a backup route");
    };
    assert_eq!(route.callout, Some(std::time::Duration::from_secs(30)));
    assert!(r.resolve("x@sub.partner.test").unwrap().is_relay());
}

#[test]
fn etrn_domains_are_ours_and_released_by_their_networks() {
    let config = Config::parse(
        Path::new("t.toml"),
        r#"
[queue]
lifetime = "3d"
[[domain]]
name = "customer.test"
kind = "etrn"
release_from = ["192.0.2.0/24"]
hosts = ["127.0.0.3:2525"]
users = ["ann"]
[[domain]]
name = "dyn.test"
kind = "etrn"
release_from = ["2001:db8::/32", "192.0.2.9/32"]
lifetime = "1d"
"#,
    )
    .unwrap();
    let r = Router::new(&config);
    let Ok(route @ Route::Etrn(_)) = r.resolve("Ann@Customer.Test") else {
        panic!("not an ETRN route");
    };
    assert!(!route.is_relay(), "ours: accepted from anyone");
    let Route::Etrn(e) = route else {
        unreachable!()
    };
    assert_eq!(e.domain, "customer.test");
    assert!(matches!(&e.hop, NextHop::Relay(h) if h.hosts[0].port == 2525));
    assert_eq!(e.lifetime, None, "the queue's");
    assert!(e.listed);
    assert!(e.may_release("192.0.2.200".parse().unwrap()));
    assert!(e.may_release("::ffff:192.0.2.1".parse().unwrap()));
    assert!(!e.may_release("192.0.3.1".parse().unwrap()));
    assert_eq!(r.resolve("bob@customer.test").unwrap_err().status, "5.1.1");
    assert!(r.resolve("postmaster@customer.test").is_ok());

    let Ok(Route::Etrn(d)) = r.resolve("x@dyn.test") else {
        panic!("not an ETRN route");
    };
    assert!(matches!(&d.hop, NextHop::BackupMx(h) if h.domain == "dyn.test"));
    assert_eq!(d.lifetime, Some(86_400));
    assert!(d.may_release("2001:db8::1".parse().unwrap()));
    assert!(
        r.resolve("x@sub.dyn.test").unwrap().is_relay(),
        "not subdomains"
    );
    let mut names: Vec<&str> = r.etrn_domains().map(|e| e.domain.as_str()).collect();
    names.sort();
    assert_eq!(names, ["customer.test", "dyn.test"]);
}

#[test]
fn postmaster_always_exists() {
    let r = router();
    assert!(r.resolve("Postmaster").is_ok());
    assert!(r.resolve("postmaster@example.test").is_ok());
}

#[test]
fn local_parts_cannot_escape_the_mail_directory() {
    let r = router();
    for bad in [
        "../../etc@open.test",
        ".hidden@open.test",
        "a/b@open.test",
        "@open.test",
    ] {
        assert!(r.resolve(bad).is_err(), "{bad}");
    }
    assert_eq!(r.resolve("nodomain").unwrap_err().code, 501);
}

fn fax_router(extra: &str) -> Router {
    let text = format!(
        r#"
hostname = "mx.example.test"
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:/m/{{domain}}/{{user}}"
users = ["alice", "bob"]
[[domain]]
name = "open.test"
kind = "local"
deliver = "maildir:/m/{{domain}}/{{user}}"
[[domain]]
name = "fax.example.test"
kind = "fax"
[[domain]]
name = "branch.test"
kind = "relay"
hosts = ["127.0.0.3"]
[[domain]]
name = "partner.test"
kind = "backup-mx"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
national_digits = 10
outside_line = "9"
[[fax.rule]]
name = "premium-rate"
match = ["+1900"]
action = "deny"
[[fax.user]]
address = "alice@example.test"
name = "Alice"
{extra}
"#
    );
    Router::new(&Config::parse(Path::new("t.toml"), &text).unwrap())
}

#[test]
fn fax_addresses_at_fax_and_local_domains_are_fax_routes() {
    let r = fax_router("");
    for address in [
        "+15551234567@Fax.Example.Test",
        "5551234567@fax.example.test.",
        "FAX=+1-555-123-4567@fax.example.test",
        "FAX=+15551234567@example.test",
        "fax=15551234567@open.test",
        "IMCEAFAX-+2B15551234567@example.test",
        "IMCEAFAX-Bob+40+2B15551234567@open.test",
    ] {
        let Ok(route @ Route::Fax(_)) = r.resolve(address) else {
            panic!("{address}: {:?}", r.resolve(address));
        };
        assert!(!route.is_relay(), "{address}: ours");
        let Route::Fax(t) = route else { unreachable!() };
        assert_eq!(t.number.as_str(), "+15551234567", "{address}");
        assert_eq!(t.dial, "915551234567", "{address}");
        assert_eq!(r.fax_number(address).as_deref(), Some("+15551234567"));
    }
    let Ok(Route::Fax(t)) = r.resolve("FAX=+15551234567/T33S=12@example.test") else {
        panic!("not a fax route");
    };
    assert_eq!(t.subaddress.as_deref(), Some("12"));
    assert_eq!(t.hop().subaddress.as_deref(), Some("12"));
    // At a domain we relay, or a remote one, FAX= is an address like any.
    assert!(matches!(
        r.resolve("FAX=+15551234567@branch.test"),
        Ok(Route::Relay { .. })
    ));
    assert!(matches!(
        r.resolve("IMCEAFAX-+2B15551234567@partner.test"),
        Ok(Route::BackupMx(_))
    ));
    let remote = r.resolve("FAX=+15551234567@elsewhere.org").unwrap();
    assert!(remote.is_relay(), "{remote:?}");
    assert_eq!(r.fax_number("FAX=+15551234567@elsewhere.org"), None);
    // postmaster of a fax domain is a person.
    assert_eq!(
        r.resolve("postmaster@fax.example.test"),
        Ok(Route::Maildir {
            mailbox: "/m/example.test/postmaster".into()
        })
    );
}

#[test]
fn a_fax_address_never_becomes_a_mailbox() {
    let r = fax_router("");
    for address in [
        "alice@fax.example.test",
        "FAX=../../etc@open.test",
        "fax=+1555@example.test",
        "FAX=@open.test",
        "IMCEAFAX-+2Fetc+2Fpasswd@open.test",
        "IMCEAFAX-+XX@open.test",
        "FAX=+1-800-FLOWERS@open.test",
        "\"FAX=+1 555 123 4567;ext=\"@open.test",
    ] {
        let e = r.resolve(address).unwrap_err();
        assert_eq!(
            (e.code, e.status.as_str()),
            (550, "5.1.3"),
            "{address}: {e}"
        );
        assert!(
            e.text.starts_with(&format!("Bad fax number <{address}>: ")),
            "{e}"
        );
    }
    let e = r.resolve("1-800-FLOWERS@fax.example.test").unwrap_err();
    assert!(e.text.contains("letters are not accepted"), "{e}");
    // Ordinary mailboxes stay mailboxes.
    assert!(matches!(
        r.resolve("faxes@open.test"),
        Ok(Route::Maildir { .. })
    ));
}

#[test]
fn fax_senders_are_checked_against_the_directory_and_rules() {
    let r = fax_router("");
    let Ok(Route::Fax(us)) = r.resolve("+15551234567@fax.example.test") else {
        panic!("not a fax route");
    };
    let Ok(Route::Fax(premium)) = r.resolve("FAX=+19005551234@example.test") else {
        panic!("not a fax route");
    };
    let alice = may_fax(&r, &us, &Asker::trusted("alice@example.test", None)).unwrap();
    assert_eq!(alice.name.as_deref(), Some("Alice"));
    let e = may_fax(&r, &us, &Asker::trusted("eve@evil.test", None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "550 5.7.1 <eve@evil.test> may not send faxes (not in the fax user directory)"
    );
    let e = may_fax(&r, &premium, &Asker::trusted("alice@example.test", None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "550 5.7.1 Fax to +19005551234 is not allowed for alice@example.test (rule: premium-rate)"
    );
    let e = may_fax(&r, &us, &Asker::trusted("", None)).unwrap_err();
    assert_eq!((e.code, e.status.as_str()), (550, "5.7.1"));
    assert!(e.text.contains("null sender"), "{e}");
    assert!(may_fax_address(
        &r,
        &Asker::trusted("alice@example.test", None),
        "FAX=+15551234567@open.test"
    )
    .is_ok());
    let e = may_fax_address(
        &r,
        &Asker::trusted("alice@example.test", None),
        "alice@example.test",
    )
    .unwrap_err();
    assert!(e.text.contains("is not a fax address"), "{e}");
}

#[test]
fn by_default_only_trusted_clients_are_believed_about_a_fax_sender() {
    let Ok(Route::Fax(us)) = fax_router("").resolve("+15551234567@fax.example.test") else {
        panic!("not a fax route");
    };
    // (setting, trusted client, SPF pass) -> believed
    for (setting, trusted, spf, believed) in [
        ("", false, false, false),
        ("", false, true, false),
        ("", true, false, true),
        ("[fax]\nsenders = \"trusted\"\n", false, true, false),
        ("[fax]\ntrusted_only = true\n", false, false, false),
        ("[fax]\nsenders = \"spf-pass\"\n", false, true, true),
        ("[fax]\nsenders = \"spf-pass\"\n", false, false, false),
        ("[fax]\nsenders = \"spf-pass\"\n", true, false, true),
        ("[fax]\nsenders = \"any\"\n", false, false, true),
        ("[fax]\ntrusted_only = false\n", false, false, true),
    ] {
        let r = fax_router(setting);
        let asker = Asker {
            sender: "alice@example.test",
            login: None,
            trusted,
            spf_pass: spf,
        };
        let got = may_fax(&r, &us, &asker);
        assert_eq!(
            got.is_ok(),
            believed,
            "{setting:?} {trusted} {spf}: {got:?}"
        );
        if let Err(e) = got {
            assert_eq!((e.code, e.status.as_str()), (550, "5.7.1"));
            assert!(e.text.contains("only from authenticated users"), "{e}");
        }
    }
}
