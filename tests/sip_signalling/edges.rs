//! RFC 3261's edge cases against the engine, with SIPp as the far end:
//! our CANCEL when a call rings longer than the ring timeout, 183 with
//! early media before the 200, our INVITE retransmitted over UDP while
//! the far end is slow, a T.38 offer refused 488 (called again with
//! audio), the far end's T.38 re-INVITE (taken, or 488 with T.38 off),
//! re-INVITE glare (491 both ways) when we switch an incoming call to
//! T.38, a caller's CANCEL crossing our 200 (no effect), a caller that
//! never ACKs our 200 (the line is freed after 64·T1), an INVITE from an
//! address no trunk has (403) and from a trunk's listed peer, OPTIONS
//! (200), an INVITE without SDP (our offer in the 200, the answer in the
//! ACK), an offer we cannot take (488).

use crate::peers::{PortBlock, Sipp};
use crate::support::*;
use crate::{CALLER, ENGINE, PEER_A, STRANGER};
use faxmta_fax::engine::sip::settings::T38Mode;
use faxmta_fax::engine::sip::SipEngine;
use faxmta_fax::engine::{FaxEngine, Reception, SendResult};
use faxmta_fax::live::{LiveBoard, LiveProgress, LiveState};
use std::time::{Duration, Instant};

/// An engine whose one trunk is `proxy`, placing a one-page fax there.
async fn call_to(proxy: &str, ring: Duration, job: &str) -> (SendResult, Duration) {
    let (result, took, _) = call_to_watched(proxy, ring, job).await;
    (result, took)
}

