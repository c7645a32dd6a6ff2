//! Two faxmta servers with the SIP engine and the SIP peers between
//! them: the sender (a mail to a fax number becomes a call over its trunk,
//! Kamailio) and the receiver (the call arrives, its fax is routed by DID
//! to a mailbox as PDF). The pages rendered by the sender (kept in its
//! `[fax] archive`) and the pages received (kept in the receiver's
//! `[fax.incoming] store`) are compared pixel for pixel.

use crate::common::*;
use crate::peers::PortBlock;
use faxmta_fax::tiff::read_tiff;
use std::path::PathBuf;
use std::process::Command;

/// The number faxed, as the receiver's directory knows it.
pub const NUMBER: &str = "+15551234567";

/// One faxmta with the SIP engine, and its work directory.
pub struct FaxServer {
    pub server: Server,
    pub work: tempfile::TempDir,
    /// The media ports it was given.
    pub media: PortBlock,
}

/// How a faxmta reaches its trunk.
pub struct Trunk<'a> {
    /// Kamailio's `ip:port`.
    pub proxy: &'a str,
    /// Digits put before the number in the Request-URI (the routing
    /// script's behaviour prefixes).
    pub prefix: &'a str,
    /// Register with these credentials (`user`, `password`).
    pub register: Option<(&'a str, &'a str)>,
    /// Digest credentials for calls without registering.
    pub auth: Option<(&'a str, &'a str)>,
    /// `"udp"` or `"tcp"`.
    pub transport: &'a str,
}

/// A faxmta on `ip` whose SIP engine listens on `port` (see
/// [`sip_port`]), with `t38` `"reinvite"`, `"offer"` or `"off"`.
pub fn start(ip: &str, port: u16, trunk: &Trunk, t38: &str, extra: &str) -> FaxServer {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display();
    let media = PortBlock::take();
    let account = |user: &str, password: &str| {
        let file = work.path().join("sip.password");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        format!(
            "user = \"{user}\"\npassword_file = \"{}\"\n",
            file.display()
        )
    };
    let register = match (trunk.register, trunk.auth) {
        (Some((user, password)), _) => {
            format!(
                "register = true\nexpires = \"60s\"\n{}",
                account(user, password)
            )
        }
        (None, Some((user, password))) => account(user, password),
        (None, None) => String::new(),
    };
    let transport = trunk.transport;
    let config = format!(
        r#"
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
senders = "any"
engine = "sip"
tsi = "+1 555 0100"
cover_page = false
retry_interval = "1s"
spool = "{w}/spool"
archive = "{w}/archive"
[fax.sip]
listen = "{ip}:{port}"
media_ports = "{}-{}"
t38 = "{t38}"
ring_timeout = "30s"
received = "{w}/received"
[[fax.sip.trunk]]
name = "kamailio"
proxy = "{}"
transport = "{transport}"
domain = "trunk.test"
dial = "sip:{}{{e164}}@trunk.test"
caller_id = "{{tsi}}"
max_calls = 2
{register}
[fax.incoming]
default_to = ["postmaster@example.test"]
store = "{w}/faxes"
[[fax.user]]
address = "alice@example.test"
numbers = ["{NUMBER}"]
{extra}
"#,
        media.first, media.last, trunk.proxy, trunk.prefix
    );
    let server = Server::start_node(ip, "", &config);
    FaxServer {
        server,
        work,
        media,
    }
}

impl FaxServer {
    /// The pages of the one document in `dir` (waited for).
    fn pages_in(&self, dir: &str, secs: u64) -> Vec<faxmta_fax::page::Page> {
        let dir = self.work.path().join(dir);
        let mut found: Option<PathBuf> = None;
        wait_until(secs, || {
            found = std::fs::read_dir(&dir).ok().and_then(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| p.extension().is_some_and(|e| e == "tif"))
            });
            found.is_some()
        });
        let file = found.unwrap_or_else(|| panic!("no TIFF in {dir:?}:\n{}", self.server.log()));
        read_tiff(&file)
            .unwrap_or_else(|e| panic!("{file:?}: {e}"))
            .iter()
            .map(|p| p.to_fax_page().expect("a fax page"))
            .collect()
    }

    /// The pages this server rendered and sent (its archive).
    pub fn sent_pages(&self) -> Vec<faxmta_fax::page::Page> {
        self.pages_in("archive", 5)
    }

    /// The pages of every fax this server received (its store), in no
    /// particular order.
    pub fn received_documents(&self) -> Vec<Vec<faxmta_fax::page::Page>> {
        let dir = self.work.path().join("faxes");
        let mut documents = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "tif") {
                let pages = read_tiff(&path)
                    .unwrap_or_else(|e| panic!("{path:?}: {e}"))
                    .iter()
                    .map(|p| p.to_fax_page().expect("a fax page"))
                    .collect();
                documents.push(pages);
            }
        }
        documents
    }

    /// The pages this server received (its store).
    pub fn received_pages(&self, secs: u64) -> Vec<faxmta_fax::page::Page> {
        self.pages_in("faxes", secs)
    }
}

