//! Writing the administrators' changes back, one at a time (a lock):
//!
//! - the configuration file (and a separate fax users file, `[fax]
//!   users`) through `toml_edit`, so that comments and layout stay: read
//!   the file, edit it, check the whole configuration (`Config::parse`,
//!   errors with their line), write it atomically keeping its mode, and
//!   put it in force with a reload; a reload that refuses it gets the
//!   old text written back, and its error is the answer;
//! - the SMTP AUTH users: the users file (`[auth] users_file`), edited
//!   line by line as `faxmta user` does and written atomically (the
//!   server rereads it when it changes), or the accounts in the queue's
//!   database (`[accounts] backend = "database"`).

use super::super::Portal;
use crate::config::users::{self, find_line, write_atomically, User};
use crate::config::Config;
use crate::server::ServerContext;
use faxmta_queue::{Account, SMTP_USERS};
use std::path::Path;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

/// One change at a time, whatever it changes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Write `text` over `path` atomically, keeping the file's mode.
fn write(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok().map(|m| m.permissions().mode());
    write_atomically(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    }
    Ok(())
}

fn parse_doc(path: &Path, text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Put the configuration files as they are now in force; when the
/// reload refuses, `file` gets `old` back.
async fn reload(portal: &Portal, file: &Path, old: &str) -> Result<(), String> {
    match portal.reloader.reload().await {
        Ok(_) => Ok(()),
        Err(e) => {
            if let Err(back) = write(file, old) {
                tracing::error!("portal: {back} (after a refused reload)");
            }
            Err(format!("the server refused the change: {e}"))
        }
    }
}

/// Edit the configuration file with `edit`, check it, write it and
/// reload.
pub async fn edit_config(
    portal: &Portal,
    edit: impl FnOnce(&mut DocumentMut) -> Result<(), String>,
) -> Result<(), String> {
    let _one = ONE_AT_A_TIME.lock().await;
    let path = portal.reloader.path().to_path_buf();
    let old = read(&path)?;
    let mut doc = parse_doc(&path, &old)?;
    edit(&mut doc)?;
    let new = doc.to_string();
    if new == old {
        return Ok(());
    }
    Config::parse(&path, &new).map_err(|e| e.to_string())?;
    write(&path, &new)?;
    reload(portal, &path, &old).await
}

/// Edit the fax user directory: `edit` gets the table that holds its
/// `user` and `group` arrays — `[fax]` of the configuration file, or
/// the top of the fax users file (`[fax] users`).
pub async fn edit_directory(
    portal: &Portal,
    edit: impl FnOnce(&mut Table) -> Result<(), String>,
) -> Result<(), String> {
    let file = portal.context().config.fax.users.clone();
    let Some(file) = file else {
        return edit_config(portal, |doc| edit(fax_table(doc)?)).await;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let old = read(&file)?;
    let mut doc = parse_doc(&file, &old)?;
    edit(doc.as_table_mut())?;
    let new = doc.to_string();
    if new == old {
        return Ok(());
    }
    let directory: faxmta_fax::directory::Directory =
        toml::from_str(&new).map_err(|e| format!("{}: {}", file.display(), e.message().trim()))?;
    directory
        .validate()
        .map_err(|e| format!("{}: {}", file.display(), e.message))?;
    write(&file, &new)?;
    // The rest of the configuration is checked with the new directory
    // (rules name its groups).
    if let Err(e) = Config::load(portal.reloader.path()) {
        if let Err(back) = write(&file, &old) {
            tracing::error!("portal: {back}");
        }
        return Err(e.to_string());
    }
    reload(portal, &file, &old).await
}

/// The array of tables `key` of `table` (made when absent).
/// `[fax]` of the configuration file, made (implicit: no header line of
/// its own) when absent.
pub fn fax_table(doc: &mut DocumentMut) -> Result<&mut Table, String> {
    let fax = doc.as_table_mut().entry("fax").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    fax.as_table_mut()
        .ok_or_else(|| "[fax] is not a table in the configuration file".to_string())
}

pub fn tables<'a>(table: &'a mut Table, key: &str) -> Result<&'a mut ArrayOfTables, String> {
    let item = table
        .entry(key)
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut().ok_or(format!(
        "{key} is not written as [[…]] tables in the file: edit it by hand"
    ))
}

