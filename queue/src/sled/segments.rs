//! Small bodies in shared segment files. A body that fits in the
//! writer's buffer (under 256 KiB: nearly all mail) is appended to the
//! active segment, `bodies/seg-NNNNNNNNNNNNNNNN`, instead of getting a
//! file of its own; the sled tree `body-at` maps its queue id to where
//! it lies ([`Loc`]). One `fdatasync` of the segment then makes every
//! body appended since durable at once (the group commit's first phase),
//! and reading a body back is one `pread` on a file kept open: no file is
//! created, fsynced, opened or unlinked per message.
//!
//! A segment takes appends until it passes [`SEGMENT_MAX`], and is
//! deleted once the last body in it is gone (its message's removal
//! synced). The number of live bodies per segment is kept in memory and
//! counted again from `body-at` whenever the store opens: a segment no
//! entry points into is deleted then, and an entry whose envelope is
//! missing (a crash between the two inserts) is dropped. Bodies too large
//! for the buffer stream to files of their own, as before.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A segment takes no more appends once it is this long.
pub(crate) const SEGMENT_MAX: u64 = 64 << 20;

/// A released body this long or longer gives its whole pages back to the
/// filesystem at once (a hole punched in its segment). A shorter one
/// waits for its segment to go: most mail, which is released as soon as
/// it is delivered, never pays for the call.
pub(crate) const PUNCH_MIN: u64 = 64 << 10;

/// The key in sled's default tree of the lowest segment that may hold
/// octets not synced ([`Segments::unsynced_from`]), recorded before each
/// flush (`commit.rs`).
pub(crate) const UNSYNCED_FROM: &[u8] = b"segments-unsynced-from";

/// What names a segment file.
const PREFIX: &str = "seg-";

/// Where a body lies: segment number, offset and length, in octets, and
/// the CRC-32 of its octets (`None` in a location written before
/// checksums were kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub seg: u64,
    pub off: u64,
    pub len: u64,
    pub crc: Option<u32>,
}

impl Loc {
    /// The 28 octets kept in `body-at` (big-endian fields; 24 without a
    /// checksum).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28);
        out.extend_from_slice(&self.seg.to_be_bytes());
        out.extend_from_slice(&self.off.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        if let Some(crc) = self.crc {
            out.extend_from_slice(&crc.to_be_bytes());
        }
        out
    }

    /// The location `encode` made, or `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Loc> {
        let field = |i: usize| {
            bytes
                .get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        let crc = match bytes.len() {
            24 => None,
            28 => Some(u32::from_be_bytes(bytes[24..28].try_into().ok()?)),
            _ => return None,
        };
        Some(Loc {
            seg: field(0)?,
            off: field(1)?,
            len: field(2)?,
            crc,
        })
    }

    /// Whether `data`, read from here, is what was appended (always, for a
    /// location without a checksum).
    pub fn matches(&self, data: &[u8]) -> bool {
        data.len() as u64 == self.len && self.crc.is_none_or(|crc| crc32fast::hash(data) == crc)
    }
}

/// The number of the segment named `name`, if it names one.
pub(crate) fn segment_number(name: &std::ffi::OsStr) -> Option<u64> {
    let hex = name.to_str()?.strip_prefix(PREFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The file name of segment `seg`.
fn segment_name(seg: u64) -> String {
    format!("{PREFIX}{seg:016X}")
}

/// Read the body at `loc` from the segments in `dir`, without a
/// [`Segments`] (the quarantine of a corrupt envelope, at open).
pub(crate) fn read_at(dir: &Path, loc: Loc) -> std::io::Result<Vec<u8>> {
    let file = File::open(dir.join(segment_name(loc.seg)))?;
    read_loc(&file, loc)
}

/// Check the body at `loc` in the segments of `dir` against its
/// checksum (at open, `index.rs`); `open` keeps the segments opened so
/// far. An error says why it fails: `NotFound` (no segment),
/// `UnexpectedEof` (cut short), `InvalidData` (other octets).
pub(crate) fn check_at(dir: &Path, open: &mut HashMap<u64, File>, loc: Loc) -> std::io::Result<()> {
    let file = match open.entry(loc.seg) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(File::open(dir.join(segment_name(loc.seg)))?)
        }
    };
    read_loc(file, loc).map(drop)
}

