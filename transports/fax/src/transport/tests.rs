//! The transport's decisions against a scripted engine and renderer (the
//! real engine is tested in engine/, the whole path in tests/fax.rs).

use super::*;
use crate::engine::ReceivedFax;
use crate::live::{LiveBoard, LiveState};
use faxmta_queue::{ClientInfo, RcptState, Recipient};
use std::sync::Mutex;

/// Answers each call with the next scripted result and remembers the
/// requests.
struct Scripted {
    results: Mutex<Vec<SendResult>>,
    requests: Mutex<Vec<SendRequest>>,
}

#[async_trait::async_trait]
impl FaxEngine for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn lines(&self) -> usize {
        1
    }
    fn lines_busy(&self) -> usize {
        0
    }
    async fn send(&self, request: SendRequest) -> SendResult {
        assert!(request.document.exists(), "the document is on disk");
        self.requests.lock().unwrap().push(request);
        self.results.lock().unwrap().remove(0)
    }
    async fn receive(&self) -> Option<ReceivedFax> {
        None
    }
    async fn acknowledge(&self, _: &ReceivedFax) {}
}

struct Pages(Result<u32, RenderFailure>);

impl Renderer for Pages {
    fn render(
        &self,
        _: &[u8],
        _: &Envelope,
        _: &FaxHop,
        path: &Path,
    ) -> Result<u32, RenderFailure> {
        std::fs::write(path, b"II*\0").unwrap();
        self.0.clone()
    }
}

fn envelope() -> Envelope {
    Envelope {
        id: "ABC123".into(),
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
        recipients: vec![Recipient {
            address: "+15551234567@fax.test".into(),
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
        }],
    }
}

fn hop() -> NextHop {
    NextHop::Fax(FaxHop {
        number: "+15551234567".into(),
        dial: "15551234567".into(),
        subaddress: None,
        extension: None,
        tsi: None,
        header: None,
        cover_page: None,
    })
}

struct Setup {
    transport: FaxTransport,
    engine: Arc<Scripted>,
    _spool: tempfile::TempDir,
}

fn setup(results: Vec<SendResult>, pages: Result<u32, RenderFailure>, resend: Resend) -> Setup {
    let spool = tempfile::tempdir().unwrap();
    let engine = Arc::new(Scripted {
        results: Mutex::new(results),
        requests: Mutex::new(Vec::new()),
    });
    let settings = FaxSettings {
        tsi: "+1 555 0100".into(),
        header: Some("ACME".into()),
        retries: 2,
        retry_interval: Duration::from_secs(120),
        resend,
        spool: spool.path().join("spool"),
        archive: Some(spool.path().join("sent")),
        render_crash_limit: 2,
    };
    let transport = FaxTransport::new(engine.clone(), Arc::new(Pages(pages)), None, settings);
    Setup {
        transport,
        engine,
        _spool: spool,
    }
}

/// Run one attempt and feed the progress back into the envelope, as the
/// scheduler does.
async fn attempt(s: &Setup, env: &mut Envelope) -> Outcome {
    let recipients = [JobRecipient {
        index: 0,
        address: env.recipients[0].address.clone(),
        mailbox: None,
    }];
    let next_hop = hop();
    let job = Job {
        envelope: env,
        body: b"Subject: x\r\n\r\nhello\r\n",
        recipients: &recipients,
        next_hop: &next_hop,
    };
    let mut out = s.transport.deliver(job).await;
    assert_eq!(out.len(), 1);
    let o = out.remove(0);
    env.recipients[0].fax = o.fax.clone();
    o
}