/// A mail of `lines` numbered lines of text (about 60 lines a page).
pub fn letter(subject: &str, lines: usize) -> String {
    let mut text = format!("Subject: {subject}\r\n\r\n");
    for n in 1..=lines {
        text.push_str(&format!("Line {n} of the fax sent over SIP.\r\n"));
    }
    text
}

/// Faxes a letter from `sender` to [`NUMBER`]; the queue id.
pub fn fax(sender: &FaxServer, lines: usize) -> String {
    send(
        &sender.server,
        "alice@example.test",
        &format!("{NUMBER}@fax.localhost"),
        &letter("over SIP", lines),
    )
}

/// The receiver's mail for alice: a PDF of the fax, from the DID route.
pub fn assert_pdf_for_alice(receiver: &FaxServer) {
    let files = receiver.server.wait_maildir("example.test", "alice", 1, 60);
    let subjects: Vec<String> = files
        .iter()
        .map(|f| {
            let raw = String::from_utf8_lossy(&read(f)).into_owned();
            raw.lines()
                .find(|l| l.starts_with("Subject: "))
                .unwrap_or("(no subject)")
                .to_string()
        })
        .collect();
    assert_eq!(files.len(), 1, "{subjects:?}\n{}", receiver.server.log());
    let raw = String::from_utf8_lossy(&read(&files[0])).into_owned();
    assert_contains(&raw, "Subject: Fax from ");
    assert_contains(&raw, "application/pdf");
}

/// The sender's pages arrived at the receiver unchanged.
pub fn assert_same_pages(sender: &FaxServer, receiver: &FaxServer) {
    let sent = sender.sent_pages();
    let got = receiver.received_pages(30);
    assert_eq!(got.len(), sent.len(), "page count");
    for (n, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert!(g == s, "page {} differs", n + 1);
    }
}

/// Drops one of every `every` UDP datagrams sent from `ports` on loopback
/// (an iptables rule, removed when dropped): a lossy network under the
/// media, the same every run. The rule counts the datagrams it sees and
/// drops each `every`-th (`statistic --mode nth`), so no two in a row go:
/// what a loss takes, the redundancy of the next datagram brings back.
/// (With random loss, a run of four drops in a row — a few runs in a
/// thousand — is beyond UDPTL redundancy of depth 3; T.30 then repairs
/// the page or the call fails and is tried again, which is not what the
/// test shows.)
pub struct Loss {
    rule: Vec<String>,
}

/// Removes the loss rules of test processes that died before they could
/// (their PID, in the rule's comment, is gone).
fn remove_stale_rules() {
    let Ok(out) = Command::new("iptables")
        .args(["-w", "-S", "OUTPUT"])
        .output()
    else {
        return;
    };
    for rule in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(pid) = rule
            .split_whitespace()
            .find_map(|w| w.trim_matches('"').strip_prefix("faxmta-test-"))
        else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Some(spec) = rule.strip_prefix("-A ") {
            let args: Vec<&str> = spec
                .split_whitespace()
                .map(|w| w.trim_matches('"'))
                .collect();
            let _ = Command::new("iptables")
                .args(["-w", "-D"])
                .args(&args)
                .output();
        }
    }
}

impl Loss {
    pub fn on(ports: &PortBlock, every: u32) -> Loss {
        remove_stale_rules();
        let rule: Vec<String> = [
            "OUTPUT",
            "-o",
            "lo",
            "-p",
            "udp",
            "--sport",
            &format!("{}:{}", ports.first, ports.last),
            "-m",
            "statistic",
            "--mode",
            "nth",
            "--every",
            &every.to_string(),
            "--packet",
            "0",
            "-m",
            "comment",
            "--comment",
            &format!("faxmta-test-{}", std::process::id()),
            "-j",
            "DROP",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = Command::new("iptables")
            .args(["-w", "-I"])
            .args(&rule)
            .output()
            .expect("iptables (scripts/test installs it)");
        assert!(out.status.success(), "iptables: {}", output_text(&out));
        Loss { rule }
    }

    /// Datagrams dropped so far (the rule's packet counter).
    pub fn dropped(&self) -> u64 {
        let out = Command::new("iptables")
            .args(["-w", "-L", "OUTPUT", "-n", "-v", "-x"])
            .output()
            .expect("iptables");
        let comment = self.rule[self.rule.len() - 3].clone();
        let listing = String::from_utf8_lossy(&out.stdout);
        listing
            .lines()
            .find(|l| l.contains(&comment) && l.contains(&self.rule[6]))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no rule {comment} in:\n{listing}{}", output_text(&out)))
    }
}

impl Drop for Loss {
    fn drop(&mut self) {
        let _ = Command::new("iptables")
            .args(["-w", "-D"])
            .args(&self.rule)
            .output();
    }
}