/// Whether a read error of [`check_at`] or [`Segments::read`] says the
/// body is not there (no segment, cut short, other octets), rather than
/// that it could not be read now.
pub(crate) fn is_lost(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound
            | std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::InvalidData
    )
}

/// The body at `loc` in `file`, checked against its checksum: a
/// mismatch is `InvalidData`.
fn read_loc(file: &File, loc: Loc) -> std::io::Result<Vec<u8>> {
    let len = usize::try_from(loc.len).map_err(std::io::Error::other)?;
    let mut data = vec![0u8; len];
    file.read_exact_at(&mut data, loc.off)?;
    if !loc.matches(&data) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the body at {} in segment {:016X} fails its checksum",
                loc.off, loc.seg
            ),
        ));
    }
    Ok(data)
}

/// Give the whole pages of `loc` back to the filesystem (the file keeps
/// its length; the hole reads as zeros). Only ever for a body whose
/// removal is synced. Best effort: a filesystem without holes keeps the
/// room until the segment goes.
fn punch(file: &File, loc: Loc) {
    use std::os::fd::AsRawFd;
    const PAGE: u64 = 4096;
    let start = loc.off.div_ceil(PAGE) * PAGE;
    let end = (loc.off + loc.len) / PAGE * PAGE;
    if end <= start {
        return;
    }
    let (Ok(off), Ok(len)) = (
        libc::off_t::try_from(start),
        libc::off_t::try_from(end - start),
    ) else {
        return;
    };
    // SAFETY: fallocate on an open descriptor with plain integer
    // arguments; it touches no memory of ours.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    };
    if r != 0 {
        tracing::debug!(
            "cannot punch a hole in segment {:016X}: {}",
            loc.seg,
            std::io::Error::last_os_error()
        );
    }
}

/// The segments of one queue directory; see the module documentation.
pub(crate) struct Segments {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The number the next new segment gets.
    next: u64,
    /// The segment taking appends, and where its next body goes.
    active: Option<(u64, u64)>,
    /// Open segments (for appends, reads and syncs).
    open: HashMap<u64, Arc<File>>,
    /// Bodies per segment that are (or are being) committed.
    live: HashMap<u64, u64>,
    /// Segments written since the last sync.
    unsynced: HashSet<u64>,
    /// Appends under way per segment (their place taken, their octets
    /// not all written yet): marked unsynced once written, since a sync
    /// that ran meanwhile may have missed them.
    writing: HashMap<u64, u64>,
    /// Whether a segment file was made since the last sync.
    fresh: bool,
}

impl Segments {
    /// The segments of `dir`, of which `files` (file names found there)
    /// are the ones on disk and `locs` every body still queued. Deletes
    /// the segments no body lies in.
    pub fn open(dir: &Path, files: &[OsString], locs: &[Loc]) -> Segments {
        let segments = Segments {
            dir: dir.to_path_buf(),
            state: Mutex::new(State::default()),
        };
        segments.rebuild(files, locs);
        segments
    }

