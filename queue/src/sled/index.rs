//! The schedule index: which message is due when, kept in memory, and
//! how it is built when the queue is opened.
//!
//! With a million messages queued the index must stay small and build
//! fast: a queue id made by [`super::SledStore::new_id`] (13 upper-case hex
//! digits) is kept as a `u64`, not as two heap strings; any other id gets
//! a stand-in number. At open, only the fields that decide when a message
//! is due are read from each envelope ([`DueView`]), and the bodies
//! directory is listed on a second thread meanwhile, for the orphan check
//! (body files, and entries of `body-at` pointing into segments, whose
//! message never was committed).

use super::etrn_index::{marks, EtrnIndex, Marks};
use super::segments::{check_at, is_lost, read_at, segment_number, Loc};
use crate::envelope::{Etrn, QueueId, RcptState};
use crate::error::QueueError;
use crate::lock::lock;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

/// Keys of ids that are not 13 hex digits carry this bit.
const STAND_IN: u64 = 1 << 63;

/// The schedule index, and the number of messages in the queue.
#[derive(Default)]
pub(crate) struct Index {
    by_time: BTreeSet<(u64, u64)>,
    due_of: HashMap<u64, u64>,
    /// Ids that are not 13 hex digits, by stand-in key, and back.
    names: HashMap<u64, QueueId>,
    keys: HashMap<QueueId, u64>,
    next_stand_in: u64,
    /// Messages in the queue (held and scheduled alike).
    messages: usize,
    /// Messages waiting for ETRN, by domain.
    pub etrn: EtrnIndex,
}

/// The key of a 13-digit upper-case hex id (what `new_id` makes).
fn hex_key(id: &str) -> Option<u64> {
    let ok = id.len() == 13 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'));
    ok.then(|| u64::from_str_radix(id, 16).ok()).flatten()
}

impl Index {
    /// The key of `id`, if it has one (without making a stand-in).
    fn key(&self, id: &str) -> Option<u64> {
        hex_key(id).or_else(|| self.keys.get(id).copied())
    }

    fn key_or_new(&mut self, id: &str) -> u64 {
        if let Some(k) = self.key(id) {
            return k;
        }
        self.next_stand_in += 1;
        let k = STAND_IN | self.next_stand_in;
        self.names.insert(k, id.to_string());
        self.keys.insert(id.to_string(), k);
        k
    }

    fn id(&self, key: u64) -> QueueId {
        match self.names.get(&key) {
            Some(name) => name.clone(),
            None => format!("{key:013X}"),
        }
    }

    /// Schedule `id` at `due`, or take it off the schedule (`None`: held
    /// or finished).
    pub fn set(&mut self, id: &str, due: Option<u64>) {
        let key = match due {
            Some(_) => Some(self.key_or_new(id)),
            None => self.key(id),
        };
        let Some(key) = key else { return };
        if let Some(old) = self.due_of.remove(&key) {
            self.by_time.remove(&(old, key));
        }
        match due {
            Some(t) => {
                self.due_of.insert(key, t);
                self.by_time.insert((t, key));
            }
            None if key & STAND_IN != 0 => {
                if let Some(name) = self.names.remove(&key) {
                    self.keys.remove(&name);
                }
            }
            None => {}
        }
    }

    /// When `id` is due, if it is scheduled.
    pub fn due_of(&self, id: &str) -> Option<u64> {
        self.key(id).and_then(|k| self.due_of.get(&k).copied())
    }

    /// Ids due at or before `now`, earliest first, at most `limit`.
    pub fn due(&self, now: u64, limit: usize) -> Vec<QueueId> {
        self.by_time
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|&(_, k)| self.id(k))
            .collect()
    }

    /// The earliest due time.
    pub fn next_due(&self) -> Option<u64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Every scheduled id (in no particular order).
    pub fn scheduled(&self) -> Vec<QueueId> {
        self.due_of.keys().map(|&k| self.id(k)).collect()
    }

    /// How many messages are scheduled, and of those due at `now`.
    pub fn scheduled_and_due(&self, now: u64) -> (usize, usize) {
        let due = self.by_time.range(..(now.saturating_add(1), 0)).count();
        (self.by_time.len(), due)
    }

    /// Messages in the queue.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// A message entered the queue.
    pub fn added(&mut self) {
        self.messages += 1;
    }

    /// A message left the queue.
    pub fn removed(&mut self) {
        self.messages = self.messages.saturating_sub(1);
    }
}

