//! The HylaFAX engine against a real HylaFAX 6.0 server (Debian's
//! hylafax-server, installed by scripts/test): each test starts a private
//! `faxq` and `hfaxd` on 127.0.0.1 (a free port) over a private spool
//! directory (the layout of /var/spool/hylafax, `etc` copied from
//! /etc/hylafax, `hosts.hfaxd` allowing 127.0.0.1 without a password).
//! There is no modem, so a submitted job stays queued: we check its state
//! through the engine, cancel it and see it killed. Completion is tested
//! on the simulated engine; the state mapping by unit tests.
//!
//! hfaxd and faxq switch to the `uucp` user: the tests run as root (as
//! scripts/test does) or fail saying so.

use faxmta_transports::fax::engine::hylafax::status::JobState;
use faxmta_transports::fax::engine::hylafax::{HylafaxEngine, HylafaxSettings};
use faxmta_transports::fax::engine::{FaxEngine, SendRequest, SendResult};
use faxmta_transports::fax::page::{Compression, Page, Resolution};
use faxmta_transports::fax::tiff::{write_tiff_f, TiffHeader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HFAXD: &str = "/usr/sbin/hfaxd";
const FAXQ: &str = "/usr/sbin/faxq";

/// A private HylaFAX server; killed when dropped.
struct Server {
    dir: tempfile::TempDir,
    port: u16,
    children: Vec<Child>,
}

impl Server {
    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn start() -> Server {
        assert!(
            Path::new(HFAXD).exists() && Path::new(FAXQ).exists(),
            "{HFAXD} and {FAXQ} are needed: install Debian's hylafax-server (scripts/test does)"
        );
        let uid = Command::new("id").arg("-u").output().unwrap().stdout;
        assert_eq!(
            String::from_utf8_lossy(&uid).trim(),
            "0",
            "hfaxd and faxq switch to the uucp user: run these tests as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        for d in [
            "archive", "client", "config", "dev", "docq", "doneq", "info", "log", "pollq", "recvq",
            "sendq", "status", "tmp",
        ] {
            std::fs::create_dir_all(spool.join(d)).unwrap();
        }
        run(
            "cp",
            &["-r", "/etc/hylafax", spool.join("etc").to_str().unwrap()],
        );
        run(
            "cp",
            &[
                "-r",
                "/var/spool/hylafax/bin",
                spool.join("bin").to_str().unwrap(),
            ],
        );
        std::fs::write(spool.join("etc/hosts.hfaxd"), "127.0.0.1\nlocalhost\n").unwrap();
        run(
            "chmod",
            &["600", spool.join("etc/hosts.hfaxd").to_str().unwrap()],
        );
        run("chmod", &["1777", spool.join("tmp").to_str().unwrap()]);
        run("mkfifo", &[spool.join("FIFO").to_str().unwrap()]);
        run("chown", &["-R", "uucp:uucp", dir.path().to_str().unwrap()]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let q = spool.to_str().unwrap().to_owned();
        let faxq = Command::new(FAXQ)
            .args(["-D", "-q", &q])
            .stdin(Stdio::null())
            .stdout(log("faxq.log"))
            .stderr(log("faxq.err"))
            .spawn()
            .unwrap();
        let hfaxd = Command::new(HFAXD)
            .args(["-d", "-q", &q, "-l", "127.0.0.1", "-i", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log("hfaxd.log"))
            .stderr(log("hfaxd.err"))
            .spawn()
            .unwrap();
        let server = Server {
            dir,
            port,
            children: vec![faxq, hfaxd],
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "hfaxd did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn settings(&self) -> HylafaxSettings {
        HylafaxSettings {
            lines: 2,
            host: "127.0.0.1".into(),
            port: self.port,
            user: "faxmta".into(),
            password: None,
            admin_password: None,
            poll_interval: Duration::from_millis(200),
            job_timeout: Duration::from_secs(3),
            io_timeout: Duration::from_secs(10),
            received: self.dir.path().join("inbound"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().unwrap();
    assert!(status.success(), "{cmd} {args:?}: {status}");
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
        document: doc.to_owned(),
        first_page: 1,
        pages: 2,
        tsi: "+1 555 0100".into(),
        header: None,
    }
}

/// The q-file hfaxd wrote for job `id` (in sendq or doneq).
fn qfile(spool: &Path, id: u32) -> Option<String> {
    ["sendq", "doneq"]
        .iter()
        .find_map(|q| std::fs::read_to_string(spool.join(q).join(format!("q{id}"))).ok())
}

#[tokio::test]
async fn a_job_is_submitted_queued_and_cancelled() {
    let server = Server::start();
    let doc = server.dir.path().join("doc.tif");
    document(&doc);
    let engine = HylafaxEngine::new(server.settings()).unwrap();
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

    // No modem: it waits, and our status call says so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = engine.status(id).await.unwrap();
    assert_eq!(status.id, id);
    assert!(!status.state.finished(), "{status:?}");
    assert_eq!(status.pages_sent, 0);

    engine.cancel(id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match engine.status(id).await {
            Ok(s) if s.state == JobState::Failed => break,
            Err(_) => break, // gone
            Ok(s) => assert!(Instant::now() < deadline, "still {s:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_send_that_does_not_end_in_time_is_killed_and_retried() {
    let server = Server::start();
    let doc = server.dir.path().join("doc.tif");
    document(&doc);
    let engine = HylafaxEngine::new(server.settings()).unwrap();
    let started = Instant::now();
    let result = engine.send(request(&doc)).await;
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
}

#[tokio::test]
async fn bad_requests_and_a_refusing_server_are_errors() {
    let server = Server::start();
    let doc = server.dir.path().join("doc.tif");
    document(&doc);
    let engine = HylafaxEngine::new(server.settings()).unwrap();
    let mut bad = request(&doc);
    bad.dial = "12; rm".into();
    match engine.send(bad).await {
        SendResult::Error { retry, .. } => assert!(!retry),
        other => panic!("{other:?}"),
    }
    // No hfaxd there: the error names the server.
    let mut settings = server.settings();
    settings.host = "127.0.0.2".into();
    let err = HylafaxEngine::new(settings)
        .unwrap()
        .submit(&request(&doc))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.2"), "{err}");
}
