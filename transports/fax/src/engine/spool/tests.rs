//! Unit tests of the spool engine: the files it writes, the timeout and
//! withdrawal, abandoned sends, stale files, and the incoming rules.

use super::*;
use crate::engine::Reception;
use crate::live::{LiveBoard, LiveProgress};

/// Waits (on the board's version counter, at most 5 s) until the entry
/// of `job` is in `state`.
async fn wait_live(board: &LiveBoard, job: &str, state: LiveState) -> LiveProgress {
    let mut version = board.subscribe();
    let wait = async {
        loop {
            if let Some(p) = board.get(job).filter(|p| p.state == state) {
                return p;
            }
            version.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or_else(|_| panic!("{job} never {state:?}: {:?}", board.get(job)))
}

struct Fixture {
    dir: tempfile::TempDir,
    document: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let document = dir.path().join("doc.tif");
        std::fs::write(&document, b"II*\0not really a fax").unwrap();
        Fixture { dir, document }
    }

    fn settings(&self) -> SpoolSettings {
        let d = self.dir.path();
        SpoolSettings {
            lines: 1,
            outgoing: d.join("out"),
            status: d.join("status"),
            incoming: d.join("in"),
            received: d.join("received"),
            poll_interval: Duration::from_millis(10),
            job_timeout: Duration::from_secs(5),
        }
    }

    fn request(&self) -> SendRequest {
        SendRequest {
            job_id: "Q1/1".into(),
            dial: "+15551234567".into(),
            number: "+15551234567".into(),
            document: self.document.clone(),
            first_page: 1,
            pages: 2,
            tsi: "+1 555 0100".into(),
            header: None,
            subaddress: None,
            extension: None,
            progress: None,
        }
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

/// Waits for a `.job` in `dir` and returns its id.
async fn next_job(dir: &Path) -> String {
    for _ in 0..500 {
        if let Some(n) = names(dir)
            .iter()
            .find(|n| n.ends_with(".job") && !n.starts_with('.'))
        {
            return n.trim_end_matches(".job").to_owned();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no job in {dir:?}: {:?}", names(dir));
}

#[tokio::test]
async fn a_job_is_a_tif_and_a_control_file_and_its_status_is_read() {
    let f = Fixture::new();
    let s = f.settings();
    let engine = SpoolEngine::new(s.clone()).unwrap();
    let board = LiveBoard::default();
    let mut request = f.request();
    request.progress = Some(board.open(LiveProgress::queued("Q1/1", "+15551234567"), &[]));
    let send = tokio::spawn({
        let engine = Arc::new(engine);
        async move { (engine.send(request).await, engine.lines_busy()) }
    });
    let id = next_job(&s.outgoing).await;
    let live = wait_live(&board, "Q1/1", LiveState::WaitingForLine).await;
    assert_eq!(live.detail, "written for the fax board");
    assert_eq!(
        names(&s.outgoing),
        [format!("{id}.job"), format!("{id}.tif")]
    );
    assert!(id.ends_with("-Q1_1"), "{id}");
    let tif = std::fs::read(s.outgoing.join(format!("{id}.tif"))).unwrap();
    assert_eq!(tif, std::fs::read(&f.document).unwrap());
    let text = std::fs::read_to_string(s.outgoing.join(format!("{id}.job"))).unwrap();
    let c = control::Control::parse(&text).unwrap();
    assert_eq!(c.get(&["number"]), Some("+15551234567"));
    assert_eq!(c.get(&["id"]), Some(id.as_str()));
    assert_eq!(c.get(&["document"]), Some(format!("{id}.tif").as_str()));
    assert_eq!(c.number("pages"), Ok(Some(2)));
    // The board takes the job and answers.
    std::fs::rename(
        s.outgoing.join(format!("{id}.job")),
        s.outgoing.join(format!("{id}.job.taken")),
    )
    .unwrap();
    let live = wait_live(&board, "Q1/1", LiveState::Dialling).await;
    assert_eq!(live.describe(), "dialling +15551234567");
    // A status still being written (under its `.` name) is not read.
    let status = s.status.join(format!("{id}.status"));
    let writing = files::temp_name(&status);
    std::fs::write(&writing, b"result: sent\nduration: 3").unwrap();
    // (What must not happen: the half-written status read; only time
    // shows it.)
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!send.is_finished());
    std::fs::write(
        &writing,
        b"result: sent\nduration: 30\ncsid: REMOTE\nbit_rate: 9600\n",
    )
    .unwrap();
    std::fs::rename(&writing, &status).unwrap();
    let (result, busy) = send.await.unwrap();
    assert_eq!(
        result,
        SendResult::Sent {
            pages: 2,
            duration: Duration::from_secs(30),
            remote_csid: "REMOTE".into(),
            bit_rate: 9600
        }
    );
    assert_eq!(busy, 0);
    assert_eq!(names(&s.status), Vec::<String>::new());
    // The board's own renamed file is its business.
    assert_eq!(names(&s.outgoing), [format!("{id}.job.taken")]);
}

#[tokio::test]
async fn a_job_not_taken_in_time_is_withdrawn() {
    let f = Fixture::new();
    let s = SpoolSettings {
        job_timeout: Duration::from_millis(100),
        ..f.settings()
    };
    let engine = SpoolEngine::new(s.clone()).unwrap();
    let result = engine.send(f.request()).await;
    match result {
        SendResult::Error { reason, retry } => {
            assert!(retry);
            assert!(reason.contains("did not take"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&s.outgoing), Vec::<String>::new());
}

#[tokio::test]
async fn a_job_taken_but_never_answered_is_left_to_the_board() {
    let f = Fixture::new();
    let s = SpoolSettings {
        job_timeout: Duration::from_millis(1000),
        ..f.settings()
    };
    let engine = Arc::new(SpoolEngine::new(s.clone()).unwrap());
    let send = tokio::spawn({
        let (engine, request) = (engine.clone(), f.request());
        async move { engine.send(request).await }
    });
    let id = next_job(&s.outgoing).await;
    std::fs::remove_file(s.outgoing.join(format!("{id}.job"))).unwrap();
    match send.await.unwrap() {
        SendResult::Error { reason, retry } => {
            assert!(retry);
            assert!(reason.contains("no status"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&s.outgoing), [format!("{id}.tif")]);
}

#[tokio::test]
async fn an_abandoned_send_withdraws_its_job() {
    let f = Fixture::new();
    let s = f.settings();
    let engine = Arc::new(SpoolEngine::new(s.clone()).unwrap());
    let send = tokio::spawn({
        let (engine, request) = (engine.clone(), f.request());
        async move { engine.send(request).await }
    });
    next_job(&s.outgoing).await;
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    assert_eq!(names(&s.outgoing), Vec::<String>::new());
    assert_eq!(engine.lines_busy(), 0);
}

#[tokio::test]
async fn lines_bound_the_jobs_at_the_board() {
    let f = Fixture::new();
    let s = f.settings();
    let engine = Arc::new(SpoolEngine::new(s.clone()).unwrap());
    let sends: Vec<_> = (0..2)
        .map(|_| {
            let (engine, request) = (engine.clone(), f.request());
            tokio::spawn(async move { engine.send(request).await })
        })
        .collect();
    for _ in 0..2 {
        let id = next_job(&s.outgoing).await;
        // (What must not happen: a second job while the line is busy;
        // only time shows it.)
        tokio::time::sleep(Duration::from_millis(50)).await;
        let jobs = names(&s.outgoing)
            .iter()
            .filter(|n| n.ends_with(".job"))
            .count();
        assert_eq!(jobs, 1, "one line: one job at a time");
        assert_eq!(engine.lines_busy(), 1);
        std::fs::remove_file(s.outgoing.join(format!("{id}.job"))).unwrap();
        files::write_atomic(&s.status.join(format!("{id}.status")), b"result: busy\n").unwrap();
    }
    for send in sends {
        assert_eq!(send.await.unwrap(), SendResult::BUSY);
    }
}

#[tokio::test]
async fn bad_requests_and_bad_status_files() {
    let f = Fixture::new();
    let s = f.settings();
    let engine = Arc::new(SpoolEngine::new(s.clone()).unwrap());
    let mut r = f.request();
    r.dial = "+1555\nresult: sent".into();
    assert!(matches!(
        engine.send(r).await,
        SendResult::Error { retry: false, .. }
    ));
    let mut r = f.request();
    r.first_page = 3;
    assert!(matches!(
        engine.send(r).await,
        SendResult::Error { retry: false, .. }
    ));
    let mut r = f.request();
    r.document = f.dir.path().join("missing.tif");
    assert!(matches!(
        engine.send(r).await,
        SendResult::Error { retry: false, .. }
    ));
    assert_eq!(names(&s.outgoing), Vec::<String>::new());

    let send = tokio::spawn({
        let (engine, request) = (engine.clone(), f.request());
        async move { engine.send(request).await }
    });
    let id = next_job(&s.outgoing).await;
    files::write_atomic(
        &s.status.join(format!("{id}.status")),
        b"result: jubilant\n",
    )
    .unwrap();
    match send.await.unwrap() {
        SendResult::Error {
            reason,
            retry: true,
        } => {
            assert!(
                reason.contains("jubilant") && reason.contains(&id),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn settings_are_checked_and_stale_files_removed() {
    let f = Fixture::new();
    let s = f.settings();
    assert!(matches!(
        SpoolEngine::new(SpoolSettings {
            lines: 0,
            ..s.clone()
        }),
        Err(SpoolError::NoLines)
    ));
    let same = SpoolSettings {
        status: s.outgoing.clone(),
        ..s.clone()
    };
    let e = SpoolEngine::new(same).err().unwrap().to_string();
    assert!(e.contains("outgoing and status"), "{e}");
    files::make_dir(&s.outgoing).unwrap();
    files::make_dir(&s.status).unwrap();
    for name in ["1-0-a.job", ".1-1-b.tif", ".1-2-c.withdrawn"] {
        std::fs::write(s.outgoing.join(name), b"x").unwrap();
    }
    std::fs::write(s.status.join("1-3-d.status"), b"result: sent").unwrap();
    SpoolEngine::new(s.clone()).unwrap();
    assert_eq!(names(&s.outgoing), ["1-0-a.job"]);
    assert_eq!(names(&s.status), Vec::<String>::new());
}

#[tokio::test]
async fn only_complete_pairs_come_in_and_stop_ends_receive() {
    let f = Fixture::new();
    let s = f.settings();
    let engine = Arc::new(SpoolEngine::new(s.clone()).unwrap());
    // Being written, or incomplete: never taken.
    std::fs::write(s.incoming.join("a.tif"), b"II*\0").unwrap();
    std::fs::write(s.incoming.join(".a.rx"), b"caller: 1").unwrap();
    std::fs::write(s.incoming.join("b.rx"), b"caller: 2").unwrap();
    std::fs::write(s.incoming.join(".c.tif"), b"II*\0").unwrap();
    std::fs::write(s.incoming.join(".c.rx"), b"caller: 3").unwrap();
    let recv = tokio::spawn({
        let engine = engine.clone();
        async move { engine.receive().await }
    });
    // (What must not happen: a fax taken before its control file lands;
    // only time shows it.)
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!recv.is_finished());
    assert_eq!(names(&s.received), Vec::<String>::new());
    // The control file lands: the pair is taken.
    std::fs::rename(s.incoming.join(".a.rx"), s.incoming.join("a.rx")).unwrap();
    let fax = recv.await.unwrap().unwrap();
    assert_eq!(fax.caller.as_deref(), Some("1"));
    // `pages` not given and the TIFF unreadable: a failed reception.
    assert!(matches!(fax.status, Reception::Failed { .. }), "{fax:?}");
    assert!(fax.document.starts_with(&s.received));
    assert!(fax.document.exists());
    // The source stays until the fax is acknowledged (its mails queued).
    assert_eq!(
        names(&s.incoming),
        [".c.rx", ".c.tif", "a.rx", "a.tif", "b.rx"]
    );
    engine.acknowledge(&fax).await;
    assert_eq!(names(&s.incoming), [".c.rx", ".c.tif", "b.rx"]);
    engine.stop();
    assert_eq!(engine.receive().await, None);
}

#[tokio::test]
async fn a_fax_taken_by_a_dropped_receive_is_not_lost() {
    let f = Fixture::new();
    let s = f.settings();
    let engine = SpoolEngine::new(s.clone()).unwrap();
    std::fs::write(s.incoming.join("x.tif"), b"II*\0").unwrap();
    std::fs::write(s.incoming.join("x.rx"), b"caller: 7\npages: 1\n").unwrap();
    // Dropped while its scan runs: the scan finishes and copies the pair.
    {
        let mut receive = engine.receive();
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(receive.as_mut().poll(cx).is_pending())
        })
        .await;
        assert!(first, "the scan runs on a blocking thread");
    }
    let fax = tokio::time::timeout(Duration::from_secs(5), engine.receive())
        .await
        .expect("the taken fax is handed out")
        .unwrap();
    assert_eq!((fax.caller.as_deref(), fax.pages), (Some("7"), 1));
    // Not acknowledged: the source stays, and an engine started anew
    // (after a crash) hands it out again.
    assert_eq!(names(&s.incoming), ["x.rx", "x.tif"]);
    let again = SpoolEngine::new(s.clone()).unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), again.receive())
        .await
        .expect("handed out again after a restart")
        .unwrap();
    assert_eq!(second.caller.as_deref(), Some("7"));
    // Acknowledged: the pair leaves incoming.
    again.acknowledge(&second).await;
    assert_eq!(names(&s.incoming), Vec::<String>::new());
}
