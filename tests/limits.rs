//! The server's limits with the real binary, each hit and answered as
//! docs/configuration.md says, and counted in faxmta_smtp_limits_total:
//! sessions at once per client address and in all, connections per
//! client address per minute, messages per session, recipients per
//! message and errors per session.

mod common;
use common::*;
use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

/// Connect and read what the server says until it closes (or 2 s pass
/// after a 220: the connection is then taken, and closed here).
fn greeting(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            all.extend_from_slice(b"<closed>");
            break;
        }
        all.extend_from_slice(&buf[..n]);
        if all.starts_with(b"220 ") && all.ends_with(b"\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Wait until no session is open (the start-up probe's has ended).
fn idle(server: &Server) {
    assert!(wait_until(10, || server
        .http_get("/metrics")
        .contains("faxmta_smtp_sessions_active 0")));
}

#[test]
fn sessions_per_address_and_in_all() {
    let server = Server::start_with("max_connections_per_ip = 2\nmax_connections = 3", "");
    idle(&server);
    // Two from 127.0.0.1, on either listener; the third is refused.
    let a = server.connect();
    let b = Smtp::connect(server.sub_port);
    assert_eq!(
        greeting(server.mx_port),
        "421 4.7.0 Error: too many connections from [127.0.0.1]\r\n<closed>"
    );
    // Another address still gets in, until the total is reached.
    let c = smtp_script(server.mx_port, "127.0.0.2", false, &["NOOP", "QUIT"]);
    assert!(c[0].1.starts_with("220 "), "{c:?}");
    let active = |n: usize| {
        let want = format!("faxmta_smtp_sessions_active {n}\n");
        let server = &server;
        move || server.http_get("/metrics").contains(&want)
    };
    // c's session over, a and b open; then the third, which holds its
    // place for 3 s (the peer must be slow: that is the test).
    assert!(wait_until(5, active(2)), "{}", server.log());
    let held = std::thread::spawn({
        let port = server.sub_port;
        move || smtp_script(port, "127.0.0.3", false, &["!sleep:3", "QUIT"])
    });
    assert!(wait_until(5, active(3)), "{}", server.log());
    let full = smtp_script(server.mx_port, "127.0.0.4", false, &[]);
    let held = held.join().unwrap();
    assert!(held[0].1.starts_with("220 "), "{held:?}");
    assert_eq!(
        full[0].1,
        "421 4.7.0 Error: too many connections, try again later"
    );
    // A session that ends gives its place back.
    drop(a);
    assert!(wait_until(5, || server
        .http_get("/metrics")
        .contains("faxmta_smtp_sessions_active 1")));
    assert!(greeting(server.mx_port).starts_with("220 "));
    drop(b);
    let metrics = server.http_get("/metrics");
    assert_contains(
        &metrics,
        "faxmta_smtp_limits_total{limit=\"connections_per_ip\"} 1",
    );
    assert_contains(
        &metrics,
        "faxmta_smtp_limits_total{limit=\"connections\"} 1",
    );
    assert_contains(
        &metrics,
        "faxmta_smtp_rejects_total{class=\"4xx\",status=\"4.7.0\"} 2",
    );
    assert_contains(
        &server.log(),
        "NOQUEUE: reject: CONNECT from [127.0.0.1]: 421 4.7.0",
    );
}

#[test]
fn connections_per_minute() {
    let server = Server::start_with("max_connection_rate = 3", "");
    // The start-up probe was one; each connection counts, closed or not,
    // and once refused the address stays refused for the minute.
    let mut refused_at = None;
    for i in 0..6 {
        let g = greeting(server.mx_port);
        if g.starts_with("220 ") {
            assert!(refused_at.is_none(), "accepted after a refusal: {g}");
        } else {
            assert_eq!(
                g,
                "421 4.7.0 Error: too many connections from [127.0.0.1] in the last minute\r\n<closed>"
            );
            refused_at.get_or_insert(i);
        }
    }
    assert!(matches!(refused_at, Some(1..=3)), "{refused_at:?}");
    // Another address is counted on its own.
    let other = smtp_script(server.mx_port, "127.0.0.2", false, &["QUIT"]);
    assert!(other[0].1.starts_with("220 "), "{other:?}");
    let metrics = server.http_get("/metrics");
    assert_contains(
        &metrics,
        "faxmta_smtp_limits_total{limit=\"connection_rate\"}",
    );
}

#[test]
fn messages_recipients_and_errors_per_session() {
    let server = Server::start_with(
        "max_messages_per_connection = 2\nmax_recipients = 1\nmax_errors = 2",
        "",
    );
    let mut c = server.connect();
    c.cmd("EHLO many.test");
    for n in 0..2 {
        assert!(c.cmd("MAIL FROM:<s@many.test>").starts_with("250 2.1.0"));
        assert!(c
            .cmd("RCPT TO:<alice@example.test>")
            .starts_with("250 2.1.5"));
        if n == 0 {
            assert_eq!(
                c.cmd("RCPT TO:<bob@example.test>"),
                "452 4.5.3 Error: too many recipients"
            );
        }
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(b"Subject: one of two\r\n\r\nx\r\n.\r\n");
        assert!(c.reply().starts_with("250 2.0.0"));
    }
    assert_eq!(
        c.cmd("MAIL FROM:<s@many.test>"),
        "421 4.7.0 Error: too many messages in one session, closing connection"
    );
    assert_eq!(c.reply(), "<closed>");
    // A new session starts afresh.
    let mut c = server.connect();
    c.cmd("EHLO many.test");
    assert!(c.cmd("MAIL FROM:<s@many.test>").starts_with("250 2.1.0"));
    assert!(c.cmd("FOO").starts_with("500 5.5.2"));
    assert_eq!(c.cmd("BAR"), "500 5.5.2 Error: command not recognized");
    assert_eq!(
        c.reply(),
        "421 4.7.0 Error: too many errors, closing connection"
    );
    assert_eq!(server.wait_maildir("example.test", "alice", 2, 10).len(), 2);
    let metrics = server.http_get("/metrics");
    for limit in ["messages", "recipients", "errors"] {
        assert_contains(
            &metrics,
            &format!("faxmta_smtp_limits_total{{limit=\"{limit}\"}} 1"),
        );
    }
}

/// An IPv6 client counts per /64 (unit test:
/// src/policy/limits.rs, `ipv6_clients_count_per_64`); over ::1 (the one
/// IPv6 address loopback has) the limit holds, and the refusal names the
/// client's own address, not its /64.
#[test]
fn ipv6_clients_are_limited_too() {
    let v6 = free_port();
    let server = Server::start_with(
        "max_connections_per_ip = 1",
        &format!("[[listener]]\naddr = \"[::1]:{v6}\"\nrole = \"mx\"\n"),
    );
    idle(&server);
    let connect = || {
        let mut s = TcpStream::connect(("::1", v6)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        (s, String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let (_first, greeting) = connect();
    assert!(greeting.starts_with("220 "), "{greeting}");
    let (_second, refused) = connect();
    assert_eq!(
        refused,
        "421 4.7.0 Error: too many connections from [::1]\r\n"
    );
    // IPv4 clients are counted apart.
    let c = server.connect();
    drop(c);
}
