//! Audio fax sessions back to back over loopback UDP, in real time: a
//! caller sends a 2-page document, an answerer stores it, and the stored
//! pages must equal the sent ones pixel for pixel — directly, in both
//! laws, and through a relay that delays, reorders, duplicates and drops
//! packets. A fax takes tens of seconds of real time: each call is its
//! own #[test] so they run side by side.

mod relay;

use super::*;
use crate::engine::spandsp::modem::{T30_ERR_OK, T30_ERR_T0_EXPIRED};
use crate::page::{Compression, Page, Resolution};
use crate::tiff::{read_tiff, write_tiff_f, TiffHeader};
use relay::{Impairment, Relay, RelayStats};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// A page of made-up text: rows of 16×20 character cells with strokes
/// from a seeded generator, like a short typed letter (standard
/// resolution, to keep the line time down).
fn text_page(seed: u64) -> Page {
    let mut page = Page::blank(1728, 1100, Resolution::Standard);
    let mut rng = seed.wrapping_mul(6364136223846793005) | 1;
    let mut next = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) as u32
    };
    let mut y0 = 60;
    while y0 + 20 < 700 {
        let mut x0 = 100;
        let end = 1400 + next() % 200;
        while x0 + 16 * 9 < end {
            for _ in 0..2 + next() % 8 {
                let shape = next() & (next() | next() >> 7);
                for cell in 0..15u32 {
                    if shape & (1 << cell) != 0 {
                        let (cx, cy) = (x0 + 1 + (cell % 3) * 3, y0 + 2 + (cell / 3) * 3);
                        for y in cy..cy + 3 {
                            for x in cx..cx + 3 {
                                page.set(x, y, true);
                            }
                        }
                    }
                }
                x0 += 16;
            }
            x0 += 16;
        }
        y0 += 30;
    }
    page
}

/// A 2-page TIFF-F document in `dir`, and its pages.
fn document(dir: &Path) -> (PathBuf, Vec<Page>) {
    let pages = vec![text_page(1), text_page(2)];
    let path = dir.join("document.tif");
    write_tiff_f(&path, &pages, Compression::Mmr, &TiffHeader::default()).unwrap();
    (path, pages)
}

fn local() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// How a back-to-back call went.
struct Call {
    caller: MediaEnd,
    answerer: MediaEnd,
    /// The pages the answerer stored.
    received: Vec<Page>,
    relay: Option<RelayStats>,
    /// The answerer did not end by itself within 10 s of the caller and
    /// was stopped (as a BYE would).
    bye: bool,
    /// The caller's control block (pages recorded after phase D).
    caller_pages: u32,
    answerer_pages: u32,
}

/// Runs a caller sending a 2-page document and an answerer receiving it,
/// each in its own thread with its own loopback socket, directly or
/// through a [`Relay`] with `impairment`. A watchdog stops both after
/// 4 minutes.
fn call(law: G711, impairment: Option<Impairment>) -> (Call, Vec<Page>) {
    call_with(law, impairment, &Options::default())
}