/// What decides when a message is due: read at open instead of the whole
/// envelope (the other fields are skipped, not built).
#[derive(Deserialize)]
pub(crate) struct DueView<'a> {
    held: bool,
    #[serde(borrow)]
    recipients: Vec<RcptView<'a>>,
}

#[derive(Deserialize)]
struct RcptView<'a> {
    #[serde(borrow)]
    address: Cow<'a, str>,
    state: RcptState,
    next_attempt: u64,
    #[serde(default)]
    etrn: Option<Etrn>,
}

impl DueView<'_> {
    /// As [`super::etrn_index::envelope_marks`].
    pub fn etrn_marks(&self) -> Marks {
        if self.held {
            return Vec::new();
        }
        marks(
            self.recipients
                .iter()
                .map(|r| (r.address.as_ref(), r.etrn, r.state.is_active())),
        )
    }

    /// As [`crate::Envelope::due`].
    pub fn due(&self) -> Option<u64> {
        if self.held {
            return None;
        }
        self.recipients
            .iter()
            .filter(|r| r.state.is_active())
            .map(|r| r.next_attempt)
            .min()
    }
}

/// Queue ids as a sorted list of keys (the ids `new_id` makes) and a set
/// of the others: what the orphan check compares, without a database
/// lookup per body file.
#[derive(Default)]
struct Names {
    hex: Vec<u64>,
    other: HashSet<String>,
}

impl Names {
    fn insert(&mut self, id: &str) {
        match hex_key(id) {
            Some(k) => self.hex.push(k),
            None => {
                self.other.insert(id.to_string());
            }
        }
    }

    /// Whether `id` is in (after [`Names::seal`]).
    fn contains(&self, id: &str) -> bool {
        match hex_key(id) {
            Some(k) => self.hex.binary_search(&k).is_ok(),
            None => self.other.contains(id),
        }
    }

    fn seal(&mut self) {
        self.hex.sort_unstable();
    }
}

