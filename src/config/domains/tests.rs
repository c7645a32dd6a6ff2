//! Tests of the routing part of the configuration.
use super::super::Config;
use super::*;
use faxmta_smtp::TlsPolicy;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("test.toml"), text)
}

/// Parse `text` from a file, then read its passwords as `serve` does.
fn parse_serve(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.toml");
    std::fs::write(&path, text).unwrap();
    let mut c = Config::parse(&path, text)?;
    c.read_passwords(&path)?;
    Ok(c)
}

#[test]
fn a_smarthost_reads_its_password_and_defaults_to_required_tls() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret pass\r\nsecond line\n").unwrap();
    let c = parse_serve(&format!(
        "[smarthost]\nhosts = [\"smtp.isp.test:587\", \"backup.isp.test:465\"]\n\
         auth = {{ user = \"me@isp.test\", password_file = \"{}\" }}\n",
        file.display()
    ))
    .unwrap();
    let hop = c.smarthost.as_ref().unwrap().hop();
    assert_eq!(hop.tls, TlsPolicy::Required);
    assert!(!hop.implicit_tls);
    assert!(!hop.implicit_tls_for(&hop.hosts[0]));
    assert!(hop.implicit_tls_for(&hop.hosts[1]), "465 is SMTPS");
    let creds = hop.auth.as_ref().unwrap();
    assert_eq!(
        (creds.user.as_str(), creds.password()),
        ("me@isp.test", Some("s3cret pass"))
    );
    // The password shows nowhere in Debug output.
    for debug in [format!("{c:?}"), format!("{hop:?}")] {
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("me@isp.test"), "{debug}");
    }
}

#[test]
fn a_smarthost_domain_has_its_own_hop() {
    let c = parse(
        "[outbound]\ntls = \"opportunistic\"\n[[domain]]\nname = \"partner.test\"\n\
         kind = \"smarthost\"\nhosts = [\"127.0.0.3:2525\"]\nimplicit_tls = true\n\
         [[domain]]\nname = \"branch.test\"\nkind = \"relay\"\nhosts = [\"10.0.0.1\"]\n",
    )
    .unwrap();
    let hop = c.domains[0].hop(c.outbound.tls);
    assert_eq!(hop.tls, TlsPolicy::Required, "smarthost default");
    assert!(hop.implicit_tls && hop.auth.is_none());
    let relay = c.domains[1].hop(c.outbound.tls);
    assert_eq!(relay.tls, TlsPolicy::Opportunistic, "[outbound] tls");
}

#[test]
fn smarthost_errors_name_the_line() {
    let e = parse("hostname = \"x\"\n[smarthost]\nhosts = []\n").unwrap_err();
    assert_eq!(e.place, ":2:1", "{e}");
    assert!(e.message.contains("needs hosts"), "{e}");

    let e = parse("[smarthost]\nhosts = [\"a.test:465\"]\ntls = \"off\"\n").unwrap_err();
    assert!(e.message.contains("port 465 of a.test"), "{e}");

    let e = parse("[smarthost]\nhosts = [\"a.test\"]\ntls = \"of\"\n").unwrap_err();
    assert_eq!(e.place, ":3:7", "{e}");

    let missing = "[smarthost]\nhosts = [\"a.test\"]\n\
         auth = { user = \"u\", password_file = \"/nonexistent/pw\" }\n";
    // Loading does not read the file (only `serve` does): the user alone.
    let c = parse(missing).unwrap();
    let auth = c.smarthost.as_ref().unwrap().hop().auth.unwrap();
    assert_eq!((auth.user.as_str(), auth.password()), ("u", None));
    let e = parse_serve(missing).unwrap_err();
    assert_eq!(e.place, ":3:38", "{e}");
    assert!(
        e.message
            .starts_with("cannot read password_file /nonexistent/pw: "),
        "{e}"
    );

    let e = parse("[smarthost]\nhosts = [\"a.test\"]\nauth = { user = \"u\", password = \"x\" }\n")
        .unwrap_err();
    assert!(e.message.contains("unknown field `password`"), "{e}");

    let e = parse(
        "[[domain]]\nname = \"p.test\"\nkind = \"smarthost\"\ntls = \"off\"\n\
         implicit_tls = true\nhosts = [\"a.test\"]\n",
    )
    .unwrap_err();
    assert_eq!(e.place, ":2:8", "{e}");
    assert!(e.message.contains("contradict"), "{e}");

    let e = parse("[[domain]]\nname = \"p.test\"\nkind = \"smarthost\"\n").unwrap_err();
    assert!(
        e.message.contains("smarthost domain p.test needs hosts"),
        "{e}"
    );

    let e = parse(
        "[[domain]]\nname = \"b.test\"\nkind = \"relay\"\nhosts = [\"a\"]\nimplicit_tls = true\n",
    )
    .unwrap_err();
    assert!(e.message.contains("not relay domain b.test"), "{e}");
}

