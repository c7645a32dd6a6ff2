//! `/portal/admin/rules` (global administrators): the outbound fax
//! rules `[[fax.rule]]`, tried in order — add, change, delete, move up
//! or down. Keys as in docs/configuration.md: `name`, `match` (`*`,
//! `+1900`, `international`, `national`), `action` (`allow`, `deny`),
//! `users`, `groups`, `prefix`.

use super::form::{check_csrf, done, list, not_found, optional, reorder, RuleAction};
use super::writer::{self, set, strings, tables};
use super::Admin;
use crate::admin::http::ClientAddr;
use crate::portal::page::{html, Nav};
use crate::portal::Portal;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use std::sync::Arc;
use toml_edit::{DocumentMut, Table};

/// A rule as shown (and in the form).
#[derive(Default)]
struct RuleRow {
    index: usize,
    name: String,
    patterns: String,
    action: String,
    users: String,
    groups: String,
    prefix: String,
}

#[derive(Template)]
#[template(path = "admin/rules.html")]
struct RulesPage {
    nav: Nav,
    csrf: String,
    done: Option<String>,
    rules: Vec<RuleRow>,
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

/// `GET /portal/admin/rules`.
pub async fn page(Admin(viewer): Admin, Query(shown): Query<Shown>) -> Response {
    if !viewer.is_global_admin() {
        return not_found(&viewer);
    }
    let rules: Vec<RuleRow> = viewer
        .ctx
        .config
        .fax
        .rules
        .iter()
        .enumerate()
        .map(|(index, r)| RuleRow {
            index,
            name: r.name.clone(),
            patterns: r
                .patterns
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            action: format!("{:?}", r.action).to_lowercase(),
            users: r.users.join(", "),
            groups: r.groups.join(", "),
            prefix: r.prefix.clone().unwrap_or_default(),
        })
        .collect();
    let editing = shown.edit.filter(|i| *i < rules.len());
    let form = match editing.and_then(|i| rules.get(i)) {
        Some(r) => RuleRow {
            index: r.index,
            name: r.name.clone(),
            patterns: r.patterns.clone(),
            action: r.action.clone(),
            users: r.users.clone(),
            groups: r.groups.clone(),
            prefix: r.prefix.clone(),
        },
        None => RuleRow::default(),
    };
    html(&RulesPage {
        nav: Nav::new(&viewer, "Outbound fax rules"),
        csrf: viewer.csrf.clone(),
        done: shown.done,
        rules,
        editing,
        form,
    })
}

/// `[[fax.rule]]` of the configuration file.
fn fax_rules(doc: &mut DocumentMut) -> Result<&mut toml_edit::ArrayOfTables, String> {
    tables(writer::fax_table(doc)?, "rule")
}

const BACK: &str = "/portal/admin/rules";

#[derive(Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    csrf: String,
    /// Empty: a new rule at the end.
    #[serde(default)]
    index: String,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "match")]
    patterns: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    users: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    prefix: String,
}

/// `POST /portal/admin/rules`: add a rule or change one.
pub async fn save(
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
        let rules = fax_rules(doc)?;
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
        set(table, "name", Some(form.name.trim().into()));
        set(table, "match", Some(strings(&list(&form.patterns))));
        set(table, "action", Some(form.action.trim().into()));
        let users = list(&form.users);
        set(
            table,
            "users",
            Some(strings(&users)).filter(|_| !users.is_empty()),
        );
        let groups = list(&form.groups);
        set(
            table,
            "groups",
            Some(strings(&groups)).filter(|_| !groups.is_empty()),
        );
        set(table, "prefix", optional(&form.prefix).map(Into::into));
        Ok(())
    })
    .await;
    done(
        &viewer,
        client.0.ip(),
        "fax.rule.save",
        form.name.trim(),
        result,
        BACK,
        "The rule was saved.",
    )
}

/// `POST /portal/admin/rules/move`: move a rule up or down, or delete
/// it.
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
        fax_rules,
        "fax.rule",
        BACK,
    )
    .await
}
