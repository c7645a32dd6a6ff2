//! Hostile and slow clients against the real binary: a client trickling a
//! command line byte by byte is cut at `command_timeout` (a deadline for
//! the whole line, not per read); one trickling DATA is cut by the data
//! deadline (`data_timeout` plus one second per `min_data_rate` octets)
//! and nothing is queued, while a client above the rate finishes; under
//! stress idle sessions are cut at `stress_timeout` so that a new client
//! gets in; a normal client is served while many slow ones are connected;
//! and out of file descriptors the listener answers `421 4.3.2`, logs it,
//! and serves again once descriptors are free.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Connect to `port` and read the greeting line.
fn connect(port: u16) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let greeting = read_line(&mut s);
    (s, greeting)
}

/// Read one line (up to LF) byte by byte; "<closed>" at the end.
fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(1) => {
                line.push(b[0]);
                if b[0] == b'\n' {
                    return String::from_utf8_lossy(&line).trim_end().to_string();
                }
            }
            _ => {
                if line.is_empty() {
                    return "<closed>".into();
                }
                return String::from_utf8_lossy(&line).into_owned();
            }
        }
    }
}

/// Send a command and read its reply (last line of a multi-line one).
fn cmd(s: &mut TcpStream, line: &str) -> String {
    s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    loop {
        let l = read_line(s);
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return l;
        }
    }
}

/// Write `byte` every `every` on a clone of `s` until the write fails or
/// `stop` is set (a slowloris).
fn trickle(s: &TcpStream, byte: u8, every: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = s.try_clone().unwrap();
    let flag = stop.clone();
    thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            if w.write_all(&[byte]).is_err() {
                return;
            }
            // (The peer must be slow: that is the test.)
            thread::sleep(every);
        }
    });
    stop
}

/// Read until the server closes; the lines and when the close came.
fn until_closed(s: &mut TcpStream) -> (Vec<String>, Duration) {
    let start = Instant::now();
    let mut lines = Vec::new();
    loop {
        let l = read_line(s);
        if l == "<closed>" {
            return (lines, start.elapsed());
        }
        lines.push(l);
    }
}

#[test]
fn a_command_trickled_byte_by_byte_is_cut_at_command_timeout() {
    let server = Server::start_with("command_timeout = \"3s\"", "");
    let (mut s, greeting) = connect(server.mx_port);
    assert!(greeting.starts_with("220 "), "{greeting}");
    // "EHLO xxxx…" one byte every 300 ms: each read comes well within
    // 3 s, but the line never ends.
    s.write_all(b"EHLO ").unwrap();
    let stop = trickle(&s, b'x', Duration::from_millis(300));
    let (lines, after) = until_closed(&mut s);
    stop.store(true, Ordering::Relaxed);
    assert_eq!(
        lines,
        ["421 4.4.2 Error: timeout exceeded, closing connection"],
        "{after:?}"
    );
    assert!(after < Duration::from_secs(8), "cut after {after:?}");
    assert!(wait_until(5, || server.http_get("/metrics").contains(
        "faxmta_smtp_limits_total{limit=\"command_timeout\"} 1"
    )));
    assert_contains(&server.log(), "timeout waiting for a command");
}

#[test]
fn a_client_that_never_reads_its_replies_is_cut_too() {
    let server = Server::start_with("command_timeout = \"3s\"", "");
    let (mut s, _) = connect(server.mx_port);
    // Pipelined commands, never a reply read: once the socket buffers
    // are full the server cannot write; it must give up at the deadline
    // and close (our writes then fail). EHLO: a long reply to a short
    // line fills them soon.
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let line = b"EHLO client.example\r\n".repeat(256);
    let started = Instant::now();
    let cut = loop {
        match s.write(&line) {
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still connected after {:?}",
            started.elapsed()
        );
    };
    let after = started.elapsed();
    assert!(
        after < Duration::from_secs(20),
        "cut after {after:?} ({cut})"
    );
}

