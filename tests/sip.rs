//! `[fax] engine = "sip"` end to end: two faxmta servers, a mail to a fax
//! number at the first becomes a SIP call through a private Kamailio
//! (registrar with digest, record-routing proxy) — and for the gateway
//! tests through rtpengine's T.38⇄G.711 gateway, driven by Kamailio's
//! rtpengine module — to the second, which routes the received fax by
//! its DID to alice's mailbox as PDF. The pages rendered by the sender
//! equal the pages received, pixel for pixel, over T.38, over G.711, and
//! converted between them in both directions; with 5 % of the T.38
//! datagrams dropped on the way (UDPTL redundancy carries them); and a
//! call cut after page 2 is finished by a second call with pages 3…
//! tshark's T.38 dissector reads the UDPTL we send.

mod common;
mod peers;
#[path = "sip/support.rs"]
mod support;

use common::*;
use peers::kamailio::{T38_DECODE, T38_FORCE};
use peers::sip_port;
use peers::*;
use support::*;

/// Kamailio, the sender and the receiver.
const KAM: &str = "127.0.0.2";
const SENDER: &str = "127.0.0.5";
const RECEIVER: &str = "127.0.0.6";

/// The receiver, the "PSTN" next hop of the routing script: Kamailio
/// calls it as a trunk peer, with the DID in the Request-URI.
fn receiver_behind(port: u16, k: &Kamailio, t38: &str) -> FaxServer {
    let trunk = Trunk {
        proxy: &k.addr(),
        prefix: "",
        register: None,
        auth: None,
        transport: "udp",
    };
    start(RECEIVER, port, &trunk, t38, "")
}

fn sender_via(k: &Kamailio, prefix: &str, t38: &str) -> FaxServer {
    let trunk = Trunk {
        proxy: &k.addr(),
        prefix,
        register: None,
        auth: None,
        transport: "udp",
    };
    start(SENDER, sip_port(SENDER), &trunk, t38, "")
}

/// Kamailio sending calls for unknown users to the receiver's `port`,
/// the sender a trunk peer by IP.
fn kamailio(port: u16, rtpengine: Option<&Rtpengine>) -> Kamailio {
    let pstn = format!("{RECEIVER}:{port}");
    Kamailio::start(
        KAM,
        &KamailioSetup {
            trunks: &[SENDER],
            pstn: Some(&pstn),
            rtpengine,
            ..Default::default()
        },
    )
}

/// Faxes a two-page letter and checks everything that should follow.
fn two_pages_arrive(sender: &FaxServer, receiver: &FaxServer) {
    let id = fax(sender, 90);
    let line = wait_status(
        &sender.server,
        &id,
        &format!("{NUMBER}@fax.localhost"),
        "sent",
        120,
    );
    assert_contains(&line, "fax sent: 2 of 2 pages");
    assert_same_pages(sender, receiver);
    assert_pdf_for_alice(receiver);
}

#[test]
fn t38_through_kamailio_to_a_registered_receiver_routed_by_did() {
    // The receiver registers (digest) under the number; the sender's call
    // starts as audio and the receiver switches it to T.38 by re-INVITE
    // (T.38 Annex D), through Kamailio alone: SDP and media untouched.
    let user = NUMBER;
    let k = Kamailio::start(
        KAM,
        &KamailioSetup {
            users: &[(user, "faxsecret")],
            trunks: &[SENDER],
            ..Default::default()
        },
    );
    let trunk = Trunk {
        proxy: &k.addr(),
        prefix: "",
        register: Some((user, "faxsecret")),
        auth: None,
        transport: "udp",
    };
    let receiver = start(RECEIVER, sip_port(RECEIVER), &trunk, "reinvite", "");
    assert!(
        k.wait_log(&format!("REGISTERED {user}"), 30),
        "{}\n{}",
        k.log(),
        receiver.server.log()
    );
    let sender = sender_via(&k, "", "reinvite");
    let capture = Capture::start(&format!(
        "udp and src host {SENDER} and portrange {}-{}",
        sender.media.first, sender.media.last
    ));
    two_pages_arrive(&sender, &receiver);
    // After the registrar's lookup the Request-URI is the receiver's
    // Contact: the DID (alice's number) came from To.
    assert_contains(&receiver.server.log(), "fax progress: page 2 received");
    // Every UDPTL datagram the sender sent decodes in tshark (the port
    // carried G.711 before the re-INVITE: the RTP is left out).
    let port = sender.media.first;
    assert!(
        capture.wait_for(&format!("udp.srcport == {port}"), 50, 10),
        "no UDPTL captured"
    );
    let t38 = capture.udptl_after_audio(port);
    assert!(t38.packets > 50, "{t38:?}");
    assert_eq!(
        (t38.malformed, t38.errors),
        (0, 0),
        "{t38:?}\n{}",
        capture.t38_faults(port)
    );
}

