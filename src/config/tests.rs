//! Parsing, defaults and line-precise errors of the whole file.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("test.toml"), text)
}

#[test]
fn defaults_are_safe() {
    let c = parse("hostname = \"mx.example.test\"\n").unwrap();
    assert!(c.relay.allow.is_empty(), "never an open relay by default");
    assert_eq!(c.smtp.max_recipients, 100);
    assert_eq!(c.queue.lifetime, Duration(5 * 86_400));
    assert_eq!(c.smtp.bare_newline, BareNewline::Reject);
    assert_eq!(c.smtp.max_connections_per_ip, 50, "Postfix anvil's default");
    assert!(c.auth.users_file.is_none(), "no AUTH unless configured");
    // The admin listener is bounded like SMTP's.
    assert_eq!(c.admin.header_timeout, Duration(10));
    assert_eq!(c.admin.request_timeout, Duration(300));
    assert_eq!(c.admin.max_connections, 100);
    let e = parse("[smtp]\nmax_connections = 5\n[admin]\nmax_connections = 0\n").unwrap_err();
    assert_eq!(e.place, ":4:1", "{e}");
    let e = parse("[admin]\nheader_timeout = \"0s\"\n").unwrap_err();
    assert!(e.message.contains("admin.header_timeout"), "{e}");
    assert!(!c.auth.any_sender);
    let e = parse("[auth]\nmax_failures = 0\n").unwrap_err();
    assert!(e.message.contains("max_failures"), "{e}");
    // A users file that does not parse names its own line.
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "# x\nalice:not-a-hash\n").unwrap();
    let e = parse(&format!("[auth]\nusers_file = \"{}\"\n", users.display())).unwrap_err();
    assert_eq!(e.place, ":2:14", "{e}");
    assert!(e.message.contains("line 2: user alice"), "{e}");
}

#[test]
fn full_example_parses() {
    let c = parse(
        r#"
hostname = "mx.example.test"
[queue]
path = "/tmp/q"
lifetime = "2h"
retry = ["10s", 60]
[[listener]]
addr = "127.0.0.1:2525"
role = "mx"
[[listener]]
addr = "127.0.0.1:2465"
role = "submission"
tls = "implicit"
[smtp]
max_message_size = "10M"
bare_newline = "normalize"
[relay]
allow = ["127.0.0.2/32", "::1/128"]
[[domain]]
name = "Example.TEST"
kind = "local"
deliver = "maildir:var/mail/{domain}/{user}"
users = ["alice"]
"#,
    )
    .unwrap();
    assert_eq!(c.queue.retry, vec![Duration(10), Duration(60)]);
    assert_eq!(c.smtp.max_message_size, Size(10 * 1024 * 1024));
    assert_eq!(c.listeners[1].tls, TlsMode::Implicit);
    assert_eq!(c.domains[0].name.0, "example.test");
    assert_eq!(c.relay.allow.len(), 2);
}

#[test]
fn errors_name_the_line() {
    let e = parse("hostname = \"x\"\n[queue]\nlifetime = \"5 fortnights\"\n").unwrap_err();
    assert_eq!(e.place, ":3:12", "{e}");
    assert!(e.message.contains("invalid duration"), "{e}");

    let e = parse("hostname = \"x\"\n[smtp]\nmax_recipints = 5\n").unwrap_err();
    assert!(e.to_string().starts_with("test.toml:3:"), "{e}");
    assert!(e.message.contains("unknown field"), "{e}");

    let e = parse("[[domain]]\nname = \"a.test\"\nkind = \"local\"\n").unwrap_err();
    assert_eq!(e.place, ":2:8", "{e}");
    assert!(e.message.contains("needs deliver"), "{e}");

    let e = parse("[[domain]]\nname = \"bad domain\"\nkind = \"local\"\n").unwrap_err();
    assert!(e.to_string().starts_with("test.toml:2:"), "{e}");

    let e =
        parse("[[domain]]\nname = \"a.test\"\nkind = \"local\"\ndeliver = \"lmtp:localhost\"\n")
            .unwrap_err();
    assert_eq!(e.place, ":4:11", "{e}");
    assert!(e.message.contains("lmtp:HOST:PORT"), "{e}");
}

#[test]
fn outbound_timeouts_default_to_postfixs_and_are_configurable() {
    let t = parse("hostname = \"x\"\n").unwrap().outbound.timeouts();
    let secs = |d: std::time::Duration| d.as_secs();
    assert_eq!(
        [
            t.connect,
            t.helo,
            t.command,
            t.data_init,
            t.data_block,
            t.data_end
        ]
        .map(secs),
        [30, 300, 300, 120, 180, 600]
    );
    assert_eq!(parse("").unwrap().outbound.suspend_time, Duration(60));
    let c = parse("[outbound]\nhelo_timeout = \"7s\"\ndata_done_timeout = \"1m\"\n").unwrap();
    let t = c.outbound.timeouts();
    assert_eq!((secs(t.helo), secs(t.data_end)), (7, 60));
    let e = parse("[outbound]\ncommand_timeout = 0\n").unwrap_err();
    assert_eq!(e.place, ":2:1", "{e}");
    assert!(
        e.message.contains("command_timeout must be more than 0"),
        "{e}"
    );
    let e = parse("[dns]\ntimeout = 0\n").unwrap_err();
    assert!(e.message.contains("dns.timeout must be more than 0"), "{e}");
}

