//! The simulated fax engine end to end: real T.30 (spandsp) between our
//! machine and simulated remote machines, results checked against the
//! pixels that went in. Run with `cargo test -p faxmta-fax engine`;
//! `-- --nocapture` prints the line times.

mod live;
mod tiff_f;

use faxmta_fax::engine::simulated::{
    IncomingCall, SimulatedEngine, SimulatedNetwork, SimulatedSettings,
};
use faxmta_fax::engine::{FaxEngine, SendRequest, SendResult};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tiff_f::Page;

const OUR_TSI: &str = "+1 555 0100";
const NORMAL: &str = "+15550199";
const BUSY: &str = "+15550001";
const NO_ANSWER: &str = "+15550002";
const NO_FAX_TONE: &str = "+15550003";
const HANGS_UP: &str = "+15550004";

struct Fixture {
    dir: tempfile::TempDir,
    pages: Vec<Page>,
    document: PathBuf,
}

impl Fixture {
    /// A 3-page document, each page different.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pages: Vec<Page> = (1..=3).map(tiff_f::text_page).collect();
        let document = dir.path().join("document.tif");
        tiff_f::write_tiff_f(&document, &pages);
        Fixture {
            dir,
            pages,
            document,
        }
    }

    fn engine(&self, lines: usize) -> SimulatedEngine {
        let network = SimulatedNetwork {
            received: self.dir.path().join("remote"),
            csid: "REMOTE {number}".into(),
            busy: vec![BUSY.into()],
            no_answer: vec!["+1 555 0002".into()],
            no_fax_tone: vec![NO_FAX_TONE.into()],
            hang_up_after: [(HANGS_UP.to_owned(), 1)].into_iter().collect(),
            pace: None,
        };
        SimulatedEngine::new(SimulatedSettings {
            lines,
            tsi: OUR_TSI.into(),
            inbound: self.dir.path().join("inbound"),
            network,
        })
        .unwrap()
    }

    fn request(&self, dial: &str, first_page: u32) -> SendRequest {
        SendRequest {
            job_id: format!("Q{dial}/1"),
            dial: dial.into(),
            number: dial.into(),
            document: self.document.clone(),
            first_page,
            pages: 3,
            tsi: OUR_TSI.into(),
            header: None,
            subaddress: None,
            extension: None,
            progress: None,
        }
    }

    /// The files the remote machine behind `number` stored.
    fn received(&self, number: &str) -> Vec<PathBuf> {
        let dir = self.dir.path().join("remote").join(number);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    }
}

/// Every page of `file` equals `want`, pixel for pixel.
fn assert_pages(file: &Path, want: &[Page]) -> Vec<tiff_f::ReadPage> {
    let got = tiff_f::read_tiff_f(file);
    assert_eq!(got.len(), want.len(), "{file:?}: page count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.page == *w,
            "{file:?}: page {} differs: {:?} vs {:?}",
            i + 1,
            g.page,
            w
        );
    }
    got
}

mod engine {
    use super::*;

    #[tokio::test]
    async fn send_to_a_fax_machine_arrives_pixel_for_pixel() {
        let f = Fixture::new();
        let engine = f.engine(1);
        let result = engine.send(f.request(NORMAL, 1)).await;
        let SendResult::Sent {
            pages,
            duration,
            remote_csid,
            bit_rate,
        } = result
        else {
            panic!("not sent: {result:?}");
        };
        assert_eq!(pages, 3);
        assert_eq!(remote_csid, format!("REMOTE {NORMAL}"));
        assert_eq!(bit_rate, 14400, "V.17 on a perfect line");
        assert!(duration > Duration::from_secs(10), "{duration:?}");
        assert_eq!(engine.lines_busy(), 0);
        let files = f.received(NORMAL);
        assert_eq!(files.len(), 1, "{files:?}");
        let got = assert_pages(&files[0], &f.pages);
        // The remote stores our TSI with the pages.
        assert_eq!(got[0].description.as_deref(), Some(OUR_TSI));
    }

