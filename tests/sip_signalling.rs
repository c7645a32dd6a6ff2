//! The SIP engine's signalling against SIP software no one here wrote:
//! the engine (`SipEngine`, in this test process) registers to a private
//! Kamailio with digest and again before the granted lifetime ends, is
//! refused (403) with a wrong password and backs off, unregisters when
//! stopped, gets its calls over TCP when it registered over TCP; its
//! calls through Kamailio's routing script end busy, bad number, no
//! answer or temporarily failed as the fax schedule needs them, and a
//! caller that is no trunk answers Kamailio's 407 with digest. SIPp
//! scenarios (tests/peers/sipp/) are the far end for the rest: trunk
//! failover, `max_calls` and the caller id (sip_signalling/lines.rs),
//! and the edge cases of RFC 3261 (sip_signalling/edges.rs). The fax
//! itself is not run here (a SIPp UAS has no fax modem): answered calls
//! are hung up by the far end at once. tests/sip.rs runs whole faxes
//! between two faxmta.

mod common;
#[path = "sip_signalling/edges.rs"]
mod edges;
#[path = "sip_signalling/lines.rs"]
mod lines;
mod peers;
#[path = "sip_signalling/support.rs"]
mod support;

use faxmta_fax::engine::sip::SipEngine;
use faxmta_fax::engine::{FaxEngine, SendResult};
use peers::kamailio::{BUSY, NOT_FOUND, NO_ANSWER, SERVICE_UNAVAILABLE, UNAVAILABLE};
use peers::*;
use std::time::{Duration, Instant};
use support::*;

/// The engine under test, Kamailio, SIPp peers (the trunks' far ends), a
/// caller no trunk knows, a second engine.
pub const ENGINE: &str = "127.0.1.1";
pub const KAM: &str = "127.0.1.2";
pub const PEER_A: &str = "127.0.1.3";
pub const PEER_B: &str = "127.0.1.4";
pub const STRANGER: &str = "127.0.1.5";
pub const CALLER: &str = "127.0.1.6";

