//! The users file of SMTP AUTH (`[auth] users_file`): one user per line,
//! `NAME:HASH` or `NAME:HASH:SENDERS`, `#` comments — its format and
//! reading it. What the users may do (passwords, senders) is
//! src/policy/users.rs.

use argon2::password_hash::PasswordHash;
use std::path::Path;

/// One user of the users file.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// argon2 PHC string (`$argon2id$v=19$m=…`).
    pub hash: String,
    /// Allowed envelope senders: addresses and `@domain`s, lower case.
    pub senders: Vec<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "User({}, senders {:?})", self.name, self.senders)
    }
}

/// Whether `name` can be a user name: printable, no `:`, no white space,
/// at most 255 octets.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

/// Whether `entry` can be in a sender list: `@domain` or an address.
pub fn valid_sender(entry: &str) -> bool {
    match entry.rsplit_once('@') {
        Some((local, domain)) => {
            !domain.is_empty()
                && !entry.contains([',', ':'])
                && !entry.chars().any(|c| c.is_whitespace() || c.is_control())
                && (local.is_empty() || !local.starts_with('@'))
        }
        None => false,
    }
}

/// Parse the users file; `Err` names the line.
pub fn parse(text: &str) -> Result<Vec<User>, String> {
    let mut users: Vec<User> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = n + 1;
        let mut fields = line.splitn(3, ':');
        let name = fields.next().unwrap_or_default();
        let Some(hash) = fields.next() else {
            return Err(format!("line {at}: expected NAME:HASH[:SENDERS]"));
        };
        if !valid_name(name) {
            return Err(format!("line {at}: expected NAME:HASH[:SENDERS]"));
        }
        // `!` in front: the account is disabled (`User::disabled`).
        if PasswordHash::new(hash.strip_prefix('!').unwrap_or(hash)).is_err() {
            return Err(format!(
                "line {at}: user {name}: the password is not an argon2 hash (use faxmta user passwd)"
            ));
        }
        let senders: Vec<String> = fields
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = senders.iter().find(|s| !valid_sender(s)) {
            return Err(format!(
                "line {at}: user {name}: sender {bad:?} is neither an address nor @domain"
            ));
        }
        if users.iter().any(|u| u.name.eq_ignore_ascii_case(name)) {
            return Err(format!("line {at}: user {name} is listed twice"));
        }
        users.push(User {
            name: name.to_string(),
            hash: hash.to_string(),
            senders,
        });
    }
    Ok(users)
}

/// Index of the line of `lines` that holds `user` (any case), if any.
pub fn find_line(lines: &[String], user: &str) -> Option<usize> {
    lines.iter().position(|l| {
        let l = l.trim();
        !l.starts_with('#')
            && l.split(':')
                .next()
                .is_some_and(|name| name.eq_ignore_ascii_case(user))
    })
}

/// Write `text` to `path` atomically, mode 0600: a temporary file in the
/// same directory, synced, renamed over it, the directory synced. Used
/// for the users file (`faxmta user`, the portal) and the configuration
/// files the portal edits.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    std::fs::create_dir_all(dir)?;
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Read and parse the users file; a file that does not exist has no
/// users.
pub fn load(path: &Path) -> Result<Vec<User>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map_err(|e| format!("users file {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read users file {}: {e}", path.display())),
    }
}