/// Build the index of the envelopes in `envelopes`, and remove the body
/// files in `bodies` that have no envelope (messages never committed).
/// The bodies directory is listed on a second thread meanwhile and
/// compared with the ids read for the index: a lookup in the database
/// per body file would read the tree in random order, which on a queue
/// larger than the database's cache costs a page read per file. Runs
/// before the store is handed out, or under the store's `writing` lock
/// (a reopening): no enqueue races the check; bodies still being written
/// (`receiving`) are left alone.
///
/// First, the messages whose body never reached the disk go: those in a
/// segment from `unsynced_from` on (the mark of the last sync that
/// reached the log, `commit.rs`) whose octets fail their checksum.
pub(crate) fn build(
    envelopes: &sled::Tree,
    body_at: &sled::Tree,
    bodies: &Path,
    receiving: &std::sync::Mutex<HashSet<String>>,
    unsynced_from: u64,
) -> Result<Built, QueueError> {
    drop_unwritten(envelopes, body_at, bodies, unsynced_from)?;
    std::thread::scope(|scope| {
        let listing = scope.spawn(|| list_dir(bodies));
        let mut index = Index::default();
        let mut stored = Names::default();
        let mut corrupt = Vec::new();
        for item in envelopes.iter() {
            let (key, value) = item?;
            let id = String::from_utf8_lossy(&key);
            let view: DueView = match serde_json::from_slice(&value) {
                Ok(view) => view,
                Err(e) => {
                    corrupt.push((key.to_vec(), value.to_vec(), e));
                    continue;
                }
            };
            index.set(&id, view.due());
            index.etrn.set(&id, view.etrn_marks());
            index.added();
            stored.insert(&id);
        }
        stored.seal();
        // Before the orphan scan, which would take their bodies.
        for (key, value, e) in corrupt {
            quarantine(envelopes, body_at, bodies, &key, &value, &e)?;
        }
        // Where the bodies in segments lie; entries of messages never
        // committed (or unreadable ones) go.
        let mut locs = Vec::new();
        let mut located = Names::default();
        let mut stale = 0;
        for item in body_at.iter() {
            let (key, value) = item?;
            let id = String::from_utf8_lossy(&key);
            match Loc::decode(&value) {
                Some(loc) if stored.contains(&id) => {
                    locs.push(loc);
                    located.insert(&id);
                }
                _ => {
                    body_at.remove(&key)?;
                    stale += 1;
                }
            }
        }
        if stale > 0 {
            tracing::info!(stale, "removed body locations of messages never committed");
        }
        located.seal();
        let files = listing.join().map_err(|_| QueueError::Sync {
            message: "listing the bodies directory panicked".into(),
            disk_full: false,
        })??;
        let mut orphans = 0;
        // Bodies being written (a reopening while sessions receive) are
        // not orphans; the set is held so none is settled meanwhile.
        let receiving = lock(receiving);
        let mut segments = Vec::new();
        for name in files {
            if segment_number(&name).is_some() {
                // Deleted by `Segments::open` when no body lies in it.
                segments.push(name);
                continue;
            }
            // A file beside a body in a segment: a move out of the
            // segment (`evict.rs`) that a crash cut short; the segment's
            // copy is the body.
            if !name.to_str().is_some_and(|id| {
                (stored.contains(id) && !located.contains(id)) || receiving.contains(id)
            }) {
                let _ = std::fs::remove_file(bodies.join(&name));
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::info!(orphans, "removed bodies of messages never committed");
        }
        Ok(Built {
            index,
            locs,
            segments,
        })
    })
}

/// Remove the messages whose body lies in a segment from `from` on and
/// fails its checksum there (a crash before the sync that would have
/// acknowledged them). Bodies in older segments were synced before the
/// mark was recorded, and are not read.
fn drop_unwritten(
    envelopes: &sled::Tree,
    body_at: &sled::Tree,
    bodies: &Path,
    from: u64,
) -> Result<(), QueueError> {
    let mut open = HashMap::new();
    let mut dropped = Vec::new();
    for item in body_at.iter() {
        let (key, value) = item?;
        let Some(loc) = Loc::decode(&value) else {
            continue; // removed with the stale entries
        };
        if loc.seg < from {
            continue;
        }
        match check_at(bodies, &mut open, loc) {
            Ok(()) => {}
            Err(e) if is_lost(&e) => dropped.push((key, e)),
            // Not a verdict on the body: its delivery reports it if it
            // cannot be read then.
            Err(e) => tracing::warn!(
                "cannot check the body of {}: {e}",
                String::from_utf8_lossy(&key)
            ),
        }
    }
    for (key, e) in dropped {
        envelopes.remove(&key)?;
        body_at.remove(&key)?;
        tracing::warn!(
            "{}: removed: its body never reached the disk before a crash \
             (the message was not acknowledged): {e}",
            String::from_utf8_lossy(&key)
        );
    }
    Ok(())
}

/// What [`build`] found: the index, where the bodies in segments lie,
/// and the segment files present.
pub(crate) struct Built {
    pub index: Index,
    pub locs: Vec<Loc>,
    pub segments: Vec<std::ffi::OsString>,
}

/// Move an envelope that cannot be read, and its body, out of the queue
/// into `quarantine/` beside `bodies/` (`ID.envelope`, `ID.body`), so one
/// corrupt record never keeps the queue from opening; the administrator
/// finds both there, and a log line says so.
fn quarantine(
    envelopes: &sled::Tree,
    body_at: &sled::Tree,
    bodies: &Path,
    key: &[u8],
    value: &[u8],
    error: &serde_json::Error,
) -> Result<(), QueueError> {
    let id = String::from_utf8_lossy(key);
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = bodies.with_file_name("quarantine");
    let file_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| QueueError::File { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(file_error(&dir))?;
    let saved = dir.join(format!("{name}.envelope"));
    std::fs::write(&saved, value).map_err(file_error(&saved))?;
    let body = bodies.join(id.as_ref());
    let moved = dir.join(format!("{name}.body"));
    let in_segment = body_at.get(key)?.and_then(|v| Loc::decode(&v));
    let had_body = match in_segment {
        // Copied out; the segment goes when no other body lies in it.
        Some(loc) => {
            let data = read_at(bodies, loc).map_err(file_error(&body))?;
            std::fs::write(&moved, data).map_err(file_error(&moved))?;
            body_at.remove(key)?;
            Ok(())
        }
        None => std::fs::rename(&body, &moved),
    };
    let had_body = match had_body {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(QueueError::File {
                path: body,
                source: e,
            })
        }
    };
    for synced in [&saved, &dir, &bodies.to_path_buf()] {
        std::fs::File::open(synced)
            .and_then(|f| f.sync_all())
            .map_err(file_error(synced))?;
    }
    envelopes.remove(key)?;
    tracing::error!(
        "queue: the envelope of {id} cannot be read ({error}); moved to {}{}; the rest of the queue opens",
        saved.display(),
        if had_body {
            format!(" with its body ({})", moved.display())
        } else {
            " (it had no body)".to_string()
        }
    );
    Ok(())
}

fn list_dir(dir: &Path) -> Result<Vec<std::ffi::OsString>, QueueError> {
    let listing = std::fs::read_dir(dir).map_err(|source| QueueError::File {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(listing.flatten().map(|entry| entry.file_name()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{NewMessage, NewRecipient};

    #[test]
    fn hex_ids_are_numbers_and_others_stand_ins() {
        let mut index = Index::default();
        index.set("6740A1B200001", Some(20));
        index.set("ORPHAN", Some(10));
        index.set("6740A1B200002", Some(30));
        index.set("6740a1b200003", Some(5)); // lower case: not ours, kept as given
        assert_eq!(
            index.due(25, 10),
            vec!["6740a1b200003", "ORPHAN", "6740A1B200001"]
        );
        assert_eq!(index.due(100, 2), vec!["6740a1b200003", "ORPHAN"]);
        assert_eq!(index.next_due(), Some(5));
        assert_eq!(index.due_of("6740A1B200002"), Some(30));
        assert_eq!(index.scheduled_and_due(20), (4, 3));
        index.set("ORPHAN", Some(40));
        index.set("6740A1B200001", None);
        index.set("6740a1b200003", None);
        index.set("NEVER-SEEN", None);
        assert_eq!(index.due(100, 10), vec!["6740A1B200002", "ORPHAN"]);
        assert!(
            index.names.len() == 1 && index.keys.len() == 1,
            "stand-ins go"
        );
        let mut all = index.scheduled();
        all.sort();
        assert_eq!(all, vec!["6740A1B200002", "ORPHAN"]);
    }

    #[test]
    fn orphans_are_found_among_hex_and_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let bodies = dir.path().join("bodies");
        std::fs::create_dir_all(&bodies).unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        let tree = db.open_tree("envelopes").unwrap();
        let msg = NewMessage {
            sender: "a@b".into(),
            recipients: vec![NewRecipient::new("x@y")],
            ..Default::default()
        };
        for id in ["6740A1B200001", "6740A1B200003", "kept-other"] {
            let env = msg.clone().into_envelope(id.into(), 1, 100);
            tree.insert(id, serde_json::to_vec(&env).unwrap()).unwrap();
            std::fs::write(bodies.join(id), b"x").unwrap();
        }
        for orphan in [
            "6740A1B200002",
            "6740a1b200001",
            "other-orphan",
            "6740A1B20000",
        ] {
            std::fs::write(bodies.join(orphan), b"half").unwrap();
        }
        let body_at = db.open_tree("body-at").unwrap();
        let index = build(&tree, &body_at, &bodies, &Default::default(), 0)
            .unwrap()
            .index;
        assert_eq!(index.messages(), 3);
        assert_eq!(index.due(100, 10).len(), 3);
        let mut left: Vec<String> = std::fs::read_dir(&bodies)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["6740A1B200001", "6740A1B200003", "kept-other"]);
    }

    #[test]
    fn the_due_view_agrees_with_the_envelope() {
        let msg = NewMessage {
            sender: "a@b".into(),
            recipients: vec![NewRecipient::new("x@y"), NewRecipient::new("z@y")],
            envid: Some("skipped \"field\"".into()),
            ..Default::default()
        };
        let mut env = msg.into_envelope("ID".into(), 10, 100);
        let view = |e: &crate::Envelope| {
            let json = serde_json::to_vec(e).unwrap();
            serde_json::from_slice::<DueView>(&json).unwrap().due()
        };
        for step in 0..5 {
            match step {
                1 => env.recipients[0].next_attempt = 50,
                2 => env.recipients[0].state = RcptState::Delivered,
                3 => env.held = true,
                4 => {
                    env.held = false;
                    env.recipients[1].state = RcptState::Failed;
                }
                _ => {}
            }
            assert_eq!(view(&env), env.due(), "step {step}");
        }
    }
}