#[test]
fn t38_decoded_to_g711_by_rtpengine_reaches_an_audio_receiver() {
    let rtp = Rtpengine::start();
    let port = sip_port(RECEIVER);
    let k = kamailio(port, Some(&rtp));
    let receiver = receiver_behind(port, &k, "off");
    let sender = sender_via(&k, T38_DECODE, "offer");
    two_pages_arrive(&sender, &receiver);
    assert!(
        k.wait_log("initial offer flags [T.38=decode]", 5),
        "{}",
        k.log()
    );
}

#[test]
fn g711_forced_to_t38_by_rtpengine_reaches_a_t38_receiver() {
    let rtp = Rtpengine::start();
    let port = sip_port(RECEIVER);
    let k = kamailio(port, Some(&rtp));
    let receiver = receiver_behind(port, &k, "reinvite");
    let sender = sender_via(&k, T38_FORCE, "off");
    two_pages_arrive(&sender, &receiver);
    assert!(
        k.wait_log("initial offer flags [T.38=force]", 5),
        "{}",
        k.log()
    );
    assert_contains(&receiver.server.log(), "incoming call answered: T.38");
    // The trunk's metrics on both sides.
    let metrics = sender.server.http_get("/metrics");
    for line in [
        "faxmta_fax_trunk_calls_total{direction=\"out\",trunk=\"kamailio\"} 1",
        "faxmta_fax_trunk_pages_total{trunk=\"kamailio\"} 2",
        "faxmta_fax_trunk_calls{trunk=\"kamailio\"} 0",
    ] {
        assert_contains(&metrics, line);
    }
    assert!(metrics.contains("faxmta_fax_trunk_line_seconds_total{trunk=\"kamailio\"} "));
    let metrics = receiver.server.http_get("/metrics");
    assert_contains(
        &metrics,
        "faxmta_fax_trunk_calls_total{direction=\"in\",trunk=\"kamailio\"} 1",
    );
    assert_contains(
        &metrics,
        "faxmta_fax_trunk_pages_total{trunk=\"kamailio\"} 2",
    );
}

#[test]
fn t38_through_rtpengine_carries_five_percent_loss_in_its_redundancy() {
    // 5 % of the sender's UDPTL datagrams (one in 20) are dropped on the
    // way to rtpengine (decoded there to G.711 for the receiver): what is
    // lost comes again in the redundancy of the packets after it, so the
    // fax goes in one call and arrives whole.
    let rtp = Rtpengine::start();
    let port = sip_port(RECEIVER);
    let k = kamailio(port, Some(&rtp));
    let receiver = receiver_behind(port, &k, "off");
    let sender = sender_via(&k, T38_DECODE, "offer");
    let loss = Loss::on(&sender.media, 20);
    two_pages_arrive(&sender, &receiver);
    let dropped = loss.dropped();
    assert!(dropped > 5, "only {dropped} datagrams dropped");
    let log = sender.server.log();
    assert!(
        !log.contains("status=deferred"),
        "the loss was not carried in one call:\n{log}"
    );
}

#[test]
fn g711_through_kamailio_alone() {
    let port = sip_port(RECEIVER);
    let k = kamailio(port, None);
    let receiver = receiver_behind(port, &k, "off");
    let sender = sender_via(&k, "", "off");
    two_pages_arrive(&sender, &receiver);
    assert_contains(&receiver.server.log(), "incoming call answered: G.711");
}

/// A 4-page fax from the sender to the receiver through Kamailio, T.38
/// offered, and the moment the sender has the confirmation of page 2
/// (the call is in page 3).
fn during_page_3() -> (Kamailio, FaxServer, FaxServer, String) {
    let port = sip_port(RECEIVER);
    let k = kamailio(port, None);
    let receiver = receiver_behind(port, &k, "offer");
    let sender = sender_via(&k, "", "offer");
    let id = fax(&sender, 200);
    assert!(
        wait_until(120, || sender
            .server
            .log()
            .contains("fax progress: page 2 confirmed")),
        "{}\n{}",
        sender.server.log(),
        receiver.server.log()
    );
    (k, receiver, sender, id)
}