#[tokio::test]
async fn busy_is_retried_at_the_fax_interval_then_fails() {
    let s = setup(
        vec![SendResult::BUSY, SendResult::NO_ANSWER, SendResult::BUSY],
        Ok(2),
        Resend::Missing,
    );
    let mut env = envelope();
    for call in 1..=2 {
        let o = attempt(&s, &mut env).await;
        assert_eq!(o.status, Status::Deferred, "{o:?}");
        assert_eq!(o.retry_after, Some(120));
        assert_eq!(o.reply.status, "4.4.1");
        assert_eq!(o.fax.as_ref().unwrap().unreached, call);
    }
    let o = attempt(&s, &mut env).await;
    assert_eq!(o.status, Status::Failed);
    assert_eq!(o.reply.status, "5.4.1");
    assert!(
        o.reply.text.contains("the line was busy (3 calls)"),
        "{o:?}"
    );
    let fax = o.fax.unwrap();
    assert_eq!((fax.calls, fax.pages_sent, fax.pages_total), (3, 0, 2));
    assert_eq!(fax.last, "busy");
    assert_eq!(o.relay, "scripted[15551234567]");
    // Every call went out with our identity; the spool is left empty.
    let requests = s.engine.requests.lock().unwrap();
    assert!(requests
        .iter()
        .all(|r| r.tsi == "+1 555 0100" && r.first_page == 1));
    assert!(!requests[0].document.exists());
}

#[tokio::test]
async fn a_broken_call_resends_only_the_missing_pages() {
    let s = setup(
        vec![
            SendResult::Partial {
                pages_sent: 1,
                duration: Duration::from_secs(20),
                remote_csid: "REMOTE".into(),
                reason: "line dropped".into(),
            },
            SendResult::Sent {
                pages: 2,
                duration: Duration::from_secs(30),
                remote_csid: "REMOTE".into(),
                bit_rate: 14400,
            },
        ],
        Ok(3),
        Resend::Missing,
    );
    let mut env = envelope();
    let o = attempt(&s, &mut env).await;
    assert_eq!(
        (o.status, o.reply.status.as_str()),
        (Status::Deferred, "4.4.2")
    );
    assert_eq!(o.retry_after, Some(120));
    assert!(o.reply.text.contains("after 1 of 3 pages"), "{o:?}");
    // Each call's document comes back with its outcome (the scheduler
    // keeps it; the transport never touches the store).
    assert_eq!(o.document.as_ref().map(|d| &d.0[..]), Some(&b"II*\0"[..]));
    let o = attempt(&s, &mut env).await;
    assert_eq!(o.status, Status::Delivered, "{o:?}");
    assert_eq!(o.document.as_ref().map(|d| &d.0[..]), Some(&b"II*\0"[..]));
    let fax = o.fax.unwrap();
    assert_eq!((fax.pages_sent, fax.pages_total, fax.calls), (3, 3, 2));
    assert_eq!(fax.line_ms, 50_000);
    assert_eq!(fax.remote_csid.as_deref(), Some("REMOTE"));
    // The document of the fax sent is archived.
    let archived = s._spool.path().join("sent/ABC123-0.tif");
    assert!(archived.exists(), "{}", archived.display());
    let firsts: Vec<u32> = s
        .engine
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.first_page)
        .collect();
    assert_eq!(firsts, [1, 2]);
}

#[tokio::test]
async fn resend_all_starts_over() {
    let partial = SendResult::Partial {
        pages_sent: 2,
        duration: Duration::from_secs(20),
        remote_csid: String::new(),
        reason: "x".into(),
    };
    let sent = SendResult::Sent {
        pages: 3,
        duration: Duration::from_secs(30),
        remote_csid: String::new(),
        bit_rate: 9600,
    };
    let s = setup(vec![partial, sent], Ok(3), Resend::All);
    let mut env = envelope();
    attempt(&s, &mut env).await;
    let o = attempt(&s, &mut env).await;
    assert_eq!(o.status, Status::Delivered);
    assert_eq!(o.fax.unwrap().pages_sent, 3);
    let firsts: Vec<u32> = s
        .engine
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.first_page)
        .collect();
    assert_eq!(firsts, [1, 1]);
}