/// [`call_to`], the call watched on a live board: also every change the
/// board saw, in order.
async fn call_to_watched(
    proxy: &str,
    ring: Duration,
    job: &str,
) -> (SendResult, Duration, Vec<LiveProgress>) {
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let mut s = settings(
        engine_addr(ENGINE),
        &ports,
        dir.path(),
        vec![trunk("t", proxy)],
    );
    s.ring_timeout = ring;
    let engine = SipEngine::start(s).await.unwrap();
    let started = Instant::now();
    let board = LiveBoard::default();
    let mut changes = board.changes();
    let mut watched = request(job, "4940123", &doc, "+49 30 999");
    watched.progress = Some(board.open(LiveProgress::queued(job, "+494940123"), &[]));
    let result = tokio::time::timeout(Duration::from_secs(40), engine.send(watched))
        .await
        .unwrap_or_else(|_| panic!("{job}: the call took too long:\n{}", logs()));
    let took = started.elapsed();
    let mut seen = Vec::new();
    while let Ok(p) = changes.try_recv() {
        seen.push(p);
    }
    (result, took, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_ringing_past_our_ring_timeout_is_cancelled_and_unanswered() {
    capture_logs();
    let uas = blocking(|| Sipp::start("uas_ring.xml", PEER_A, None, &[]));
    let (result, took, seen) = call_to_watched(&uas.addr(), Duration::from_secs(2), "ring-1").await;
    let run = blocking(|| uas.wait(10));
    // The live board showed it dialled, then ringing (the UAS's 180).
    let states: Vec<(LiveState, String)> = seen.into_iter().map(|p| (p.state, p.detail)).collect();
    assert_eq!(
        states,
        [
            (LiveState::Queued, String::new()),
            (LiveState::Dialling, String::new()),
            (LiveState::Ringing, "SIP 180 Ringing".to_string()),
        ],
        "{run}"
    );
    assert!(
        matches!(&result, SendResult::NoAnswer { detail: Some(d) } if d.contains("SIP 487")),
        "{result:?}"
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // The UAS took our CANCEL, ended the INVITE with 487 and got its ACK.
    assert!(run.ok(), "{run}");
    assert!(run.logs.contains("ended by CANCEL"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_media_183_before_the_200_still_makes_the_call() {
    capture_logs();
    let uas = blocking(|| Sipp::start("uas_early_media_bye.xml", PEER_A, None, &[]));
    let (result, _) = call_to(&uas.addr(), Duration::from_secs(10), "early-1").await;
    let run = blocking(|| uas.wait(10));
    // The 183 was not taken for the answer: we ACKed the 200, the far
    // end's BYE was answered, and the call ended as one that was up.
    assert!(run.ok(), "{run}\n{}", logs());
    assert!(run.logs.contains("BYE answered"), "{run}");
    assert!(
        received_messages(&run.messages)
            .iter()
            .any(|(start, _)| start.starts_with("ACK ")),
        "{run}"
    );
    assert!(
        matches!(&result, SendResult::Error { retry: true, reason } if reason.contains("hung up")),
        "{result:?}\n{}",
        logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_invite_is_retransmitted_over_udp_until_a_slow_far_end_answers() {
    capture_logs();
    let uas = blocking(|| Sipp::start("uas_slow_bye.xml", PEER_A, None, &[]));
    let (result, _) = call_to(&uas.addr(), Duration::from_secs(10), "slow-1").await;
    let run = blocking(|| uas.wait(10));
    assert!(run.ok(), "{run}\n{}", logs());
    // Timer A: again at 0.5 s and 1.5 s (before the 180 at 1.5 s).
    assert!(invites(&run.messages).len() >= 2, "{run}");
    assert!(run.logs.contains("BYE answered"), "{run}");
    assert!(
        matches!(&result, SendResult::Error { retry: true, reason } if reason.contains("hung up")),
        "{result:?}"
    );
}

/// An engine that takes calls from `peer` (its one trunk's address).
async fn answering(peer: &str, dir: &std::path::Path, ports: &PortBlock) -> (SipEngine, String) {
    let listen = engine_addr(ENGINE);
    let proxy = format!("{peer}:5999");
    let engine = SipEngine::start(settings(listen, ports, dir, vec![trunk("in", &proxy)]))
        .await
        .unwrap();
    (engine, listen.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_t38_reinvite_meeting_the_callers_ends_491_both_ways_then_switches() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let (engine, addr) = answering(PEER_A, dir.path(), &ports).await;
    // The caller meets our T.38 re-INVITE with its own: we answer it 491
    // (ours is pending); it answers ours 491; we try again after our
    // back-off (RFC 3261 §14.1) and it takes T.38.
    let run = blocking(|| Sipp::run("uac_glare.xml", PEER_A, Some(&addr), &["-s", "4940555"], 30));
    assert!(run.ok(), "{run}\n{}", logs());
    assert!(run.logs.contains("their re-INVITE: m=image "), "{run}");
    assert!(run.logs.contains("our re-INVITE: 491"), "{run}");
    assert!(
        run.logs.contains("their re-INVITE again: m=image "),
        "{run}"
    );
    // No fax came (SIPp has none): the reception is handed out failed.
    let fax = tokio::time::timeout(Duration::from_secs(15), engine.receive())
        .await
        .expect("no reception handed out")
        .expect("engine stopped");
    assert!(matches!(fax.status, Reception::Failed { .. }), "{fax:?}");
    assert_eq!(fax.called.as_deref(), Some("4940555"));
    assert_eq!(fax.caller.as_deref(), Some("4930111"));
    engine.acknowledge(&fax).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_from_an_address_no_trunk_has_is_refused_and_options_answered() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let listen = engine_addr(ENGINE);
    // The trunk's proxy is PEER_A; CALLER is one of its listed peers.
    let mut t = trunk("in", &format!("{PEER_A}:5999"));
    t.peers = vec![CALLER.parse().unwrap()];
    let mut s = settings(listen, &ports, dir.path(), vec![t]);
    s.t38 = T38Mode::Off; // no re-INVITE: the SIPp callers do not take one
    let engine = SipEngine::start(s).await.unwrap();
    let addr = listen.to_string();
    let run = blocking(|| {
        Sipp::run(
            "uac_audio.xml",
            STRANGER,
            Some(&addr),
            &["-s", "4940555"],
            20,
        )
    });
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.errors.contains("SIP/2.0 403"), "{run}");
    assert!(
        logs().contains(&format!("INVITE from {STRANGER}: not a trunk's address")),
        "{}",
        logs()
    );
    assert_eq!(engine.trunks()[0].calls_in, 0);
    // A listed peer of the trunk is let in.
    let run = blocking(|| Sipp::run("uac_audio.xml", CALLER, Some(&addr), &["-s", "4940556"], 20));
    assert!(run.ok(), "{run}");
    assert_eq!(engine.trunks()[0].calls_in, 1);
    let fax = tokio::time::timeout(Duration::from_secs(15), engine.receive())
        .await
        .expect("no reception handed out")
        .expect("engine stopped");
    assert_eq!(fax.called.as_deref(), Some("4940556"));
    engine.acknowledge(&fax).await;
    // OPTIONS (a keep-alive or a probe) is answered, from anyone.
    let run = blocking(|| {
        Sipp::run(
            "uac_options.xml",
            STRANGER,
            Some(&addr),
            &["-s", "4940555"],
            20,
        )
    });
    assert!(run.ok(), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_crossing_our_200_leaves_the_answered_call_up() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let listen = engine_addr(ENGINE);
    let mut s = settings(
        listen,
        &ports,
        dir.path(),
        vec![trunk("in", &format!("{PEER_A}:5999"))],
    );
    s.t38 = T38Mode::Off; // no re-INVITE: the SIPp caller does not take one
    let engine = SipEngine::start(s).await.unwrap();
    let addr = listen.to_string();
    let run = blocking(|| {
        Sipp::run(
            "uac_cancel_after_200.xml",
            PEER_A,
            Some(&addr),
            &["-s", "4940555"],
            20,
        )
    });
    // RFC 3261 §9.2: a CANCEL after the final response has no effect:
    // 200 to the CANCEL, the call stays up until the caller's BYE.
    assert!(run.ok(), "{run}\n{}", logs());
    assert!(run.logs.contains("BYE answered"), "{run}");
    let fax = tokio::time::timeout(Duration::from_secs(15), engine.receive())
        .await
        .expect("no reception handed out")
        .expect("engine stopped");
    assert!(matches!(fax.status, Reception::Failed { .. }), "{fax:?}");
    assert!(
        until(5, || engine.lines_busy() == 0).await,
        "the line stays taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_never_acks_our_200_frees_the_line() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let listen = engine_addr(ENGINE);
    let mut t = trunk("in", &format!("{PEER_A}:5999"));
    t.max_calls = 1;
    let mut s = settings(listen, &ports, dir.path(), vec![t]);
    s.t38 = T38Mode::Off;
    let engine = SipEngine::start(s).await.unwrap();
    let addr = listen.to_string();
    let call = |number: &'static str| {
        let addr = addr.clone();
        blocking(move || {
            Sipp::run(
                "uac_never_ack.xml",
                PEER_A,
                Some(&addr),
                &["-s", number],
                20,
            )
        })
    };
    let run = call("4940555");
    assert!(run.ok(), "{run}");
    assert_eq!(engine.lines_busy(), 1);
    // 64·T1 = 32 s without ACK: the call is given up and its line free
    // again: the next caller gets a 200, not a 486.
    assert!(
        until(45, || engine.lines_busy() == 0).await,
        "the line stays taken:\n{}",
        logs()
    );
    assert!(
        logs().contains("incoming call ended before it was confirmed"),
        "{}",
        logs()
    );
    let next = call("4940666");
    assert!(next.ok(), "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_t38_offer_refused_488_is_called_again_with_audio() {
    capture_logs();
    let uas = blocking(|| Sipp::start("uas_488_t38.xml", PEER_A, None, &["-m", "2"]));
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let mut s = settings(
        engine_addr(ENGINE),
        &ports,
        dir.path(),
        vec![trunk("t", &uas.addr())],
    );
    s.t38 = T38Mode::Offer;
    let engine = SipEngine::start(s).await.unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        engine.send(request("offer-1", "4940123", &doc, "+49 30 999")),
    )
    .await
    .unwrap();
    let run = blocking(|| uas.wait(10));
    assert!(run.ok(), "{run}\n{}", logs());
    // T.38 first, refused; then audio over the same trunk, answered.
    let refused = run
        .logs
        .find("refused: m=image")
        .unwrap_or_else(|| panic!("{run}"));
    let audio = run
        .logs
        .find("offer: m=audio")
        .unwrap_or_else(|| panic!("{run}"));
    assert!(refused < audio, "{run}");
    assert!(run.logs.contains("BYE answered"), "{run}");
    assert!(
        matches!(&result, SendResult::Error { retry: true, reason } if reason.contains("hung up")),
        "{result:?}"
    );
    assert_eq!(engine.trunks()[0].calls_out, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_far_ends_t38_reinvite_is_taken_or_refused_488_as_configured() {
    capture_logs();
    for (mode, said) in [
        (T38Mode::Reinvite, "re-INVITE answer: m=image "),
        (T38Mode::Off, "re-INVITE refused: 488"),
    ] {
        let uas = blocking(|| Sipp::start("uas_reinvite_t38_bye.xml", PEER_A, None, &[]));
        let dir = tempfile::tempdir().unwrap();
        let doc = document(dir.path());
        let ports = PortBlock::take();
        let mut s = settings(
            engine_addr(ENGINE),
            &ports,
            dir.path(),
            vec![trunk("t", &uas.addr())],
        );
        s.t38 = mode;
        let engine = SipEngine::start(s).await.unwrap();
        let job = format!("reinvite-{mode:?}");
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            engine.send(request(&job, "4940123", &doc, "+49 30 999")),
        )
        .await
        .unwrap();
        let run = blocking(|| uas.wait(10));
        // Either way the call stays up until the far end's BYE.
        assert!(run.ok(), "{mode:?}: {run}\n{}", logs());
        assert!(run.logs.contains(said), "{mode:?}: {run}");
        assert!(run.logs.contains("BYE answered"), "{mode:?}: {run}");
        assert!(
            matches!(&result, SendResult::Error { retry: true, reason } if reason.contains("hung up")),
            "{mode:?}: {result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_without_sdp_gets_our_offer_and_the_answer_comes_in_the_ack() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let listen = engine_addr(ENGINE);
    let mut s = settings(
        listen,
        &ports,
        dir.path(),
        vec![trunk("in", &format!("{PEER_A}:5999"))],
    );
    s.t38 = T38Mode::Off; // no re-INVITE: the SIPp caller does not take one
    let engine = SipEngine::start(s).await.unwrap();
    let addr = listen.to_string();
    // A delayed offer (RFC 3261 §13.2.1), as some PBXs send.
    let run = blocking(|| {
        Sipp::run(
            "uac_late_offer.xml",
            PEER_A,
            Some(&addr),
            &["-s", "4940555"],
            20,
        )
    });
    assert!(run.ok(), "{run}\n{}", logs());
    assert!(run.logs.contains("offer: m=audio "), "{run}");
    assert!(run.logs.contains("BYE answered"), "{run}");
    assert!(
        logs().contains("incoming call answered: G.711 µ-law"),
        "{}",
        logs()
    );
    let fax = tokio::time::timeout(Duration::from_secs(15), engine.receive())
        .await
        .expect("no reception handed out")
        .expect("engine stopped");
    assert_eq!(fax.called.as_deref(), Some("4940555"));
    engine.acknowledge(&fax).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_without_a_codec_we_have_is_refused_488() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let (engine, addr) = answering(PEER_A, dir.path(), &ports).await;
    let run = blocking(|| Sipp::run("uac_g722.xml", PEER_A, Some(&addr), &["-s", "4940555"], 20));
    assert!(run.ok(), "{run}\n{}", logs());
    assert!(run.logs.contains("refused: 488"), "{run}");
    assert!(logs().contains("incoming call refused (488)"), "{}", logs());
    assert!(until(5, || engine.lines_busy() == 0).await);
}
