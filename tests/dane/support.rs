//! Helpers of tests/dane.rs and its modules: certificates (rcgen), the
//! zones of a mail domain, a receiving faxmta as the MX with a given
//! certificate chain, and a sending faxmta that validates DNSSEC against
//! the test tree (tests/peers/dnssec.rs).

use crate::common::*;
use crate::peers::*;

pub const ALICE: &str = "alice@example.test";

/// A mail domain `name` whose MX `mx.NAME` is at `ip`, with `tlsa` (TLSA
/// data, e.g. from [`tlsa_rdata`]) at `_PORT._tcp.mx.NAME`.
pub fn mail_zone(name: &str, ip: &str, port: u16, tlsa: &str, signing: Signing) -> Zone {
    Zone::new(
        name,
        &[
            "@ IN MX 10 mx",
            &format!("mx IN A {ip}"),
            &format!("_{port}._tcp.mx IN TLSA {tlsa}"),
        ],
        signing,
    )
}

/// How the receiving faxmta does TLS on its MX listener.
pub enum ReceiverTls<'a> {
    /// STARTTLS with this certificate (chain) and key.
    Cert(&'a Cert),
    /// No STARTTLS at all (`tls = "none"`).
    Off,
}

/// A faxmta on `ip` that is the MX of `domains` (local, any user), with
/// TLS as `tls` says.
pub fn receiver(ip: &str, domains: &[&str], tls: ReceiverTls<'_>) -> Server {
    let mut server = Server::start_node(ip, "", "");
    let d = server.dir.path().display().to_string();
    let mut local = String::new();
    for domain in domains {
        local.push_str(&format!(
            "[[domain]]\nname = \"{domain}\"\nkind = \"local\"\n\
             deliver = \"maildir:{d}/mail/{{domain}}/{{user}}\"\n"
        ));
    }
    let domains_edit = (
        "[[domain]]\nname = \"localhost\"\n".to_string(),
        format!("{local}[[domain]]\nname = \"localhost\"\n"),
    );
    let tls_edit = match tls {
        ReceiverTls::Cert(cert) => {
            let (crt, key) = (server.path("mx.crt"), server.path("mx.key"));
            std::fs::write(&crt, &cert.pem).unwrap();
            std::fs::write(&key, &cert.key).unwrap();
            (
                format!("[tls]\ngenerated_dir = \"{d}/tls\"\n"),
                format!(
                    "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                    crt.display(),
                    key.display()
                ),
            )
        }
        ReceiverTls::Off => (
            "role = \"mx\"\n".to_string(),
            "role = \"mx\"\ntls = \"none\"\n".to_string(),
        ),
    };
    restart_with(
        &mut server,
        &[
            (&domains_edit.0, &domains_edit.1),
            (&tls_edit.0, &tls_edit.1),
        ],
    );
    server
}

/// The sending faxmta: relays for 127.0.0.1, asks only `dns` (validating
/// DNSSEC with its anchor), sends to MX hosts on `port`; `extra` is more
/// TOML (e.g. `[outbound.tls_policy]`).
pub fn sender(dns: &SignedDns, port: u16, extra: &str) -> Server {
    let mut server = Server::start_with(
        "",
        &format!("[relay]\nallow = [\"127.0.0.1/32\"]\n[outbound]\nport = {port}\n{extra}"),
    );
    restart_with(
        &mut server,
        &[(
            "nameservers = [\"127.0.0.1:9\"]\n",
            &format!(
                "nameservers = [\"{}\"]\ndnssec_trust_anchor = \"{}\"\n",
                dns.addr,
                dns.anchor.display()
            ),
        )],
    );
    server
}

/// A small message from Alice with `subject`, a body line saying
/// `body`, and `headers` (each a whole line with CRLF) added.
pub fn message(subject: &str, headers: &str, body: &str) -> String {
    format!(
        "From: Alice <alice@example.test>\r\nTo: someone\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}.{}@example.test>\r\n{headers}\r\n{body}\r\n",
        now()
    )
}