#[tokio::test]
async fn a_message_that_cannot_be_rendered_fails_without_a_call() {
    let s = setup(
        vec![],
        Err(RenderFailure::Message(
            "part 2 (x.docx, application/msword) cannot be faxed".into(),
        )),
        Resend::Missing,
    );
    let mut env = envelope();
    let o = attempt(&s, &mut env).await;
    assert_eq!((o.status, o.reply.code), (Status::Failed, 554));
    assert!(o.reply.text.contains("x.docx"), "{o:?}");
    assert_eq!(o.fax.unwrap().last, "render-failed");
    assert_eq!(o.document, None, "nothing was rendered");
    assert!(s.engine.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn trouble_making_the_document_is_temporary() {
    let s = setup(
        vec![],
        Err(RenderFailure::Local("No space left on device".into())),
        Resend::Missing,
    );
    let mut env = envelope();
    let o = attempt(&s, &mut env).await;
    assert_eq!(
        (o.status, o.reply.status.as_str()),
        (Status::Deferred, "4.3.0")
    );
    assert_eq!(o.retry_after, None, "the queue's schedule");
    assert!(s.engine.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn errors_retry_on_the_queue_schedule_or_fail() {
    let s = setup(
        vec![
            SendResult::Error {
                reason: "modem reset".into(),
                retry: true,
            },
            SendResult::Error {
                reason: "invalid number".into(),
                retry: false,
            },
        ],
        Ok(1),
        Resend::Missing,
    );
    let mut env = envelope();
    let o = attempt(&s, &mut env).await;
    assert_eq!((o.status, o.retry_after), (Status::Deferred, None));
    let o = attempt(&s, &mut env).await;
    assert_eq!(
        (o.status, o.reply.status.as_str()),
        (Status::Failed, "5.4.2")
    );
}

/// Two recipients of one job (two addresses for one number): one
/// document, one call, an outcome for each.
#[tokio::test]
async fn two_recipients_of_one_number_make_one_call() {
    let s = setup(
        vec![SendResult::Sent {
            pages: 1,
            duration: Duration::from_secs(30),
            remote_csid: "REMOTE".into(),
            bit_rate: 14400,
        }],
        Ok(1),
        Resend::Missing,
    );
    let mut env = envelope();
    let mut second = env.recipients[0].clone();
    second.address = "FAX=+15551234567@example.test".into();
    env.recipients.push(second);
    let recipients: Vec<JobRecipient> = env
        .recipients
        .iter()
        .enumerate()
        .map(|(index, r)| JobRecipient {
            index,
            address: r.address.clone(),
            mailbox: None,
        })
        .collect();
    let next_hop = hop();
    let job = Job {
        envelope: &env,
        body: b"Subject: x\r\n\r\nhello\r\n",
        recipients: &recipients,
        next_hop: &next_hop,
    };
    let out = s.transport.deliver(job).await;
    assert_eq!(s.engine.requests.lock().unwrap().len(), 1, "one call");
    assert_eq!(out.len(), 2);
    assert_eq!(
        out.iter().map(|o| (o.index, o.status)).collect::<Vec<_>>(),
        [(0, Status::Delivered), (1, Status::Delivered)]
    );
    assert_eq!(out[1].fax, out[0].fax, "both carry the call's progress");
}

/// A renderer that keeps crashing: deferred and counted, and the message
/// quarantined at `render_crash_limit` (2 here); nothing is dialled.
#[tokio::test]
async fn a_renderer_that_keeps_crashing_quarantines_the_message() {
    let s = setup(
        vec![],
        Err(RenderFailure::Crashed(
            "part 2 (application/pdf): signal 11".into(),
        )),
        Resend::Missing,
    );
    let mut env = envelope();
    let first = attempt(&s, &mut env).await;
    assert_eq!(first.status, Status::Deferred);
    assert!(!first.quarantine);
    assert_eq!(first.fax.as_ref().unwrap().render_crashes, 1);
    let second = attempt(&s, &mut env).await;
    assert_eq!(second.status, Status::Deferred);
    assert!(second.quarantine, "{second:?}");
    assert!(
        second.reply.text.contains("held in quarantine"),
        "{}",
        second.reply
    );
    assert!(s.engine.requests.lock().unwrap().is_empty(), "dialled");
}

/// Each attempt is on the live board, with its end: the reason of a
/// deferral, the pages confirmed in all, which call it was.
#[tokio::test]
async fn every_attempt_ends_on_the_live_board() {
    let Setup {
        transport,
        engine,
        _spool,
    } = setup(
        vec![
            SendResult::BUSY,
            SendResult::Partial {
                pages_sent: 1,
                duration: Duration::from_secs(20),
                remote_csid: String::new(),
                reason: "line dropped".into(),
            },
            SendResult::Sent {
                pages: 1,
                duration: Duration::from_secs(10),
                remote_csid: String::new(),
                bit_rate: 9600,
            },
        ],
        Ok(2),
        Resend::Missing,
    );
    let board = LiveBoard::default();
    let s = Setup {
        transport: transport.with_live(board.clone()),
        engine,
        _spool,
    };
    let mut env = envelope();
    let live = || board.get("ABC123/0").expect("on the board");
    attempt(&s, &mut env).await;
    let p = live();
    assert_eq!(
        (p.state, p.attempt, p.page, p.pages_total),
        (LiveState::Deferred, 1, 0, 2)
    );
    assert_eq!(p.describe(), "deferred: the line was busy");
    assert_eq!(p.engine, "scripted");
    attempt(&s, &mut env).await;
    let p = live();
    assert_eq!((p.state, p.attempt, p.page), (LiveState::Deferred, 2, 1));
    assert_eq!(p.detail, "line dropped");
    attempt(&s, &mut env).await;
    let p = live();
    assert_eq!(p.describe(), "sent 2 of 2 pages to +15551234567");
    assert_eq!(p.attempt, 3);
    // Every request carried the board's handle for this job.
    let requests = s.engine.requests.lock().unwrap();
    assert!(requests
        .iter()
        .all(|r| r.progress.as_ref().map(|p| p.job_id()) == Some("ABC123/0")));
}

/// An engine whose calls never end.
struct Endless;

#[async_trait::async_trait]
impl FaxEngine for Endless {
    fn name(&self) -> &'static str {
        "endless"
    }
    fn lines(&self) -> usize {
        1
    }
    fn lines_busy(&self) -> usize {
        1
    }
    async fn send(&self, request: SendRequest) -> SendResult {
        request.report_pages(0);
        std::future::pending().await
    }
    async fn receive(&self) -> Option<ReceivedFax> {
        None
    }
    async fn acknowledge(&self, _: &ReceivedFax) {}
}

/// An attempt given up mid-call (the server stopping) does not stay "on
/// the line" on the board.
#[tokio::test]
async fn an_attempt_dropped_mid_call_is_ended_on_the_board() {
    let spool = tempfile::tempdir().unwrap();
    let settings = FaxSettings {
        tsi: String::new(),
        header: None,
        retries: 0,
        retry_interval: Duration::from_secs(1),
        resend: Resend::Missing,
        spool: spool.path().to_owned(),
        archive: None,
        render_crash_limit: 1,
    };
    let board = LiveBoard::default();
    let transport = Arc::new(
        FaxTransport::new(Arc::new(Endless), Arc::new(Pages(Ok(2))), None, settings)
            .with_live(board.clone()),
    );
    let mut version = board.subscribe();
    let task = tokio::spawn({
        let transport = transport.clone();
        async move {
            let env = envelope();
            let recipients = [JobRecipient {
                index: 0,
                address: env.recipients[0].address.clone(),
                mailbox: None,
            }];
            let next_hop = hop();
            let job = Job {
                envelope: &env,
                body: b"x",
                recipients: &recipients,
                next_hop: &next_hop,
            };
            transport.deliver(job).await
        }
    });
    let state = || board.get("ABC123/0").map(|p| p.describe());
    let sending = "sending page 1 of 2 to +15551234567";
    while state().as_deref() != Some(sending) {
        version.changed().await.unwrap();
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(state().as_deref(), Some("deferred: interrupted"));
}