    /// Count the live bodies again (a reopening of the database): as
    /// [`Segments::open`]. Appends go to a new segment afterwards.
    pub fn rebuild(&self, files: &[OsString], locs: &[Loc]) {
        let mut state = crate::lock::lock(&self.state);
        let mut live: HashMap<u64, u64> = HashMap::new();
        for loc in locs {
            *live.entry(loc.seg).or_default() += 1;
        }
        let mut highest = state.next;
        for name in files {
            let Some(seg) = segment_number(name) else {
                continue;
            };
            highest = highest.max(seg + 1);
            if !live.contains_key(&seg) {
                state.open.remove(&seg);
                let path = self.dir.join(name);
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!("cannot remove {}: {e}", path.display());
                    }
                }
            }
        }
        state.next = highest;
        state.active = None;
        state.live = live;
    }

    /// Append `data` to the active segment (a new one when there is none
    /// or it is full) and count it live. Not durable until
    /// [`Segments::sync`]; [`Segments::release`] undoes the count.
    pub fn append(&self, data: &[u8]) -> std::io::Result<Loc> {
        let len = data.len() as u64;
        let (seg, off, file) = {
            let mut state = crate::lock::lock(&self.state);
            let (seg, end) = match state.active {
                Some((seg, end)) if end < SEGMENT_MAX => (seg, end),
                full => {
                    if let Some((old, _)) = full {
                        // Full: it only shrinks from now on.
                        if state.live.get(&old).copied().unwrap_or(0) == 0 {
                            self.delete(&mut state, old);
                        }
                    }
                    let seg = state.next;
                    let path = self.dir.join(segment_name(seg));
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&path)?;
                    state.next = seg + 1;
                    state.fresh = true;
                    state.open.insert(seg, Arc::new(file));
                    (seg, 0)
                }
            };
            state.active = Some((seg, end + len));
            *state.live.entry(seg).or_default() += 1;
            *state.writing.entry(seg).or_default() += 1;
            let file = state
                .open
                .get(&seg)
                .cloned()
                .ok_or_else(|| std::io::Error::other("the active segment is not open"))?;
            (seg, end, file)
        };
        let loc = Loc {
            seg,
            off,
            len,
            crc: Some(crc32fast::hash(data)),
        };
        // Outside the lock: appends to one segment write side by side.
        let written = file.write_all_at(data, off);
        {
            let mut state = crate::lock::lock(&self.state);
            if let Some(n) = state.writing.get_mut(&seg) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.writing.remove(&seg);
                }
            }
            state.unsynced.insert(seg);
        }
        if let Err(e) = written {
            self.release(loc);
            return Err(e);
        }
        Ok(loc)
    }

    /// The body at `loc`.
    pub fn read(&self, loc: Loc) -> std::io::Result<Vec<u8>> {
        let file = {
            let mut state = crate::lock::lock(&self.state);
            match state.open.get(&loc.seg) {
                Some(file) => file.clone(),
                None => {
                    let file = Arc::new(File::open(self.dir.join(segment_name(loc.seg)))?);
                    state.open.insert(loc.seg, file.clone());
                    file
                }
            }
        };
        read_loc(&file, loc)
    }

    /// One body fewer in its segment (its message is gone, or was never
    /// committed); the segment goes with its last body unless it takes
    /// appends.
    /// A large body's place is punched out of a segment that stays
    /// ([`PUNCH_MIN`]).
    pub fn release(&self, loc: Loc) {
        let file = {
            let mut state = crate::lock::lock(&self.state);
            let left = match state.live.get_mut(&loc.seg) {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n
                }
                None => return,
            };
            let active = state.active.is_some_and(|(seg, _)| seg == loc.seg);
            if left == 0 && !active {
                self.delete(&mut state, loc.seg);
                return;
            }
            if loc.len < PUNCH_MIN {
                return;
            }
            state.open.get(&loc.seg).cloned()
        };
        if let Some(file) = file {
            punch(&file, loc);
        }
    }

    fn delete(&self, state: &mut State, seg: u64) {
        state.live.remove(&seg);
        state.open.remove(&seg);
        state.unsynced.remove(&seg);
        let path = self.dir.join(segment_name(seg));
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                // Left behind; removed at the next open (no body in it).
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }

    /// Make every append so far durable: `fdatasync` each segment written
    /// since the last sync. Returns whether a segment file was made since
    /// the last sync: then the caller syncs the bodies directory, for its
    /// name. On an error the segments stay to be synced.
    pub fn sync(&self) -> std::io::Result<bool> {
        let (files, fresh) = {
            let mut state = crate::lock::lock(&self.state);
            let segs: Vec<u64> = state.unsynced.drain().collect();
            let files: Vec<(u64, Arc<File>)> = segs
                .into_iter()
                .filter_map(|seg| state.open.get(&seg).map(|f| (seg, f.clone())))
                .collect();
            (files, std::mem::take(&mut state.fresh))
        };
        for (i, (_, file)) in files.iter().enumerate() {
            if let Err(e) = file.sync_data() {
                let mut state = crate::lock::lock(&self.state);
                state
                    .unsynced
                    .extend(files[i..].iter().map(|(seg, _)| *seg));
                state.fresh |= fresh;
                return Err(e);
            }
        }
        Ok(fresh)
    }

    /// The lowest segment that may hold octets not yet synced: one
    /// written since the last sync, one an append is under way in, or the
    /// active one (it takes the next appends). Every body in a segment
    /// below it is on disk. The sync thread records it in the database
    /// before each flush, so that an open after a crash checks the bodies
    /// of the segments from there on against their checksums
    /// (`index.rs`): a body that never reached the disk belongs to a
    /// message never acknowledged.
    pub fn unsynced_from(&self) -> u64 {
        let state = crate::lock::lock(&self.state);
        state
            .unsynced
            .iter()
            .chain(state.writing.keys())
            .chain(state.active.as_ref().map(|(seg, _)| seg))
            .copied()
            .min()
            .unwrap_or(state.next)
    }

    /// Live bodies per segment (for tests).
    #[cfg(test)]
    pub fn live(&self) -> HashMap<u64, u64> {
        crate::lock::lock(&self.state).live.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<OsString> {
        let mut v: Vec<OsString> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn locations_round_trip_and_odd_values_are_refused() {
        let mut loc = Loc {
            seg: 7,
            off: 1 << 40,
            len: 12345,
            crc: Some(0xDEAD_BEEF),
        };
        assert_eq!(Loc::decode(&loc.encode()), Some(loc));
        assert_eq!(Loc::decode(&loc.encode()[..27]), None);
        assert_eq!(Loc::decode(&loc.encode()[..23]), None);
        loc.crc = None;
        assert_eq!(loc.encode().len(), 24);
        assert_eq!(Loc::decode(&loc.encode()), Some(loc));
        assert_eq!(Loc::decode(b""), None);
        assert_eq!(segment_number("seg-00000000000000FF".as_ref()), Some(255));
        assert_eq!(segment_number("seg-FF".as_ref()), None);
        assert_eq!(segment_number("4A0B3C2D1E0F1".as_ref()), None);
    }

    #[test]
    fn bodies_are_read_back_and_a_segment_goes_with_its_last_body() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path(), &[], &[]);
        let a = segs.append(b"first body").unwrap();
        let b = segs.append(b"second").unwrap();
        assert_eq!(a.seg, b.seg);
        assert_eq!(b.off, a.len);
        segs.sync().unwrap();
        assert_eq!(segs.read(a).unwrap(), b"first body");
        assert_eq!(segs.read(b).unwrap(), b"second");
        // The active segment stays while it takes appends, even empty.
        segs.release(a);
        segs.release(b);
        assert_eq!(names(dir.path()).len(), 1);
        // Reopened: no body lies in it, so it goes.
        let segs = Segments::open(dir.path(), &names(dir.path()), &[]);
        assert!(names(dir.path()).is_empty());
        // New segments are numbered after every one seen.
        let c = segs.append(b"third").unwrap();
        assert!(c.seg > a.seg, "{c:?} after {a:?}");
    }

    #[test]
    fn a_full_segment_is_closed_and_deleted_once_empty() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path(), &[], &[]);
        let big = vec![b'x'; (SEGMENT_MAX / 2) as usize];
        let a = segs.append(&big).unwrap();
        let b = segs.append(&big).unwrap();
        let c = segs.append(b"next segment").unwrap();
        assert_eq!((a.seg, b.seg), (a.seg, a.seg));
        assert_eq!(c.seg, a.seg + 1);
        assert_eq!(segs.live(), HashMap::from([(a.seg, 2), (c.seg, 1)]));
        segs.release(a);
        assert_eq!(names(dir.path()).len(), 2);
        segs.release(b);
        // The full one is gone with its last body; the active one stays.
        assert_eq!(names(dir.path()), vec![OsString::from(segment_name(c.seg))]);
        assert_eq!(segs.read(c).unwrap(), b"next segment");
    }

    #[test]
    fn reopening_counts_the_bodies_left_and_keeps_their_segments() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path(), &[], &[]);
        let a = segs.append(b"kept").unwrap();
        let _b = segs.append(b"dropped").unwrap();
        segs.sync().unwrap();
        drop(segs);
        let segs = Segments::open(dir.path(), &names(dir.path()), &[a]);
        assert_eq!(segs.live(), HashMap::from([(a.seg, 1)]));
        assert_eq!(segs.read(a).unwrap(), b"kept");
        // Not the active one any more: its last body takes it along.
        segs.release(a);
        assert!(names(dir.path()).is_empty());
    }
}
