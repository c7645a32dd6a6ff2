//! Unit tests of the spandsp wrapper that need no document: refused
//! settings, a caller against silence, the call limit, log routing.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn sender(file: &Path) -> Setup<'_> {
    Setup {
        calling: true,
        ident: "+1 555 0100",
        tag: c"test",
        job: Job::Send {
            file,
            first: 1,
            last: None,
            header: None,
        },
    }
}

const LIMIT: Limit = Limit {
    setup_seconds: 120,
    page_seconds: 600,
};

#[test]
fn engine_modem_refuses_paths_spandsp_would_cut() {
    let long = Path::new("/tmp").join("x".repeat(300));
    assert!(matches!(
        Terminal::new(&sender(&long)),
        Err(ModemError::PathTooLong { .. })
    ));
    let nul = Path::new("/tmp/a\0b");
    assert!(matches!(
        Terminal::new(&sender(nul)),
        Err(ModemError::Nul { .. })
    ));
    let mut setup = sender(Path::new("/tmp/x.tif"));
    setup.ident = "a\0b";
    assert!(matches!(Terminal::new(&setup), Err(ModemError::Nul { .. })));
}

#[test]
fn engine_modem_silence_ends_with_t0_and_no_pages() {
    // Nobody answers with fax tones: T0 (60 s) ends the call, long
    // before the limit. The file is never opened.
    let mut caller = Terminal::new(&sender(Path::new("/nonexistent.tif"))).unwrap();
    let report = run_call(&mut caller, FarEnd::Silence, LIMIT);
    assert_eq!(report.completion, Some(T30_ERR_T0_EXPIRED));
    assert_eq!(report.duration().as_secs(), 60);
    assert_eq!(caller.stats().pages_tx, 0);
    assert_eq!(caller.remote_ident(), "");
}

#[test]
fn engine_modem_limit_cuts_a_call_off() {
    let mut caller = Terminal::new(&sender(Path::new("/nonexistent.tif"))).unwrap();
    let limit = Limit {
        setup_seconds: 5,
        page_seconds: 0,
    };
    let report = run_call(&mut caller, FarEnd::Silence, limit);
    assert_eq!(report.completion, None);
    assert_eq!(report.duration().as_secs(), 5);
    // Cut off: phase E has run (or is recorded) all the same.
    assert!(caller.completion().is_some());
}

#[test]
fn engine_modem_completion_codes() {
    assert_eq!(completion_text(T30_ERR_OK), "OK");
    assert!(completion_retryable(T30_ERR_T1_EXPIRED));
    assert!(completion_retryable(T30_ERR_CALLDROPPED));
    assert!(!completion_retryable(ffi::T30_ERR_FILEERROR));
    assert!(!completion_retryable(ffi::T30_ERR_INCOMPATIBLE));
    assert!(!completion_retryable(ffi::T30_ERR_NOPOLL));
}

/// Counts `spandsp` events; everything is enabled.
struct Counter(Arc<AtomicUsize>);

impl tracing::Subscriber for Counter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "spandsp" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn engine_modem_messages_go_to_tracing() {
    let count = Arc::new(AtomicUsize::new(0));
    tracing::subscriber::with_default(Counter(count.clone()), || {
        let mut caller = Terminal::new(&sender(Path::new("/nonexistent.tif"))).unwrap();
        run_call(&mut caller, FarEnd::Silence, LIMIT);
    });
    assert!(
        count.load(Ordering::SeqCst) > 0,
        "no spandsp messages reached tracing"
    );
}
