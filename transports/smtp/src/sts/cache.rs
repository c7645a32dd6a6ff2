//! The MTA-STS policy cache on disk: every unexpired policy with the time
//! it was fetched, as one JSON file replaced atomically (written to a
//! temporary file, synced, renamed over the old one), so a restart keeps
//! the policies — an attacker who strips the TXT record or blocks the
//! policy host after a restart cannot downgrade delivery (RFC 8461 §10.2).

use super::Policy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// One cached policy.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub policy: Arc<Policy>,
    /// When it was fetched (seconds since the Unix epoch).
    pub fetched: u64,
}

impl Entry {
    /// When it stops being valid (seconds since the Unix epoch).
    pub fn expires(&self) -> u64 {
        self.fetched.saturating_add(self.policy.max_age)
    }
}

#[derive(Serialize, Deserialize)]
struct File {
    /// The format of this file.
    version: u32,
    policies: Vec<Stored>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    domain: String,
    id: String,
    fetched: u64,
    /// The policy body as fetched; parsed again on load.
    body: String,
}

const VERSION: u32 = 1;

/// The unexpired policies in `path` (none when it does not exist).
pub(crate) fn load(path: &Path, now: u64) -> Result<HashMap<String, Entry>, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let file: File =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.version != VERSION {
        return Err(format!(
            "{}: format version {} (expected {VERSION})",
            path.display(),
            file.version
        ));
    }
    let mut map = HashMap::new();
    for s in file.policies {
        match Policy::parse(&s.id, &s.body) {
            Ok(policy) => {
                let entry = Entry {
                    policy: Arc::new(policy),
                    fetched: s.fetched,
                };
                if entry.expires() > now {
                    map.insert(s.domain, entry);
                }
            }
            Err(e) => tracing::warn!(
                "MTA-STS cache {}: policy of {} dropped: {e}",
                path.display(),
                s.domain
            ),
        }
    }
    Ok(map)
}

/// Replace `path` with `entries`.
pub(crate) fn save(path: &Path, entries: &HashMap<String, Entry>) -> Result<(), String> {
    let mut policies: Vec<Stored> = entries
        .iter()
        .map(|(domain, e)| Stored {
            domain: domain.clone(),
            id: e.policy.id.clone(),
            fetched: e.fetched,
            body: e.policy.text.clone(),
        })
        .collect();
    policies.sort_by(|a, b| a.domain.cmp(&b.domain));
    let json = serde_json::to_vec_pretty(&File {
        version: VERSION,
        policies,
    })
    .map_err(|e| format!("MTA-STS cache: {e}"))?;
    write_atomically(path, &json)
}

/// Write `data` to a temporary file beside `path`, sync it, rename it over
/// `path`.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, max_age: u64, fetched: u64) -> Entry {
        let body =
            format!("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: {max_age}\n");
        Entry {
            policy: Arc::new(Policy::parse(id, &body).expect("parses")),
            fetched,
        }
    }

    #[test]
    fn sts_cache_file_round_trip_drops_expired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sts.json");
        assert!(load(&path, 0).expect("missing file is empty").is_empty());
        let mut map = HashMap::new();
        map.insert("a.example".to_string(), entry("one", 100, 1000));
        map.insert("b.example".to_string(), entry("two", 10, 1000));
        save(&path, &map).expect("saves");
        let back = load(&path, 1050).expect("loads");
        assert_eq!(back.len(), 1, "b.example expired at 1010");
        let a = back.get("a.example").expect("a.example kept");
        assert_eq!(a.policy, map["a.example"].policy);
        assert_eq!(a.fetched, 1000);
        std::fs::write(&path, b"{not json").expect("write");
        assert!(load(&path, 0).is_err());
    }
}
