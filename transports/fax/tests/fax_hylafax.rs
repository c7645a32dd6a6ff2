//! The HylaFAX engine against a real HylaFAX 6.0 server (Debian's
//! hylafax-server, installed by scripts/test): each test starts a private
//! `faxq` and `hfaxd` on 127.0.0.1 (tests/peers/hylafax.rs), mostly with
//! `hosts.hfaxd` allowing 127.0.0.1 without a password. There is no modem, so a submitted job stays queued: we check its state
//! through the engine, cancel it and see it killed. Completion is tested
//! on the simulated engine; the state mapping by unit tests.

use faxmta_fax::engine::hylafax::status::JobState;
use faxmta_fax::engine::hylafax::{HylafaxEngine, HylafaxSettings};
use faxmta_fax::engine::{FaxEngine, Reception, SendRequest, SendResult};
use faxmta_fax::page::{Compression, Page, Resolution};
use faxmta_fax::tiff::{write_tiff_f, TiffHeader};
use std::path::Path;
use std::time::{Duration, Instant};

// The workspace tests' port picker (each port held by a lock file), which
// hylafax.rs takes hfaxd's port from.
#[path = "../../../tests/common/ports.rs"]
mod common;
#[path = "../../../tests/peers/hylafax.rs"]
mod hylafax;
use hylafax::{qfile, run, HylafaxServer};

/// Settings for the engine to `server`, as user `faxmta`.
fn settings(server: &HylafaxServer) -> HylafaxSettings {
    HylafaxSettings {
        lines: 2,
        host: "127.0.0.1".into(),
        port: server.port,
        user: "faxmta".into(),
        password: None,
        admin_password: None,
        poll_interval: Duration::from_millis(200),
        job_timeout: Duration::from_secs(3),
        io_timeout: Duration::from_secs(10),
        received: server.dir.path().join("inbound"),
    }
}

/// A 2-page TIFF-F document.
fn document(path: &Path) {
    let pages: Vec<Page> = (0..2)
        .map(|i| {
            let mut p = Page::blank(1728, 400, Resolution::Fine);
            for y in 50 + i * 100..80 + i * 100 {
                for x in 100..700 {
                    p.set(x, y, true);
                }
            }
            p
        })
        .collect();
    write_tiff_f(path, &pages, Compression::Mh, &TiffHeader::default()).unwrap();
}

fn request(doc: &Path) -> SendRequest {
    SendRequest {
        job_id: "Q1/1".into(),
        dial: "+15551234567".into(),
        number: "+15551234567".into(),
        document: doc.to_owned(),
        first_page: 1,
        pages: 2,
        tsi: "+1 555 0100".into(),
        header: None,
        subaddress: None,
        extension: None,
        progress: None,
    }
}

/// An extension goes into the dial string after two pauses (the modem
/// dials it as DTMF once the call is answered), the subaddress into
/// SUBADDR: both are in the job HylaFAX queued.
#[tokio::test]
async fn an_extension_and_a_subaddress_reach_hylafax() {
    let server = HylafaxServer::start();
    let doc = server.dir.path().join("doc.tif");
    document(&doc);
    let engine = HylafaxEngine::new(settings(&server)).unwrap();
    let request = SendRequest {
        extension: Some("12".into()),
        subaddress: Some("34".into()),
        ..request(&doc)
    };
    let id = engine.submit(&request).await.unwrap();
    let q = qfile(&server.spool(), id).expect("no q-file for the job");
    assert!(q.contains("external:+15551234567,,12"), "{q}");
    assert!(q.contains("subaddr:34"), "{q}");
    engine.cancel(id).await.unwrap();
}

