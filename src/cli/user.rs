//! `faxmta user add|passwd|del|list`: edit the users file of SMTP AUTH
//! (`[auth] users_file`, format in src/policy/users.rs).
//!
//! The password is read from the terminal (twice, not echoed) or, when
//! standard input is not a terminal, from its first line. The file is
//! rewritten atomically (a temporary file in the same directory, synced,
//! renamed over it) with mode 0600; other lines and comments are kept.
//! A running server rereads the file when it changes. With `[accounts]
//! backend = "database"` the users are kept in the queue's database
//! instead (shared by every node; asked at each AUTH).

use crate::config::users::{find_line as find, write_atomically};
use crate::config::Config;
use crate::policy::users;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

/// What to do.
pub enum Action {
    Add { user: String, senders: Vec<String> },
    Passwd { user: String },
    Del { user: String },
    List,
}

fn read_password(user: &str) -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {user}: "))
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let again = rpassword::prompt_password("Again: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err("the password must not be empty".into());
    }
    Ok(password)
}

/// A new user's name, checked.
fn check_name(user: &str) -> Result<(), String> {
    match users::valid_name(user) {
        true => Ok(()),
        false => Err(format!(
            "{user:?}: a user name has no ':', spaces or control characters"
        )),
    }
}

/// The sender list of `add`, checked and in lower case.
fn senders_of(senders: &[String]) -> Result<Vec<String>, String> {
    let senders: Vec<String> = senders.iter().map(|s| s.trim().to_lowercase()).collect();
    if let Some(bad) = senders.iter().find(|s| !users::valid_sender(s)) {
        return Err(format!("--sender {bad:?}: expected an address or @domain"));
    }
    Ok(senders)
}

/// The users in the queue's database (`[accounts] backend = "database"`).
fn run_database(config: &Config, action: Action) -> Result<String, String> {
    use faxmta_queue::{Account, SMTP_USERS};
    let (_store, accounts) = crate::queue::accounts(config)?;
    let fail = |e: faxmta_queue::QueueError| e.to_string();
    match action {
        Action::List => Ok(accounts
            .accounts(SMTP_USERS)
            .map_err(fail)?
            .iter()
            .map(|u| match u.senders.is_empty() {
                true => format!("{} (default)\n", u.name),
                false => format!("{} {}\n", u.name, u.senders.join(",")),
            })
            .collect()),
        Action::Add { user, senders } => {
            check_name(&user)?;
            if accounts.account(SMTP_USERS, &user).map_err(fail)?.is_some() {
                return Err(format!(
                    "user {user} exists already (faxmta user passwd changes the password)"
                ));
            }
            let senders = senders_of(&senders)?;
            let hash = users::hash_password(&read_password(&user)?)?;
            let account = Account {
                name: user.clone(),
                hash,
                senders,
            };
            accounts.put_account(SMTP_USERS, &account).map_err(fail)?;
            Ok(format!("added user {user} in the queue's database"))
        }
        Action::Passwd { user } => {
            let mut account = accounts
                .account(SMTP_USERS, &user)
                .map_err(fail)?
                .ok_or(format!("no user {user}"))?;
            account.hash = users::hash_password(&read_password(&user)?)?;
            accounts.put_account(SMTP_USERS, &account).map_err(fail)?;
            Ok(format!(
                "changed the password of {user} in the queue's database"
            ))
        }
        Action::Del { user } => match accounts.delete_account(SMTP_USERS, &user).map_err(fail)? {
            true => Ok(format!("deleted user {user} from the queue's database")),
            false => Err(format!("no user {user}")),
        },
    }
}

fn run(config: &Config, action: Action) -> Result<String, String> {
    if config.accounts.backend == crate::config::AccountsBackend::Database {
        return run_database(config, action);
    }
    let path = config
        .auth
        .users_file
        .as_ref()
        .ok_or("the configuration has no [auth] users_file")?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    // Refuse to edit a file the server could not read.
    users::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let done = match action {
        Action::List => {
            let mut out = String::new();
            for u in users::parse(&text).unwrap_or_default() {
                let senders = match u.senders.is_empty() {
                    true => "(default)".to_string(),
                    false => u.senders.join(","),
                };
                out.push_str(&format!("{} {senders}\n", u.name));
            }
            return Ok(out);
        }
        Action::Add { user, senders } => {
            check_name(&user)?;
            if find(&lines, &user).is_some() {
                return Err(format!(
                    "user {user} exists already (faxmta user passwd changes the password)"
                ));
            }
            let senders = senders_of(&senders)?;
            let hash = users::hash_password(&read_password(&user)?)?;
            let line = match senders.is_empty() {
                true => format!("{user}:{hash}"),
                false => format!("{user}:{hash}:{}", senders.join(",")),
            };
            lines.push(line);
            format!("added user {user}")
        }
        Action::Passwd { user } => {
            let i = find(&lines, &user).ok_or(format!("no user {user}"))?;
            let hash = users::hash_password(&read_password(&user)?)?;
            let mut fields: Vec<String> =
                lines[i].trim().splitn(3, ':').map(str::to_string).collect();
            match fields.get_mut(1) {
                Some(f) => *f = hash,
                None => {
                    return Err(format!(
                        "{}: user {user} has no password field",
                        path.display()
                    ))
                }
            }
            lines[i] = fields.join(":");
            format!("changed the password of {user}")
        }
        Action::Del { user } => {
            let i = find(&lines, &user).ok_or(format!("no user {user}"))?;
            lines.remove(i);
            format!("deleted user {user}")
        }
    };
    let mut out = lines.join("\n");
    out.push('\n');
    write_atomically(path, &out).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(format!("{done} in {}", path.display()))
}

/// `faxmta user …`: exit 0 when done, 1 otherwise.
pub fn user(config: &Config, action: Action) -> ExitCode {
    match run(config, action) {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
    }
}
