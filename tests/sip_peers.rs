//! The SIP test peers proved against each other, with no faxmta: a SIPp
//! REGISTER through Kamailio's digest registrar (and a wrong password
//! refused), an audio call turned into T.38 by rtpengine's gateway on
//! its way to a SIPp "PSTN", the failure behaviours of the routing
//! script, rtpengine flags kept for a dialog's re-INVITE, the SIPp
//! scenario pairs the SIP engine's tests use, tshark counting T.38
//! and malformed UDPTL packets; and faxmta's SDP code through
//! rtpengine's gateway (ng protocol, no SIP). tests/sip.rs uses the same
//! handles against faxmta.

mod common;
mod peers;

use peers::kamailio::{
    BUSY, NOT_FOUND, NO_ANSWER, SERVICE_UNAVAILABLE, T38_DECODE, T38_FORCE, UNAVAILABLE,
};
use peers::*;
use std::net::UdpSocket;

/// The proxy/registrar, a trunk peer (by IP, no auth), the "PSTN" side,
/// a registering phone.
const KAM: &str = "127.0.0.2";
const TRUNK: &str = "127.0.0.3";
const PSTN: &str = "127.0.0.4";
const PHONE: &str = "127.0.0.5";
const CALLER: &str = "127.0.0.6";

/// A UAS scenario on PSTN and a UAC scenario from TRUNK towards it,
/// straight (no proxy): both runs.
fn pair(uas: &str, uac: &str) -> (SippRun, SippRun) {
    let server = Sipp::start(uas, PSTN, None, &[]);
    let client = Sipp::run(uac, TRUNK, Some(&server.addr()), &["-s", "5551234"], 30);
    (client, server.wait(10))
}

#[test]
fn sipp_registers_with_digest_and_a_wrong_password_gets_403() {
    let k = Kamailio::start(
        KAM,
        &KamailioSetup {
            users: &[("fax", "faxsecret")],
            max_expires: Some(5),
            ..Default::default()
        },
    );
    let ok = Sipp::run(
        "reg.xml",
        PHONE,
        Some(&k.addr()),
        &["-s", "fax", "-ap", "faxsecret"],
        20,
    );
    assert!(ok.ok(), "{ok}");
    // The challenge came first; the 60 s asked for became 5.
    assert!(ok.messages.contains("SIP/2.0 401"), "{ok}");
    let granted = ok.received().pop().unwrap_or_default();
    assert!(granted.contains("SIP/2.0 200"), "{ok}");
    assert!(granted.contains(";expires=5"), "{granted}");
    assert!(k.wait_log("REGISTERED fax", 5), "{}", k.log());
    // Over TCP as well.
    let tcp = Sipp::run(
        "reg.xml",
        PHONE,
        Some(&k.addr()),
        &["-s", "fax", "-ap", "faxsecret", "-t", "t1"],
        20,
    );
    assert!(tcp.ok(), "{tcp}");
    assert!(tcp.messages.contains("TCP message received"), "{tcp}");

    let bad = Sipp::run(
        "reg.xml",
        PHONE,
        Some(&k.addr()),
        &["-s", "fax", "-ap", "not-the-password"],
        20,
    );
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.errors.contains("SIP/2.0 403 Forbidden"), "{bad}");
    // A user the registrar does not know: refused as well.
    let stranger = Sipp::run(
        "reg.xml",
        PHONE,
        Some(&k.addr()),
        &["-s", "intruder", "-ap", "faxsecret"],
        20,
    );
    assert_eq!(stranger.code, Some(1), "{stranger}");
    assert!(stranger.errors.contains("SIP/2.0 403"), "{stranger}");
}