#[test]
fn a_call_cut_after_page_2_is_finished_by_a_second_call_with_pages_3_on() {
    // The receiver dies (kill -9) during page 3: the call is cut.
    let (_k, mut receiver, sender, id) = during_page_3();
    receiver.server.kill9();
    let rcpt = format!("{NUMBER}@fax.localhost");
    let line = wait_status(&sender.server, &id, &rcpt, "deferred", 120);
    assert_contains(&line, "broke off after 2 of");
    receiver.server.spawn();
    let line = wait_status(&sender.server, &id, &rcpt, "sent", 180);
    let sent = sender.sent_pages();
    assert!(sent.len() >= 4, "{} pages", sent.len());
    assert_contains(&line, &format!("fax sent: {0} of {0} pages", sent.len()));
    let metrics = sender.server.http_get("/metrics");
    assert_contains(
        &metrics,
        "faxmta_fax_trunk_failures_total{cause=\"partial\",trunk=\"kamailio\"} 1",
    );
    // The second call carried pages 3… only.
    let got = receiver.received_pages(30);
    assert_eq!(got.len(), sent.len() - 2);
    for (n, (g, s)) in got.iter().zip(&sent[2..]).enumerate() {
        assert!(g == s, "page {} differs", n + 3);
    }
}

#[test]
fn over_sip_tcp_with_digest_for_the_registration_and_the_call() {
    // Both faxmtas reach Kamailio over TCP: the receiver registers, the
    // sender (not a trunk peer: the 407 challenge) answers with digest.
    let k = Kamailio::start(
        KAM,
        &KamailioSetup {
            users: &[(NUMBER, "faxsecret"), ("sender", "sendsecret")],
            ..Default::default()
        },
    );
    let proxy = k.addr();
    let trunk = |register, auth| Trunk {
        proxy: &proxy,
        prefix: "",
        register,
        auth,
        transport: "tcp",
    };
    let receiver = start(
        RECEIVER,
        sip_port(RECEIVER),
        &trunk(Some((NUMBER, "faxsecret")), None),
        "reinvite",
        "",
    );
    assert!(
        k.wait_log(&format!("REGISTERED {NUMBER}"), 30),
        "{}\n{}",
        k.log(),
        receiver.server.log()
    );
    let sender = start(
        SENDER,
        sip_port(SENDER),
        &trunk(None, Some(("sender", "sendsecret"))),
        "offer",
        "",
    );
    two_pages_arrive(&sender, &receiver);
    let log = k.log();
    for method in ["REGISTER", "INVITE"] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("REQ {method} ")) && l.ends_with("over tcp")),
            "{method} over TCP:\n{log}"
        );
    }
    // Nothing of the calls over UDP (the harness's OPTIONS probe is).
    assert!(
        !log.lines()
            .any(|l| l.ends_with("over udp") && !l.contains("REQ OPTIONS")),
        "{log}"
    );
}

#[test]
fn a_receiver_stopping_after_page_2_hangs_up_with_bye_and_keeps_both_parts() {
    // The receiver is stopped (SIGTERM) during page 3: it hangs up with
    // BYE; the sender counts the 2 pages confirmed and resends the rest
    // once the receiver is back, which hands out the partial fax it kept
    // and then receives pages 3…
    let (_k, mut receiver, sender, id) = during_page_3();
    assert!(receiver.server.stop(), "{}", receiver.server.log());
    assert_contains(
        &receiver.server.log(),
        "shutting down: hanging up after 2 page(s)",
    );
    let rcpt = format!("{NUMBER}@fax.localhost");
    let line = wait_status(&sender.server, &id, &rcpt, "deferred", 30);
    assert_contains(&line, "broke off after 2 of");
    assert_contains(&line, "hung up (SIP BYE)");
    receiver.server.spawn();
    let line = wait_status(&sender.server, &id, &rcpt, "sent", 180);
    let sent = sender.sent_pages();
    assert!(sent.len() >= 4, "{} pages", sent.len());
    assert_contains(&line, &format!("fax sent: {0} of {0} pages", sent.len()));
    // Both parts reached alice: pages 1–2 (kept at the stop, handed out
    // at the start, with the notice of the partial reception) and pages 3…
    let mails = receiver.server.wait_maildir("example.test", "alice", 3, 60);
    assert_eq!(mails.len(), 3, "{}", receiver.server.log());
    assert_contains(
        &receiver.server.log(),
        "failed after 2 page(s): faxmta stopped during the call and hung up",
    );
    let parts = receiver.received_documents();
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().any(|p| p == &sent[..2]), "pages 1–2 differ");
    assert!(parts.iter().any(|p| p == &sent[2..]), "pages 3… differ");
}
