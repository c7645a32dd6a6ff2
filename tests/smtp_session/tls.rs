//! STARTTLS: pipelined plaintext after it is discarded (STARTTLS
//! injection), and a session over TLS is delivered with ESMTPS.

use crate::common::*;
use crate::support::*;

const PY_SMTP: &str = r#"
import json, socket, ssl, sys

def reply(s):
    lines = []
    while True:
        line = b""
        while not line.endswith(b"\n"):
            ch = s.recv(1)
            if not ch:
                lines.append("<closed>")
                return "\n".join(lines)
            line += ch
        line = line.decode("latin-1").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return "\n".join(lines)

def cmd(s, line):
    s.sendall(line.encode() + b"\r\n")
    return reply(s)

def tls(s):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(s, server_hostname="mx.example.test")

port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
out = [reply(s)]
"#;

#[test]
fn starttls_discards_pipelined_plaintext() {
    let server = Server::start();
    let script = format!(
        "{PY_SMTP}{}",
        r#"
out.append(cmd(s, "EHLO inject.test"))
s.sendall(b"STARTTLS\r\nMAIL FROM:<inject@x>\r\n")
out.append(reply(s))
s = tls(s)
out.append(cmd(s, "EHLO inject.test"))
out.append(cmd(s, "RCPT TO:<alice@example.test>"))
out.append(cmd(s, "QUIT"))
print(json.dumps(out))
"#
    );
    let out = python(&script, &[&server.mx_port.to_string()]);
    let r: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    expect(&r[0], "220 ");
    assert!(r[1].lines().any(|l| &l[4..] == "STARTTLS"), "{}", r[1]);
    expect(&r[2], "220 2.0.0");
    expect(last_line(&r[3]), "250 ");
    assert!(
        !r[3].lines().any(|l| &l[4..] == "STARTTLS"),
        "STARTTLS offered again over TLS:\n{}",
        r[3]
    );
    // The injected MAIL was not run: there is no transaction.
    expect(&r[4], "503 5.5.1");
    expect(&r[5], "221 2.0.0");
}

#[test]
fn starttls_session_delivers_with_esmtps() {
    let server = Server::start();
    let script = format!(
        "{PY_SMTP}{}",
        r#"
out.append(cmd(s, "EHLO tls.test"))
out.append(cmd(s, "STARTTLS"))
s = tls(s)
out.append(cmd(s, "MAIL FROM:<s@tls.test>"))
out.append(cmd(s, "EHLO tls.test"))
out.append(cmd(s, "MAIL FROM:<s@tls.test>"))
out.append(cmd(s, "RCPT TO:<alice@example.test>"))
out.append(cmd(s, "DATA"))
s.sendall(b"Subject: over tls\r\n\r\nsecret\r\n.\r\n")
out.append(reply(s))
out.append(cmd(s, "QUIT"))
out.append(s.version())
print(json.dumps(out))
"#
    );
    let out = python(&script, &[&server.mx_port.to_string()]);
    let r: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    expect(&r[2], "220 2.0.0");
    // RFC 3207: the EHLO before TLS is forgotten.
    expect(&r[3], "503 5.5.1");
    expect(last_line(&r[4]), "250 ");
    expect(&r[5], "250 2.1.0");
    expect(&r[6], "250 2.1.5");
    expect(&r[7], "354 ");
    expect(&r[8], "250 2.0.0");
    expect(&r[9], "221 2.0.0");
    let files = server.wait_maildir("example.test", "alice", 1, 10);
    assert_eq!(files.len(), 1);
    let (head, msg) = split_delivered(&files[0]);
    assert!(head.contains(" with ESMTPS id "), "{head}");
    assert!(head.contains("(using TLSv1."), "{head}");
    assert!(
        head.contains(&format!("using {} with cipher ", r[10])),
        "client saw {}:\n{head}",
        r[10]
    );
    assert_eq!(msg, b"Subject: over tls\n\nsecret\n");
}

// ---------------------------------------------------------------------------
// 9. Relay control: tests/relay.rs

// ---------------------------------------------------------------------------
// 10. Errors, timeouts and the small commands