#[test]
fn noops_cannot_hold_a_session_forever() {
    let server = Server::start_with("max_junk_commands = 3\nmax_errors = 2", "");
    let (mut s, _) = connect(server.mx_port);
    // Three are free, the fourth counts as an error, the fifth ends it.
    for _ in 0..4 {
        assert_eq!(cmd(&mut s, "NOOP"), "250 2.0.0 Ok");
    }
    s.write_all(b"NOOP\r\n").unwrap();
    let (lines, _) = until_closed(&mut s);
    assert_eq!(
        lines,
        ["421 4.7.0 Error: too many errors, closing connection"]
    );
    // A message queued starts the count over.
    let (mut s, _) = connect(server.mx_port);
    assert!(cmd(&mut s, "EHLO client.example").starts_with("250 "));
    for _ in 0..3 {
        assert_eq!(cmd(&mut s, "RSET"), "250 2.0.0 Ok");
    }
    assert!(cmd(&mut s, "MAIL FROM:<a@client.example>").starts_with("250 "));
    assert!(cmd(&mut s, "RCPT TO:<alice@example.test>").starts_with("250 "));
    assert!(cmd(&mut s, "DATA").starts_with("354 "));
    assert!(cmd(&mut s, "Subject: x\r\n\r\nx\r\n.").starts_with("250 2.0.0 Ok: queued"));
    for _ in 0..4 {
        assert_eq!(cmd(&mut s, "NOOP"), "250 2.0.0 Ok");
    }
    assert_eq!(cmd(&mut s, "QUIT"), "221 2.0.0 Bye");
    assert!(wait_until(5, || server.http_get("/metrics").contains(
        "faxmta_smtp_limits_total{limit=\"junk_commands\"} 1"
    )));
}

/// EHLO, MAIL, RCPT, DATA on a fresh connection; the 354 checked.
fn open_data(port: u16) -> TcpStream {
    let (mut s, greeting) = connect(port);
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(cmd(&mut s, "EHLO slow.example").starts_with("250 "));
    assert!(cmd(&mut s, "MAIL FROM:<slow@slow.example>").starts_with("250 "));
    assert!(cmd(&mut s, "RCPT TO:<alice@example.test>").starts_with("250 "));
    assert!(cmd(&mut s, "DATA").starts_with("354 "));
    s
}

#[test]
fn data_trickled_below_the_minimum_rate_is_cut_and_nothing_is_queued() {
    let server = Server::start_with(
        "data_timeout = \"3s\"\nmin_data_rate = 20\ncommand_timeout = \"30s\"",
        "",
    );
    // About 3 octets a second: the deadline (3 s + 1 s per 20 octets)
    // falls after about 4 s.
    let mut s = open_data(server.mx_port);
    s.write_all(b"Subject: slow\r\n\r\n").unwrap();
    let stop = trickle(&s, b'x', Duration::from_millis(300));
    let (lines, after) = until_closed(&mut s);
    stop.store(true, Ordering::Relaxed);
    assert_eq!(
        lines,
        ["421 4.4.2 Error: timeout exceeded, closing connection"],
        "{after:?}"
    );
    assert!(after < Duration::from_secs(12), "cut after {after:?}");
    assert!(wait_until(5, || server
        .http_get("/metrics")
        .contains("faxmta_smtp_limits_total{limit=\"data_timeout\"} 1")));
    let log = server.log();
    assert_contains(&log, "message dropped, not acknowledged");
    assert!(!log.contains("from=<slow@slow.example>"), "{log}");
    assert!(queue_json(&server).is_empty());
    assert!(server.maildir("example.test", "alice").is_empty());

    // Faster than the minimum rate a message may take longer than
    // data_timeout: 100 octets a second for 5 s.
    let mut s = open_data(server.mx_port);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        s.write_all(&[b'y'; 10]).unwrap();
        // (The peer must be slow: that is the test.)
        thread::sleep(Duration::from_millis(100));
    }
    s.write_all(b"\r\n.\r\n").unwrap();
    let reply = read_line(&mut s);
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    assert_eq!(server.wait_maildir("example.test", "alice", 1, 20).len(), 1);
}

#[test]
fn a_bdat_chunk_trickled_is_cut_by_the_data_deadline() {
    let server = Server::start_with(
        "data_timeout = \"3s\"\nmin_data_rate = 20\ncommand_timeout = \"30s\"",
        "",
    );
    let (mut s, _) = connect(server.mx_port);
    assert!(cmd(&mut s, "EHLO slow.example").starts_with("250 "));
    assert!(cmd(&mut s, "MAIL FROM:<slow@slow.example>").starts_with("250 "));
    assert!(cmd(&mut s, "RCPT TO:<alice@example.test>").starts_with("250 "));
    s.write_all(b"BDAT 100000 LAST\r\n").unwrap();
    let stop = trickle(&s, b'x', Duration::from_millis(300));
    let (lines, after) = until_closed(&mut s);
    stop.store(true, Ordering::Relaxed);
    assert_eq!(
        lines,
        ["421 4.4.2 Error: timeout exceeded, closing connection"],
        "{after:?}"
    );
    assert!(after < Duration::from_secs(12), "cut after {after:?}");
    assert!(queue_json(&server).is_empty());
}

