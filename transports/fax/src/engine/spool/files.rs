//! File handling of the spool engine: atomic writes (a temporary whose
//! name starts with `.`, synced, then renamed), moves that also work
//! across file systems, bounded reads of control files, and safe names.
//!
//! Every write, copy, link and move here is durable when it returns: the
//! file is fsynced and so is the directory that got its new name — a fax
//! handed on by one of them may then lose its source (the board's files,
//! HylaFAX's receive queue) without being lost in a power cut.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// An I/O error with what was being done and to which path.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path:?}: {source}")]
pub struct FileError {
    pub what: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FileError + 'a {
    move |source| FileError {
        what,
        path: path.to_owned(),
        source,
    }
}

/// The temporary beside `path`: `.NAME` — a name every reader skips.
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}"))
}

/// fsync the directory `dir`: the names made or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("cannot sync the directory", dir))
}

/// fsync the file at `path` (one another writer made: spandsp's TIFF).
pub fn sync_file(path: &Path) -> Result<(), FileError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(err("cannot sync", path))
}

/// fsync the directory that holds `path`.
pub fn sync_parent(path: &Path) -> Result<(), FileError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Writes `path` whole or not at all: `.NAME` first, synced, renamed, the
/// directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let tmp = temp_name(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(err("cannot create", &tmp))?;
        f.write_all(bytes).map_err(err("cannot write", &tmp))?;
        f.sync_all().map_err(err("cannot sync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(err("cannot rename into place", path))?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Copies `from` to `to` atomically (through `.NAME`, synced, the
/// directory synced).
pub fn copy_atomic(from: &Path, to: &Path) -> Result<(), FileError> {
    let tmp = temp_name(to);
    let result = (|| {
        std::fs::copy(from, &tmp).map_err(err("cannot copy the document", from))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(err("cannot sync", &tmp))?;
        std::fs::rename(&tmp, to).map_err(err("cannot rename into place", to))?;
        sync_parent(to)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Moves `from` to `to`: a rename, or (another file system) an atomic
/// copy and the removal of `from` — durable before `from` goes.
pub fn move_file(from: &Path, to: &Path) -> Result<(), FileError> {
    match std::fs::rename(from, to) {
        Ok(()) => {
            // The new name first (a crash between the two syncs leaves
            // both names at worst: a copy too many, never none).
            sync_parent(to)?;
            sync_parent(from)
        }
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            copy_atomic(from, to)?;
            std::fs::remove_file(from).map_err(err("cannot remove after copying", from))
        }
        Err(e) => Err(err("cannot move", from)(e)),
    }
}

/// Makes `to` a second name of `from` (a hard link), or, where the file
/// system cannot (another device, no links), an atomic copy.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<(), FileError> {
    match std::fs::hard_link(from, to) {
        Ok(()) => {
            std::fs::File::open(to)
                .and_then(|f| f.sync_all())
                .map_err(err("cannot sync", to))?;
            sync_parent(to)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(err("cannot link", from)(e)),
        Err(_) => copy_atomic(from, to),
    }
}

/// Removes `path`; one already gone is fine.
pub fn remove_if_there(path: &Path) -> Result<(), FileError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err("cannot remove", path)(e)),
    }
}

/// The text of a control file, at most `limit` bytes of UTF-8.
pub fn read_control(path: &Path, limit: u64) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {path:?}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {path:?}: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{path:?}: larger than {limit} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| format!("{path:?}: not UTF-8 text"))
}

/// Makes `dir` (and its parents).
pub fn make_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::create_dir_all(dir).map_err(err("cannot create the directory", dir))
}

/// A safe file-name part: at most 64 of `[A-Za-z0-9+_-]`, others `_`;
/// never starting with `.`.
pub fn label(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("J.job");
        write_atomic(&path, b"result: sent\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"result: sent\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["J.job"]);
        assert_eq!(temp_name(&path), dir.path().join(".J.job"));
    }

    #[test]
    fn errors_name_the_path_and_control_files_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none/J.job");
        let e = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(e.contains("none"), "{e}");
        let big = dir.path().join("big.rx");
        std::fs::write(&big, vec![b'a'; 100]).unwrap();
        assert!(read_control(&big, 99).unwrap_err().contains("larger"));
        assert_eq!(read_control(&big, 100).unwrap().len(), 100);
        remove_if_there(&big).unwrap();
        remove_if_there(&big).unwrap();
    }

    #[test]
    fn labels_are_safe() {
        assert_eq!(label("5B1F/2"), "5B1F_2");
        assert_eq!(label("../x"), "___x");
        assert_eq!(label(&"a".repeat(80)).len(), 64);
    }
}