#[test]
fn an_audio_call_through_rtpengine_t38_force_reaches_the_pstn_as_t38() {
    let rtp = Rtpengine::start();
    let pstn_port = sip_port(PSTN);
    let pstn = format!("{PSTN}:{pstn_port}");
    let k = Kamailio::start(
        KAM,
        &KamailioSetup {
            trunks: &[TRUNK],
            pstn: Some(&pstn),
            rtpengine: Some(&rtp),
            ..Default::default()
        },
    );
    let uas = Sipp::start_on("uas_t38.xml", PSTN, pstn_port, None, &[]);
    let number = format!("{T38_FORCE}5551234");
    let uac = Sipp::run(
        "uac_audio.xml",
        TRUNK,
        Some(&k.addr()),
        &["-s", &number],
        30,
    );
    let uas = uas.wait(10);
    assert!(uac.ok(), "{uac}\n{}", k.log());
    assert!(uas.ok(), "{uas}\n{}", k.log());
    // The UAS was offered T.38 on one of rtpengine's ports …
    let offer = uas
        .logs
        .lines()
        .find_map(|l| l.strip_prefix("offer: m=image "))
        .unwrap_or_else(|| panic!("{uas}"));
    let port: u16 = offer.split(' ').next().unwrap().parse().unwrap();
    assert!(
        (rtp.ports.first..=rtp.ports.last).contains(&port),
        "{offer}: not rtpengine's port"
    );
    // … and the caller got audio back, from rtpengine too.
    let answer = uac
        .logs
        .lines()
        .find_map(|l| l.strip_prefix("answer: m=audio "))
        .unwrap_or_else(|| panic!("{uac}"));
    let port: u16 = answer.split(' ').next().unwrap().parse().unwrap();
    assert!(
        (rtp.ports.first..=rtp.ports.last).contains(&port),
        "{answer}: not rtpengine's port"
    );
    // The prefix chose the flags and was taken off the Request-URI.
    assert!(
        k.log().contains("initial offer flags [T.38=force]"),
        "{}",
        k.log()
    );
    let invite = uas
        .received()
        .into_iter()
        .find(|m| m.contains("CSeq: 1 INVITE"))
        .unwrap_or_else(|| panic!("{uas}"));
    assert!(invite.contains("INVITE sip:5551234@"), "{invite}");
    assert!(invite.contains("Record-Route:"), "{invite}");
}

#[test]
fn a_registered_user_gets_calls_at_its_contact_from_callers_who_authenticate() {
    let rtp = Rtpengine::start();
    let k = Kamailio::start(
        KAM,
        &KamailioSetup {
            users: &[("fax", "faxsecret"), ("phone", "phonesecret")],
            rtpengine: Some(&rtp),
            ..Default::default()
        },
    );
    // "fax" registers PHONE:port, then answers there.
    let port = sip_port(PHONE);
    let reg = Sipp::start_on(
        "reg.xml",
        PHONE,
        port,
        Some(&k.addr()),
        &["-s", "fax", "-ap", "faxsecret"],
    )
    .wait(20);
    assert!(reg.ok(), "{reg}");
    let uas = Sipp::start_on("uas_t38.xml", PHONE, port, None, &[]);
    // A caller that is no trunk: challenged (407), then let through.
    let number = format!("{T38_FORCE}fax");
    let uac = Sipp::run(
        "uac_audio_auth.xml",
        CALLER,
        Some(&k.addr()),
        &["-s", &number, "-au", "phone", "-ap", "phonesecret"],
        30,
    );
    let uas = uas.wait(10);
    assert!(uac.ok(), "{uac}\n{}", k.log());
    assert!(uas.ok(), "{uas}\n{}", k.log());
    assert!(uac.messages.contains("SIP/2.0 407"), "{uac}");
    assert!(
        k.log().contains("to registered fax at sip:fax@"),
        "{}",
        k.log()
    );
    // rtpengine's T.38=force applied on the way to the registered user.
    assert!(uas.logs.contains("offer: m=image "), "{uas}");
    // A wrong password is refused, not challenged again.
    let bad = Sipp::run(
        "uac_audio_auth.xml",
        CALLER,
        Some(&k.addr()),
        &["-s", "fax", "-au", "phone", "-ap", "wrong"],
        20,
    );
    assert!(bad.errors.contains("SIP/2.0 403 Forbidden"), "{bad}");
}

