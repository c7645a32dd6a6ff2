//! The tokens of the HTTP fax API (`[admin] tokens_file`): the file and
//! the check of a presented token (`faxmta token …` edits the file:
//! src/cli/token.rs).
//!
//! A token is 32 random octets written as `fxt_` and 64 hex digits. It is
//! printed once, by `faxmta token add`; the file keeps only its SHA-256
//! (a random 256-bit secret needs no slow hash: there is nothing to
//! guess). One line per token, `#` comments:
//!
//! ```text
//! NAME:SHA256-HEX[:SENDER,SENDER…]
//! ```
//!
//! SENDER is an address or `@domain`; with none, the token may send as
//! any fax user. The server reads the file at each request, so changes
//! apply at once. The file is rewritten atomically with mode 0600. With
//! `[accounts] backend = "database"` the tokens (the same name, hash and
//! senders) are kept in the queue's database instead, shared by every
//! node.

use sha2::{Digest, Sha256};
use std::path::Path;

/// One line of the tokens file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    /// Lower-case hex SHA-256 of the token.
    pub hash: String,
    /// Addresses and `@domain`s; empty: any.
    pub senders: Vec<String>,
}

impl Token {
    /// Whether the token may send as `sender`.
    pub fn allows(&self, sender: &str) -> bool {
        if self.senders.is_empty() {
            return true;
        }
        let sender = sender.trim().to_ascii_lowercase();
        let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        self.senders.iter().any(|s| {
            let s = s.to_ascii_lowercase();
            match s.strip_prefix('@') {
                Some(d) => d == domain,
                None => s == sender,
            }
        })
    }
}

/// The lower-case hex SHA-256 of `token`.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

/// Parse the tokens file; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, ':');
        let (name, hash) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        let senders = fields.next().unwrap_or("");
        if !valid_name(name) || hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "line {}: expected NAME:SHA256-HEX[:SENDERS]",
                n + 1
            ));
        }
        out.push(Token {
            name: name.to_string(),
            hash: hash.to_ascii_lowercase(),
            senders: senders
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    Ok(out)
}

/// The token that `presented` is, from the file at `path`. `Err`: the
/// file cannot be read (no file: no tokens).
pub fn check(path: &Path, presented: &str) -> Result<Option<Token>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let tokens = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let wanted = hash(presented.trim());
    Ok(tokens.into_iter().find(|t| t.hash == wanted))
}

/// [`check`] against the tokens kept in the queue's database
/// (`[accounts] backend = "database"`).
pub fn check_database(
    accounts: Option<std::sync::Arc<dyn faxmta_queue::Accounts>>,
    presented: &str,
) -> Result<Option<Token>, String> {
    let accounts = accounts.ok_or("the queue keeps no accounts (it is not on PostgreSQL)")?;
    let found = accounts
        .account_by_hash(faxmta_queue::API_TOKENS, &hash(presented.trim()))
        .map_err(|e| e.to_string())?;
    Ok(found.map(|a| Token {
        name: a.name,
        hash: a.hash,
        senders: a.senders,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_check() {
        let h = hash("fxt_secret");
        let text = format!(
            "# comment\nscanner:{h}\nalice:{}:alice@example.test,@fax.test\n",
            hash("x")
        );
        let tokens = parse(&text).unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(tokens[0].allows("anyone@anywhere"));
        assert!(tokens[1].allows("Alice@Example.test"));
        assert!(tokens[1].allows("bob@fax.test"));
        assert!(!tokens[1].allows("bob@example.test"));
        assert!(parse("bad line\n").unwrap_err().contains("line 1"));
        assert!(parse("n:abc\n").is_err());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        assert_eq!(check(&file, "fxt_secret").unwrap(), None);
        std::fs::write(&file, text).unwrap();
        assert_eq!(check(&file, "fxt_secret").unwrap().unwrap().name, "scanner");
        assert_eq!(check(&file, "fxt_other").unwrap(), None);
    }
}
