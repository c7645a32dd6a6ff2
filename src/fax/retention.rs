//! Retention of fax images: received faxes (in `[fax.incoming] store`, or
//! where the engine puts them: `[fax.simulated] inbound`, `[fax.spool_engine]
//! received`) and the archive of sent faxes (`[fax]
//! archive`) are deleted `retention_days` after they were written
//! (default 90, at least 7).
//!
//! Zero retention (`zero_retention = true`) deletes a received image as
//! soon as every mail that carries it has left the queue, and after 7
//! days otherwise. Which mails carry an image is recorded next to it, in
//! `<image>.queue` (one queue id a line), by the receive loop; an image
//! without that record (nothing was routed) waits for the 7 days. A mail
//! leaves the queue when each recipient was delivered or failed for good;
//! an image whose mail had a failure is not "delivered" and waits for the
//! 7 days (the queue remembers failed messages for `[fax] history_days`). Only mails
//! made from a received fax are remembered so — they are queued with the
//! client protocol [`PROTOCOL`] —: one record for every bounced mail of
//! an MTA would fill memory (sled keeps ~250 bytes a record resident;
//! docs/reliability.md, the long soak).
//!
//! The purge runs on start and hourly; each deletion is logged as `fax
//! image X deleted (retention N days)` and counted in
//! `faxmta_fax_images_purged_total`.

use crate::config::fax::incoming::MIN_RETENTION_DAYS;
use crate::config::fax::EngineKind;
use crate::config::Config;
use crate::metrics::Metrics;
use faxmta_queue::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often the purge runs.
const INTERVAL: Duration = Duration::from_secs(3600);
const DAY: u64 = 86_400;
/// The suffix of the record of queue ids next to an image.
const RECORD: &str = "queue";
/// The client protocol of the mails made from a received fax.
pub use crate::scheduler::RECEIVED_FAX_PROTOCOL as PROTOCOL;

/// Remember which queued mails carry `image` (for zero retention).
pub fn record(image: &Path, ids: &[String]) -> Result<(), String> {
    let path = record_path(image);
    let mut text = ids.join("\n");
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn record_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_owned();
    name.push(".");
    name.push(RECORD);
    PathBuf::from(name)
}

/// What the purge looks at.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Where received images are.
    pub received: PathBuf,
    /// Where sent faxes are archived, if anywhere.
    pub archive: Option<PathBuf>,
    pub days: u32,
    pub zero: bool,
}

impl Retention {
    pub fn from_config(config: &Config) -> Retention {
        let inc = &config.fax.incoming;
        Retention {
            received: inc
                .store
                .clone()
                .unwrap_or_else(|| match config.fax.engine {
                    EngineKind::Simulated => config.fax.simulated.inbound.clone(),
                    EngineKind::Spool => config.fax.spool_engine.received.clone(),
                    EngineKind::Hylafax => config.fax.hylafax.received.clone(),
                    EngineKind::Sip => config.fax.sip.received.clone(),
                }),
            archive: config.fax.archive.clone(),
            days: inc.retention_days.max(MIN_RETENTION_DAYS),
            zero: inc.zero_retention,
        }
    }
}

/// Whether every mail in the record of `image` was delivered: left the
/// queue with no recipient failed (`false` without a record, or when the
/// queue cannot be read).
fn all_gone(image: &Path, store: &Store) -> bool {
    let Ok(text) = std::fs::read_to_string(record_path(image)) else {
        return false;
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .all(|id| matches!(store.get(id), Ok(None)) && matches!(store.had_failure(id), Ok(false)))
}

/// Age of a file at `now` (0 when it is in the future or unreadable).
fn age(path: &Path, now: SystemTime) -> Option<u64> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(now.duration_since(modified).map_or(0, |d| d.as_secs()))
}

/// One pass at `now`: the images deleted.
pub fn purge(r: &Retention, store: &Store, now: SystemTime) -> Vec<PathBuf> {
    let mut deleted = Vec::new();
    let keep = u64::from(r.days) * DAY;
    let mut dirs = vec![(r.received.as_path(), true)];
    if let Some(archive) = &r.archive {
        dirs.push((archive.as_path(), false));
    }
    for (dir, received) in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue; // not made yet
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let is_record = path.extension().is_some_and(|e| e == RECORD);
            if is_record {
                // A record whose image is gone.
                let image = path.with_extension("");
                if !image.exists() {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            // Only fax images: not the engines' own files beside them
            // (HylaFAX's `.hylafax-taken` list, temporaries); a spool
            // engine's `NAME.rx` goes with its image below.
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            let image = path.extension().is_some_and(|e| {
                let e = e.to_string_lossy().to_ascii_lowercase();
                matches!(e.as_str(), "tif" | "tiff" | "pdf")
            });
            if hidden || !image {
                continue;
            }
            let Some(age) = age(&path, now) else { continue };
            let why = if age >= keep {
                Some(r.days)
            } else if received && r.zero && age >= u64::from(MIN_RETENTION_DAYS) * DAY {
                Some(MIN_RETENTION_DAYS)
            } else if received && r.zero && all_gone(&path, store) {
                Some(0)
            } else {
                None
            };
            let Some(days) = why else { continue };
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    let _ = std::fs::remove_file(record_path(&path));
                    let _ = std::fs::remove_file(path.with_extension("rx"));
                    tracing::info!(
                        "fax image {} deleted (retention {days} days)",
                        path.display()
                    );
                    deleted.push(path);
                }
                Err(e) => tracing::warn!("cannot delete fax image {}: {e}", path.display()),
            }
        }
    }
    deleted
}