/// The lines of `server`'s log that hold every one of `needles`.
pub fn log_lines(server: &Server, needles: &[&str]) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// The number of delivery attempts recorded for recipient 0 of message
/// `id` (0 once it left the queue).
pub fn attempts(server: &Server, id: &str) -> u64 {
    find_queued(server, id)
        .and_then(|m| m["recipients"][0]["attempts"].as_u64())
        .unwrap_or(0)
}

/// Wait until message `id` has been tried at least `n` times (it stays
/// deferred); panics with the log if not within 30 s.
pub fn wait_attempts(server: &Server, id: &str, n: u64) {
    assert!(
        wait_until(30, || attempts(server, id) >= n),
        "{id} was not tried {n} times:\n{}",
        server.log()
    );
}

/// A sending faxmta, the signed DNS tree it asks, and the receiving
/// faxmta that is the MX of the tree's domains; dropped in this order.
pub struct Dane {
    pub sender: Server,
    _dns: SignedDns,
    pub mx: Server,
}

impl Dane {
    /// The receiver on `ip` for `domains` with TLS as `tls` says, the zones
    /// `zones(port)` makes for the receiver's port, and a sender with
    /// `extra` configuration.
    pub fn start(
        ip: &str,
        domains: &[&str],
        tls: ReceiverTls<'_>,
        zones: impl FnOnce(u16) -> Vec<Zone>,
        extra: &str,
    ) -> Dane {
        let mx = receiver(ip, domains, tls);
        let dns = SignedDns::start("127.0.0.1", &zones(mx.mx_port));
        let sender = sender(&dns, mx.mx_port, extra);
        Dane {
            sender,
            _dns: dns,
            mx,
        }
    }

    /// Relay a message for `to` through the sender; its queue id.
    pub fn send(&self, to: &str, msg: &str) -> String {
        send(&self.sender, ALICE, to, msg)
    }
}

/// The line of the sender's log saying how the TLS connection of message
/// `id` to `host` went (`Verified`/`Untrusted` …).
pub fn tls_line(server: &Server, id: &str, host: &str) -> String {
    let lines = log_lines(
        server,
        &[
            &format!("{id}: "),
            &format!("TLS connection established to {host}["),
        ],
    );
    assert_eq!(lines.len(), 1, "{lines:#?}\n{}", server.log());
    lines[0].clone()
}

/// The receiver took no message for `user@domain` (no plaintext retry, no
/// transaction at all): nothing delivered, nothing queued, no delivery
/// attempt logged.
pub fn nothing_received(mx: &Server, domain: &str, user: &str) {
    let rcpt = format!("{user}@{domain}");
    assert!(
        mx.maildir(domain, user).is_empty(),
        "{rcpt} got mail:\n{}",
        mx.log()
    );
    assert!(
        log_lines(mx, &[&format!("to=<{rcpt}>")]).is_empty(),
        "the receiver took a message for {rcpt}:\n{}",
        mx.log()
    );
    assert!(
        !queue_json(mx)
            .iter()
            .any(|m| m["recipients"][0]["address"] == rcpt.as_str()),
        "the receiver queued a message for {rcpt}"
    );
}

/// What a client says to relay one message for `to` through `server` over
/// STARTTLS, `mail` being the MAIL FROM parameters; the transcript
/// (greeting, EHLO before TLS, STARTTLS, EHLO after TLS, MAIL, RCPT,
/// DATA, the message, QUIT).
pub fn relay_over_tls(server: &Server, mail: &str, to: &str, msg: &str) -> Vec<Step> {
    smtp_script(
        server.mx_port,
        "127.0.0.1",
        false,
        &[
            "EHLO client.test",
            "!starttls",
            "EHLO client.test",
            &format!("MAIL FROM:<{ALICE}>{mail}"),
            &format!("RCPT TO:<{to}>"),
            "DATA",
            &format!("!data:{msg}"),
            "QUIT",
        ],
    )
}

/// The queue id from a [`relay_over_tls`] transcript, every step having
/// succeeded.
pub fn relayed_id(steps: &[Step]) -> String {
    for (step, reply, _) in &steps[1..steps.len() - 2] {
        assert!(
            reply.starts_with('2') || reply.starts_with('3'),
            "{step}: {reply}\n{steps:#?}"
        );
    }
    queued_id(&steps[steps.len() - 2].1)
}