fn call_with(law: G711, impairment: Option<Impairment>, options: &Options) -> (Call, Vec<Page>) {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pages) = document(dir.path());
    let received = dir.path().join("received.tif");
    let (caller_socket, answerer_socket) = (local(), local());
    let (caller_addr, answerer_addr) = (
        caller_socket.local_addr().unwrap(),
        answerer_socket.local_addr().unwrap(),
    );
    let relay = impairment.map(|imp| Relay::start(caller_addr, answerer_addr, imp));
    let (to_answerer, to_caller) = match &relay {
        Some(r) => (r.caller_side, r.answerer_side),
        None => (answerer_addr, caller_addr),
    };
    let params = |remote| AudioParams {
        law,
        payload_type: law.payload_type(),
        remote,
    };
    let caller_setup = Setup {
        calling: true,
        ident: "+1 555 0100",
        tag: c"caller",
        job: Job::Send {
            file: &doc,
            first: 1,
            last: None,
            header: None,
        },
    };
    let answerer_setup = Setup {
        calling: false,
        ident: "+1 555 0199",
        tag: c"answerer",
        job: Job::Receive { file: &received },
    };
    let (caller_control, answerer_control) = (Control::default(), Control::default());
    let (watchdog_tx, watchdog_rx) = mpsc::channel::<()>();
    let (answerer_done_tx, answerer_done_rx) = mpsc::channel::<()>();
    let mut bye = false;
    let (caller_end, answerer_end) = std::thread::scope(|s| {
        let answerer = s.spawn(|| {
            let end = run_with(
                answerer_socket,
                &params(to_caller),
                &answerer_setup,
                &answerer_control,
                options,
            );
            let _ = answerer_done_tx.send(());
            end
        });
        let caller = s.spawn(|| {
            run_with(
                caller_socket,
                &params(to_answerer),
                &caller_setup,
                &caller_control,
                options,
            )
        });
        let (caller_control, answerer_control) = (&caller_control, &answerer_control);
        s.spawn(move || {
            // The watchdog: both sessions end by themselves well before.
            if watchdog_rx.recv_timeout(Duration::from_secs(240)).is_err() {
                caller_control.stop();
                answerer_control.stop();
            }
        });
        let caller_end = caller.join().unwrap().unwrap();
        // The answerer ends on the caller's DCN. If that was lost, the
        // caller's BYE stops it, as the signalling would.
        if answerer_done_rx
            .recv_timeout(Duration::from_secs(10))
            .is_err()
        {
            bye = true;
            answerer_control.stop();
        }
        let answerer_end = answerer.join().unwrap().unwrap();
        let _ = watchdog_tx.send(());
        (caller_end, answerer_end)
    });
    let relay = relay.map(Relay::stop);
    let stored = if received.exists() {
        read_tiff(&received)
            .unwrap()
            .iter()
            .map(|p| p.to_fax_page().expect("a fax page"))
            .collect()
    } else {
        Vec::new()
    };
    let call = Call {
        caller: caller_end,
        answerer: answerer_end,
        received: stored,
        relay,
        bye,
        caller_pages: caller_control.pages(),
        answerer_pages: answerer_control.pages(),
    };
    (call, pages)
}

/// The caller finished with T30_ERR_OK and the stored pages are the sent
/// ones, pixel for pixel. On a `clean` line the answerer finished with
/// T30_ERR_OK too and both identities arrived; on a lossy one a lost
/// DCN may leave the answerer to the BYE, and a lost TSI leaves it
/// without the caller's identity (T.30 goes on without).
fn assert_delivered(call: &Call, pages: &[Page], clean: bool) {
    assert_eq!(
        call.caller.completion,
        Some(T30_ERR_OK),
        "caller: {}",
        completion_text(call.caller.completion)
    );
    if clean || !call.bye {
        assert_eq!(
            call.answerer.completion,
            Some(T30_ERR_OK),
            "answerer: {}",
            completion_text(call.answerer.completion)
        );
    }
    assert_eq!(call.caller.stats.pages_tx, 2);
    assert_eq!(call.answerer.stats.pages_rx, 2);
    assert_eq!((call.caller_pages, call.answerer_pages), (2, 2));
    assert_eq!(call.caller.remote_ident, "+1 555 0199");
    if clean {
        assert_eq!(call.answerer.remote_ident, "+1 555 0100");
    }
    assert_eq!(call.received.len(), pages.len(), "page count");
    for (i, (got, want)) in call.received.iter().zip(pages).enumerate() {
        assert!(got == want, "page {} differs: {got:?} vs {want:?}", i + 1);
    }
}

fn completion_text(code: Option<i32>) -> String {
    code.map_or(
        "stopped".into(),
        crate::engine::spandsp::modem::completion_text,
    )
}

