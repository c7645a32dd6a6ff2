//! Taking received faxes from HylaFAX's receive queue: `RCVFMT` with our
//! fields, `LIST recvq`, `RETR recvq/NAME` into `received` (written as a
//! `.` temporary, synced and renamed, the directory synced: the fax is
//! on our disk before anything may remove it there). Only once the fax's mails are
//! queued is it acknowledged: `DELE recvq/NAME`, or, when the server
//! refuses that (no rights), `NAME` noted in `received/.hylafax-taken`
//! so that it is not fetched again. Each listing prunes that list: a
//! name no longer in the receive queue is dropped from it.

use super::{received, HylafaxEngine, HylafaxError, HylafaxSettings, ProtocolError};
use crate::engine::ReceivedFax;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Our `RCVFMT`: file, pages, `*` while receiving, time spent, subaddress,
/// TSI, caller id number (CIDNumber: the ANI), error; `|`-separated (the
/// error, free text, last).
pub const RCVFMT: &str = "%f|%p|%z|%h|%a|%s|%j|%e";

/// The largest received fax we fetch.
const MAX_FAX: u64 = 256 << 20;

/// Names noted as taken but not deleted on the server.
const TAKEN: &str = ".hylafax-taken";

/// One line of `LIST recvq` in [`RCVFMT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvInfo {
    pub file: String,
    pub pages: u32,
    pub in_progress: bool,
    pub duration: Duration,
    pub subaddress: String,
    pub tsi: String,
    /// The caller's number (HylaFAX's CIDNumber), if the line gave one.
    pub caller: String,
    pub error: String,
}

impl RecvInfo {
    pub fn parse(line: &str) -> Option<RecvInfo> {
        let f: Vec<&str> = line.trim_end_matches(['\r', '\n']).splitn(8, '|').collect();
        if f.len() != 8 {
            return None;
        }
        let file = f[0].trim();
        // A plain name in recvq, nothing that climbs out of it.
        if file.is_empty() || file.contains('/') || file.starts_with('.') {
            return None;
        }
        Some(RecvInfo {
            file: file.to_owned(),
            pages: f[1].trim().parse().ok()?,
            in_progress: f[2].trim() == "*",
            duration: hms(f[3].trim()).unwrap_or_default(),
            subaddress: f[4].trim().to_owned(),
            tsi: f[5].trim().to_owned(),
            caller: f[6].trim().to_owned(),
            error: f[7].trim().to_owned(),
        })
    }
}

/// `HH:MM:SS` (or `MM:SS`) as a duration.
fn hms(s: &str) -> Option<Duration> {
    let mut secs = 0u64;
    for part in s.split(':') {
        secs = secs.checked_mul(60)?.checked_add(part.parse().ok()?)?;
    }
    Some(Duration::from_secs(secs))
}

/// Fetches every complete fax waiting in the receive queue, but those in
/// `skip` (handed out, not yet acknowledged) and those noted as taken.
pub async fn take(
    settings: &HylafaxSettings,
    skip: &HashSet<String>,
) -> Result<Vec<ReceivedFax>, HylafaxError> {
    let mut c = HylafaxEngine::connect(settings).await?;
    c.expect(&format!("RCVFMT \"{RCVFMT}\""), &[200]).await?;
    let listing = c.fetch("LIST recvq", 4 << 20).await?;
    let listing = String::from_utf8_lossy(&listing);
    let mut infos = Vec::new();
    for line in listing.lines() {
        match RecvInfo::parse(line) {
            Some(info) => infos.push(info),
            None if line.trim().is_empty() => {}
            None => tracing::warn!("HylaFAX receive queue: unreadable line {line:?}"),
        }
    }
    let noted = prune_taken(settings, &infos);
    let mut out = Vec::new();
    for info in infos {
        if info.in_progress || noted.contains(&info.file) || skip.contains(&info.file) {
            continue;
        }
        // A later error must not lose what was fetched: hand out what
        // was fetched, stop there.
        let one = async {
            c.expect("TYPE I", &[200]).await?;
            let path = settings.received.join(format!("{}-{}", stamp(), info.file));
            if info.pages > 0 {
                let data = match c.fetch(&format!("RETR recvq/{}", info.file), MAX_FAX).await {
                    Ok(data) => data,
                    // Refused (no permission …): the others may still come.
                    Err(e @ ProtocolError::Refused { .. }) => {
                        tracing::warn!("HylaFAX: cannot fetch recvq/{}: {e}", info.file);
                        return Ok(None);
                    }
                    Err(e) => return Err(e.into()),
                };
                write_atomic(&path, &data)
                    .map_err(|e| HylafaxError::Other(format!("cannot write {path:?}: {e}")))?;
            }
            tracing::info!(file = %info.file, pages = info.pages, tsi = %info.tsi, "fax fetched from HylaFAX");
            Ok(Some(received(path, &info)))
        }
        .await;
        match one {
            Ok(Some(fax)) => out.push(fax),
            Ok(None) => {}
            Err(e) if out.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!(
                    "HylaFAX receive queue: {e}; the faxes fetched so far are handed on"
                );
                break;
            }
        }
    }
    c.quit().await;
    Ok(out)
}

