//! Lines: trunks tried in order (a trunk's refusal fails over to the
//! next, the number's busy does not), `max_calls` per trunk, and the
//! caller id (the From user) made from the trunk's template and the
//! request's TSI; a trunk over TCP (calls both ways, registration); a trunk
//! that sends nothing (failover after Timer B); `max_calls` for incoming
//! calls. The far ends are SIPp, one per trunk.

use crate::peers::{PortBlock, Sipp};
use crate::support::*;
use crate::{ENGINE, PEER_A, PEER_B};
use faxmta_fax::engine::sip::settings::{T38Mode, Transport};
use faxmta_fax::engine::sip::SipEngine;
use faxmta_fax::engine::{FaxEngine, Reception, SendResult};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_answering_503_fails_over_to_the_next_which_carries_the_call() {
    capture_logs();
    let first = blocking(|| Sipp::start("uas_503.xml", PEER_A, None, &[]));
    let second = blocking(|| Sipp::start("uas_audio_bye.xml", PEER_B, None, &[]));
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let trunks = vec![
        trunk("first", &first.addr()),
        trunk("second", &second.addr()),
    ];
    let engine = SipEngine::start(settings(engine_addr(ENGINE), &ports, dir.path(), trunks))
        .await
        .unwrap();
    let req = request("failover-1", "4940123", &doc, "+49 30 999");
    let result = tokio::time::timeout(Duration::from_secs(30), engine.send(req))
        .await
        .unwrap();
    let first = blocking(|| first.wait(10));
    let second = blocking(|| second.wait(10));
    assert!(first.ok(), "{first}");
    assert!(
        second.ok(),
        "the second trunk's call did not complete: {second}"
    );
    assert!(second.logs.contains("offer: m=audio"), "{second}");
    // The second trunk's answered call is the result: the far end hung up
    // without fax, not the first trunk's 503.
    assert!(
        matches!(&result, SendResult::Error { retry: true, reason } if !reason.contains("503")),
        "{result:?}\n{}",
        logs()
    );
    // In order: the 503 over "first", then the call over "second".
    let lines = job_lines("failover-1");
    let over = |name: &str| {
        lines
            .iter()
            .position(|l| l.contains("fax call over SIP") && l.contains(&format!("trunk={name}")))
            .unwrap_or_else(|| panic!("no call over {name}:\n{}", logs()))
    };
    assert!(over("first") < over("second"), "{lines:#?}");
    assert!(lines[over("first")].contains("SIP 503"), "{lines:#?}");
    let report = engine.trunks();
    assert_eq!(
        (report[0].calls_out, report[1].calls_out),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(report[0].failures, vec![("rejected", 1)], "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_number_does_not_fail_over_and_its_q850_cause_is_reported() {
    capture_logs();
    let first = blocking(|| Sipp::start("uas_486_q850.xml", PEER_A, None, &[]));
    let second = blocking(|| Sipp::start("uas_audio_bye.xml", PEER_B, None, &[]));
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let trunks = vec![
        trunk("first", &first.addr()),
        trunk("second", &second.addr()),
    ];
    let engine = SipEngine::start(settings(engine_addr(ENGINE), &ports, dir.path(), trunks))
        .await
        .unwrap();
    let req = request("busy-1", "4940123", &doc, "+49 30 999");
    let result = tokio::time::timeout(Duration::from_secs(30), engine.send(req))
        .await
        .unwrap();
    assert!(
        matches!(&result, SendResult::Busy { detail: Some(d) } if d == "SIP 486 Busy Here (Q.850 cause 17)"),
        "{result:?}"
    );
    let first = blocking(|| first.wait(10));
    assert!(first.ok(), "{first}");
    assert!(
        invites(&second.messages()).is_empty(),
        "{}",
        second.messages()
    );
    let report = engine.trunks();
    assert_eq!(
        (report[0].calls_out, report[1].calls_out),
        (1, 0),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_with_every_line_busy_leaves_the_next_call_to_the_next_trunk() {
    capture_logs();
    // Trunk 1 (one line) rings until our ring timeout; meanwhile a second
    // send goes over trunk 2.
    let ringing = blocking(|| Sipp::start("uas_ring.xml", PEER_A, None, &[]));
    let other = blocking(|| Sipp::start("uas_486.xml", PEER_B, None, &[]));
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let mut one = trunk("one-line", &ringing.addr());
    one.max_calls = 1;
    let trunks = vec![one, trunk("other", &other.addr())];
    let mut s = settings(engine_addr(ENGINE), &ports, dir.path(), trunks);
    s.ring_timeout = Duration::from_secs(3);
    let engine = std::sync::Arc::new(SipEngine::start(s).await.unwrap());
    let first = {
        let (engine, req) = (
            engine.clone(),
            request("lines-1", "4940111", &doc, "+49 30 999"),
        );
        tokio::spawn(async move { engine.send(req).await })
    };
    assert!(
        until(10, || !invites(&ringing.messages()).is_empty()).await,
        "{}",
        ringing.messages()
    );
    assert_eq!(engine.lines_busy(), 1);
    let req = request("lines-2", "4940222", &doc, "+49 30 999");
    let second = tokio::time::timeout(Duration::from_secs(20), engine.send(req))
        .await
        .unwrap();
    assert!(matches!(second, SendResult::Busy { .. }), "{second:?}");
    let first = tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first, SendResult::NoAnswer { detail: Some(d) } if d.contains("487")),
        "{first:?}"
    );
    let ringing = blocking(|| ringing.wait(10));
    let other = blocking(|| other.wait(10));
    assert!(ringing.ok(), "{ringing}");
    assert!(other.ok(), "{other}");
    // Each peer saw the one call meant for it.
    let numbers = |run: &crate::peers::SippRun| {
        invites(&run.messages)
            .iter()
            .filter_map(|m| {
                let ruri = m.split("INVITE sip:").nth(1)?;
                ruri.split('@').next().map(str::to_owned)
            })
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        numbers(&ringing),
        ["4940111".to_string()].into(),
        "{ringing}"
    );
    assert_eq!(numbers(&other), ["4940222".to_string()].into(), "{other}");
    let report = engine.trunks();
    assert_eq!(
        (report[0].calls_out, report[1].calls_out),
        (1, 1),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_id_is_the_trunks_template_filled_with_the_requests_tsi() {
    capture_logs();
    let port = crate::peers::sip_port(PEER_A);
    let proxy = format!("{PEER_A}:{port}");
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let mut t = trunk("cid", &proxy);
    t.user = "4940999".into();
    t.caller_id = "{tsi}".into();
    let engine = SipEngine::start(settings(engine_addr(ENGINE), &ports, dir.path(), vec![t]))
        .await
        .unwrap();
    // Two users' TSIs, and one without a TSI (the account then).
    for (job, tsi, user) in [
        ("cid-1", "+49 30 1111", "+49301111"),
        ("cid-2", "+1 (555) 0100", "+15550100"),
        ("cid-3", "", "4940999"),
    ] {
        let uas = blocking(|| Sipp::start_on("uas_486.xml", PEER_A, port, None, &[]));
        let req = request(job, "4940123", &doc, tsi);
        let result = tokio::time::timeout(Duration::from_secs(20), engine.send(req))
            .await
            .unwrap();
        assert!(matches!(result, SendResult::Busy { .. }), "{result:?}");
        let run = blocking(|| uas.wait(10));
        assert!(run.ok(), "{run}");
        let invite = invites(&run.messages)
            .pop()
            .unwrap_or_else(|| panic!("{run}"));
        let from = invite
            .lines()
            .find(|l| l.starts_with("From:"))
            .unwrap_or_else(|| panic!("{invite}"));
        assert!(
            from.contains(&format!("<sip:{user}@trunk.test>")),
            "{tsi:?} → {from}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_over_tcp_gets_its_calls_over_tcp() {
    capture_logs();
    // SIPp listening on TCP only: an INVITE over UDP would find no one.
    let uas = blocking(|| Sipp::start("uas_486.xml", PEER_A, None, &["-t", "t1"]));
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let mut t = trunk("tcp", &uas.addr());
    t.transport = Transport::Tcp;
    t.dial = format!("sip:{{number}}@{};transport=tcp", uas.addr());
    let engine = SipEngine::start(settings(engine_addr(ENGINE), &ports, dir.path(), vec![t]))
        .await
        .unwrap();
    let req = request("tcp-1", "4940123", &doc, "+49 30 999");
    let result = tokio::time::timeout(Duration::from_secs(40), engine.send(req))
        .await
        .unwrap();
    let run = blocking(|| uas.wait(10));
    assert!(
        matches!(&result, SendResult::Busy { detail: Some(d) } if d.contains("SIP 486")),
        "{result:?}\n{run}"
    );
    assert!(run.ok(), "{run}");
    assert!(run.messages.contains("TCP message received"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_call_beyond_the_trunks_max_calls_is_refused_busy() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let listen = engine_addr(ENGINE);
    let mut t = trunk("in", &format!("{PEER_A}:5999"));
    t.max_calls = 1;
    let mut s = settings(listen, &ports, dir.path(), vec![t]);
    s.t38 = T38Mode::Off; // no re-INVITE: the SIPp callers do not take one
    let engine = SipEngine::start(s).await.unwrap();
    let addr = listen.to_string();
    // The first caller holds the line: it ACKs our 200 only after 2 s
    // (we retransmit the 200 meanwhile, RFC 3261 §13.3.1.4).
    let first = blocking(|| Sipp::start("uac_no_ack.xml", PEER_A, Some(&addr), &["-s", "4940111"]));
    assert!(
        until(10, || first.messages().contains("SIP/2.0 200")).await,
        "{}",
        first.messages()
    );
    let second =
        blocking(|| Sipp::run("uac_audio.xml", PEER_A, Some(&addr), &["-s", "4940222"], 20));
    assert!(second.errors.contains("SIP/2.0 486"), "{second}");
    let first = blocking(|| first.wait(20));
    assert!(first.ok(), "{first}");
    let oks = received_messages(&first.messages)
        .iter()
        .filter(|(start, m)| start.starts_with("SIP/2.0 200") && m.contains(" INVITE"))
        .count();
    assert!(oks >= 3, "{oks} 200s: {first}");
    // The first call's reception (no fax came) is handed out, failed;
    // the second never became one.
    let fax = tokio::time::timeout(Duration::from_secs(15), engine.receive())
        .await
        .expect("no reception handed out")
        .expect("engine stopped");
    assert_eq!(fax.called.as_deref(), Some("4940111"));
    assert!(!matches!(fax.status, Reception::Complete), "{fax:?}");
    engine.acknowledge(&fax).await;
    assert_eq!(engine.trunks()[0].calls_in, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_that_never_answers_fails_over_after_the_invite_times_out() {
    capture_logs();
    // Trunk 1's proxy: a socket nobody reads (no 100 Trying, nothing).
    let hole = std::net::UdpSocket::bind((PEER_A, 0)).unwrap();
    let second = blocking(|| Sipp::start("uas_486.xml", PEER_B, None, &[]));
    let dir = tempfile::tempdir().unwrap();
    let doc = document(dir.path());
    let ports = PortBlock::take();
    let dead = hole.local_addr().unwrap().to_string();
    let trunks = vec![trunk("dead", &dead), trunk("alive", &second.addr())];
    let mut s = settings(engine_addr(ENGINE), &ports, dir.path(), trunks);
    s.ring_timeout = Duration::from_secs(2);
    let engine = SipEngine::start(s).await.unwrap();
    let started = std::time::Instant::now();
    let req = request("dead-1", "4940123", &doc, "+49 30 999");
    let result = tokio::time::timeout(Duration::from_secs(50), engine.send(req))
        .await
        .unwrap_or_else(|_| panic!("no failover:\n{}", logs()));
    let took = started.elapsed();
    // The INVITE client transaction's Timer B (64·T1 = 32 s): no CANCEL
    // can go before a provisional response (RFC 3261 §9.1).
    assert!(
        matches!(&result, SendResult::Busy { detail: Some(d) } if d.contains("SIP 486")),
        "{result:?}\n{}",
        logs()
    );
    assert!(took < Duration::from_secs(40), "{took:?}");
    // Our transaction's own 408 is the trunk's silence, not the number's
    // no answer.
    let lines = job_lines("dead-1");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("trunk=dead") && l.contains("no response from")),
        "{lines:#?}"
    );
    let second = blocking(|| second.wait(10));
    assert!(second.ok(), "{second}");
    let report = engine.trunks();
    assert_eq!(
        (report[0].calls_out, report[1].calls_out),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(report[0].failures, vec![("rejected", 1)], "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_over_tcp_registers_over_tcp() {
    capture_logs();
    let registrar = blocking(|| Sipp::start("uas_register.xml", PEER_A, None, &["-t", "t1"]));
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let mut t = trunk("tcp", &registrar.addr());
    t.transport = Transport::Tcp;
    t.register = true;
    t.user = "fax".into();
    let engine = SipEngine::start(settings(engine_addr(ENGINE), &ports, dir.path(), vec![t]))
        .await
        .unwrap();
    assert!(
        until(10, || engine.registered("tcp")).await,
        "{}\n{}",
        registrar.messages(),
        logs()
    );
    let run = blocking(|| registrar.wait(10));
    assert!(run.ok(), "{run}");
    assert!(run.messages.contains("TCP message received"), "{run}");
    let contact = run
        .logs
        .lines()
        .find(|l| l.contains("contact: Contact: "))
        .unwrap_or_default()
        .to_lowercase();
    assert!(contact.contains(&format!("<sip:fax@{ENGINE}:")), "{run}");
    assert!(contact.contains(";transport=tcp>"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_a_tcp_trunk_is_answered_over_tcp() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let ports = PortBlock::take();
    let listen = engine_addr(ENGINE);
    let mut t = trunk("tcp", &format!("{PEER_A}:5999"));
    t.transport = Transport::Tcp;
    let mut s = settings(listen, &ports, dir.path(), vec![t]);
    s.t38 = T38Mode::Off; // no re-INVITE: the SIPp caller does not take one
    let engine = SipEngine::start(s).await.unwrap();
    let addr = listen.to_string();
    let run = blocking(|| {
        Sipp::run(
            "uac_audio.xml",
            PEER_A,
            Some(&addr),
            &["-s", "4940555", "-t", "t1"],
            20,
        )
    });
    assert!(run.ok(), "{run}\n{}", logs());
    assert!(run.messages.contains("TCP message received"), "{run}");
    let fax = tokio::time::timeout(Duration::from_secs(15), engine.receive())
        .await
        .expect("no reception handed out")
        .expect("engine stopped");
    assert_eq!(fax.called.as_deref(), Some("4940555"));
    engine.acknowledge(&fax).await;
}
