//! Unit tests of inbound.rs.

use super::*;
use faxmta_fax::page::{Compression, Page, Resolution};
use faxmta_fax::tiff::{write_tiff_f, TiffHeader};
use std::time::{Duration, SystemTime};

fn config(work: &Path) -> Config {
    let text = format!(
        "hostname = \"mx.example.test\"\n\
         [fax.incoming]\n\
         default_to = [\"postmaster@example.test\"]\n\
         failed_to = [\"faxmaster@example.test\"]\n\
         store = \"{}\"\n\
         [[fax.user]]\naddress = \"alice@example.test\"\nnumbers = [\"100\"]\n\
         incoming_format = \"tiff\"\n",
        work.join("store").display()
    );
    Config::parse(Path::new("test.toml"), &text).unwrap()
}

fn fax(work: &Path, pages: u32, status: Reception, called: &str) -> ReceivedFax {
    let document = work.join("in").join("1-0-in.tif");
    if pages > 0 {
        std::fs::create_dir_all(work.join("in")).unwrap();
        let page = Page::blank(1728, 100, Resolution::Fine);
        let all = vec![page; pages as usize];
        write_tiff_f(&document, &all, Compression::Mh, &TiffHeader::default()).unwrap();
    }
    ReceivedFax {
        document,
        pages,
        remote_tsi: "REMOTE".into(),
        caller: Some("+4930123".into()),
        called: Some(called.into()),
        duration: Duration::from_secs(40),
        status,
        received_at: SystemTime::now(),
        bad_rows: Some(0),
        source: None,
    }
}

/// Hands over the faxes it was given, then waits.
struct OneShot(tokio::sync::Mutex<Vec<ReceivedFax>>);

#[async_trait::async_trait]
impl FaxEngine for OneShot {
    fn name(&self) -> &'static str {
        "one-shot"
    }
    fn lines(&self) -> usize {
        1
    }
    fn lines_busy(&self) -> usize {
        0
    }
    async fn send(&self, _: faxmta_fax::engine::SendRequest) -> faxmta_fax::engine::SendResult {
        unreachable!("receive only")
    }
    async fn receive(&self) -> Option<ReceivedFax> {
        let next = self.0.lock().await.pop();
        match next {
            Some(fax) => Some(fax),
            None => std::future::pending().await,
        }
    }
    async fn acknowledge(&self, _: &ReceivedFax) {}
}

#[tokio::test]
async fn a_fax_the_queue_cannot_take_yet_is_kept_and_tried_again() {
    let work = tempfile::tempdir().unwrap();
    let config = Arc::new(config(work.path()));
    let store = Store::open(&work.path().join("queue")).unwrap();
    // The queue cannot take mail: its bodies directory is a file.
    let bodies = work.path().join("queue/bodies");
    let aside = work.path().join("queue/bodies.aside");
    std::fs::rename(&bodies, &aside).unwrap();
    std::fs::write(&bodies, b"not a directory").unwrap();
    let f = fax(work.path(), 1, Reception::Complete, "100");
    let engine = Arc::new(OneShot(tokio::sync::Mutex::new(vec![f])));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (_configs_tx, configs) = watch::channel(config);
    let task = tokio::spawn(run(
        engine,
        configs,
        store.clone(),
        Arc::new(Metrics::new()),
        stop_rx,
    ));
    // (The window is the test: three retries pass, none queues.)
    tokio::time::sleep(RETRY * 3).await;
    assert!(queued(&store).is_empty(), "nothing could be queued");
    // The queue recovers: the fax's mail is queued at the next retry.
    std::fs::remove_file(&bodies).unwrap();
    std::fs::rename(&aside, &bodies).unwrap();
    let mut mails = Vec::new();
    for _ in 0..50 {
        mails = queued(&store);
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(RETRY / 4).await;
    }
    assert_eq!(mails.len(), 1, "one mail for alice");
    assert_eq!(mails[0].0, ["alice@example.test"]);
    // Marked as made from a received fax: a failure of it is
    // remembered for zero retention (and no other mail's is).
    let listed = store.list().unwrap();
    assert_eq!(listed[0].client.protocol, crate::fax::retention::PROTOCOL);
    let _ = stop_tx.send(true);
    task.await.unwrap();
}

