//! Tests of the router: each kind of domain and what it accepts.
use super::*;
use faxmta_transports::HostPort;
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
fn relay_domains_go_to_their_hosts_and_are_ours() {
    let r = router();
    let Ok(Route::Relay { hop }) = r.resolve("anyone@Branch.Test") else {
        panic!("not a relay route");
    };
    assert!(
        !Route::Relay { hop: hop.clone() }.is_relay(),
        "ours: accepted from anyone"
    );
    assert_eq!(hop.tls, faxmta_transports::smtp::TlsPolicy::Required);
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
    let config = Config::parse(
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
    assert_eq!(hop.auth.as_ref().unwrap().password(), "secret");
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
