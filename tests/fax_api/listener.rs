//! The admin listener under slow and too many clients: header and request
//! timeouts, the connection cap.

use crate::client::*;
use crate::common::*;

/// A raw connection to the admin listener.
fn raw(s: &Server) -> std::net::TcpStream {
    let c = std::net::TcpStream::connect(("127.0.0.1", s.admin_port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    c
}

/// Read until the server closes; what it sent and how long it took.
fn until_closed(c: &mut std::net::TcpStream) -> (String, std::time::Duration) {
    use std::io::Read;
    let t = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); got {:?}",
                t.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), t.elapsed())
}

#[test]
fn the_listener_cuts_slow_clients_and_refuses_connections_over_its_cap() {
    use std::io::Write;
    let work = tempfile::tempdir().unwrap();
    let s = start(
        &fax_config(work.path()),
        "header_timeout = \"2s\"\nrequest_timeout = \"3s\"\nmax_connections = 4",
    );
    let token = new_token(&s, &["scanner"]);

    // Half the headers, then nothing: cut after header_timeout.
    let mut c = raw(&s);
    c.write_all(b"POST /restservice/sendfax HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (_, took) = until_closed(&mut c);
    assert!(took.as_secs_f64() < 6.0, "cut after {took:?}");

    // The headers, then half the body: 408 after request_timeout, and
    // the connection closed.
    let mut c = raw(&s);
    let t = std::time::Instant::now();
    c.write_all(
        format!(
            "POST /restservice/sendfax HTTP/1.1\r\nHost: x\r\nXM-Token-Authorization: {token}\r\n\
             Accept: application/xml\r\n\
             Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 1000\r\n\r\n\
             --XX\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n<FaxJob>"
        )
        .as_bytes(),
    )
    .unwrap();
    let (answer, _) = until_closed(&mut c);
    let took = t.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    refused_xml((408, body.to_string()), 408, "REQUEST_TIMEOUT");
    assert!(
        took.as_secs_f64() >= 2.5 && took.as_secs_f64() < 8.0,
        "answered after {took:?}"
    );

    // max_connections = 4: four idle connections take every place; the
    // fifth is answered 503 and closed.
    let mut idle: Vec<_> = (0..4).map(|_| raw(&s)).collect();
    let mut fifth = raw(&s);
    let (answer, took) = until_closed(&mut fifth);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(took.as_secs_f64() < 2.0, "{took:?}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    refused((503, body.to_string()), 503, "TOO_MANY_CONNECTIONS");
    // A place freed, a good request works again.
    drop(idle.pop());
    let mut last = (0, String::new());
    let ok = wait_until(10, || {
        last = curl(&s, "/metrics", &[]);
        last.0 == 200
    });
    assert!(ok, "{last:?}");
    assert_contains(&last.1, "faxmta_queue_messages");
    // The idle ones are cut by header_timeout.
    for mut c in idle {
        let (_, took) = until_closed(&mut c);
        assert!(took.as_secs_f64() < 6.0, "cut after {took:?}");
    }
}