#[test]
fn under_stress_idle_sessions_are_cut_and_a_new_client_gets_in() {
    // 10 sessions at most; stress from 5 open until down to 3; idle ones
    // get 2 s then.
    let server = Server::start_with(
        "max_connections = 10\nmax_connections_per_ip = 0\nstress_threshold = 50\nstress_timeout = \"2s\"\ncommand_timeout = \"5m\"",
        "",
    );
    let mut idle: Vec<TcpStream> = (0..10)
        .map(|_| {
            let (s, greeting) = connect(server.mx_port);
            assert!(greeting.starts_with("220 "), "{greeting}");
            s
        })
        .collect();
    // Full: the next one is refused.
    let (_, full) = connect(server.mx_port);
    assert_eq!(
        full,
        "421 4.7.0 Error: too many connections, try again later"
    );
    // Idle ones are cut at stress_timeout until stress is over (3 open
    // or fewer), not at command_timeout (5m): well before that, the log
    // says stress is over.
    assert!(
        wait_until(30, || server.log().contains("stress over")),
        "{}",
        server.log()
    );
    let mut cut = 0;
    for s in idle.iter_mut() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let line = read_line(s);
        if line != "<closed>" {
            assert_eq!(
                line,
                "421 4.4.2 Error: timeout exceeded, closing connection"
            );
            cut += 1;
        }
    }
    assert!(cut >= 7, "only {cut} cut:\n{}", server.log());
    let log = server.log();
    assert_contains(&log, "under stress: 5 sessions open");
    assert_contains(&log, "stress over");
    // The room is there for a new client, which is served.
    // (send() asserts the 250 of every step.)
    send(
        &server,
        "new@client.example",
        "alice@example.test",
        "Subject: in\r\n\r\nhello\r\n",
    );
}

#[test]
fn a_normal_client_is_served_while_many_slow_ones_are_connected() {
    let server = Server::start_with(
        "max_connections = 500\nmax_connections_per_ip = 0\ncommand_timeout = \"60s\"",
        "",
    );
    let mut slow = Vec::new();
    let mut stops = Vec::new();
    for i in 0..300 {
        let (mut s, greeting) = connect(server.mx_port);
        assert!(greeting.starts_with("220 "), "{greeting}");
        if i % 10 == 0 {
            s.write_all(b"EHLO ").unwrap();
            stops.push(trickle(&s, b'x', Duration::from_millis(500)));
        }
        slow.push(s);
    }
    let started = Instant::now();
    // (send() asserts the 250 of every step.)
    send(
        &server,
        "new@client.example",
        "alice@example.test",
        "Subject: among many\r\n\r\nhello\r\n",
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(server.wait_maildir("example.test", "alice", 1, 20).len(), 1);
    for stop in stops {
        stop.store(true, Ordering::Relaxed);
    }
}

/// Start the binary on `server`'s configuration under `ulimit -n files`
/// (soft and hard: it cannot raise them), and wait for its greeting.
fn spawn_limited(server: &Server, files: u32) -> Child {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(server.path("faxmta.log"))
        .unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n {files} && exec \"$0\" serve --config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_faxmta"))
        .arg(server.config())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = wait_until(20, || {
        TcpStream::connect(("127.0.0.1", server.mx_port)).is_ok_and(|mut s| {
            let mut buf = [0u8; 3];
            s.read_exact(&mut buf).is_ok() && &buf == b"220"
        })
    });
    if !ready {
        let _ = child.kill();
        panic!("faxmta did not start:\n{}", server.log());
    }
    child
}

#[test]
fn out_of_descriptors_clients_get_421_and_the_listener_lives_on() {
    let mut server = Server::start_with("max_connections_per_ip = 0", "");
    server.kill9();
    let mut child = spawn_limited(&server, 64);
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", server.mx_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let line = read_line(&mut s);
        if line.starts_with("220 ") {
            held.push(s);
            continue;
        }
        refused = Some(line);
        break;
    }
    let refused = refused.unwrap_or_else(|| panic!("never refused:\n{}", server.log()));
    assert_eq!(
        refused,
        "421 4.3.2 Error: server out of resources, try again later",
        "{}",
        server.log()
    );
    assert!(wait_until(5, || server
        .log()
        .contains("out of file descriptors")));
    assert_contains(&server.log(), "is below [smtp] max_connections");
    // Descriptors come back: the same listener serves again.
    drop(held);
    let served = wait_until(10, || {
        TcpStream::connect(("127.0.0.1", server.mx_port)).is_ok_and(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            read_line(&mut s).starts_with("220 ") && cmd(&mut s, "QUIT").starts_with("221 ")
        })
    });
    let log = server.log();
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "not served again:\n{log}");
}