#[test]
fn the_flags_chosen_by_the_prefix_hold_for_the_dialogs_reinvites() {
    // T.38=decode for the whole dialog: the caller's re-INVITE to T.38
    // reaches the far end as audio (rtpengine's gateway), so the UAS —
    // which wants m=image in the re-INVITE — fails its check.
    let rtp = Rtpengine::start();
    let pstn_port = sip_port(PSTN);
    let pstn = format!("{PSTN}:{pstn_port}");
    let k = Kamailio::start(
        KAM,
        &KamailioSetup {
            trunks: &[TRUNK],
            pstn: Some(&pstn),
            rtpengine: Some(&rtp),
            ..Default::default()
        },
    );
    let uas = Sipp::start_on("uas_reinvite_491.xml", PSTN, pstn_port, None, &[]);
    let number = format!("{T38_DECODE}5551234");
    let uac = Sipp::run(
        "uac_reinvite.xml",
        TRUNK,
        Some(&k.addr()),
        &["-s", &number],
        30,
    );
    let uas = uas.wait(10);
    assert!(
        k.log().contains("initial offer flags [T.38=decode]"),
        "{}",
        k.log()
    );
    assert!(
        k.log().contains("in-dialog offer flags [T.38=decode]"),
        "{}",
        k.log()
    );
    let reinvites: Vec<String> = uas
        .received()
        .into_iter()
        .filter(|m| m.contains(" INVITE\r\n") && !m.contains("CSeq: 1 INVITE"))
        .collect();
    assert!(!reinvites.is_empty(), "{uas}");
    for m in &reinvites {
        assert!(m.contains("m=audio "), "decoded to audio:\n{m}");
        assert!(!m.contains("m=image "), "{m}");
    }
    assert_eq!(uas.code, Some(1), "the UAS wanted T.38: {uas}");
    // The caller still sees T.38 answered: the gateway works both ways.
    assert!(uac.logs.contains("re-INVITE answer: m=image "), "{uac}");

    // Without a prefix the re-INVITE passes as T.38 and both succeed.
    let uas = Sipp::start_on("uas_reinvite_491.xml", PSTN, pstn_port, None, &[]);
    let uac = Sipp::run(
        "uac_reinvite.xml",
        TRUNK,
        Some(&k.addr()),
        &["-s", "5551234"],
        30,
    );
    let uas = uas.wait(10);
    assert!(uac.ok(), "{uac}");
    assert!(uas.ok(), "{uas}");
    assert!(k.log().contains("in-dialog offer flags []"), "{}", k.log());
}

#[test]
fn the_called_side_switches_to_t38_through_kamailio_and_rtpengine() {
    // The far end sends the re-INVITE (T.38 Annex D's usual way): a
    // request from the callee, routed back by the Record-Route set.
    let rtp = Rtpengine::start();
    let pstn_port = sip_port(PSTN);
    let pstn = format!("{PSTN}:{pstn_port}");
    let k = Kamailio::start(
        KAM,
        &KamailioSetup {
            trunks: &[TRUNK],
            pstn: Some(&pstn),
            rtpengine: Some(&rtp),
            ..Default::default()
        },
    );
    let uas = Sipp::start_on("uas_reinvite_t38.xml", PSTN, pstn_port, None, &[]);
    let uac = Sipp::run(
        "uac_take_reinvite.xml",
        TRUNK,
        Some(&k.addr()),
        &["-s", "5551234"],
        30,
    );
    let uas = uas.wait(10);
    assert!(uac.ok(), "{uac}\n{}", k.log());
    assert!(uas.ok(), "{uas}\n{}", k.log());
    assert!(uac.logs.contains("re-INVITE offer: m=image "), "{uac}");
    assert!(uas.logs.contains("re-INVITE answer: m=image "), "{uas}");
    assert!(
        k.log().contains(&format!("REQ INVITE sip:sipp@{TRUNK}")),
        "the re-INVITE went through: {}",
        k.log()
    );
}

#[test]
fn the_routing_script_answers_busy_not_found_unavailable_and_no_answer() {
    let k = Kamailio::start(
        KAM,
        &KamailioSetup {
            trunks: &[TRUNK],
            no_answer_ms: 1000,
            ..Default::default()
        },
    );
    for (prefix, status) in [
        (BUSY, "486 Busy Here"),
        (NOT_FOUND, "404 Not Found"),
        (UNAVAILABLE, "480 Temporarily Unavailable"),
        (SERVICE_UNAVAILABLE, "503 Service Unavailable"),
        (NO_ANSWER, "408 Request Timeout"),
    ] {
        let number = format!("{prefix}5551234");
        let run = Sipp::run(
            "uac_audio.xml",
            TRUNK,
            Some(&k.addr()),
            &["-s", &number],
            20,
        );
        // uac_audio wants a 200: the failure is unexpected, the call fails.
        assert_eq!(run.code, Some(1), "{number}: {run}");
        assert!(
            run.errors.contains(&format!("SIP/2.0 {status}")),
            "{number}: {run}"
        );
        if prefix == NO_ANSWER {
            assert!(run.messages.contains("SIP/2.0 180 Ringing"), "{run}");
        }
    }
    // No PSTN configured: an ordinary number has no route.
    let run = Sipp::run(
        "uac_audio.xml",
        TRUNK,
        Some(&k.addr()),
        &["-s", "5551234"],
        20,
    );
    assert!(run.errors.contains("SIP/2.0 404 No Route"), "{run}");
    // An INVITE from elsewhere than the trunk must authenticate.
    let run = Sipp::run(
        "uac_audio.xml",
        PHONE,
        Some(&k.addr()),
        &["-s", "5551234"],
        20,
    );
    assert!(run.errors.contains("SIP/2.0 407"), "{run}");
}

