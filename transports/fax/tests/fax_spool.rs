//! The spool engine against a test "board": a thread that plays a fax
//! board integrating by files. It takes each complete job (renaming its
//! `.job`, as the contract says), checks the TIFF against the control
//! file, and answers with a status written atomically: `sent` for most
//! numbers, `busy` for one. Received faxes are pairs dropped into
//! `incoming`; a half-written pair (a `.tif` without its control file, a
//! control file still under its `.` name, a TIFF still being written) is
//! not taken until it is complete.

use faxmta_fax::engine::spool::{SpoolEngine, SpoolSettings};
use faxmta_fax::engine::{FaxEngine, Reception, SendRequest, SendResult};
use faxmta_fax::page::{Compression, Page, Resolution};
use faxmta_fax::tiff::{read_tiff, write_tiff_f, TiffHeader};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BUSY: &str = "+15550000001";

fn settings(dir: &Path) -> SpoolSettings {
    SpoolSettings {
        lines: 2,
        outgoing: dir.join("board/out"),
        status: dir.join("board/status"),
        incoming: dir.join("board/in"),
        received: dir.join("inbound"),
        poll_interval: Duration::from_millis(20),
        job_timeout: Duration::from_secs(20),
    }
}

/// A TIFF-F file of `n` pages, page `i` with a black bar at a place of
/// its own.
fn document(path: &Path, n: u32) {
    let pages: Vec<Page> = (0..n)
        .map(|i| {
            let mut p = Page::blank(1728, 800, Resolution::Fine);
            for y in 100 + i * 100..150 + i * 100 {
                for x in 100..700 {
                    p.set(x, y, true);
                }
            }
            p
        })
        .collect();
    write_tiff_f(path, &pages, Compression::Mh, &TiffHeader::default()).unwrap();
}