/// The queued messages: (recipients, body), oldest first.
fn queued(store: &Store) -> Vec<(Vec<String>, String)> {
    let mut list = store.list().unwrap();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    list.iter()
        .map(|e| {
            let body = store.body(&e.id).unwrap().unwrap();
            (
                e.recipients.iter().map(|r| r.address.clone()).collect(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_partial_reception_is_routed_and_noticed() {
    let work = tempfile::tempdir().unwrap();
    let config = config(work.path());
    let store = Store::open(&work.path().join("queue")).unwrap();
    let reason = "the far end hung up".to_string();
    let mut f = fax(work.path(), 2, Reception::Partial { reason }, "100");
    handle(&config, &store, &mut f).await.unwrap();
    let q = queued(&store);
    assert_eq!(q.len(), 2, "{q:?}");
    // The notice first, to the number's user; then the fax, as TIFF.
    assert_eq!(q[0].0, ["alice@example.test"]);
    assert!(q[0]
        .1
        .contains("Incoming Failed: fax from +4930123 (2 page(s) received)"));
    assert!(q[0].1.contains("the far end hung up"));
    assert!(q[0].1.contains("2 page(s) arrived"));
    assert_eq!(q[1].0, ["alice@example.test"]);
    assert!(q[1].1.contains("Subject: Fax from +4930123 (2 pages)"));
    assert!(q[1].1.contains("image/tiff"));
    assert!(q[1]
        .1
        .contains("From: \"Fax service\" <fax-daemon@mx.example.test>"));
    // Moved into the store, with the record of the mail carrying it.
    let image = work.path().join("store/1-0-in.tif");
    assert!(image.exists());
    let record = std::fs::read_to_string(work.path().join("store/1-0-in.tif.queue")).unwrap();
    let envelopes = store.list().unwrap();
    let fax_mail = envelopes
        .iter()
        .find(|e| record.trim() == e.id)
        .expect("the record names the fax mail");
    assert_eq!(fax_mail.sender, "fax-daemon@mx.example.test");
    assert!(fax_mail.client.trusted);
}

#[tokio::test]
async fn one_mail_per_format_for_all_its_recipients() {
    let work = tempfile::tempdir().unwrap();
    let mut config = config(work.path());
    config.fax.incoming.default_to = vec!["a@example.test".into(), "b@example.test".into()];
    let store = Store::open(&work.path().join("queue")).unwrap();
    let mut f = fax(work.path(), 1, Reception::Complete, "999");
    handle(&config, &store, &mut f).await.unwrap();
    let q = queued(&store);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].0, ["a@example.test", "b@example.test"]);
    let message = mail_parser::MessageParser::default()
        .parse(q[0].1.as_bytes())
        .unwrap();
    let to: Vec<&str> = message
        .to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, ["a@example.test", "b@example.test"]);
    assert_eq!(message.subject(), Some("Fax from +4930123 (1 page)"));
    let pdf = message.attachments().next().unwrap();
    assert!(pdf.contents().starts_with(b"%PDF-1.4"));
}

#[tokio::test]
async fn a_failed_reception_without_users_goes_to_failed_to() {
    let work = tempfile::tempdir().unwrap();
    let config = config(work.path());
    let store = Store::open(&work.path().join("queue")).unwrap();
    let reason = "no fax tone".to_string();
    let mut f = fax(work.path(), 0, Reception::Failed { reason }, "555");
    handle(&config, &store, &mut f).await.unwrap();
    let q = queued(&store);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].0, ["faxmaster@example.test"]);
    assert!(q[0].1.contains("No page arrived."));
}