#[test]
fn sipp_cancel_after_ringing_ends_with_487() {
    let (uac, uas) = pair("uas_ring.xml", "uac_cancel.xml");
    assert!(uac.ok(), "{uac}");
    assert!(uas.ok(), "{uas}");
    assert!(uas.logs.contains("ended by CANCEL"), "{uas}");
}

#[test]
fn sipp_reinvites_to_t38_from_either_side_and_after_glare() {
    // The callee switches.
    let (uac, uas) = pair("uas_reinvite_t38.xml", "uac_take_reinvite.xml");
    assert!(uac.ok(), "{uac}");
    assert!(uas.ok(), "{uas}");
    assert!(uac.logs.contains("re-INVITE offer: m=image "), "{uac}");
    // The caller switches, after a 491.
    let (uac, uas) = pair("uas_reinvite_491.xml", "uac_reinvite.xml");
    assert!(uac.ok(), "{uac}");
    assert!(uas.ok(), "{uas}");
    assert!(
        uac.messages.contains("SIP/2.0 491 Request Pending"),
        "{uac}"
    );
    assert!(uac.logs.contains("re-INVITE answer: m=image "), "{uac}");
}

#[test]
fn sipp_early_media_183_before_200() {
    let (uac, uas) = pair("uas_early_media.xml", "uac_audio.xml");
    assert!(uac.ok(), "{uac}");
    assert!(uas.ok(), "{uas}");
    let early = uac
        .received()
        .into_iter()
        .find(|m| m.contains("SIP/2.0 183"))
        .unwrap_or_else(|| panic!("{uac}"));
    assert!(early.contains("m=audio "), "{early}");
}

#[test]
fn sipp_udp_retransmissions_of_200_and_of_invite() {
    // No ACK for 2 s: the UAS retransmits its 200.
    let (uac, uas) = pair("uas_audio.xml", "uac_no_ack.xml");
    assert!(uac.ok(), "{uac}");
    assert!(uas.ok(), "{uas}");
    let oks = uac
        .received()
        .iter()
        .filter(|m| m.contains("SIP/2.0 200") && m.contains("CSeq: 1 INVITE"))
        .count();
    assert!(oks >= 3, "{oks} 200s: {uac}");
    // No answer for 1.5 s: the UAC retransmits its INVITE.
    let (uac, uas) = pair("uas_slow.xml", "uac_audio.xml");
    assert!(uac.ok(), "{uac}");
    assert!(uas.ok(), "{uas}");
    let invites = uas
        .received()
        .iter()
        .filter(|m| m.contains("CSeq: 1 INVITE") && m.contains("INVITE sip:"))
        .count();
    assert!(invites >= 2, "{invites} INVITEs: {uas}");
}

#[test]
fn tshark_counts_t38_and_malformed_udptl_on_a_port() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let capture = Capture::start(&format!("udp port {port}"));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    // seq 5, primary IFP t30-indicator CNG, redundancy with 0 entries
    // (docs/design/sip-engine.md §3, decoded by tshark there).
    for seq in 5u8..8 {
        sender
            .send_to(&[0, seq, 1, 2, 0, 0], ("127.0.0.1", port))
            .unwrap();
    }
    // A primary IFP said to be 5 octets long, with 1.
    sender.send_to(&[0, 8, 5, 2], ("127.0.0.1", port)).unwrap();
    // All went through lo.
    let mut buf = [0u8; 64];
    for _ in 0..4 {
        sink.recv(&mut buf).unwrap();
    }
    assert!(
        capture.wait_for(&format!("udp.dstport == {port}"), 4, 10),
        "{}",
        capture.read(&[])
    );
    let count = capture.t38(port);
    assert_eq!(count.packets, 4, "{count:?}");
    assert_eq!(count.malformed, 1, "{count:?}");
    assert_eq!(count.errors, 1, "the malformed one: {count:?}");
}

