//! `/portal/admin/numbers`: the inbound fax numbers and their routing —
//! which user or group each number (DID) of the fax directory goes to,
//! the direct rules `[[fax.incoming.rule]]` (add, edit, delete, move up
//! or down; tried in order, `continue` goes on to the next), and the
//! default rule (`[fax.incoming] default_to`).
//!
//! The rules and the default are for global administrators; a domain
//! administrator sees the numbers of their users (and gives numbers on
//! a user's page).

use super::form::{check_csrf, done, list, not_found, optional, reorder, RuleAction};
use super::users::directory;
use super::writer::{self, set, strings, tables};
use super::Admin;
use crate::admin::http::ClientAddr;
use crate::config::fax::incoming::IncomingRule;
use crate::portal::page::{html, Nav};
use crate::portal::viewer::url_escape;
use crate::portal::Portal;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use std::sync::Arc;
use toml_edit::{DocumentMut, Item, Table};

/// A number of the directory and who gets its faxes.
struct Number {
    number: String,
    who: String,
    link: Option<String>,
}

/// A direct rule as shown.
struct RuleRow {
    index: usize,
    name: String,
    did: String,
    ani: String,
    to: String,
    folder: String,
    format: String,
    continue_: bool,
}

#[derive(Template)]
#[template(path = "admin/numbers.html")]
struct NumbersPage {
    nav: Nav,
    csrf: String,
    global: bool,
    done: Option<String>,
    numbers: Vec<Number>,
    directory_rule: bool,
    rules: Vec<RuleRow>,
    default_to: String,
    /// The rule in the form: an index (editing) or none (a new one).
    editing: Option<usize>,
    form: RuleRow,
}

#[derive(Deserialize, Default)]
pub struct Shown {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    edit: Option<usize>,
}

fn row(index: usize, r: &IncomingRule) -> RuleRow {
    RuleRow {
        index,
        name: r.name.clone().unwrap_or_default(),
        did: r.did.clone().or_else(|| r.dnis.clone()).unwrap_or_default(),
        ani: r.ani.clone().unwrap_or_default(),
        to: r.to.join(", "),
        folder: r
            .folder
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
        format: match r.format {
            Some(f) => format!("{f:?}").to_lowercase(),
            None => String::new(),
        },
        continue_: r.continue_,
    }
}

/// `GET /portal/admin/numbers`.
pub async fn page(Admin(viewer): Admin, Query(shown): Query<Shown>) -> Response {
    let dir = directory(&viewer);
    let mut numbers = Vec::new();
    for u in dir.users.iter().filter(|u| viewer.administers(&u.address)) {
        for n in &u.numbers {
            numbers.push(Number {
                number: n.clone(),
                who: u.address.clone(),
                link: Some(format!(
                    "/portal/admin/user?name={}",
                    url_escape(&u.address)
                )),
            });
        }
    }
    if viewer.is_global_admin() {
        for g in &dir.groups {
            for n in &g.numbers {
                numbers.push(Number {
                    number: n.clone(),
                    who: format!("group {}", g.name),
                    link: Some("/portal/admin/groups".into()),
                });
            }
        }
    }
    numbers.sort_by(|a, b| a.number.cmp(&b.number));
    let incoming = &viewer.ctx.config.fax.incoming;
    let global = viewer.is_global_admin();
    let rules: Vec<RuleRow> = match global {
        true => incoming
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| row(i, r))
            .collect(),
        false => Vec::new(),
    };
    let editing = shown.edit.filter(|i| *i < rules.len());
    let form = match editing.and_then(|i| incoming.rules.get(i)) {
        Some(r) => row(editing.unwrap_or_default(), r),
        None => row(0, &IncomingRule::default()),
    };
    html(&NumbersPage {
        nav: Nav::new(&viewer, "Fax numbers and routing"),
        csrf: viewer.csrf.clone(),
        global,
        done: shown.done,
        numbers,
        directory_rule: incoming.directory,
        rules,
        default_to: incoming.default_to.join(", "),
        editing,
        form,
    })
}

/// `[fax.incoming]` of the configuration file (made when absent).
fn incoming(doc: &mut DocumentMut) -> Result<&mut Table, String> {
    writer::fax_table(doc)?
        .entry("incoming")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| "[fax.incoming] is not a table".to_string())
}

const BACK: &str = "/portal/admin/numbers";

#[derive(Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    csrf: String,
    /// Empty: a new rule at the end.
    #[serde(default)]
    index: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    did: String,
    #[serde(default)]
    ani: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    folder: String,
    #[serde(default)]
    format: String,
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
}

/// `POST /portal/admin/numbers/rule`: add a rule, or change one.
pub async fn save_rule(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<RuleForm>,
) -> Response {
    if let Err(r) = check_csrf(&viewer, &form.csrf) {
        return *r;
    }
    if !viewer.is_global_admin() {
        return not_found(&viewer);
    }
    let index: Option<usize> = form.index.trim().parse().ok();
    let result = writer::edit_config(&portal, |doc| {
        let rules = tables(incoming(doc)?, "rule")?;
        let table = match index {
            Some(i) => rules
                .get_mut(i)
                .ok_or(format!("there is no rule {}", i + 1))?,
            None => {
                rules.push(Table::new());
                let last = rules.len() - 1;
                rules.get_mut(last).ok_or("the new rule went away")?
            }
        };
        set(table, "name", optional(&form.name).map(Into::into));
        set(table, "dnis", None);
        set(table, "did", optional(&form.did).map(Into::into));
        set(table, "ani", optional(&form.ani).map(Into::into));
        let to = list(&form.to);
        set(table, "to", Some(strings(&to)).filter(|_| !to.is_empty()));
        set(table, "folder", optional(&form.folder).map(Into::into));
        set(table, "format", optional(&form.format).map(Into::into));
        set(
            table,
            "continue",
            Some(true.into()).filter(|_| form.continue_.is_some()),
        );
        Ok(())
    })
    .await;
    let what = match index {
        Some(i) => format!("rule {}", i + 1),
        None => "a new rule".into(),
    };
    done(
        &viewer,
        client.0.ip(),
        "incoming.rule.save",
        &what,
        result,
        BACK,
        "The rule was saved.",
    )
}

/// `POST /portal/admin/numbers/rule/move`: move a rule up or down, or
/// delete it.
pub async fn rule_action(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<RuleAction>,
) -> Response {
    reorder(
        &portal,
        &viewer,
        client.0.ip(),
        &form,
        incoming_rules,
        "incoming.rule",
        BACK,
    )
    .await
}

/// `[[fax.incoming.rule]]` of the configuration file.
fn incoming_rules(doc: &mut DocumentMut) -> Result<&mut toml_edit::ArrayOfTables, String> {
    tables(incoming(doc)?, "rule")
}

#[derive(Deserialize)]
pub struct DefaultForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    default_to: String,
}

/// `POST /portal/admin/numbers/default`: where faxes no rule routes go.
pub async fn default_to(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<DefaultForm>,
) -> Response {
    if let Err(r) = check_csrf(&viewer, &form.csrf) {
        return *r;
    }
    if !viewer.is_global_admin() {
        return not_found(&viewer);
    }
    let to = list(&form.default_to);
    let result = writer::edit_config(&portal, |doc| {
        set(incoming(doc)?, "default_to", Some(strings(&to)));
        Ok(())
    })
    .await;
    done(
        &viewer,
        client.0.ip(),
        "incoming.default",
        &to.join(","),
        result,
        BACK,
        "The default was saved.",
    )
}
