//! Two SIP engines back to back on loopback (each the other's trunk):
//! the whole call path of ours — INVITE, SDP, the media session, BYE,
//! the received fax handed out — without a third party. The real peers
//! (kamailio, rtpengine, sipp) are in the integration tests.

use super::media::{T38Params, G711};
use super::settings::{SipSettings, T38Mode, Transport, Trunk};
use super::SipEngine;
use crate::engine::spandsp::t38::tests::{assert_received, document};
use crate::engine::{FaxEngine, Reception, SendRequest, SendResult};
use crate::live::{LiveBoard, LiveProgress, LiveState};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
}

fn settings(listen: SocketAddr, peer: SocketAddr, t38: T38Mode, dir: &Path) -> SipSettings {
    SipSettings {
        listen,
        public_address: None,
        media_ip: listen.ip(),
        media_ports: 20000..=40000,
        t38,
        t38_params: T38Params::default(),
        codecs: vec![G711::Ulaw, G711::Alaw],
        ring_timeout: Duration::from_secs(20),
        received: dir.join("received"),
        csid: "+49 30 1234".into(),
        trunks: vec![Trunk {
            name: "peer".into(),
            proxy: peer.to_string(),
            transport: Transport::Udp,
            domain: peer.ip().to_string(),
            register: false,
            user: String::new(),
            auth_user: None,
            password: None,
            expires: Duration::from_secs(300),
            dial: format!("sip:{{number}}@{peer}"),
            caller_id: "{tsi}".into(),
            max_calls: 2,
            peers: vec![],
        }],
    }
}

async fn fax_between(sender_mode: T38Mode, receiver_mode: T38Mode) {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pages) = document(dir.path());
    let (a, b) = (free_udp(), free_udp());
    let sender = SipEngine::start(settings(a, b, sender_mode, &dir.path().join("a")))
        .await
        .unwrap();
    let receiver = SipEngine::start(settings(b, a, receiver_mode, &dir.path().join("b")))
        .await
        .unwrap();
    // The call is watched on a live board, as the transport does it.
    let board = LiveBoard::default();
    let mut changes = board.changes();
    let sink = board.open(
        LiveProgress {
            state: LiveState::WaitingForLine,
            pages_total: 2,
            ..LiveProgress::queued("Q1/1", "+4940555")
        },
        &[],
    );
    let request = SendRequest {
        job_id: "Q1/1".into(),
        dial: "+4940555".into(),
        number: "+4940555".into(),
        document: doc,
        first_page: 1,
        pages: 2,
        tsi: "+49 30 999".into(),
        header: None,
        subaddress: None,
        extension: None,
        progress: Some(sink),
    };
    let result = tokio::time::timeout(Duration::from_secs(120), sender.send(request))
        .await
        .expect("the call took too long");
    assert!(
        matches!(result, SendResult::Sent { pages: 2, ref remote_csid, .. } if remote_csid == "+49 30 1234"),
        "{result:?}"
    );
    let mut story: Vec<String> = Vec::new();
    while let Ok(p) = changes.try_recv() {
        let words = p.describe();
        if story.last() != Some(&words) {
            story.push(words);
        }
    }
    assert_eq!(
        story,
        [
            "waiting for a line to +4940555",
            "dialling +4940555",
            "+4940555 answered",
            "sending page 1 of 2 to +4940555",
            "sending page 2 of 2 to +4940555",
        ],
        "what the live board showed"
    );
    let fax = tokio::time::timeout(Duration::from_secs(30), receiver.receive())
        .await
        .expect("no received fax")
        .expect("engine stopped");
    assert_eq!(fax.status, Reception::Complete, "{fax:?}");
    assert_eq!(fax.pages, 2);
    assert_eq!(fax.called.as_deref(), Some("+4940555"));
    assert_eq!(fax.caller.as_deref(), Some("+4930999"));
    assert_eq!(fax.remote_tsi, "+49 30 999");
    assert_received(&fax.document, &pages);
    let record = fax.source.clone().expect("a record");
    assert!(Path::new(&record).exists());
    receiver.acknowledge(&fax).await;
    assert!(!Path::new(&record).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_engines_fax_over_t38_offered_at_once() {
    fax_between(T38Mode::Offer, T38Mode::Reinvite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_engines_fax_over_g711_when_t38_is_off() {
    fax_between(T38Mode::Off, T38Mode::Off).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_engines_switch_an_audio_call_to_t38_by_reinvite() {
    // The call starts as audio; the answering engine asks for T.38 (Annex
    // D) and the caller accepts.
    fax_between(T38Mode::Reinvite, T38Mode::Reinvite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_engines_stay_on_audio_when_the_caller_refuses_t38() {
    fax_between(T38Mode::Off, T38Mode::Reinvite).await;
}
