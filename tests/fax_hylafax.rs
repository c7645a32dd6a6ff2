//! `[fax] engine = "hylafax"` end to end with the real binary and a real,
//! private HylaFAX server (tests/peers/hylafax.rs): a mail to
//! `+15551234567@fax.localhost` becomes a HylaFAX job with our number,
//! TSI and rendered document. Without a modem the job waits; the test
//! kills it at the server (as an operator would with `faxrm`), faxmta
//! sees it FAILED ("Job aborted by request"), defers the recipient, and
//! the queue's retry submits a new job.

mod common;
use common::*;
use faxmta_fax::engine::hylafax::{HylafaxEngine, HylafaxSettings};
use faxmta_fax::tiff::read_tiff;
use std::path::Path;

#[allow(dead_code)]
#[path = "peers/hylafax.rs"]
mod hylafax;
use hylafax::{qfile, run, HylafaxServer};

fn config(work: &Path, port: u16) -> String {
    let w = work.display();
    format!(
        r#"
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
# Fax requests come from a client that is not trusted: the fax user
# directory decides (tests/fax_addressing.rs shows the default).
senders = "any"
engine = "hylafax"
lines = 1
tsi = "+1 555 0100"
spool = "{w}/spool"
[fax.hylafax]
host = "127.0.0.1"
port = {port}
user = "faxmta"
poll_interval = "1s"
job_timeout = "1h"
timeout = "10s"
received = "{w}/inbound"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
[[fax.user]]
address = "alice@example.test"
name = "Alice Example"
"#
    )
}

#[test]
fn a_mail_becomes_a_hylafax_job_and_a_killed_job_is_retried() {
    let fax = HylafaxServer::start();
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &config(work.path(), fax.port));
    let id = send(
        &s,
        "alice@example.test",
        "+15551234567@fax.localhost",
        "Subject: through HylaFAX\r\n\r\nHello, HylaFAX.\r\n",
    );

    let spool = fax.spool();
    let mut q = String::new();
    let found = wait_until(60, || {
        q = qfile(&spool, 1).unwrap_or_default();
        q.contains("tiff:")
    });
    assert!(found, "no HylaFAX job:\n{}", s.log());
    assert!(
        q.contains("number:15551234567") || q.contains("number:+15551234567"),
        "{q}"
    );
    assert!(q.contains("tsi:+1 555 0100"), "{q}");
    assert!(q.contains(&format!("jobtag:{id}")), "{q}");
    assert!(q.contains("maxdials:1"), "{q}");
    // The document: the cover page and the text, as TIFF at the server.
    let doc = q
        .lines()
        .find_map(|l| l.strip_prefix("tiff:"))
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_else(|| panic!("no document in {q}"));
    let pages = read_tiff(&spool.join(doc)).unwrap();
    assert_eq!(pages.len(), 2, "{doc}");

    // Killed at the server: faxmta defers and tries again (job 2).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let operator = HylafaxEngine::new(HylafaxSettings {
        port: fax.port,
        received: work.path().join("operator"),
        ..Default::default()
    })
    .unwrap();
    rt.block_on(operator.cancel(1)).unwrap();
    let line = wait_status(&s, &id, "+15551234567@fax.localhost", "deferred", 30);
    assert_contains(&line, "Job aborted by request");
    let again = wait_until(60, || {
        qfile(&spool, 2).is_some_and(|q| q.contains(&format!("jobtag:{id}")))
    });
    assert!(again, "no second job:\n{}", s.log());
    rt.block_on(operator.cancel(2)).unwrap();
}

/// A fax in HylaFAX's receive queue is fetched into
/// `received` — written, fsynced, renamed, and the directory fsynced —
/// before faxmta deletes it at the server (`DELE recvq/…`) or notes it
/// as taken.
#[test]
fn a_received_fax_is_durable_here_before_it_is_deleted_at_the_server() {
    use faxmta_fax::page::{Compression, Page, Resolution};
    use faxmta_fax::tiff::{write_tiff_f, TiffHeader};
    use std::process::{Command, Stdio};
    let fax = HylafaxServer::start();
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        "",
        &format!(
            "{}[fax.incoming]\ndefault_to = [\"alice@example.test\"]\n",
            config(work.path(), fax.port)
        ),
    );
    let out = work.path().join("trace");
    let err = out.with_extension("err");
    let mut strace = Command::new("strace")
        .args(["-f", "-y", "-s", "200", "-qq"])
        .args([
            "-e",
            "trace=openat,fsync,fdatasync,rename,renameat,renameat2,write,writev,sendto",
        ])
        .arg("-o")
        .arg(&out)
        .arg("-p")
        .arg(s.pid().to_string())
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("strace runs (scripts/test installs it)");
    assert!(
        wait_until(10, || std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)),
        "strace did not attach"
    );
    let recvq = fax.spool().join("recvq/fax000000001.tif");
    let page = Page::blank(1728, 200, Resolution::Fine);
    write_tiff_f(&recvq, &[page], Compression::Mh, &TiffHeader::default()).unwrap();
    run("chown", &["uucp:uucp", recvq.to_str().unwrap()]);
    run("chmod", &["0644", recvq.to_str().unwrap()]);
    // Acknowledged: DELE at the server (refused here: the file is
    // uucp's, so it is noted as taken instead — after the DELE).
    let acked = |l: &str| l.contains("DELE recvq/fax000000001.tif");
    assert!(
        wait_until(60, || std::fs::read_to_string(&out)
            .is_ok_and(|t| t.lines().any(&acked))),
        "the received fax was not acknowledged:\n{}",
        s.log()
    );
    let _ = Command::new("kill").arg(strace.id().to_string()).status();
    let _ = strace.wait();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let ack = lines.iter().position(|l| acked(l)).unwrap();
    let before = &lines[..ack];
    let received = work.path().join("inbound").display().to_string();
    assert!(
        before.iter().any(|l| l.contains("rename(")
            && l.contains(&received)
            && l.contains("fax000000001.tif")),
        "not fetched into received:\n{}",
        before.join("\n")
    );
    assert!(
        before
            .iter()
            .any(|l| l.contains("fsync(") && l.contains(&format!("<{received}>)"))),
        "the received directory is not fsynced before the fax is deleted at the server:\n{}",
        before.join("\n")
    );
}