#[test]
fn outbound_tls_keys_parse_and_a_zero_report_interval_is_refused() {
    let c = parse(
        "[outbound]\ndane = \"off\"\nmta_sts = false\n\
         [outbound.tls_policy]\n\"Bank.Example.\" = \"dane\"\n\"p.example\" = \"verify\"\n",
    )
    .unwrap();
    let s = c.outbound.security();
    assert!(!s.dane && !c.outbound.mta_sts);
    assert_eq!(
        s.for_domain("bank.example"),
        (faxmta_smtp::TlsPolicy::Dane, true)
    );
    assert!(parse("[outbound]\ndane = \"maybe\"\n").is_err());
    let e = parse("[tls_report]\ninterval = 0\n").unwrap_err();
    assert!(
        e.message
            .contains("tls_report.interval must be more than 0"),
        "{e}"
    );
    assert!(parse("").unwrap().tls_report.enabled);
}

#[test]
fn the_postgres_backend_needs_its_url_and_accounts_in_the_database_need_it() {
    let c = parse("[queue]\nbackend = \"postgres\"\nurl = \"postgres://faxmta@db.test/faxmta\"\n")
        .unwrap();
    assert_eq!(c.queue.backend, QueueBackend::Postgres);
    assert_eq!(c.queue.lease_time.0, 300);
    assert_eq!(c.accounts.backend, AccountsBackend::Files);

    let e = parse("[queue]\nbackend = \"postgres\"\n").unwrap_err();
    assert!(e.message.contains("needs queue.url"), "{e}");
    assert_eq!(e.place, ":2:1", "{e}");

    let e = parse("[queue]\nbackend = \"postgres\"\nurl = \"mysql://x\"\n").unwrap_err();
    assert!(
        e.message.contains("not a PostgreSQL connection string"),
        "{e}"
    );
    assert_eq!(e.place, ":3:1", "{e}");

    let e = parse(
        "[queue]\nbackend = \"postgres\"\nurl = \"postgres://faxmta@db.test/faxmta?sslmode=require\"\n",
    )
    .unwrap_err();
    assert!(e.message.contains("needs [queue] tls_ca"), "{e}");

    let e = parse("[queue]\nbackend = \"cassandra\"\n").unwrap_err();
    assert!(e.message.contains("unknown variant"), "{e}");

    let e = parse("[queue]\nlease_time = \"1s\"\n").unwrap_err();
    assert!(e.message.contains("at least 3s"), "{e}");

    let e = parse("[accounts]\nbackend = \"database\"\n").unwrap_err();
    assert!(e.message.contains("needs the queue on PostgreSQL"), "{e}");
    let c = parse(
        "[queue]\nbackend = \"postgres\"\nurl = \"postgres://faxmta@db.test/faxmta\"\n\
         [accounts]\nbackend = \"database\"\n",
    )
    .unwrap();
    assert_eq!(c.accounts.backend, AccountsBackend::Database);
}

#[test]
fn the_sip_engine_needs_a_trunk_sound_ports_and_a_media_address() {
    let base = "[fax]\nengine = \"sip\"\n[fax.sip]\nlisten = \"127.0.0.5:5070\"\n";
    let trunk = "[[fax.sip.trunk]]\nname = \"carrier\"\nproxy = \"127.0.0.2:5060\"\n";
    let c = parse(&format!("{base}{trunk}")).unwrap();
    assert_eq!(c.fax.sip.trunks[0].max_calls, 2);
    assert_eq!(c.fax.sip.media_port_range().unwrap(), 40000..=40999);

    let e = parse(base).unwrap_err();
    assert!(e.message.contains("no [[fax.sip.trunk]]"), "{e}");
    let e = parse(&format!("{base}media_ports = \"5000\"\n{trunk}")).unwrap_err();
    assert!(e.message.contains("not FIRST-LAST"), "{e}");
    let e = parse(&format!(
        "[fax]\nengine = \"sip\"\n[fax.sip]\nlisten = \"0.0.0.0:5060\"\n{trunk}"
    ))
    .unwrap_err();
    assert!(e.message.contains("set media_ip"), "{e}");
    let e = parse(&format!("{base}{trunk}register = true\n")).unwrap_err();
    assert!(e.message.contains("needs user and password_file"), "{e}");
    let e = parse(&format!("{base}{trunk}dial = \"sip:fax@x\"\n")).unwrap_err();
    assert!(e.message.contains("with {e164} or {number} in it"), "{e}");
    let e = parse(&format!("{base}{trunk}{trunk}")).unwrap_err();
    assert!(e.message.contains("its own name"), "{e}");
    // Other engines do not look at [fax.sip].
    parse("[fax.sip]\nmedia_ports = \"x\"\n").unwrap();
}

#[test]
fn fax_history_and_documents_days_default_and_history_needs_a_day() {
    let c = parse("").unwrap();
    assert_eq!((c.fax.history_days, c.fax.documents_days), (400, 90));
    let c = parse("[fax]\nhistory_days = 30\ndocuments_days = 0\n").unwrap();
    assert_eq!((c.fax.history_days, c.fax.documents_days), (30, 0));
    let e = parse("[fax]\nhistory_days = 0\n").unwrap_err();
    assert!(e.message.contains("at least 1 day"), "{e}");
}