#[test]
fn audio_session_pcmu_two_pages_arrive_pixel_for_pixel() {
    let (call, pages) = call(G711::Ulaw, None);
    assert_delivered(&call, &pages, true);
    assert!(call.caller.stats.ecm);
    assert_eq!(call.caller.stats.bit_rate, 14400, "V.17 over clean G.711");
    // A clean line: every packet the answerer sent reached the caller.
    // A frame counts as lost when it misses its turn; on a clean line
    // that happens only when this machine stalls a side past its 60 ms
    // of buffer (a loaded test run), and then the frame still comes,
    // late. So every loss on either side is a late frame, none a missing
    // one.
    assert!(call.caller.packets_sent > 500);
    assert_eq!(call.caller.packets_received, call.answerer.packets_sent);
    for end in [&call.caller, &call.answerer] {
        assert!(end.packets_lost <= end.packets_late, "{end:?}");
    }
}

#[test]
fn audio_session_pcma_two_pages_arrive_pixel_for_pixel() {
    let (call, pages) = call(G711::Alaw, None);
    assert_delivered(&call, &pages, true);
    assert_eq!(call.caller.stats.bit_rate, 14400, "V.17 over clean G.711");
}

/// 40 ms of jitter (reordering), 1% duplicated, no loss: the jitter
/// buffer alone puts it right, at full speed.
#[test]
fn audio_session_jitter_and_reordering_are_absorbed() {
    let imp = Impairment {
        seed: 7,
        max_delay: Duration::from_millis(40),
        drop_per_10k: 0,
        duplicate_per_10k: 100,
        drop_only_after: None,
    };
    let (call, pages) = call(G711::Ulaw, Some(imp));
    let relay = call.relay.unwrap();
    assert!(relay.reordered > 100, "{relay:?}");
    assert!(relay.duplicated > 10, "{relay:?}");
    assert_delivered(&call, &pages, true);
    // 60 ms of buffer over 40 ms of jitter: nothing came too late (a
    // few frames of slack for a busy machine's scheduler; with a depth
    // of 1, 13 frames came too late on one side in a trial run).
    for end in [&call.caller, &call.answerer] {
        assert!(end.packets_lost <= 5, "{end:?}");
    }
    assert_eq!(call.caller.stats.bit_rate, 14400, "{relay:?}");
}

/// Jitter, and 2% of the packets lost in the middle of image data
/// (never in control frames, training or TCF): the jitter buffer orders
/// what comes, concealment keeps the modem in step over the gaps, and
/// ECM asks again for the frames they destroyed (PPR).
#[test]
fn audio_session_ecm_repairs_losses_in_image_data() {
    let imp = Impairment {
        seed: 11,
        max_delay: Duration::from_millis(40),
        drop_per_10k: 200,
        duplicate_per_10k: 50,
        drop_only_after: Some(Duration::from_millis(3500)),
    };
    let (call, pages) = call(G711::Ulaw, Some(imp));
    let relay = call.relay.unwrap();
    assert!(relay.dropped_to_answerer >= 3, "{relay:?}");
    assert!(relay.reordered > 100, "{relay:?}");
    assert!(call.answerer.packets_lost >= 3, "{:?}", call.answerer);
    assert_delivered(&call, &pages, true);
}

