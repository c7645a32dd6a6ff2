//! Unit tests of worker.rs.

use super::*;

/// A worker that is a shell script.
fn sh(script: &str, wall: u64, concurrency: usize) -> Arc<RenderWorker> {
    RenderWorker::new(
        PathBuf::from("sh"),
        vec!["-c".into(), script.into()],
        Limits {
            memory: 1 << 30,
            cpu: Duration::from_secs(60),
            wall: Duration::from_secs(wall),
            concurrency,
        },
    )
}

fn request(dir: &Path) -> Request {
    Request {
        task: Task::Document,
        options: RenderOptions::default(),
        compression: Compression::Mh,
        number: "+15551234567".into(),
        cover_page: None,
        description: None,
        output: dir.join("out.tif"),
    }
}

#[test]
fn a_worker_past_its_deadline_is_killed_and_the_part_named() {
    let dir = tempfile::tempdir().unwrap();
    let w = sh(
        r#"cat >/dev/null; echo 'part part 2 "loop.pdf" (application/pdf)'; sleep 30 & wait"#,
        1,
        1,
    );
    let started = Instant::now();
    let r = w.run(&request(dir.path()), b"message");
    assert!(started.elapsed() < Duration::from_secs(10), "not killed");
    let Err(RenderFailure::Message(why)) = r else {
        panic!("{r:?}");
    };
    assert_eq!(
        why,
        "part 2 \"loop.pdf\" (application/pdf): cannot be faxed: \
         rendering it took longer than the limit of 1s"
    );
}

#[test]
fn an_allocation_failure_is_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let w = sh(
        "cat >/dev/null; echo 'part part 3 (image/png)'; \
         echo 'memory allocation of 4294967296 bytes failed' >&2; kill -ABRT $$",
        10,
        1,
    );
    let r = w.run(&request(dir.path()), b"message");
    let Err(RenderFailure::Message(why)) = r else {
        panic!("{r:?}");
    };
    assert_eq!(
        why,
        "part 3 (image/png): cannot be faxed: \
         rendering it needs more than the limit of 1024 MB of memory"
    );
}

#[test]
fn a_crash_without_a_limit_is_a_crash_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let w = sh(
        "cat >/dev/null; echo 'part part 1 (text/plain)'; kill -SEGV $$",
        10,
        1,
    );
    let r = w.run(&request(dir.path()), b"message");
    let Err(RenderFailure::Crashed(why)) = r else {
        panic!("{r:?}");
    };
    assert!(why.starts_with("part 1 (text/plain): cannot be faxed: the renderer crashed"));
    // An answer is taken as it is.
    let w = sh(r#"cat >/dev/null; echo 'done {"Pages":4}'"#, 10, 1);
    assert_eq!(w.run(&request(dir.path()), b"m"), Ok(4));
    let w = sh(r#"cat >/dev/null; echo 'done {"Message":"bad"}'"#, 10, 1);
    assert_eq!(
        w.run(&request(dir.path()), b"m"),
        Err(RenderFailure::Message("bad".into()))
    );
    // A program that cannot start is our trouble.
    let w = RenderWorker::new(
        PathBuf::from("/nonexistent/faxmta"),
        vec![],
        Limits::default(),
    );
    assert!(matches!(
        w.run(&request(dir.path()), b"m"),
        Err(RenderFailure::Local(_))
    ));
}

/// `concurrency` bounds the workers at once: each worker takes a lock
/// directory and fails if another holds it.
#[test]
fn workers_run_at_most_concurrency_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    let script = format!(
        r#"cat >/dev/null; mkdir '{0}' || exit 9; sleep 0.2; rmdir '{0}'; echo 'done {{"Pages":1}}'"#,
        lock.display()
    );
    let w = sh(&script, 30, 1);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (w, req) = (w.clone(), request(dir.path()));
            std::thread::spawn(move || w.run(&req, b"m"))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Ok(1));
    }
}