/// A trunk that registers `fax` at Kamailio with `password`.
fn registering(k: &Kamailio, password: &str) -> faxmta_fax::engine::sip::settings::Trunk {
    let mut t = trunk("kam", &k.addr());
    t.domain = k.domain.clone();
    t.register = true;
    t.user = "fax".into();
    t.password = Some(password.into());
    t.expires = Duration::from_secs(60);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_registers_with_digest_and_again_before_the_granted_lifetime_ends() {
    capture_logs();
    let k = blocking(|| {
        Kamailio::start(
            KAM,
            &KamailioSetup {
                users: &[("fax", "faxsecret")],
                max_expires: Some(5),
                ..Default::default()
            },
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let engine = SipEngine::start(settings(
        engine_addr(ENGINE),
        &ports,
        dir.path(),
        vec![registering(&k, "faxsecret")],
    ))
    .await
    .unwrap();
    assert!(
        until(10, || engine.registered("kam")).await,
        "not registered:\n{}\n{}",
        k.log(),
        logs()
    );
    let report = engine.trunks();
    assert_eq!(report[0].registered, Some(true), "{report:?}");
    let registered = || k.log().matches("REGISTERED fax").count();
    assert!(registered() >= 1, "{}", k.log());
    // The digest came after a challenge (Kamailio logs the REGISTER it
    // refused without credentials).
    assert!(k.log().contains("REGISTER of fax refused"), "{}", k.log());
    // 60 s asked, 5 granted: the engine registers again at 75 % of 5 s,
    // not of 60 (two more within 12 s), and holds the registration.
    let first = registered();
    assert!(
        until(12, || registered() >= first + 2).await,
        "no re-registration within 12 s ({} REGISTERED):\n{}\n{}",
        registered(),
        k.log(),
        logs()
    );
    assert!(engine.registered("kam"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_refused_403_is_not_held_and_retried_with_back_off() {
    capture_logs();
    let k = blocking(|| {
        Kamailio::start(
            KAM,
            &KamailioSetup {
                users: &[("fax", "faxsecret")],
                ..Default::default()
            },
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let engine = SipEngine::start(settings(
        engine_addr(ENGINE),
        &ports,
        dir.path(),
        vec![registering(&k, "not-the-password")],
    ))
    .await
    .unwrap();
    // Each attempt: REGISTER, 401, REGISTER with digest, 403 Forbidden
    // (Kamailio logs the digest's check failing with -2, a wrong
    // password). The times at which the count of attempts grew.
    let attempts = || k.log().matches("REGISTER of fax refused (-2)").count();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut last = 0;
    let done = until(15, || {
        assert!(
            !engine.registered("kam"),
            "registered with a wrong password"
        );
        let now = attempts();
        if now > last {
            seen.push((now, started.elapsed()));
            last = now;
        }
        now >= 3
    })
    .await;
    assert!(done, "fewer than 3 attempts in 15 s: {seen:?}\n{}", k.log());
    assert!(
        logs().contains(&format!("registration refused by {}: 403", k.addr())),
        "{}",
        logs()
    );
    assert_eq!(engine.trunks()[0].registered, Some(false));
    // Backed off: 1 s after the first refusal, 2 s after the second.
    let at = |n: usize| {
        seen.iter()
            .find(|(count, _)| *count >= n)
            .map(|(_, t)| *t)
            .unwrap()
    };
    let (first, second) = (at(2) - at(1), at(3) - at(2));
    assert!(first >= Duration::from_millis(800), "{seen:?}");
    assert!(second >= Duration::from_millis(1700), "{seen:?}");
    assert!(second > first, "no back-off: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_from_kamailios_routing_script_become_fax_outcomes() {
    capture_logs();
    let k = blocking(|| {
        Kamailio::start(
            KAM,
            &KamailioSetup {
                trunks: &[ENGINE],
                no_answer_ms: 1000,
                ..Default::default()
            },
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let mut t = trunk("kam", &k.addr());
    t.dial = "sip:{number}@trunk.test".into();
    let engine = SipEngine::start(settings(engine_addr(ENGINE), &ports, dir.path(), vec![t]))
        .await
        .unwrap();
    let send = |prefix: &str| {
        let req = request(
            &format!("out-{prefix}"),
            &format!("{prefix}5551234"),
            &doc,
            "+49 30 999",
        );
        tokio::time::timeout(Duration::from_secs(20), engine.send(req))
    };
    let busy = send(BUSY).await.unwrap();
    assert!(
        matches!(&busy, SendResult::Busy { detail: Some(d) } if d.contains("SIP 486")),
        "{busy:?}"
    );
    let bad = send(NOT_FOUND).await.unwrap();
    assert!(
        matches!(&bad, SendResult::Error { retry: false, reason } if reason.contains("bad number") && reason.contains("SIP 404")),
        "{bad:?}"
    );
    let away = send(UNAVAILABLE).await.unwrap();
    assert!(
        matches!(&away, SendResult::NoAnswer { detail: Some(d) } if d.contains("SIP 480")),
        "{away:?}"
    );
    let down = send(SERVICE_UNAVAILABLE).await.unwrap();
    assert!(
        matches!(&down, SendResult::Error { retry: true, reason } if reason.contains("SIP 503")),
        "{down:?}"
    );
    // Ringing, then Kamailio's own 408 after 1 s (our ring timeout is 10).
    let started = Instant::now();
    let unanswered = send(NO_ANSWER).await.unwrap();
    assert!(
        matches!(&unanswered, SendResult::NoAnswer { detail: Some(d) } if d.contains("SIP 408")),
        "{unanswered:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "we gave up first"
    );
    // Each went to the number dialled, over the trunk, without a
    // challenge (a trunk peer by IP).
    for prefix in [BUSY, NOT_FOUND, UNAVAILABLE, SERVICE_UNAVAILABLE, NO_ANSWER] {
        let ruri = format!("REQ INVITE sip:{prefix}5551234@trunk.test from {ENGINE}");
        assert!(k.log().contains(&ruri), "{ruri}:\n{}", k.log());
    }
    assert!(
        !k.log().contains("INVITE from 127.0.1.1 refused"),
        "{}",
        k.log()
    );
    // Counted per trunk by cause.
    let report = &engine.trunks()[0];
    assert_eq!(report.calls_out, 5, "{report:?}");
    let cause = |c: &str| {
        report
            .failures
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, n)| *n)
    };
    assert_eq!(cause("busy"), Some(1), "{report:?}");
    assert_eq!(cause("no-answer"), Some(2), "{report:?}");
    assert_eq!(cause("rejected"), Some(1), "{report:?}");
    assert_eq!(cause("error"), Some(1), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_is_no_trunk_answers_kamailios_challenge_with_digest() {
    capture_logs();
    let k = blocking(|| {
        Kamailio::start(
            KAM,
            &KamailioSetup {
                users: &[("fax", "faxsecret")],
                ..Default::default()
            },
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let account = |password: &str| {
        let mut t = trunk("kam", &k.addr());
        t.dial = "sip:{number}@trunk.test".into();
        t.user = "fax".into();
        t.password = Some(password.into());
        t
    };
    let engine = SipEngine::start(settings(
        engine_addr(CALLER),
        &ports,
        dir.path(),
        vec![account("faxsecret")],
    ))
    .await
    .unwrap();
    // The busy route is behind the authentication: a 486 shows the
    // digest was taken.
    let req = request("auth-1", &format!("{BUSY}5551234"), &doc, "+49 30 999");
    let result = tokio::time::timeout(Duration::from_secs(20), engine.send(req))
        .await
        .unwrap();
    assert!(
        matches!(&result, SendResult::Busy { detail: Some(d) } if d.contains("SIP 486")),
        "{result:?}\n{}",
        k.log()
    );
    // Challenged first (407), then let through.
    assert!(
        k.log().contains(&format!("INVITE from {CALLER} refused")),
        "no challenge: {}",
        k.log()
    );
    drop(engine);

    // A wrong password: 403, the trunk's trouble (another trunk may do).
    let ports = PortBlock::take();
    let engine = SipEngine::start(settings(
        engine_addr(CALLER),
        &ports,
        dir.path(),
        vec![account("wrong")],
    ))
    .await
    .unwrap();
    let req = request("auth-2", &format!("{BUSY}5551234"), &doc, "+49 30 999");
    let result = tokio::time::timeout(Duration::from_secs(20), engine.send(req))
        .await
        .unwrap();
    assert!(
        matches!(&result, SendResult::Error { retry: true, reason } if reason.contains("SIP 403")),
        "{result:?}\n{}",
        k.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_engine_removes_its_registration() {
    capture_logs();
    let k = blocking(|| {
        Kamailio::start(
            KAM,
            &KamailioSetup {
                users: &[("fax", "faxsecret")],
                trunks: &[PEER_A],
                ..Default::default()
            },
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let engine = SipEngine::start(settings(
        engine_addr(ENGINE),
        &ports,
        dir.path(),
        vec![registering(&k, "faxsecret")],
    ))
    .await
    .unwrap();
    assert!(until(10, || engine.registered("kam")).await, "{}", k.log());
    drop(engine);
    // Unregistered (expires=0): Kamailio has no contact for "fax" any
    // more, so a call to it finds no route (404) instead of a dead
    // address. (The next refresh would be 45 s away: the REGISTERs after
    // the stop are the unregistration, challenged and with digest.)
    let gone = until(10, || k.log().matches("REQ REGISTER").count() >= 4).await;
    let run = blocking(|| Sipp::run("uac_audio.xml", PEER_A, Some(&k.addr()), &["-s", "fax"], 20));
    assert!(gone, "no REGISTER after the stop:\n{}\n{}", k.log(), logs());
    assert!(
        run.errors.contains("SIP/2.0 404 No Route"),
        "{run}\n{}",
        k.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_registered_over_tcp_gets_its_calls_over_tcp() {
    capture_logs();
    let k = blocking(|| {
        Kamailio::start(
            KAM,
            &KamailioSetup {
                users: &[("fax", "faxsecret")],
                trunks: &[PEER_A],
                ..Default::default()
            },
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let mut t = registering(&k, "faxsecret");
    t.transport = faxmta_fax::engine::sip::settings::Transport::Tcp;
    let mut s = settings(engine_addr(ENGINE), &ports, dir.path(), vec![t]);
    s.t38 = faxmta_fax::engine::sip::settings::T38Mode::Off;
    let engine = SipEngine::start(s).await.unwrap();
    assert!(until(10, || engine.registered("kam")).await, "{}", k.log());
    // Our Contact says TCP, so Kamailio brings the call over TCP (without
    // it, to the TCP connection's source port over UDP: nobody there).
    let run = blocking(|| Sipp::run("uac_audio.xml", PEER_A, Some(&k.addr()), &["-s", "fax"], 20));
    assert!(run.ok(), "{run}\n{}\n{}", k.log(), logs());
    // The registrar saw the REGISTER come over our TCP connection (from
    // its own source port) and sends the call back over it.
    let routed = k
        .log()
        .lines()
        .find(|l| l.contains("to registered fax at sip:fax@"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        routed.to_lowercase().contains(";transport=tcp"),
        "{}",
        k.log()
    );
    let fax = tokio::time::timeout(Duration::from_secs(15), engine.receive())
        .await
        .expect("no reception handed out")
        .expect("engine stopped");
    assert_eq!(fax.called.as_deref(), Some("fax"));
    engine.acknowledge(&fax).await;
}