/// A session sends its stream from the start (silence or tones), follows
/// the far end to the address its RTP comes from, ignores what is not its
/// audio, and returns within a tick of a stop.
#[test]
fn audio_session_follows_the_far_end_and_stops_within_a_tick() {
    let dir = tempfile::tempdir().unwrap();
    let socket = local();
    let session_addr = socket.local_addr().unwrap();
    // The SDP said: send to `nowhere` (bound, so no ICMP errors).
    let nowhere = local();
    nowhere.set_nonblocking(true).unwrap();
    let far = local();
    far.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let audio = AudioParams {
        law: G711::Alaw,
        payload_type: 8,
        remote: nowhere.local_addr().unwrap(),
    };
    let file = dir.path().join("in.tif");
    let setup = Setup {
        calling: false,
        ident: "x",
        tag: c"stop",
        job: Job::Receive { file: &file },
    };
    let control = Control::default();
    std::thread::scope(|s| {
        let session = s.spawn(|| run(socket, &audio, &setup, &control));
        // Rubbish and comfort noise first: they do not move the stream.
        far.send_to(b"not rtp", session_addr).unwrap();
        let cn = rtp::Sender::with_start(13, 9, 1, 0).packet(&[0x40]);
        far.send_to(&cn, session_addr).unwrap();
        // Then our audio from `far`: the session's RTP turns to `far`.
        let mut tx = rtp::Sender::with_start(8, 9, 100, 0);
        far.send_to(&tx.packet(&[0xD5; 160]), session_addr).unwrap();
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        while got.len() < 10 {
            let (len, from) = far.recv_from(&mut buf).expect("RTP from the session");
            assert_eq!(from, session_addr);
            match rtp::parse(&buf[..len], 8) {
                Incoming::Audio { seq, payload, .. } => {
                    assert_eq!(payload.len(), 160);
                    got.push(seq);
                }
                other => panic!("{other:?}"),
            }
            far.send_to(&tx.packet(&[0xD5; 160]), session_addr).unwrap();
        }
        // Consecutive sequence numbers, one stream.
        for pair in got.windows(2) {
            assert_eq!(pair[1], pair[0].wrapping_add(1));
        }
        // Before the turn, the stream went to `nowhere` (it was sending
        // from the start, on idle).
        let mut sent_before = 0;
        while nowhere.recv_from(&mut buf).is_ok() {
            sent_before += 1;
        }
        assert!(sent_before >= 1);
        let asked = Instant::now();
        control.stop();
        let end = session.join().unwrap().unwrap();
        let took = asked.elapsed();
        // A tick at most, plus the scheduler's slack on a busy machine.
        assert!(took < TICK * 3, "{took:?}");
        assert_eq!(end.completion, None);
        // At least the rubbish, the comfort noise and the first audio
        // were read before the session turned to `far`.
        assert!(end.packets_received >= 3, "{end:?}");
        assert!(end.packets_sent >= 10);
    });
}

/// An extension is dialled in-band first: the far end's DTMF receiver
/// hears the digits from the first packet on, and the fax (CNG) follows.
#[test]
fn audio_session_dials_an_extension_as_dtmf_before_the_fax() {
    use crate::engine::spandsp::dtmf::Detector;
    use crate::engine::spandsp::g711::{Codec, Law};
    let socket = local();
    let far = local();
    far.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let audio = AudioParams {
        law: G711::Ulaw,
        payload_type: 0,
        remote: far.local_addr().unwrap(),
    };
    let setup = Setup {
        calling: true,
        ident: "x",
        tag: c"dtmf",
        job: Job::Send {
            file: Path::new("/nonexistent.tif"),
            first: 1,
            last: None,
            header: None,
        },
    };
    let options = Options {
        dtmf: Some("12,#".into()),
        ..Options::default()
    };
    let control = Control::default();
    std::thread::scope(|s| {
        let session = s.spawn(|| run_with(socket, &audio, &setup, &control, &options));
        let mut codec = Codec::new(Law::Ulaw).unwrap();
        let mut detector = Detector::new().unwrap();
        let mut buf = [0u8; 2048];
        let mut next_audio = || {
            let (len, _) = far.recv_from(&mut buf).expect("RTP from the session");
            let Incoming::Audio { payload, .. } = rtp::parse(&buf[..len], 0) else {
                panic!("not audio");
            };
            let mut samples = [0i16; SAMPLES];
            codec.decode(payload, &mut samples);
            samples
        };
        let first = next_audio();
        assert!(first.iter().any(|&x| x.abs() > 1000), "no tone at once");
        let mut heard = detector.hear(&first);
        let deadline = Instant::now() + Duration::from_secs(10);
        while heard.len() < 3 && Instant::now() < deadline {
            heard.push_str(&detector.hear(&next_audio()));
        }
        assert_eq!(heard, "12#");
        // The tail of silence, then the fax terminal's CNG.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut cng = false;
        while !cng && Instant::now() < deadline {
            cng = next_audio().iter().any(|&x| x.abs() > 1000);
        }
        assert!(cng, "no CNG after the digits");
        control.stop();
        let end = session.join().unwrap().unwrap();
        assert_eq!(end.completion, None);
    });
}