    /// An extension is dialled as DTMF after the answer: the remote's
    /// DTMF receiver heard the digits (written beside what it received).
    #[tokio::test]
    async fn an_extension_reaches_the_far_end_as_dtmf() {
        let f = Fixture::new();
        let engine = f.engine(1);
        let mut request = f.request(NORMAL, 1);
        request.extension = Some("12,3#".into());
        let result = engine.send(request).await;
        assert!(matches!(result, SendResult::Sent { .. }), "{result:?}");
        let files = f.received(NORMAL);
        let dtmf: Vec<&PathBuf> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "dtmf"))
            .collect();
        assert_eq!(dtmf.len(), 1, "{files:?}");
        assert_eq!(std::fs::read_to_string(dtmf[0]).unwrap(), "123#");
        // Without an extension, no tones.
        let f = Fixture::new();
        let engine = f.engine(1);
        engine.send(f.request(NORMAL, 1)).await;
        assert!(f
            .received(NORMAL)
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "tif")));
    }

    #[tokio::test]
    async fn busy_no_answer_and_no_fax_tone() {
        let f = Fixture::new();
        let engine = f.engine(1);
        assert_eq!(engine.send(f.request(BUSY, 1)).await, SendResult::BUSY);
        // Listed as "+1 555 0002", dialled as +15550002.
        assert_eq!(
            engine.send(f.request(NO_ANSWER, 1)).await,
            SendResult::NO_ANSWER
        );
        let started = Instant::now();
        assert_eq!(
            engine.send(f.request(NO_FAX_TONE, 1)).await,
            SendResult::NoFaxTone
        );
        eprintln!(
            "no fax tone: T.30 gave up after {:?} of wall time",
            started.elapsed()
        );
        for number in [BUSY, NO_ANSWER, NO_FAX_TONE] {
            assert!(f.received(number).is_empty(), "{number}");
        }
        // A number differing in the leading + is another number.
        assert!(matches!(
            engine.send(f.request(&BUSY[1..], 1)).await,
            SendResult::Sent { pages: 3, .. }
        ));
    }

    #[tokio::test]
    async fn hang_up_after_one_page_is_partial_and_the_rest_resends() {
        let f = Fixture::new();
        let engine = f.engine(1);
        let result = engine.send(f.request(HANGS_UP, 1)).await;
        let SendResult::Partial {
            pages_sent,
            remote_csid,
            reason,
            ..
        } = &result
        else {
            panic!("not partial: {result:?}");
        };
        assert_eq!(*pages_sent, 1);
        assert_eq!(remote_csid, &format!("REMOTE {HANGS_UP}"));
        assert!(!reason.is_empty());
        let files = f.received(HANGS_UP);
        assert_eq!(files.len(), 1);
        assert_pages(&files[0], &f.pages[..1]);

        // The missing pages, to a machine that takes them all.
        let result = engine.send(f.request(NORMAL, 2)).await;
        assert!(
            matches!(result, SendResult::Sent { pages: 2, .. }),
            "{result:?}"
        );
        let files = f.received(NORMAL);
        assert_eq!(files.len(), 1);
        assert_pages(&files[0], &f.pages[1..]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_lines_carry_four_sends_two_at_a_time() {
        let f = Fixture::new();
        let engine = f.engine(2);
        let numbers = ["+15550301", "+15550302", "+15550303", "+15550304"];
        let started = Instant::now();
        let sends = numbers.map(|n| engine.send(f.request(n, 3)));
        let results = futures_join(sends).await;
        eprintln!("4 one-page sends on 2 lines: {:?} wall", started.elapsed());
        for (n, r) in numbers.iter().zip(&results) {
            assert!(matches!(r, SendResult::Sent { pages: 1, .. }), "{n}: {r:?}");
            assert_pages(&f.received(n)[0], &f.pages[2..]);
        }
        assert_eq!(engine.lines(), 2);
        assert_eq!(
            engine.lines_busy_peak(),
            2,
            "never more than 2 calls at once"
        );
        assert_eq!(engine.lines_busy(), 0);
    }

    /// Awaits four futures concurrently (no `futures` crate needed).
    async fn futures_join<F: std::future::Future>(f: [F; 4]) -> [F::Output; 4] {
        let [a, b, c, d] = f;
        let (a, b, c, d) = tokio::join!(a, b, c, d);
        [a, b, c, d]
    }

    #[tokio::test]
    async fn an_incoming_call_is_received() {
        let f = Fixture::new();
        let engine = f.engine(1);
        let two_pages = f.dir.path().join("incoming.tif");
        tiff_f::write_tiff_f(&two_pages, &f.pages[..2]);
        let call = IncomingCall {
            document: two_pages,
            tsi: "+44 20 7946 0000".into(),
            caller: Some("+442079460000".into()),
            called: Some("+15550100".into()),
        };
        let returned = engine.call_in(call).await.unwrap();
        let fax = engine.receive().await.unwrap();
        assert_eq!(fax, returned);
        assert_eq!(fax.pages, 2);
        assert_eq!(fax.remote_tsi, "+44 20 7946 0000");
        assert_eq!(fax.caller.as_deref(), Some("+442079460000"));
        assert_eq!(fax.called.as_deref(), Some("+15550100"));
        assert!(fax.duration > Duration::from_secs(5));
        assert!(fax.document.starts_with(f.dir.path().join("inbound")));
        assert_pages(&fax.document, &f.pages[..2]);
        engine.stop();
        assert_eq!(engine.receive().await, None);
    }

    #[tokio::test]
    async fn a_header_line_goes_above_each_page() {
        let f = Fixture::new();
        let engine = f.engine(1);
        let mut request = f.request(NORMAL, 3);
        request.header = Some("ACME Corp, +1 555 0100".into());
        let result = engine.send(request).await;
        assert!(
            matches!(result, SendResult::Sent { pages: 1, .. }),
            "{result:?}"
        );
        let got = tiff_f::read_tiff_f(&f.received(NORMAL)[0]);
        let (page, sent) = (&got[0].page, &f.pages[2]);
        // spandsp 0.0.6 adds the header as extra rows on top.
        let extra = page.height - sent.height;
        assert_eq!(extra, 32, "header rows at 196 dpi");
        assert!(page.black_in(0, extra) > 500, "the header has text");
        assert!((0..sent.height).all(|y| page.row(y + extra) == sent.row(y)));
    }

    /// The figure for the benchmark: line time per page on the simulated
    /// V.17 line, and the wall time it costs.
    #[tokio::test]
    async fn line_time_per_page() {
        let f = Fixture::new();
        let engine = f.engine(1);
        let mut times = Vec::new();
        for first in [3, 1] {
            let started = Instant::now();
            let result = engine.send(f.request(NORMAL, first)).await;
            let SendResult::Sent { duration, .. } = result else {
                panic!("{result:?}");
            };
            times.push((duration, started.elapsed()));
        }
        let (one, three) = (times[0], times[1]);
        let per_page = (three.0 - one.0) / 2;
        let g4 = std::fs::metadata(&f.document).unwrap().len() / 3;
        eprintln!(
            "simulated line: 1 page {:.1} s ({} ms wall), 3 pages {:.1} s ({} ms wall); \
             {:.1} s of line time per page of ~{} KB G4, set-up and release {:.1} s",
            one.0.as_secs_f64(),
            one.1.as_millis(),
            three.0.as_secs_f64(),
            three.1.as_millis(),
            per_page.as_secs_f64(),
            g4 / 1024,
            (one.0 - per_page).as_secs_f64(),
        );
        assert!(per_page > Duration::from_secs(2) && per_page < Duration::from_secs(120));
    }
}