/// `key: value` lines as a map.
fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Writes `path` the board's way: `.NAME`, then a rename.
fn board_write(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(".{}", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// What the board saw of one job.
#[derive(Debug, Clone)]
struct SeenJob {
    control: HashMap<String, String>,
    tiff_pages: usize,
}

/// The board: takes jobs from `outgoing` until `stop`, answers in
/// `status`.
fn board(s: SpoolSettings, stop: Arc<AtomicBool>, seen: Arc<Mutex<Vec<SeenJob>>>) {
    while !stop.load(Ordering::SeqCst) {
        let mut jobs: Vec<PathBuf> = std::fs::read_dir(&s.outgoing)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                !name.starts_with('.') && name.ends_with(".job")
            })
            .collect();
        jobs.sort();
        for job in jobs {
            // Take it: the rename is the board's claim.
            let taken = job.with_extension("job.taken");
            std::fs::rename(&job, &taken).unwrap();
            let control = parse(&std::fs::read_to_string(&taken).unwrap());
            let id = control["id"].clone();
            assert_eq!(job.file_stem().unwrap().to_string_lossy(), id);
            let tif = s.outgoing.join(&control["document"]);
            // Complete when the control file is there: the TIFF reads whole.
            let tiff_pages = read_tiff(&tif).unwrap().len();
            let status = if control["number"] == BUSY {
                "result: busy\n".to_owned()
            } else {
                let first: u32 = control["first_page"].parse().unwrap();
                let pages: u32 = control["pages"].parse().unwrap();
                format!(
                    "result: sent\npages: {}\nduration: 12.5\ncsid: BOARD {}\nbit_rate: 14400\n",
                    pages + 1 - first,
                    control["number"]
                )
            };
            std::fs::remove_file(&taken).unwrap();
            seen.lock().unwrap().push(SeenJob {
                control,
                tiff_pages,
            });
            board_write(&s.status.join(format!("{id}.status")), &status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn request(document: &Path, dial: &str, first_page: u32) -> SendRequest {
    SendRequest {
        job_id: format!("Q{dial}/1"),
        dial: dial.into(),
        number: dial.into(),
        document: document.to_owned(),
        first_page,
        pages: 3,
        tsi: "+1 555 0100".into(),
        header: Some("ACME Corp".into()),
        subaddress: None,
        extension: None,
        progress: None,
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_round_trip_with_a_board() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let engine = Arc::new(SpoolEngine::new(s.clone()).unwrap());
    assert_eq!(engine.name(), "spool");
    assert_eq!(engine.lines(), 2);
    let doc = dir.path().join("doc.tif");
    document(&doc, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let board = std::thread::spawn({
        let (s, stop, seen) = (s.clone(), stop.clone(), seen.clone());
        move || board(s, stop, seen)
    });

    let (sent, busy, resumed) = tokio::join!(
        engine.send(request(&doc, "+15551234567", 1)),
        engine.send(request(&doc, BUSY, 1)),
        engine.send(SendRequest {
            extension: Some("12,#".into()),
            subaddress: Some("34".into()),
            ..request(&doc, "+15557654321", 3)
        }),
    );
    stop.store(true, Ordering::SeqCst);
    board.join().unwrap();

    assert_eq!(
        sent,
        SendResult::Sent {
            pages: 3,
            duration: Duration::from_millis(12_500),
            remote_csid: "BOARD +15551234567".into(),
            bit_rate: 14400
        }
    );
    assert_eq!(busy, SendResult::BUSY);
    assert!(
        matches!(resumed, SendResult::Sent { pages: 1, .. }),
        "{resumed:?}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for job in &seen {
        assert_eq!(job.tiff_pages, 3, "the whole document goes to the board");
        assert_eq!(job.control["tsi"], "+1 555 0100");
        assert_eq!(job.control["header"], "ACME Corp");
        assert_eq!(job.control["pages"], "3");
        assert!(job.control["submitted"].ends_with('Z'));
        assert!(job.control["job"].starts_with('Q'));
    }
    let resumed_job = seen
        .iter()
        .find(|j| j.control["number"] == "+15557654321")
        .unwrap();
    assert_eq!(resumed_job.control["first_page"], "3");
    // The extension (DTMF after answer) and subaddress reach the board.
    assert_eq!(resumed_job.control["extension"], "12,#");
    assert_eq!(resumed_job.control["subaddress"], "34");
    let plain = seen
        .iter()
        .find(|j| j.control["number"] == "+15551234567")
        .unwrap();
    assert!(!plain.control.contains_key("extension"), "{plain:?}");
    // Every file of every job is gone; the lines are free.
    assert_eq!(names(&s.outgoing), Vec::<String>::new());
    assert_eq!(names(&s.status), Vec::<String>::new());
    assert_eq!(engine.lines_busy(), 0);

    // The board drops a received fax: the TIFF, then its control file.
    let tif = s.incoming.join("rx-0001.tif");
    document(&tif, 2);
    board_write(
        &s.incoming.join("rx-0001.rx"),
        "called: 100\ncaller: +15559990000\ntsi: REMOTE TSI\npages: 2\nduration: 31\nbad_rows: 0\n",
    );
    let fax = tokio::time::timeout(Duration::from_secs(10), engine.receive())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fax.pages, 2);
    assert_eq!(fax.called.as_deref(), Some("100"));
    assert_eq!(fax.caller.as_deref(), Some("+15559990000"));
    assert_eq!(fax.remote_tsi, "REMOTE TSI");
    assert_eq!(fax.duration, Duration::from_secs(31));
    assert_eq!(fax.status, Reception::Complete);
    assert_eq!(fax.bad_rows, Some(0));
    assert!(fax.document.starts_with(&s.received), "{:?}", fax.document);
    assert_eq!(read_tiff(&fax.document).unwrap().len(), 2);
    // The source leaves incoming once the fax is acknowledged.
    assert_eq!(names(&s.incoming), ["rx-0001.rx", "rx-0001.tif"]);
    engine.acknowledge(&fax).await;
    assert_eq!(names(&s.incoming), Vec::<String>::new());
    // The control file is kept beside the document.
    assert!(fax.document.with_extension("rx").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_fax_is_not_taken_until_complete() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let engine = Arc::new(SpoolEngine::new(s.clone()).unwrap());
    // fax1: the TIFF is there, its control file still being written
    // under its `.` name.
    document(&s.incoming.join("fax1.tif"), 2);
    std::fs::write(s.incoming.join(".fax1.rx"), "caller: +1555000").unwrap();
    // fax2: a control file whose TIFF is still being written.
    std::fs::write(
        s.incoming.join("fax2.rx"),
        "caller: +1555222\ncalled: 200\n",
    )
    .unwrap();
    document(&s.incoming.join(".fax2.tif"), 1);
    // fax3: a TIFF alone (the board died before the control file).
    document(&s.incoming.join("fax3.tif"), 1);

    let first = tokio::spawn({
        let engine = engine.clone();
        async move { engine.receive().await }
    });
    // (What must not happen: a half-written fax taken; only time shows it.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished(), "a half-written fax was taken");
    assert_eq!(names(&s.received), Vec::<String>::new());
    assert_eq!(
        names(&s.incoming),
        [".fax1.rx", ".fax2.tif", "fax1.tif", "fax2.rx", "fax3.tif"]
    );

    // fax1's control file is complete: taken, its pages counted from the
    // TIFF (no `pages` key).
    std::fs::write(
        s.incoming.join(".fax1.rx"),
        "caller: +1555111\ncalled: 100\n",
    )
    .unwrap();
    std::fs::rename(s.incoming.join(".fax1.rx"), s.incoming.join("fax1.rx")).unwrap();
    let fax = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(fax.caller.as_deref(), Some("+1555111"));
    assert_eq!(fax.pages, 2);
    assert_eq!(fax.status, Reception::Complete);
    assert_eq!(read_tiff(&fax.document).unwrap().len(), 2);
    engine.acknowledge(&fax).await;

    // fax2 still waits for its TIFF; once renamed into place it comes in.
    let second = tokio::spawn({
        let engine = engine.clone();
        async move { engine.receive().await }
    });
    // (What must not happen: a control file taken without its TIFF; only
    // time shows it.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "a control file without its TIFF was taken"
    );
    std::fs::rename(s.incoming.join(".fax2.tif"), s.incoming.join("fax2.tif")).unwrap();
    let fax = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(fax.called.as_deref(), Some("200"));
    assert_eq!(fax.pages, 1);
    engine.acknowledge(&fax).await;
    // The TIFF without a control file is never taken.
    assert_eq!(names(&s.incoming), ["fax3.tif"]);
    engine.stop();
    assert_eq!(engine.receive().await, None);
}