#[test]
fn audio_session_refuses_a_payload_type_above_127() {
    let audio = AudioParams {
        law: G711::Ulaw,
        payload_type: 128,
        remote: "127.0.0.1:9".parse().unwrap(),
    };
    let file = Path::new("/tmp/unused.tif");
    let setup = Setup {
        calling: false,
        ident: "x",
        tag: c"pt",
        job: Job::Receive { file },
    };
    let err = run(local(), &audio, &setup, &Control::default()).unwrap_err();
    assert!(err.to_string().contains("payload type"), "{err}");
}

/// Fill-in keeps T.30's timers running: a caller that hears only gaps
/// gives up after T0, as against silence (no real clock here).
#[test]
fn audio_session_fill_in_runs_the_t30_timers() {
    let setup = Setup {
        calling: true,
        ident: "x",
        tag: c"fillin",
        job: Job::Send {
            file: Path::new("/nonexistent.tif"),
            first: 1,
            last: None,
            header: None,
        },
    };
    let mut terminal = Terminal::new(&setup).unwrap();
    let mut buf = [0i16; SAMPLES];
    let mut ticks = 0u32;
    while terminal.completion().is_none() && ticks < 100 * 50 {
        terminal.tx(&mut buf);
        terminal.fill_in(SAMPLES);
        ticks += 1;
    }
    assert_eq!(terminal.completion(), Some(T30_ERR_T0_EXPIRED));
    // T0 is 60 s: 3000 ticks.
    assert!((2990..=3010).contains(&ticks), "{ticks}");
}

/// Not run by default (minutes of real time, and the outcome is a
/// rate, not a yes or no): calls through random loss anywhere, several
/// at once, printed one line each. `LOSS_RATES` (per 10,000, default
/// `10,20,50`), `LOSS_RUNS` (calls per rate, default 4); run with
/// `cargo nextest run -p faxmta-fax --run-ignored only --no-capture
/// audio_session_random_loss_survey`.
#[test]
#[ignore]
fn audio_session_random_loss_survey() {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let rates: Vec<u32> = env("LOSS_RATES", "10,20,50")
        .split(',')
        .map(|r| r.trim().parse().unwrap())
        .collect();
    let runs: u64 = env("LOSS_RUNS", "4").parse().unwrap();
    let conceal = match env("LOSS_CONCEAL", "repeat").as_str() {
        "fill-in" => Conceal::FillIn,
        _ => Conceal::Repeat,
    };
    let options = Options {
        conceal,
        ..Options::default()
    };
    std::thread::scope(|s| {
        let mut calls = Vec::new();
        for &rate in &rates {
            for seed in 0..runs {
                let options = &options;
                let imp = Impairment {
                    seed: seed * 7919 + 3,
                    max_delay: Duration::from_millis(40),
                    drop_per_10k: rate,
                    duplicate_per_10k: 0,
                    drop_only_after: None,
                };
                calls.push((
                    rate,
                    seed,
                    s.spawn(move || call_with(G711::Ulaw, Some(imp), options)),
                ));
            }
        }
        for (rate, seed, call) in calls {
            let (c, pages) = call.join().unwrap();
            let ok = c.caller.completion == Some(T30_ERR_OK) && c.received == pages;
            eprintln!(
                "loss {rate}/10000 seed {seed} {conceal:?}: {} — caller {}, answerer {}{}, {} pages, {} dropped",
                if ok { "delivered" } else { "FAILED" },
                completion_text(c.caller.completion),
                completion_text(c.answerer.completion),
                if c.bye { " (BYE)" } else { "" },
                c.received.len(),
                c.relay.map_or(0, |r| r.dropped),
            );
        }
    });
}
