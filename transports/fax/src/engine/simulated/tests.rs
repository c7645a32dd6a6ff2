//! Unit tests of the simulated engine's own logic: numbers, results,
//! settings, and the network answers that need no modem. Calls over the
//! simulated line are tested in `transports/fax/tests/fax_engine/`.

use super::call::classify;
use super::*;
use std::time::Duration;

fn settings(dir: &Path) -> SimulatedSettings {
    SimulatedSettings {
        lines: 1,
        tsi: "+1 555 0100".into(),
        inbound: dir.join("inbound"),
        network: SimulatedNetwork {
            received: dir.join("remote"),
            busy: vec!["+1 555-0101".into()],
            no_answer: vec!["(555) 0102".into()],
            ..SimulatedNetwork::default()
        },
    }
}

fn request(dir: &Path, dial: &str) -> SendRequest {
    let document = dir.join("doc.tif");
    std::fs::write(&document, b"not read for busy numbers").unwrap();
    SendRequest {
        job_id: "Q1/1".into(),
        dial: dial.into(),
        number: dial.into(),
        document,
        first_page: 1,
        pages: 1,
        tsi: "+1 555 0100".into(),
        header: None,
        subaddress: None,
        extension: None,
        progress: None,
    }
}

#[test]
fn engine_numbers_are_compared_as_dialled() {
    assert_eq!(normalise(" +1 (555) 010-0199 "), "+15550100199");
    assert_eq!(normalise("555.0100"), "5550100");
    assert_ne!(normalise("+15550100"), normalise("15550100"));
}

#[test]
fn engine_file_labels_are_safe() {
    assert_eq!(file_label("5B1F/2"), "5B1F_2");
    assert_eq!(file_label("../x"), "_x");
    assert_eq!(file_label("+15550100"), "+15550100");
    assert_eq!(file_label(&"a".repeat(100)).len(), 64);
}

#[test]
fn engine_requests_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = request(dir.path(), "+15550100");
    assert!(r.check(Some("+15550100")).is_ok());
    assert!(r.check(Some("")).is_err());
    assert!(r.check(Some("+")).is_err());
    assert!(r.check(Some("555x")).is_err());
    r.first_page = 0;
    assert!(r.check(Some("+15550100")).is_err());
    r.first_page = 2;
    assert!(r.check(Some("+15550100")).is_err());
}

#[test]
fn engine_results_follow_the_completion_code() {
    let d = Duration::from_secs(40);
    let stats = |pages_tx| modem::Stats {
        pages_tx,
        bit_rate: 14400,
        ..modem::Stats::default()
    };
    let csid = || "REMOTE".to_owned();
    assert_eq!(
        classify(Some(0), &stats(3), csid(), d),
        SendResult::Sent {
            pages: 3,
            duration: d,
            remote_csid: csid(),
            bit_rate: 14400
        }
    );
    assert_eq!(
        classify(Some(2), &stats(0), csid(), d),
        SendResult::NoFaxTone
    );
    assert_eq!(
        classify(Some(3), &stats(0), csid(), d),
        SendResult::NoFaxTone
    );
    assert!(matches!(
        classify(Some(21), &stats(1), csid(), d),
        SendResult::Partial { pages_sent: 1, ref reason, .. } if reason == "No response after sending a page"
    ));
    assert!(matches!(
        classify(Some(41), &stats(0), csid(), d),
        SendResult::Error { retry: false, ref reason } if reason.contains("TIFF/F file cannot be opened")
    ));
    assert!(matches!(
        classify(Some(21), &stats(0), csid(), d),
        SendResult::Error { retry: true, .. }
    ));
    assert!(matches!(
        classify(None, &stats(0), csid(), d),
        SendResult::Error { retry: true, .. }
    ));
}

#[test]
fn engine_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.lines = 0;
    assert!(matches!(
        SimulatedEngine::new(s),
        Err(SimulatedError::NoLines)
    ));
    let mut s = settings(dir.path());
    s.network.hang_up_after.insert("555".into(), 0);
    assert!(matches!(
        SimulatedEngine::new(s),
        Err(SimulatedError::HangUpAfterZero { .. })
    ));
}

#[tokio::test]
async fn engine_busy_and_no_answer_need_no_modem() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SimulatedEngine::new(settings(dir.path())).unwrap();
    assert_eq!(engine.name(), "simulated");
    assert_eq!(
        engine.send(request(dir.path(), "+15550101")).await,
        SendResult::BUSY
    );
    assert_eq!(
        engine.send(request(dir.path(), "5550102")).await,
        SendResult::NO_ANSWER
    );
    assert_eq!(engine.lines_busy(), 0);
    assert_eq!(engine.lines_busy_peak(), 1);
    // A bad number or page range is refused before dialling.
    let mut r = request(dir.path(), "+1555x");
    assert!(matches!(
        engine.send(r.clone()).await,
        SendResult::Error { retry: false, .. }
    ));
    r.dial = "+15550101".into();
    r.document = dir.path().join("missing.tif");
    assert!(matches!(
        engine.send(r).await,
        SendResult::Error { retry: false, .. }
    ));
}

#[tokio::test]
async fn engine_receive_ends_after_stop() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SimulatedEngine::new(settings(dir.path())).unwrap();
    engine.stop();
    assert_eq!(engine.receive().await, None);
    let call = IncomingCall {
        document: dir.path().join("doc.tif"),
        tsi: "X".into(),
        caller: None,
        called: None,
    };
    assert!(matches!(
        engine.call_in(call).await,
        Err(SimulatedError::Stopped)
    ));
}
