//! `faxmta token add|list|del`: edit the tokens file of the HTTP fax API
//! (format and checks in src/admin/tokens.rs), or the tokens in the
//! queue's database with `[accounts] backend = "database"`.

use crate::admin::tokens::{hash, parse, valid_name};
use crate::config::Config;
use std::process::ExitCode;

/// `faxmta token …`
#[derive(clap::Subcommand)]
pub enum TokenAction {
    /// Make a token; it is printed once and only its hash is kept.
    Add {
        /// A name for the token (who or what uses it).
        name: String,
        /// A sender the token may use: an address or @domain
        /// (repeatable). Default: any fax user.
        #[arg(long = "sender")]
        senders: Vec<String>,
    },
    /// The tokens' names and senders.
    List,
    /// Delete a token.
    Del { name: String },
}

fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("fxt_{hex}")
}

/// The tokens in the queue's database (`[accounts] backend =
/// "database"`).
fn run_database(config: &Config, action: TokenAction) -> Result<String, String> {
    use faxmta_queue::{Account, API_TOKENS};
    let (_store, accounts) = crate::queue::accounts(config)?;
    let fail = |e: faxmta_queue::QueueError| e.to_string();
    match action {
        TokenAction::List => Ok(accounts
            .accounts(API_TOKENS)
            .map_err(fail)?
            .iter()
            .map(|t| match t.senders.is_empty() {
                true => format!("{} (any sender)\n", t.name),
                false => format!("{} {}\n", t.name, t.senders.join(",")),
            })
            .collect()),
        TokenAction::Add { name, senders } => {
            check_new(&name, &senders)?;
            if accounts.account(API_TOKENS, &name).map_err(fail)?.is_some() {
                return Err(format!(
                    "{name}: a token of that name exists (del it first)"
                ));
            }
            let token = random_token();
            let account = Account {
                name,
                hash: hash(&token),
                senders,
            };
            accounts.put_account(API_TOKENS, &account).map_err(fail)?;
            Ok(format!("{token}\n"))
        }
        TokenAction::Del { name } => {
            match accounts.delete_account(API_TOKENS, &name).map_err(fail)? {
                true => Ok(format!("{name}: deleted\n")),
                false => Err(format!("{name}: no such token")),
            }
        }
    }
}

/// A new token's name and senders, checked.
fn check_new(name: &str, senders: &[String]) -> Result<(), String> {
    if !valid_name(name) {
        return Err(format!(
            "{name:?}: a token name is 1 to 64 letters, digits, '-', '_', '.' or '@'"
        ));
    }
    if let Some(bad) = senders
        .iter()
        .find(|s| s.is_empty() || s.contains([':', ',']) || s.contains(char::is_whitespace))
    {
        return Err(format!("{bad:?}: give a sender as an address or @domain"));
    }
    Ok(())
}

fn run(config: &Config, action: TokenAction) -> Result<String, String> {
    if config.accounts.backend == crate::config::AccountsBackend::Database {
        return run_database(config, action);
    }
    let path = &config.admin.tokens_file;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let tokens = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let write = |text: &str| {
        crate::config::users::write_atomically(path, text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    match action {
        TokenAction::List => Ok(tokens
            .iter()
            .map(|t| match t.senders.is_empty() {
                true => format!("{} (any sender)\n", t.name),
                false => format!("{} {}\n", t.name, t.senders.join(",")),
            })
            .collect()),
        TokenAction::Add { name, senders } => {
            check_new(&name, &senders)?;
            if tokens.iter().any(|t| t.name == name) {
                return Err(format!(
                    "{name}: a token of that name exists (del it first)"
                ));
            }
            let token = random_token();
            let mut text = text;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{name}:{}", hash(&token)));
            if !senders.is_empty() {
                text.push_str(&format!(":{}", senders.join(",")));
            }
            text.push('\n');
            write(&text)?;
            Ok(format!("{token}\n"))
        }
        TokenAction::Del { name } => {
            if !tokens.iter().any(|t| t.name == name) {
                return Err(format!("{name}: no such token"));
            }
            let kept: String = text
                .lines()
                .filter(|l| {
                    let l = l.trim();
                    l.starts_with('#') || l.split(':').next() != Some(name.as_str())
                })
                .map(|l| format!("{l}\n"))
                .collect();
            write(&kept)?;
            Ok(format!("{name}: deleted\n"))
        }
    }
}

/// `faxmta token …`
pub fn token(config: &Config, action: TokenAction) -> ExitCode {
    match run(config, action) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_differ() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 68);
    }
}