#[tokio::test]
async fn a_job_is_submitted_queued_and_cancelled() {
    let server = HylafaxServer::start();
    let doc = server.dir.path().join("doc.tif");
    document(&doc);
    let engine = HylafaxEngine::new(settings(&server)).unwrap();
    let id = engine.submit(&request(&doc)).await.unwrap();

    // The server has the job as we described it.
    let q = qfile(&server.spool(), id).expect("no q-file for the job");
    assert!(q.contains("number:+15551234567"), "{q}");
    assert!(q.contains("tsi:+1 555 0100"), "{q}");
    assert!(q.contains("maxdials:1") && q.contains("maxtries:1"), "{q}");
    assert!(q.contains("tiff:0::docq/"), "{q}");
    assert!(
        q.contains("jobtag:Q1/1") && q.contains("notify:none"),
        "{q}"
    );

    // No modem: it waits, and our status call says so. (The pause is the
    // test: a job that went anywhere but a waiting state — done, failed —
    // within it would show; every waiting state, Pending too, passes.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = engine.status(id).await.unwrap();
    assert_eq!(status.id, id);
    assert!(
        matches!(
            status.state,
            JobState::Pending | JobState::Ready | JobState::Sleeping | JobState::Blocked
        ),
        "{status:?}"
    );
    assert_eq!(status.pages_sent, 0);

    engine.cancel(id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match engine.status(id).await {
            Ok(s) if s.state == JobState::Failed => {
                assert_eq!(s.status, "Job aborted by request");
                match s.outcome(Duration::ZERO) {
                    Some(SendResult::Error { retry: true, .. }) => {}
                    other => panic!("{other:?}"),
                }
                break;
            }
            Err(e) => panic!("the killed job is gone: {e}"),
            Ok(s) => assert!(Instant::now() < deadline, "still {s:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_send_that_does_not_end_in_time_is_killed_and_retried() {
    let server = HylafaxServer::start();
    let doc = server.dir.path().join("doc.tif");
    document(&doc);
    let engine = HylafaxEngine::new(settings(&server)).unwrap();
    let started = Instant::now();
    // Watched on a live board: the job at the server, then what its
    // state says while it waits for a modem that never comes.
    let board = faxmta_fax::live::LiveBoard::default();
    let mut changes = board.changes();
    let mut watched = request(&doc);
    watched.progress = Some(board.open(
        faxmta_fax::live::LiveProgress::queued("Q1/1", "+15551234567"),
        &[],
    ));
    let result = engine.send(watched).await;
    let mut details = Vec::new();
    while let Ok(p) = changes.try_recv() {
        details.push(format!("{:?} {}", p.state, p.detail));
    }
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("WaitingForLine HylaFAX job ")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("WaitingForLine HylaFAX: ")),
        "{details:?}"
    );
    match &result {
        SendResult::Error { reason, retry } => {
            assert!(*retry);
            assert!(reason.contains("did not end within"), "{reason}");
            assert!(reason.contains("killed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(engine.lines_busy(), 0);
    // HylaFAX has it as killed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = qfile(&server.spool(), 1).unwrap_or_default();
        if q.contains("status:Job aborted by request") {
            break;
        }
        assert!(Instant::now() < deadline, "{q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn received_faxes_are_taken_from_the_receive_queue() {
    let server = HylafaxServer::start();
    let expected = server.dir.path().join("expected.tif");
    // As HylaFAX stores a received fax: the sender's TSI in
    // ImageDescription, which hfaxd reports as the sender (%s).
    let pages = read_tiff_pages_of(&{
        let tmp = server.dir.path().join("plain.tif");
        document(&tmp);
        tmp
    });
    let header = TiffHeader {
        description: Some("+49 30 1234567".into()),
        ..Default::default()
    };
    write_tiff_f(&expected, &pages, Compression::Mh, &header).unwrap();
    let fax = server.spool().join("recvq/fax00001.tif");
    std::fs::copy(&expected, &fax).unwrap();
    run("chown", &["uucp:uucp", fax.to_str().unwrap()]);
    run("chmod", &["644", fax.to_str().unwrap()]);
    // A name noted earlier whose file is gone from recvq: pruned.
    let noted = server.dir.path().join("inbound/.hylafax-taken");
    std::fs::create_dir_all(noted.parent().unwrap()).unwrap();
    std::fs::write(&noted, "fax00099.tif\n").unwrap();
    let engine = HylafaxEngine::new(settings(&server)).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), engine.receive())
        .await
        .expect("no fax received")
        .unwrap();
    assert_eq!(got.pages, 2);
    assert_eq!(got.status, Reception::Complete);
    assert_eq!(got.remote_tsi, "+49 30 1234567");
    assert!(
        std::fs::read(&got.document).unwrap() == std::fs::read(&expected).unwrap(),
        "the fetched fax differs"
    );
    // Not ours to delete (no ADMIN): noted as taken at acknowledgement.
    engine.acknowledge(&got).await;
    assert!(fax.exists());
    assert_eq!(std::fs::read_to_string(&noted).unwrap(), "fax00001.tif\n");
    // Taken once only.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), engine.receive())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bad_requests_and_a_refusing_server_are_errors() {
    let server = HylafaxServer::start();
    let doc = server.dir.path().join("doc.tif");
    document(&doc);
    let engine = HylafaxEngine::new(settings(&server)).unwrap();
    let mut bad = request(&doc);
    bad.dial = "12; rm".into();
    match engine.send(bad).await {
        SendResult::Error { retry, .. } => assert!(!retry),
        other => panic!("{other:?}"),
    }
    // No hfaxd there: the error names the server.
    let mut settings = settings(&server);
    settings.host = "127.0.0.2".into();
    let err = HylafaxEngine::new(settings)
        .unwrap()
        .submit(&request(&doc))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.2"), "{err}");
}

/// `secret` and `admin`, crypt(3)ed (`openssl passwd -1 -salt abcdefgh`).
const HOSTS_WITH_PASSWORDS: &str =
    "127.0.0.1::$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1:$1$abcdefgh$l/LAqC8oJERu7Cmx6trtY/\n";

#[tokio::test]
async fn with_passwords_and_admin_a_taken_fax_is_deleted_on_the_server() {
    let server = HylafaxServer::with_hosts(HOSTS_WITH_PASSWORDS);
    let fax = server.spool().join("recvq/fax00001.tif");
    document(&fax);
    run("chown", &["uucp:uucp", fax.to_str().unwrap()]);
    run("chmod", &["600", fax.to_str().unwrap()]);
    let doc = server.dir.path().join("doc.tif");
    document(&doc);

    // A wrong password is refused, and said so.
    let mut wrong = settings(&server);
    wrong.password = Some("guess".into());
    let err = HylafaxEngine::new(wrong)
        .unwrap()
        .submit(&request(&doc))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PASS"), "{err}");

    let mut settings = settings(&server);
    settings.password = Some("secret".into());
    settings.admin_password = Some("admin".into());
    let engine = HylafaxEngine::new(settings).unwrap();
    let id = engine.submit(&request(&doc)).await.unwrap();
    assert!(!engine.status(id).await.unwrap().state.finished());
    engine.cancel(id).await.unwrap();

    let got = tokio::time::timeout(Duration::from_secs(20), engine.receive())
        .await
        .expect("no fax received")
        .unwrap();
    assert_eq!(got.pages, 2);
    assert!(got.document.exists());
    assert!(fax.exists(), "deleted before the acknowledgement");
    engine.acknowledge(&got).await;
    assert!(!fax.exists(), "not deleted on the server");
    assert!(!server.dir.path().join("inbound/.hylafax-taken").exists());
}

#[tokio::test]
async fn an_abandoned_send_kills_its_job() {
    let server = HylafaxServer::start();
    let doc = server.dir.path().join("doc.tif");
    document(&doc);
    let mut s = settings(&server);
    s.job_timeout = Duration::from_secs(600);
    let engine = std::sync::Arc::new(HylafaxEngine::new(s).unwrap());
    let send = tokio::spawn({
        let engine = engine.clone();
        let request = request(&doc);
        async move { engine.send(request).await }
    });
    let spool = server.spool();
    let deadline = Instant::now() + Duration::from_secs(10);
    while qfile(&spool, 1).is_none() {
        assert!(Instant::now() < deadline, "no job");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(engine.lines_busy(), 1);
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    assert_eq!(engine.lines_busy(), 0);
    // The kill goes to hfaxd from a task of its own, then to faxq: on a
    // loaded machine that takes a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Killed: marked aborted, or — when faxq took the kill at once —
        // already gone from sendq and doneq (a job that had no modem
        // cannot have finished any other way).
        let q = qfile(&spool, 1);
        if q.as_ref()
            .is_none_or(|q| q.contains("status:Job aborted by request"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "not killed: {q:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pages of a TIFF file we wrote, as pages again.
fn read_tiff_pages_of(path: &Path) -> Vec<Page> {
    faxmta_fax::tiff::read_tiff(path)
        .unwrap()
        .iter()
        .map(|p| p.to_fax_page().unwrap())
        .collect()
}