/// The names noted in `.hylafax-taken` that are still in the receive
/// queue (`infos`); the others are dropped from the file.
fn prune_taken(settings: &HylafaxSettings, infos: &[RecvInfo]) -> HashSet<String> {
    let taken_file = settings.received.join(TAKEN);
    let Ok(text) = std::fs::read_to_string(&taken_file) else {
        return HashSet::new();
    };
    let there: HashSet<&str> = infos.iter().map(|i| i.file.as_str()).collect();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let kept: Vec<&str> = all.iter().copied().filter(|l| there.contains(l)).collect();
    if kept.len() != all.len() {
        let result = if kept.is_empty() {
            std::fs::remove_file(&taken_file)
        } else {
            let mut text = kept.join("\n");
            text.push('\n');
            write_atomic(&taken_file, text.as_bytes())
        };
        match result {
            Ok(()) => tracing::info!(
                "HylaFAX: {} name(s) gone from the receive queue dropped from {taken_file:?}",
                all.len() - kept.len()
            ),
            Err(e) => tracing::warn!("HylaFAX: cannot prune {taken_file:?}: {e}"),
        }
    }
    kept.into_iter().map(str::to_owned).collect()
}

/// The fax `file`'s mails are queued: `DELE recvq/FILE`; when the server
/// refuses (or cannot be reached), `file` is noted as taken instead.
pub async fn acknowledge(settings: &HylafaxSettings, file: &str) {
    let deleted = async {
        let mut c = HylafaxEngine::connect(settings).await?;
        let dele = c.command(&format!("DELE recvq/{file}")).await?;
        c.quit().await;
        Ok::<_, HylafaxError>(dele)
    }
    .await;
    let why = match deleted {
        Ok(reply) if reply.positive() => {
            tracing::info!(file = %file, "received fax deleted on the HylaFAX server");
            return;
        }
        Ok(reply) => reply.to_string(),
        Err(e) => e.to_string(),
    };
    let taken_file = settings.received.join(TAKEN);
    tracing::warn!("HylaFAX: cannot delete recvq/{file} ({why}); noted in {taken_file:?}");
    if let Err(e) = append_line(&taken_file, file) {
        tracing::error!(
            "HylaFAX: cannot write {taken_file:?}: {e}; recvq/{file} will be fetched again at the next start"
        );
    }
}

fn stamp() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// `path` whole or not at all, durable: written as `.NAME`, fsynced,
/// renamed, and the directory fsynced (the rename is what hands the fax
/// on; without the directory's sync a power cut could undo it after the
/// server's copy is deleted).
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}", name.unwrap_or_default()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_parent(path)
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")?;
    f.sync_all()?;
    // The file may be new.
    sync_parent(path)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    crate::engine::spool::files::sync_parent(path)
        .map_err(|e| std::io::Error::new(e.source.kind(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_our_rcvfmt_lines() {
        let i = RecvInfo::parse("fax00012.tif|3| |0:01:05|123|+1 555 0100|5550199|").unwrap();
        assert_eq!(i.file, "fax00012.tif");
        assert_eq!(i.pages, 3);
        assert!(!i.in_progress);
        assert_eq!(i.duration, Duration::from_secs(65));
        assert_eq!(i.subaddress, "123");
        assert_eq!(i.tsi, "+1 555 0100");
        assert_eq!(i.caller, "5550199");
        assert_eq!(i.error, "");
        let i = RecvInfo::parse("fax1.tif|1|*|00:00:10||x||RSPREC error | odd").unwrap();
        assert!(i.in_progress);
        assert_eq!(i.error, "RSPREC error | odd");
        assert_eq!(RecvInfo::parse("../etc/passwd|1| |0:00||x||"), None);
        assert_eq!(RecvInfo::parse("fax1.tif|x| |0:00||x||"), None);
        assert_eq!(RecvInfo::parse("fax1.tif|1"), None);
    }
}