#[test]
fn a_backup_mx_domain_has_a_long_lifetime_and_its_own_keys() {
    let c = parse(
        "[outbound]\ntls = \"required\"\n[[domain]]\nname = \"partner.test\"\n\
         kind = \"backup-mx\"\n[[domain]]\nname = \"other.test\"\nkind = \"backup-mx\"\n\
         verify = \"callout\"\ncallout_timeout = \"5s\"\nour_mx = \"MX2.Example.Test.\"\n\
         lifetime = \"7d\"\ntls = \"off\"\n",
    )
    .unwrap();
    let (a, b) = (&c.domains[0], &c.domains[1]);
    assert_eq!(a.lifetime(), Some(30 * 86_400));
    assert_eq!(a.callout(), None);
    let hop = a.backup_hop(c.outbound.tls);
    assert_eq!((hop.domain.as_str(), hop.our_mx), ("partner.test", None));
    assert_eq!(hop.tls, TlsPolicy::Required, "[outbound] tls");
    assert_eq!(b.lifetime(), Some(7 * 86_400));
    assert_eq!(b.callout(), Some(std::time::Duration::from_secs(5)));
    let hop = b.backup_hop(c.outbound.tls);
    assert_eq!(hop.our_mx.as_deref(), Some("mx2.example.test"));
    assert_eq!(hop.tls, TlsPolicy::Off);
    let c = parse("[[domain]]\nname = \"p.test\"\nkind = \"backup-mx\"\nverify = \"callout\"\n")
        .unwrap();
    assert_eq!(
        c.domains[0].callout(),
        Some(std::time::Duration::from_secs(30))
    );
}

#[test]
fn backup_mx_errors_name_the_line() {
    let base = "[[domain]]\nname = \"p.test\"\nkind = \"backup-mx\"\n";
    let e = parse(&format!("{base}hosts = [\"a\"]\n")).unwrap_err();
    assert_eq!(e.place, ":2:8", "{e}");
    assert!(e.message.contains("not for backup-mx domain p.test"), "{e}");
    let e = parse(&format!("{base}users = [\"a\"]\nverify = \"callout\"\n")).unwrap_err();
    assert!(e.message.contains("exclude each other"), "{e}");
    let e = parse(&format!("{base}lifetime = 0\n")).unwrap_err();
    assert!(e.message.contains("lifetime must be more than 0"), "{e}");
    let e = parse(&format!("{base}callout_timeout = \"5s\"\n")).unwrap_err();
    assert!(e.message.contains("needs verify"), "{e}");
    let e = parse(&format!("{base}verify = \"ask\"\n")).unwrap_err();
    assert_eq!(e.place, ":4:10", "{e}");
    let e = parse(&format!("{base}our_mx = \"not a name\"\n")).unwrap_err();
    assert!(e.message.contains("invalid domain name"), "{e}");
    let e = parse(
        "[[domain]]\nname = \"l.test\"\nkind = \"local\"\ndeliver = \"maildir:/m\"\n\
         lifetime = \"30d\"\n",
    )
    .unwrap_err();
    assert!(
        e.message.contains("are for backup-mx and etrn domains"),
        "{e}"
    );
}

