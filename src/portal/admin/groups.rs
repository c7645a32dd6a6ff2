//! `/portal/admin/groups` (global administrators): the fax groups of
//! the directory — add, change (name, description, station id,
//! numbers, cover page), delete. A group's numbers send received faxes
//! to every member; outbound rules name groups.

use super::form::{check_csrf, done, list, not_found, optional};
use super::users::directory;
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

/// A group as shown (and in the form).
#[derive(Default)]
struct GroupRow {
    name: String,
    description: String,
    tsi: String,
    numbers: String,
    cover: String,
    members: String,
    /// The page with this group in the form.
    link: String,
}

#[derive(Template)]
#[template(path = "admin/groups.html")]
struct GroupsPage {
    nav: Nav,
    csrf: String,
    done: Option<String>,
    groups: Vec<GroupRow>,
    /// The group in the form (`name` empty: a new one).
    editing: bool,
    form: GroupRow,
}

#[derive(Deserialize, Default)]
pub struct Shown {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    edit: Option<String>,
}

/// `GET /portal/admin/groups`.
pub async fn page(Admin(viewer): Admin, Query(shown): Query<Shown>) -> Response {
    if !viewer.is_global_admin() {
        return not_found(&viewer);
    }
    let dir = directory(&viewer);
    let groups: Vec<GroupRow> = dir
        .groups
        .iter()
        .map(|g| GroupRow {
            name: g.name.clone(),
            description: g.description.clone().unwrap_or_default(),
            tsi: g.tsi.clone().unwrap_or_default(),
            numbers: g.numbers.join(", "),
            cover: match g.cover_page {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => String::new(),
            },
            members: dir
                .users
                .iter()
                .filter(|u| u.groups.iter().any(|m| m.eq_ignore_ascii_case(&g.name)))
                .map(|u| u.address.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            link: format!(
                "/portal/admin/groups?edit={}#group-form",
                crate::portal::viewer::url_escape(&g.name)
            ),
        })
        .collect();
    let mut editing = false;
    let mut form = GroupRow::default();
    if let Some(edit) = &shown.edit {
        if let Some(g) = groups.iter().find(|g| g.name.eq_ignore_ascii_case(edit)) {
            editing = true;
            form = GroupRow {
                name: g.name.clone(),
                description: g.description.clone(),
                tsi: g.tsi.clone(),
                numbers: g.numbers.clone(),
                cover: g.cover.clone(),
                members: String::new(),
                link: String::new(),
            };
        }
    }
    html(&GroupsPage {
        nav: Nav::new(&viewer, "Fax groups"),
        csrf: viewer.csrf.clone(),
        done: shown.done,
        groups,
        editing,
        form,
    })
}

#[derive(Deserialize)]
pub struct GroupForm {
    #[serde(default)]
    csrf: String,
    /// The group's name before the change; empty: a new group.
    #[serde(default)]
    original: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tsi: String,
    #[serde(default)]
    numbers: String,
    #[serde(default)]
    cover: String,
    /// `"1"`: delete the group `original`.
    #[serde(default)]
    delete: String,
}

/// `POST /portal/admin/groups`: add, change or delete a group.
pub async fn save(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<GroupForm>,
) -> Response {
    if let Err(r) = check_csrf(&viewer, &form.csrf) {
        return *r;
    }
    if !viewer.is_global_admin() {
        return not_found(&viewer);
    }
    let original = form.original.trim().to_string();
    let name = form.name.trim().to_string();
    let deleting = form.delete == "1";
    let result = writer::edit_directory(&portal, |fax| {
        let groups = tables(fax, "group")?;
        let at = groups.iter().position(|t| {
            t.get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| !original.is_empty() && n.eq_ignore_ascii_case(&original))
        });
        if deleting {
            let i = at.ok_or(format!("no group {original}"))?;
            groups.remove(i);
            return Ok(());
        }
        let table = match at {
            Some(i) => groups.get_mut(i).ok_or("the group went away")?,
            None if original.is_empty() => {
                groups.push(toml_edit::Table::new());
                let last = groups.len() - 1;
                groups.get_mut(last).ok_or("the new group went away")?
            }
            None => return Err(format!("no group {original}")),
        };
        set(table, "name", Some(name.as_str().into()));
        set(
            table,
            "description",
            optional(&form.description).map(Into::into),
        );
        set(table, "tsi", optional(&form.tsi).map(Into::into));
        let numbers = list(&form.numbers);
        set(
            table,
            "numbers",
            Some(strings(&numbers)).filter(|_| !numbers.is_empty()),
        );
        let cover = match form.cover.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        set(table, "cover_page", cover.map(Into::into));
        // A new name: the members follow it.
        if !original.is_empty() && original != name {
            for user in tables(fax, "user")?.iter_mut() {
                let Some(list) = user.get_mut("groups").and_then(|g| g.as_array_mut()) else {
                    continue;
                };
                for g in list.iter_mut() {
                    if g.as_str()
                        .is_some_and(|g| g.eq_ignore_ascii_case(&original))
                    {
                        let decor = g.decor().clone();
                        *g = name.as_str().into();
                        *g.decor_mut() = decor;
                    }
                }
            }
        }
        Ok(())
    })
    .await;
    let (action, object) = match (deleting, original.is_empty()) {
        (true, _) => ("group.delete", original.clone()),
        (false, true) => ("group.add", name.clone()),
        (false, false) => ("group.change", format!("{original} as {name}")),
    };
    done(
        &viewer,
        client.0.ip(),
        action,
        &object,
        result,
        "/portal/admin/groups",
        "The groups were saved.",
    )
}
