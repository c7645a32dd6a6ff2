//! Maildir delivery (https://cr.yp.to/proto/maildir.html).
//!
//! Each copy is written to `tmp/` under a unique name, synced, renamed into
//! `new/`, and the directory is synced, so a copy is either complete in
//! `new/` or absent. The file starts with `Return-Path:` and
//! `Delivered-To:` and uses Unix line endings, as Postfix and Dovecot write
//! Maildir files.

use faxmta_queue::Reply;
use faxmta_transport::{Job, JobRecipient, Outcome, Status, Transport};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Delivers each recipient of a job into its Maildir.
#[derive(Debug, Default)]
pub struct MaildirTransport;

#[async_trait::async_trait]
impl Transport for MaildirTransport {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(job.recipients.len());
        for rcpt in job.recipients {
            outcomes.push(self.deliver_one(&job, rcpt).await);
        }
        outcomes
    }
}

impl MaildirTransport {
    async fn deliver_one(&self, job: &Job<'_>, rcpt: &JobRecipient) -> Outcome {
        let Some(dir) = rcpt.mailbox.clone() else {
            return Outcome::local(
                rcpt.index,
                Status::Failed,
                "local",
                Reply::new(550, "5.3.5", "no mailbox configured for this recipient"),
            );
        };
        let content = with_delivery_headers(&job.envelope.sender, &rcpt.address, job.body);
        let target = dir.clone();
        let result = tokio::task::spawn_blocking(move || deliver_to_maildir(&target, &content))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        let relay = format!("maildir:{}", dir.display());
        match result {
            Ok(path) => Outcome::local(
                rcpt.index,
                Status::Delivered,
                relay,
                Reply::new(
                    250,
                    "2.0.0",
                    format!(
                        "delivered to maildir as {}",
                        path.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    ),
                ),
            ),
            Err(e) => {
                // Like Postfix's local(8): a file system problem is a
                // temporary failure; the mail waits for the administrator.
                let (code, status) = match e.raw_os_error() {
                    Some(28) | Some(122) => (452, "4.2.2"), // ENOSPC, EDQUOT
                    _ => (451, "4.3.0"),
                };
                Outcome::local(
                    rcpt.index,
                    Status::Deferred,
                    relay,
                    Reply::new(code, status, format!("maildir delivery failed: {e}")),
                )
            }
        }
    }
}

/// The copy as it lands in the mailbox: delivery headers, then the message
/// with CRLF turned into LF.
fn with_delivery_headers(sender: &str, recipient: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 128);
    out.extend_from_slice(
        format!("Return-Path: <{sender}>\nDelivered-To: {recipient}\n").as_bytes(),
    );
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// Write `content` into the Maildir at `dir` (creating `tmp`, `new` and
/// `cur` when missing) and return the path of the new file.
pub fn deliver_to_maildir(dir: &Path, content: &[u8]) -> io::Result<PathBuf> {
    for sub in ["tmp", "new", "cur"] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join(sub))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(sub).display())))?;
    }
    let name = unique_name();
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&tmp, &new)?;
        File::open(dir.join("new"))?.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::new(e.kind(), format!("{}: {e}", new.display())));
    }
    Ok(new)
}

/// `time.M<usec>P<pid>Q<seq>.host`, the modern Maildir unique name.
fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let host = gethostname::gethostname()
        .to_string_lossy()
        .replace('/', "\\057")
        .replace(':', "\\072");
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        host
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use faxmta_queue::{ClientInfo, Envelope};

    fn envelope() -> Envelope {
        Envelope {
            id: "ABC".into(),
            sender: "from@example.org".into(),
            arrival: 0,
            size: 0,
            client: ClientInfo::default(),
            body_type: Default::default(),
            smtputf8: false,
            requiretls: false,
            ret: None,
            envid: None,
            held: false,
            lifetime: None,
            head: String::new(),
            recipients: vec![],
        }
    }

    #[tokio::test]
    async fn delivers_into_new_with_headers() {
        let dir = tempfile::tempdir().unwrap();
        let env = envelope();
        let rcpts = vec![JobRecipient {
            index: 0,
            address: "alice@example.test".into(),
            mailbox: Some(dir.path().join("alice")),
        }];
        let job = Job {
            envelope: &env,
            body: b"Subject: x\r\n\r\nline\r\nbare\rcr\r\n",
            recipients: &rcpts,
            next_hop: &faxmta_transport::NextHop::Local,
        };
        let out = MaildirTransport.deliver(job).await;
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, Status::Delivered, "{:?}", out[0].reply);
        let files: Vec<_> = fs::read_dir(dir.path().join("alice/new"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1);
        let text = fs::read(files[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(
            text,
            b"Return-Path: <from@example.org>\nDelivered-To: alice@example.test\nSubject: x\n\nline\nbare\rcr\n"
        );
        assert_eq!(
            fs::read_dir(dir.path().join("alice/tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn unwritable_mailbox_defers() {
        let dir = tempfile::tempdir().unwrap();
        // A plain file where the Maildir should be: fails even for root.
        fs::write(dir.path().join("bob"), b"not a directory").unwrap();
        let env = envelope();
        let rcpts = vec![JobRecipient {
            index: 3,
            address: "bob@example.test".into(),
            mailbox: Some(dir.path().join("bob")),
        }];
        let job = Job {
            envelope: &env,
            body: b"x\r\n",
            recipients: &rcpts,
            next_hop: &faxmta_transport::NextHop::Local,
        };
        let out = MaildirTransport.deliver(job).await;
        assert_eq!(out[0].index, 3);
        assert_eq!(out[0].status, Status::Deferred);
        assert_eq!(out[0].reply.code, 451);
        assert!(
            out[0].reply.text.contains("maildir delivery failed"),
            "{}",
            out[0].reply
        );
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name(), unique_name());
    }
}
