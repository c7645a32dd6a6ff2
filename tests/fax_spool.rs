//! The spool engine end to end with the real binary: `[fax] engine =
//! "spool"`; a mail to `+15551234567@fax.localhost` becomes a job in the
//! outgoing directory, which the test (playing the fax board) takes,
//! checks and answers with `result: sent`; the sender gets the success
//! report with the board's figures. A number the board reports busy is
//! tried again and then reported as failed.

mod common;
use common::*;
use faxmta_fax::tiff::read_tiff;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn spool_config(work: &Path) -> String {
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
engine = "spool"
lines = 2
tsi = "+1 555 0100"
retries = 1
retry_interval = "1s"
success_report = true
spool = "{w}/spool"
[fax.spool_engine]
outgoing = "{w}/board/out"
status = "{w}/board/status"
incoming = "{w}/board/in"
received = "{w}/inbound"
poll_interval = "1s"
job_timeout = "1m"
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

/// One job as the board saw it: its control file and the TIFF's pages.
type Seen = (HashMap<String, String>, usize);

/// The board: takes complete jobs (renaming the `.job`), answers `busy`
/// for numbers ending in 0001 and `sent` for the others.
fn board(out: PathBuf, status: PathBuf, stop: Arc<AtomicBool>, seen: Arc<Mutex<Vec<Seen>>>) {
    while !stop.load(Ordering::SeqCst) {
        for entry in std::fs::read_dir(&out).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".job").filter(|_| !name.starts_with('.')) else {
                continue;
            };
            let taken = out.join(format!("{id}.taken"));
            if std::fs::rename(entry.path(), &taken).is_err() {
                continue;
            }
            let control: HashMap<String, String> = std::fs::read_to_string(&taken)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let tif = out.join(control.get("document").cloned().unwrap_or_default());
            let pages = read_tiff(&tif).map(|p| p.len()).unwrap_or(0);
            let number = control.get("number").cloned().unwrap_or_default();
            let answer = if number.ends_with("0001") {
                "result: busy\n".to_owned()
            } else {
                format!("result: sent\npages: {pages}\nduration: 42\ncsid: BOARD CSID\nbit_rate: 9600\n")
            };
            let _ = std::fs::remove_file(&taken);
            seen.lock().unwrap().push((control, pages));
            let tmp = status.join(format!(".{id}.status"));
            std::fs::write(&tmp, answer).unwrap();
            std::fs::rename(&tmp, status.join(format!("{id}.status"))).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_mail_goes_through_the_board_and_the_sender_hears() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &spool_config(work.path()));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let board = std::thread::spawn({
        let (out, status) = (
            work.path().join("board/out"),
            work.path().join("board/status"),
        );
        let (stop, seen) = (stop.clone(), seen.clone());
        move || board(out, status, stop, seen)
    });

    let id = send(
        &s,
        "alice@example.test",
        "+15551234567@fax.localhost",
        "Subject: by the board\r\n\r\nHello through the spool.\r\n",
    );
    let busy = send(
        &s,
        "alice@example.test",
        "+15550000001@fax.localhost",
        "Subject: busy board\r\n\r\nHello\r\n",
    );
    wait_status(&s, &id, "+15551234567@fax.localhost", "sent", 60);
    let mut report = String::new();
    let found = wait_until(60, || {
        for f in s.maildir("example.test", "alice") {
            let text = String::from_utf8_lossy(&read(&f)).into_owned();
            if text.contains("Subject: Fax to +15551234567 sent") {
                report = text;
                return true;
            }
        }
        false
    });
    assert!(found, "no success report:\n{}", s.log());
    for needle in [
        "X-Fax-Result: sent",
        "X-Fax-Remote-CSID: BOARD CSID",
        "X-Fax-Bit-Rate: 9600",
    ] {
        assert_contains(&report, needle);
    }
    wait_status(&s, &busy, "+15550000001@fax.localhost", "bounced", 60);
    stop.store(true, Ordering::SeqCst);
    board.join().unwrap();

    let seen = seen.lock().unwrap().clone();
    let sent: Vec<_> = seen
        .iter()
        .filter(|(c, _)| c["number"].ends_with("1234567"))
        .collect();
    assert_eq!(sent.len(), 1, "{seen:?}");
    let (control, pages) = sent[0];
    // The cover page and the text: two pages, whole, with our identity.
    assert_eq!(*pages, 2, "{control:?}");
    assert_eq!(control["pages"], "2");
    assert_eq!(control["first_page"], "1");
    assert_eq!(control["tsi"], "+1 555 0100");
    assert_eq!(
        seen.iter()
            .filter(|(c, _)| c["number"].ends_with("0001"))
            .count(),
        2
    );
    // Nothing left for the board.
    let left: Vec<_> = std::fs::read_dir(work.path().join("board/out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A fax the board left in `incoming` is linked into
/// `received`, and that name is fsynced (the directory) before the
/// board's pair is removed at the acknowledgement.
#[test]
fn a_received_fax_is_durable_in_received_before_the_boards_files_go() {
    use faxmta_fax::page::{Compression, Page, Resolution};
    use faxmta_fax::tiff::{write_tiff_f, TiffHeader};
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        "",
        &format!(
            "{}[fax.incoming]\ndefault_to = [\"alice@example.test\"]\n",
            spool_config(work.path())
        ),
    );
    let incoming = work.path().join("board/in");
    std::fs::create_dir_all(&incoming).unwrap();
    let out = work.path().join("trace");
    let mut strace = strace(
        s.pid(),
        &out,
        "openat,fsync,fdatasync,rename,renameat,renameat2,link,linkat,unlink,unlinkat",
    );
    let page = Page::blank(1728, 200, Resolution::Fine);
    write_tiff_f(
        &incoming.join("fax1.tif"),
        &[page],
        Compression::Mh,
        &TiffHeader::default(),
    )
    .unwrap();
    std::fs::write(
        incoming.join(".fax1.rx"),
        "called: 100\ncaller: +4930123456\ntsi: REMOTE\npages: 1\nstatus: ok\n",
    )
    .unwrap();
    std::fs::rename(incoming.join(".fax1.rx"), incoming.join("fax1.rx")).unwrap();
    let board = incoming.display().to_string();
    let acked = |l: &str| l.contains("unlink") && l.contains(&format!("{board}/fax1.tif\""));
    assert!(
        wait_until(30, || std::fs::read_to_string(&out)
            .is_ok_and(|t| t.lines().any(&acked))),
        "the board's fax was not acknowledged:\n{}",
        s.log()
    );
    let _ = std::process::Command::new("kill")
        .arg(strace.id().to_string())
        .status();
    let _ = strace.wait();
    s.wait_maildir("example.test", "alice", 1, 30);

    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let ack = lines.iter().position(|l| acked(l)).unwrap();
    let received = work.path().join("inbound").display().to_string();
    let before = &lines[..ack];
    assert!(
        before
            .iter()
            .any(|l| l.contains("link") && l.contains(&format!("{board}/fax1.tif\""))),
        "not linked into received:\n{}",
        before.join("\n")
    );
    assert!(
        before
            .iter()
            .any(|l| l.contains("fsync(") && l.contains(&format!("<{received}>)"))),
        "the received directory is not fsynced before the board's files go:\n{}",
        before.join("\n")
    );
}