/// faxmta's SDP (engine/sip/sdp.rs) against an implementation it did not
/// write: rtpengine's T.38 gateway reads our offers and answers, and we
/// read what it writes, in both directions.
#[test]
fn our_sdp_passes_rtpengines_t38_gateway_both_ways() {
    use faxmta_fax::engine::sip::media::{Stream, T38Params, G711};
    use faxmta_fax::engine::sip::sdp::{self, Accept, Offered, SessionVersion};
    let rtp = Rtpengine::start();
    let in_range = |port: u16| (rtp.ports.first..=rtp.ports.last).contains(&port);
    let here: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let ng = |command: &str, call: &str, to_tag: Option<&str>, sdp: &str, t38: &[&str]| {
        let mut c = vec![
            ("command", Ben::str(command)),
            ("call-id", Ben::str(call)),
            ("from-tag", Ben::str("caller")),
            ("sdp", Ben::str(sdp)),
        ];
        if let Some(t) = to_tag {
            c.push(("to-tag", Ben::str(t)));
        }
        if !t38.is_empty() {
            c.push(("T.38", Ben::strs(t38)));
        }
        let reply = rtp.ng(&c);
        assert_eq!(reply.get_str("result"), Some("ok"), "{reply:?}");
        reply.get_str("sdp").unwrap().to_string()
    };

    // We send T.38; the far end is audio (T.38=decode).
    let (mut caller, mut callee) = (SessionVersion::new(), SessionVersion::new());
    let offer = sdp::offer_t38(here, 20_000, &T38Params::default(), &mut caller);
    let to_callee = ng("offer", "decode-call", None, &offer, &["decode"]);
    let audio_only = Accept {
        t38: None,
        ..Accept::default()
    };
    let (answer, callee_stream) = sdp::answer(&to_callee, here, 20_002, &audio_only, &mut callee)
        .unwrap_or_else(|e| panic!("{e}:\n{to_callee}"));
    let Stream::Audio(audio) = &callee_stream else {
        panic!("{callee_stream:?}")
    };
    assert!(in_range(audio.remote.port()), "{to_callee}");
    assert_eq!(audio.law, G711::Ulaw, "{to_callee}");
    let to_caller = ng(
        "answer",
        "decode-call",
        Some("callee"),
        &answer,
        &["decode"],
    );
    let stream = sdp::read_answer(&to_caller, &Offered::T38(T38Params::default()))
        .unwrap_or_else(|e| panic!("{e}:\n{to_caller}"));
    let Stream::T38(t38) = &stream else {
        panic!("{stream:?}")
    };
    assert!(in_range(t38.remote.port()), "{to_caller}");
    assert!(t38.params.max_bit_rate <= 14_400, "{to_caller}");
    assert_eq!(
        t38.params.max_datagram,
        Some(512),
        "rtpengine's: {to_caller}"
    );

    // We send audio; the far end is T.38 (T.38=force).
    let (mut caller, mut callee) = (SessionVersion::new(), SessionVersion::new());
    let offer = sdp::offer_audio(here, 20_004, &[G711::Ulaw, G711::Alaw], &mut caller);
    let to_callee = ng("offer", "force-call", None, &offer, &["force"]);
    let (answer, callee_stream) =
        sdp::answer(&to_callee, here, 20_006, &Accept::default(), &mut callee)
            .unwrap_or_else(|e| panic!("{e}:\n{to_callee}"));
    let Stream::T38(t38) = &callee_stream else {
        panic!("{callee_stream:?}\n{to_callee}")
    };
    assert!(in_range(t38.remote.port()), "{to_callee}");
    assert_eq!(
        t38.params.max_datagram,
        Some(512),
        "rtpengine's: {to_callee}"
    );
    let to_caller = ng("answer", "force-call", Some("callee"), &answer, &["force"]);
    let stream = sdp::read_answer(&to_caller, &Offered::Audio(vec![G711::Ulaw, G711::Alaw]))
        .unwrap_or_else(|e| panic!("{e}:\n{to_caller}"));
    let Stream::Audio(audio) = &stream else {
        panic!("{stream:?}")
    };
    assert!(in_range(audio.remote.port()), "{to_caller}");
    assert_eq!(audio.law, G711::Ulaw, "{to_caller}");
}