/// Move table `i` of `list` `"up"` or `"down"`, or `"delete"` it.
pub fn change_order(list: &mut ArrayOfTables, i: usize, action: &str) -> Result<(), String> {
    let n = list.len();
    if i >= n {
        return Err(format!("there is no rule {}", i + 1));
    }
    let mut tables: Vec<Table> = list.iter().cloned().collect();
    match action {
        "delete" => {
            list.remove(i);
            return Ok(());
        }
        "up" if i > 0 => tables.swap(i - 1, i),
        "down" if i + 1 < n => tables.swap(i, i + 1),
        "up" | "down" => return Ok(()),
        other => return Err(format!("no such action {other:?}")),
    }
    // The tables keep the places in the file the old ones had.
    let places: Vec<Option<usize>> = list.iter().map(Table::position).collect();
    list.clear();
    for (mut t, place) in tables.into_iter().zip(places) {
        if let Some(p) = place {
            t.set_position(p);
        }
        list.push(t);
    }
    Ok(())
}

/// Set `key` of `table` to `value`, or remove it when `None`.
pub fn set(table: &mut Table, key: &str, value: Option<toml_edit::Value>) {
    match value {
        Some(v) => {
            // Keep the comment and spacing around an existing value.
            match table.get_mut(key).and_then(Item::as_value_mut) {
                Some(old) => {
                    let decor = old.decor().clone();
                    *old = v;
                    *old.decor_mut() = decor;
                }
                None => {
                    table.insert(key, toml_edit::value(v));
                }
            }
        }
        None => {
            table.remove(key);
        }
    }
}

/// A TOML array of strings.
pub fn strings(list: &[String]) -> toml_edit::Value {
    toml_edit::Value::Array(list.iter().map(String::as_str).collect())
}

/// The SMTP AUTH users, by name.
pub fn list_users(ctx: &ServerContext) -> Result<Vec<User>, String> {
    if let Some(accounts) = ctx.users.as_ref().and_then(|u| u.accounts()) {
        return Ok(accounts
            .accounts(SMTP_USERS)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|a| User {
                name: a.name,
                hash: a.hash,
                senders: a.senders,
            })
            .collect());
    }
    match &ctx.config.auth.users_file {
        Some(path) => users::load(path),
        None => Ok(Vec::new()),
    }
}

/// What to do to one user.
pub enum UserChange {
    /// A new user with this hash.
    Add(String),
    /// A new hash from the old one.
    Hash(Box<dyn FnOnce(&str) -> String + Send>),
    Delete,
}

