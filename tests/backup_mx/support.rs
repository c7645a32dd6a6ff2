//! Helpers of tests/backup_mx.rs: the DNS zone and the configuration of
//! backup domains, a transaction from a client address, the queue's view
//! of a recipient, and this host's interface address.

use crate::common::*;
use crate::peers::*;

/// The records of a domain whose primary is at `ip` (preference 10) and
/// whose backup is faxmta (preference 20).
pub fn backed_up(domain: &str, ip: &str) -> Vec<String> {
    vec![
        format!("{domain}. MX 10 mx1.{domain}."),
        format!("{domain}. MX 20 mx.example.test."),
        format!("mx1.{domain}. A {ip}"),
    ]
}

/// A zone of `records` plus faxmta's own A record.
pub fn zone_with(records: &[String]) -> String {
    let mut all: Vec<&str> = records.iter().map(String::as_str).collect();
    all.push("mx.example.test. A 127.0.0.1");
    zone(&all)
}

/// `[[domain]]` tables of kind backup-mx, each with extra lines.
pub fn backup_domains(domains: &[(&str, &str)]) -> String {
    domains
        .iter()
        .map(|(name, extra)| {
            format!("[[domain]]\nname = \"{name}\"\nkind = \"backup-mx\"\n{extra}")
        })
        .collect()
}

/// One transaction from client address `source` (127.0.0.9 is not in
/// `[relay] allow`): each RCPT's reply as `RCPT addr code text`, then
/// `DATA code text` when a recipient was taken.
pub fn transaction(
    server: &Server,
    source: &str,
    from: &str,
    rcpts: &[&str],
    subject: &str,
) -> String {
    python(
        r#"
import smtplib, sys
port, source, sender, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = smtplib.SMTP('127.0.0.1', port, source_address=(source, 0))
s.ehlo('client.test')
s.mail(sender)
taken = False
for r in sys.argv[5:]:
    code, msg = s.rcpt(r)
    print('RCPT', r, code, msg.decode())
    taken = taken or code == 250
if taken:
    body = 'From: <%s>\r\nSubject: %s\r\n\r\nHeld for a while.\r\n' % (sender, subject)
    code, msg = s.data(body.encode())
    print('DATA', code, msg.decode())
s.quit()
"#,
        &[
            &[&server.mx_port.to_string(), source, from, subject][..],
            rcpts,
        ]
        .concat(),
    )
}

/// The queue id of a [`transaction`] whose data was taken.
pub fn queued_as(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with("DATA 250 "))
        .unwrap_or_else(|| panic!("not queued:\n{out}"));
    line.rsplit(' ').next().unwrap().to_string()
}

/// Recipient `i` of message `id` as `queue list --json` shows it.
pub fn recipient(server: &Server, id: &str, i: usize) -> serde_json::Value {
    let env = find_queued(server, id).unwrap_or_else(|| panic!("{id} is not queued"));
    env["recipients"][i].clone()
}

/// Wait until recipient `i` of `id` has had `n` attempts.
pub fn wait_attempts(server: &Server, id: &str, i: usize, n: u64, secs: u64) -> bool {
    wait_until(secs, || {
        find_queued(server, id)
            .is_some_and(|m| m["recipients"][i]["attempts"].as_u64().unwrap_or(0) >= n)
    })
}

/// faxmta never handed mail to itself: no message came in from its own
/// EHLO name.
pub fn assert_no_loop(server: &Server) {
    let log = server.log();
    assert!(
        !log.contains("client=mx.example.test[127.0.0.1]"),
        "faxmta delivered to itself:\n{log}"
    );
}

/// A non-loopback address of this machine's interfaces, as iproute2
/// lists them (the test only writes it into the zone: nothing is sent
/// to it).
pub fn interface_address() -> String {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .expect("ip (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("this test needs a non-loopback IPv4 address:\n{text}"))
}