/// Purge on start and hourly until shutdown.
pub async fn run(
    retention: Retention,
    store: Store,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (r, s) = (retention.clone(), store.clone());
        match tokio::task::spawn_blocking(move || purge(&r, &s, SystemTime::now())).await {
            Ok(deleted) => metrics.fax_images_purged.inc_by(deleted.len() as u64),
            Err(e) => tracing::warn!("fax image purge failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faxmta_queue::{NewMessage, NewRecipient};

    fn file(dir: &Path, name: &str, age_days: u64, now: SystemTime) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, b"II*\0").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(now - Duration::from_secs(age_days * DAY))
            .unwrap();
        path
    }

    async fn queued(store: &Store) -> String {
        let id = store.new_id().unwrap();
        let message = NewMessage {
            sender: "fax-daemon@test".into(),
            recipients: vec![NewRecipient::new("alice@example.test")],
            ..Default::default()
        };
        store.enqueue(id.clone(), message, b"x").await.unwrap();
        id
    }

    #[tokio::test]
    async fn images_go_after_n_days_archive_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("queue")).unwrap();
        let now = SystemTime::now() + Duration::from_secs(1000 * DAY);
        let (inbound, sent) = (dir.path().join("in"), dir.path().join("sent"));
        let old = file(&inbound, "old.tif", 31, now);
        let young = file(&inbound, "young.tif", 29, now);
        let old_sent = file(&sent, "A-1.tif", 30, now);
        let young_sent = file(&sent, "B-1.tif", 3, now);
        record(&old, &[]).unwrap();
        let r = Retention {
            received: inbound.clone(),
            archive: Some(sent.clone()),
            days: 30,
            zero: false,
        };
        let mut deleted = purge(&r, &store, now);
        deleted.sort();
        assert_eq!(deleted, [old.clone(), old_sent]);
        assert!(young.exists() && young_sent.exists());
        assert!(!record_path(&old).exists());
        // The clock moves on: the young ones go too.
        let later = now + Duration::from_secs(28 * DAY);
        assert_eq!(purge(&r, &store, later).len(), 2);
        assert!(purge(&r, &store, later).is_empty());
    }

    #[tokio::test]
    async fn zero_retention_waits_for_the_mails() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("queue")).unwrap();
        let now = SystemTime::now();
        let inbound = dir.path().join("in");
        let (a, b) = (queued(&store).await, queued(&store).await);
        let carried = file(&inbound, "carried.tif", 0, now);
        record(&carried, &[a.clone(), b.clone()]).unwrap();
        let unrouted = file(&inbound, "unrouted.tif", 6, now);
        let r = Retention {
            received: inbound.clone(),
            archive: None,
            days: 90,
            zero: true,
        };
        assert!(purge(&r, &store, now).is_empty());
        // One mail delivered: still kept.
        assert!(store.remove(&a).unwrap());
        assert!(purge(&r, &store, now).is_empty());
        // Both: deleted, with its record.
        assert!(store.remove(&b).unwrap());
        assert_eq!(purge(&r, &store, now), std::slice::from_ref(&carried));
        assert!(!record_path(&carried).exists());
        // A mail that failed for good left the queue too, but was not
        // delivered: its image waits for the 7 days.
        let c = queued(&store).await;
        let bounced = file(&inbound, "bounced.tif", 6, now);
        record(&bounced, std::slice::from_ref(&c)).unwrap();
        store.record_failure(&c, 1).unwrap();
        assert!(store.remove(&c).unwrap());
        assert!(purge(&r, &store, now).is_empty());
        // Without a record: 7 days.
        assert!(unrouted.exists());
        let later = now + Duration::from_secs(DAY);
        let mut gone = purge(&r, &store, later);
        gone.sort();
        let mut want = vec![bounced, unrouted];
        want.sort();
        assert_eq!(gone, want);
        // The engines' own files are never purged; a spool engine's
        // control file goes with its image.
        let taken = file(&inbound, ".hylafax-taken", 400, now);
        let rx_image = file(&inbound, "spool.tif", 400, now);
        let rx = file(&inbound, "spool.rx", 400, now);
        let notes = file(&inbound, "notes.txt", 400, now);
        assert_eq!(purge(&r, &store, now), [rx_image]);
        assert!(taken.exists() && notes.exists() && !rx.exists());
        // Without zero retention, a delivered image stays its 90 days.
        let kept = file(&inbound, "kept.tif", 10, now);
        record(&kept, &[]).unwrap();
        let r = Retention { zero: false, ..r };
        assert!(purge(&r, &store, now).is_empty());
    }
}