/// Change the user `name` in the users file or the database.
pub async fn change_user(
    ctx: &ServerContext,
    name: &str,
    change: UserChange,
) -> Result<(), String> {
    let _one = ONE_AT_A_TIME.lock().await;
    if let Some(accounts) = ctx.users.as_ref().and_then(|u| u.accounts()) {
        let fail = |e: faxmta_queue::QueueError| e.to_string();
        let found = accounts.account(SMTP_USERS, name).map_err(fail)?;
        return match (change, found) {
            (UserChange::Add(_), Some(_)) => Err(format!("user {name} exists already")),
            (UserChange::Add(hash), None) => accounts
                .put_account(
                    SMTP_USERS,
                    &Account {
                        name: name.to_string(),
                        hash,
                        senders: Vec::new(),
                    },
                )
                .map_err(fail),
            (_, None) => Err(format!("no user {name}")),
            (UserChange::Hash(f), Some(mut account)) => {
                account.hash = f(&account.hash);
                accounts.put_account(SMTP_USERS, &account).map_err(fail)
            }
            (UserChange::Delete, Some(_)) => accounts
                .delete_account(SMTP_USERS, name)
                .map(|_| ())
                .map_err(fail),
        };
    }
    let path = ctx
        .config
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
    match (change, find_line(&lines, name)) {
        (UserChange::Add(_), Some(_)) => return Err(format!("user {name} exists already")),
        (UserChange::Add(hash), None) => lines.push(format!("{name}:{hash}")),
        (_, None) => return Err(format!("no user {name}")),
        (UserChange::Hash(f), Some(i)) => {
            let mut fields: Vec<String> =
                lines[i].trim().splitn(3, ':').map(str::to_string).collect();
            let field = fields
                .get_mut(1)
                .ok_or(format!("user {name} has no password field"))?;
            *field = f(field);
            lines[i] = fields.join(":");
        }
        (UserChange::Delete, Some(i)) => {
            lines.remove(i);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    users::parse(&out).map_err(|e| format!("{}: {e}", path.display()))?;
    write_atomically(path, &out).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// An argon2id hash of `password`, made on a blocking thread.
pub async fn hash(password: String) -> Result<String, String> {
    if password.is_empty() {
        return Err("the password must not be empty".into());
    }
    tokio::task::spawn_blocking(move || crate::policy::users::hash_password(&password))
        .await
        .map_err(|e| format!("cannot hash the password: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# the rules\n[fax]\nlines = 2 # two\n\n# first\n[[fax.rule]]\nname = \"a\"\n\n\
                        # second\n[[fax.rule]]\nname = \"b\"\n\n[fax.dialplan]\ncountry_code = \"1\"\n";

    fn rules(doc: &mut DocumentMut) -> &mut ArrayOfTables {
        let fax = doc["fax"].as_table_mut().unwrap();
        tables(fax, "rule").unwrap()
    }

    #[test]
    fn tables_move_with_their_comments_and_keep_their_places() {
        let mut doc: DocumentMut = TEXT.parse().unwrap();
        change_order(rules(&mut doc), 1, "up").unwrap();
        let text = doc.to_string();
        assert_eq!(
            text,
            "# the rules\n[fax]\nlines = 2 # two\n\n# second\n[[fax.rule]]\nname = \"b\"\n\n\
             # first\n[[fax.rule]]\nname = \"a\"\n\n[fax.dialplan]\ncountry_code = \"1\"\n"
        );
        // Moving past the ends changes nothing; a bad index is refused.
        change_order(rules(&mut doc), 0, "up").unwrap();
        assert_eq!(doc.to_string(), text);
        assert!(change_order(rules(&mut doc), 2, "down").is_err());
        change_order(rules(&mut doc), 0, "delete").unwrap();
        assert!(!doc.to_string().contains("name = \"b\""));
        // A new table goes after the last of its array.
        let mut t = Table::new();
        t.insert("name", toml_edit::value("c"));
        rules(&mut doc).push(t);
        let text = doc.to_string();
        assert!(
            text.find("name = \"c\"") < text.find("[fax.dialplan]"),
            "{text}"
        );
    }

    #[test]
    fn a_value_set_keeps_its_comment() {
        let mut doc: DocumentMut = TEXT.parse().unwrap();
        let fax = doc["fax"].as_table_mut().unwrap();
        set(fax, "lines", Some(4.into()));
        set(fax, "tsi", Some("+1 555".into()));
        let text = doc.to_string();
        assert!(
            text.contains("lines = 4 # two\ntsi = \"+1 555\"\n"),
            "{text}"
        );
        set(doc["fax"].as_table_mut().unwrap(), "tsi", None);
        assert!(!doc.to_string().contains("tsi"));
        // A key set in a table only implied by `[[fax.user]]` is written
        // under its own header.
        let mut doc: DocumentMut = "[[fax.user]]\naddress = \"a@b.test\"\n".parse().unwrap();
        set(
            doc["fax"].as_table_mut().unwrap(),
            "history_days",
            Some(30.into()),
        );
        let back: toml::Table = toml::from_str(&doc.to_string()).unwrap();
        assert_eq!(back["fax"]["history_days"].as_integer(), Some(30), "{doc}");
    }
}
