//! The live board fed by the simulated engine through the fax transport:
//! a 3-page fax is seen dialling, on each page in turn, then sent — every
//! change in the order it happened (the board's change stream, no
//! sleeps).

use super::*;
use faxmta_fax::live::{LiveBoard, LiveProgress, LiveState};
use faxmta_fax::transport::{FaxSettings, FaxTransport, RenderFailure, Renderer, Resend};
use faxmta_queue::{ClientInfo, Envelope, RcptState, Recipient};
use faxmta_transport::{FaxHop, Job, JobRecipient, NextHop, Status, Transport};
use std::sync::Arc;

/// "Renders" by copying the fixture's 3-page document.
struct CopyOf(PathBuf);

impl Renderer for CopyOf {
    fn render(
        &self,
        _: &[u8],
        _: &Envelope,
        _: &FaxHop,
        path: &Path,
    ) -> Result<u32, RenderFailure> {
        std::fs::copy(&self.0, path).map_err(|e| RenderFailure::Local(e.to_string()))?;
        Ok(3)
    }
}

fn recipient(address: &str) -> Recipient {
    Recipient {
        address: address.into(),
        orcpt: None,
        notify: None,
        state: RcptState::Pending,
        attempts: 0,
        next_attempt: 0,
        last_attempt: 0,
        last_reply: None,
        relay: None,
        delay_warned: false,
        lifetime: None,
        etrn: None,
        fax: None,
        report_pending: false,
    }
}

fn envelope() -> Envelope {
    Envelope {
        id: "LIVE1".into(),
        sender: "alice@example.test".into(),
        arrival: 1_700_000_000,
        size: 10,
        client: ClientInfo::default(),
        body_type: Default::default(),
        smtputf8: false,
        requiretls: false,
        ret: None,
        envid: None,
        held: false,
        lifetime: None,
        head: String::new(),
        recipients: vec![recipient(&format!("{NORMAL}@fax.test"))],
    }
}

/// What the board showed, without repeats of the same words.
fn story(changes: &[LiveProgress]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in changes {
        let words = p.describe();
        if out.last() != Some(&words) {
            out.push(words);
        }
    }
    out
}

#[tokio::test]
async fn live_a_three_page_fax_is_seen_page_by_page() {
    let f = Fixture::new();
    let engine = Arc::new(f.engine(1));
    let settings = FaxSettings {
        tsi: OUR_TSI.into(),
        header: None,
        retries: 0,
        retry_interval: Duration::from_secs(60),
        resend: Resend::Missing,
        spool: f.dir.path().join("spool"),
        archive: None,
        render_crash_limit: 1,
    };
    let board = LiveBoard::default();
    let transport = FaxTransport::new(engine, Arc::new(CopyOf(f.document.clone())), None, settings)
        .with_live(board.clone());
    let mut changes = board.changes();
    let env = envelope();
    let recipients = [JobRecipient {
        index: 0,
        address: env.recipients[0].address.clone(),
        mailbox: None,
    }];
    let hop = NextHop::Fax(FaxHop {
        number: NORMAL.into(),
        dial: NORMAL.into(),
        subaddress: None,
        extension: None,
        tsi: None,
        header: None,
        cover_page: None,
    });
    let job = Job {
        envelope: &env,
        body: b"Subject: x\r\n\r\nhello\r\n",
        recipients: &recipients,
        next_hop: &hop,
    };
    let out = transport.deliver(job).await;
    assert_eq!(out[0].status, Status::Delivered, "{out:?}");

    let mut seen = Vec::new();
    while let Ok(p) = changes.try_recv() {
        assert_eq!(p.job_id, "LIVE1/0");
        seen.push(p);
    }
    let to = NORMAL;
    assert_eq!(
        story(&seen),
        [
            "rendering the pages".to_string(),
            format!("waiting for a line to {to}"),
            format!("dialling {to}"),
            format!("{to} answered"),
            format!("sending page 1 of 3 to {to}"),
            format!("sending page 2 of 3 to {to}"),
            format!("sending page 3 of 3 to {to}"),
            format!("sent 3 of 3 pages to {to}"),
        ]
    );
    let end = board.get("LIVE1/0").expect("the end is kept");
    assert_eq!(
        (end.state, end.attempt, end.engine.as_str()),
        (LiveState::Sent, 1, "simulated")
    );
}

/// A paced line takes the clock's time: at 20 times real time a 3-page
/// call (about 40 s of line time) lasts seconds, not milliseconds.
#[tokio::test]
async fn live_a_paced_line_takes_time() {
    let f = Fixture::new();
    let mut settings = SimulatedSettings {
        lines: 1,
        tsi: OUR_TSI.into(),
        inbound: f.dir.path().join("inbound"),
        network: SimulatedNetwork {
            received: f.dir.path().join("remote"),
            pace: Some(20.0),
            ..SimulatedNetwork::default()
        },
    };
    let engine = SimulatedEngine::new(settings.clone()).unwrap();
    let started = Instant::now();
    let result = engine.send(f.request(NORMAL, 3)).await;
    let SendResult::Sent { duration, .. } = result else {
        panic!("not sent: {result:?}");
    };
    let wall = started.elapsed();
    assert!(
        wall.as_secs_f64() >= duration.as_secs_f64() / 20.0 * 0.9,
        "{duration:?} of line time at pace 20 took {wall:?}"
    );
    settings.network.pace = Some(0.0);
    assert!(SimulatedEngine::new(settings).is_err(), "pace 0 is refused");
}
