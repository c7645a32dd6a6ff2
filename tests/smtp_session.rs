//! The SMTP server's protocol behaviour, driven over loopback.

mod common;
use common::*;

#[test]
fn ehlo_announces_the_extensions() {
    let server = Server::start();
    let mut c = server.connect();
    let ehlo = c.cmd("EHLO client.test");
    for ext in ["PIPELINING", "SIZE 36700160", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "CHUNKING", "STARTTLS"] {
        assert!(ehlo.lines().any(|l| l[4..] == *ext), "{ext} missing from:\n{ehlo}");
    }
    assert!(c.cmd("QUIT").starts_with("221 2.0.0"));
}