#[test]
fn an_empty_password_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "\nsecret on the second line\n").unwrap();
    let e = parse_serve(&format!(
        "[[domain]]\nname = \"p.test\"\nkind = \"smarthost\"\nhosts = [\"a.test\"]\n\
         auth = {{ user = \"u\", password_file = \"{}\" }}\n",
        file.display()
    ))
    .unwrap_err();
    assert_eq!(e.place, ":5:38", "{e}");
    assert!(e.message.contains("is empty"), "{e}");
}

#[test]
fn an_etrn_domain_is_held_for_its_release_networks() {
    let c = parse(
        "[outbound]\ntls = \"off\"\n[[domain]]\nname = \"customer.test\"\nkind = \"etrn\"\n\
         release_from = [\"192.0.2.0/24\", \"2001:db8::/32\"]\nhosts = [\"mail.customer.test\"]\n\
         lifetime = \"10d\"\n[[domain]]\nname = \"mx.test\"\nkind = \"etrn\"\n\
         release_from = [\"192.0.2.7/32\"]\nour_mx = \"mail.isp.test\"\n",
    )
    .unwrap();
    let (hosts, mx) = (&c.domains[0], &c.domains[1]);
    assert_eq!(hosts.lifetime(), Some(10 * 86_400));
    assert_eq!(mx.lifetime(), None, "the queue's");
    let NextHop::Relay(hop) = hosts.etrn_hop(c.outbound.tls) else {
        panic!("hosts: relay to host");
    };
    assert_eq!(
        (hop.hosts[0].name.as_str(), hop.hosts[0].port, hop.tls),
        ("mail.customer.test", 25, TlsPolicy::Off)
    );
    let NextHop::BackupMx(hop) = mx.etrn_hop(c.outbound.tls) else {
        panic!("no hosts: the MX, backup rule");
    };
    assert_eq!(
        (hop.domain.as_str(), hop.our_mx.as_deref()),
        ("mx.test", Some("mail.isp.test"))
    );
    assert_eq!(hosts.release_from.as_ref().unwrap().len(), 2);
}

#[test]
fn etrn_errors_name_the_line() {
    let base = "[[domain]]\nname = \"c.test\"\nkind = \"etrn\"\n";
    let e = parse(base).unwrap_err();
    assert_eq!(e.place, ":2:8", "{e}");
    assert!(e.message.contains("needs release_from"), "{e}");
    let e = parse(&format!("{base}release_from = []\n")).unwrap_err();
    assert!(e.message.contains("needs release_from"), "{e}");
    let e = parse(&format!("{base}release_from = [\"300.0.0.0/8\"]\n")).unwrap_err();
    assert_eq!(e.place, ":4:17", "{e}");
    let ok = format!("{base}release_from = [\"10.0.0.0/8\"]\n");
    for (extra, needle) in [
        ("hosts = []\n", "names no host"),
        (
            "hosts = [\"a.test\"]\nour_mx = \"b.test\"\n",
            "our_mx is for delivery",
        ),
        ("deliver = \"maildir:/m\"\n", "not for etrn domain c.test"),
        ("verify = \"callout\"\n", "are for backup-mx domains"),
        ("lifetime = 0\n", "lifetime must be more than 0"),
    ] {
        let e = parse(&format!("{ok}{extra}")).unwrap_err();
        assert!(e.message.contains(needle), "{extra}: {e}");
    }
    let e = parse(
        "[[domain]]\nname = \"r.test\"\nkind = \"relay\"\nhosts = [\"a\"]\n\
         release_from = [\"10.0.0.0/8\"]\n",
    )
    .unwrap_err();
    assert!(
        e.message.contains("release_from is for etrn domains"),
        "{e}"
    );
}
