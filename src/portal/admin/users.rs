//! `/portal/admin/users`: the SMTP AUTH users with their fax directory
//! entries — add a user, disable or enable them, reset a password,
//! delete them, edit their fax entry (name, groups, station id,
//! numbers, cover page).
//!
//! A domain administrator sees and changes only the users of their
//! domains (any other name is "no such page"), may not change groups
//! (they carry outbound rules), and may not take a number that a user
//! of another domain or a group already has. A user who is disabled,
//! deleted or gets a new password is logged out of the portal.

use super::form::{check_csrf, done, list, not_found, optional};
use super::writer::{self, set, strings, tables, UserChange};
use super::Admin;
use crate::admin::http::ClientAddr;
use crate::portal::page::{error, html, Nav};
use crate::portal::viewer::url_escape;
use crate::portal::{Portal, Viewer};
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use faxmta_fax::directory::{Directory, FaxUser};
use serde::Deserialize;
use std::sync::Arc;

/// One user in the list.
struct Row {
    name: String,
    disabled: bool,
    fax_name: String,
    groups: String,
    numbers: String,
    tsi: String,
    link: String,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    nav: Nav,
    csrf: String,
    global: bool,
    done: Option<String>,
    rows: Vec<Row>,
    // The add form's fax fields, empty.
    fax_name: String,
    groups: String,
    tsi: String,
    numbers: String,
    cover: String,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    nav: Nav,
    csrf: String,
    global: bool,
    done: Option<String>,
    name: String,
    disabled: bool,
    fax: bool,
    fax_name: String,
    groups: String,
    tsi: String,
    numbers: String,
    cover: String,
}

#[derive(Deserialize, Default)]
pub struct Shown {
    #[serde(default)]
    name: String,
    #[serde(default)]
    done: Option<String>,
}

/// The fax directory in force.
pub fn directory(viewer: &Viewer) -> Directory {
    viewer.ctx.config.fax.policy().directory
}

/// The fax entry of exactly `address` (not a `*@domain` one).
fn entry<'a>(directory: &'a Directory, address: &str) -> Option<&'a FaxUser> {
    directory
        .users
        .iter()
        .find(|u| u.address.eq_ignore_ascii_case(address))
}

/// `GET /portal/admin/users`.
pub async fn list_page(Admin(viewer): Admin, Query(shown): Query<Shown>) -> Response {
    let users = match writer::list_users(&viewer.ctx) {
        Ok(u) => u,
        Err(e) => return error(Some(&viewer), StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let dir = directory(&viewer);
    let rows = users
        .iter()
        .filter(|u| viewer.administers(&u.name))
        .map(|u| {
            let fax = entry(&dir, &u.name);
            Row {
                name: u.name.clone(),
                disabled: u.disabled(),
                fax_name: fax.and_then(|f| f.name.clone()).unwrap_or_default(),
                groups: fax.map(|f| f.groups.join(", ")).unwrap_or_default(),
                numbers: fax.map(|f| f.numbers.join(", ")).unwrap_or_default(),
                tsi: fax.and_then(|f| f.tsi.clone()).unwrap_or_default(),
                link: format!("/portal/admin/user?name={}", url_escape(&u.name)),
            }
        })
        .collect();
    html(&UsersPage {
        nav: Nav::new(&viewer, "Users"),
        csrf: viewer.csrf.clone(),
        global: viewer.is_global_admin(),
        done: shown.done,
        rows,
        fax_name: String::new(),
        groups: String::new(),
        tsi: String::new(),
        numbers: String::new(),
        cover: String::new(),
    })
}

/// `GET /portal/admin/user?name=…`.
pub async fn show(Admin(viewer): Admin, Query(shown): Query<Shown>) -> Response {
    if !viewer.administers(&shown.name) {
        return not_found(&viewer);
    }
    let user = match viewer
        .ctx
        .users
        .as_ref()
        .and_then(|db| db.find(&shown.name))
    {
        Some(u) => u,
        None => return not_found(&viewer),
    };
    let dir = directory(&viewer);
    let fax = entry(&dir, &user.name);
    let page = UserPage {
        nav: Nav::new(&viewer, &user.name),
        csrf: viewer.csrf.clone(),
        global: viewer.is_global_admin(),
        done: shown.done,
        disabled: user.disabled(),
        fax: fax.is_some(),
        fax_name: fax.and_then(|f| f.name.clone()).unwrap_or_default(),
        groups: fax.map(|f| f.groups.join(", ")).unwrap_or_default(),
        tsi: fax.and_then(|f| f.tsi.clone()).unwrap_or_default(),
        numbers: fax.map(|f| f.numbers.join(", ")).unwrap_or_default(),
        cover: match fax.and_then(|f| f.cover_page) {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => String::new(),
        },
        name: user.name,
    };
    html(&page)
}

/// The fields of a fax entry in a form.
#[derive(Deserialize, Default)]
pub struct FaxFields {
    #[serde(default)]
    fax_name: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    tsi: String,
    #[serde(default)]
    numbers: String,
    #[serde(default)]
    cover: String,
}

impl FaxFields {
    fn is_empty(&self) -> bool {
        [&self.fax_name, &self.groups, &self.tsi, &self.numbers]
            .iter()
            .all(|f| f.trim().is_empty())
    }
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    password: String,
    #[serde(flatten)]
    fax: FaxFields,
}

/// A number a domain administrator may not give: one a group or a user
/// outside their domains has.
fn taken_number(viewer: &Viewer, dir: &Directory, numbers: &[String]) -> Option<String> {
    use faxmta_fax::pattern::number_key;
    if viewer.is_global_admin() {
        return None;
    }
    let others: Vec<String> = dir
        .groups
        .iter()
        .flat_map(|g| g.numbers.iter())
        .chain(
            dir.users
                .iter()
                .filter(|u| !viewer.administers(&u.address))
                .flat_map(|u| u.numbers.iter()),
        )
        .map(|n| number_key(n))
        .collect();
    numbers
        .iter()
        .find(|n| others.contains(&number_key(n)))
        .cloned()
}

/// Write the fax entry of `address` from `fields` (made when absent).
async fn write_fax(
    portal: &Portal,
    viewer: &Viewer,
    address: &str,
    fields: &FaxFields,
) -> Result<(), String> {
    let numbers = list(&fields.numbers);
    if let Some(n) = taken_number(viewer, &directory(viewer), &numbers) {
        return Err(format!("number {n} belongs to a group or another domain"));
    }
    let global = viewer.is_global_admin();
    let cover = match fields.cover.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    };
    writer::edit_directory(portal, |fax| {
        let users = tables(fax, "user")?;
        let at = users.iter().position(|t| {
            t.get("address")
                .and_then(|a| a.as_str())
                .is_some_and(|a| a.eq_ignore_ascii_case(address))
        });
        let table = match at {
            Some(i) => users
                .get_mut(i)
                .ok_or("the fax entry went away while editing")?,
            None => {
                let mut t = toml_edit::Table::new();
                t.insert("address", toml_edit::value(address));
                users.push(t);
                let last = users.len() - 1;
                users
                    .get_mut(last)
                    .ok_or("the new fax entry went away while editing")?
            }
        };
        set(table, "name", optional(&fields.fax_name).map(Into::into));
        if global {
            let groups = list(&fields.groups);
            set(
                table,
                "groups",
                Some(strings(&groups)).filter(|_| !groups.is_empty()),
            );
        }
        set(table, "tsi", optional(&fields.tsi).map(Into::into));
        set(
            table,
            "numbers",
            Some(strings(&numbers)).filter(|_| !numbers.is_empty()),
        );
        set(table, "cover_page", cover.map(Into::into));
        Ok(())
    })
    .await
}

/// `POST /portal/admin/users/add`.
pub async fn add(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<AddForm>,
) -> Response {
    if let Err(r) = check_csrf(&viewer, &form.csrf) {
        return *r;
    }
    let address = form.address.trim().to_string();
    if !viewer.administers(&address) {
        return not_found(&viewer);
    }
    let result = async {
        if !crate::config::users::valid_name(&address) {
            return Err(format!(
                "{address:?}: a user name has no ':', spaces or control characters"
            ));
        }
        let hash = writer::hash(form.password.clone()).await?;
        writer::change_user(&viewer.ctx, &address, UserChange::Add(hash)).await?;
        if !form.fax.is_empty() {
            write_fax(&portal, &viewer, &address, &form.fax)
                .await
                .map_err(|e| format!("user {address} was added, but not their fax entry: {e}"))?;
        }
        Ok(())
    }
    .await;
    done(
        &viewer,
        client.0.ip(),
        "user.add",
        &address,
        result,
        "/portal/admin/users",
        &format!("User {address} added."),
    )
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(flatten)]
    fax: FaxFields,
}

/// The checks every change of one user starts with.
fn one_user(viewer: &Viewer, form: &UserForm) -> Result<String, Box<Response>> {
    check_csrf(viewer, &form.csrf)?;
    let name = form.name.trim().to_string();
    match viewer.administers(&name) {
        true => Ok(name),
        false => Err(Box::new(not_found(viewer))),
    }
}

fn back(name: &str) -> String {
    format!("/portal/admin/user?name={}", url_escape(name))
}

/// `POST /portal/admin/user/password`.
pub async fn password(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<UserForm>,
) -> Response {
    let name = match one_user(&viewer, &form) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let result = async {
        let hash = writer::hash(form.password.clone()).await?;
        // A disabled user stays disabled, with the new password.
        let change = UserChange::Hash(Box::new(move |old: &str| match old.starts_with('!') {
            true => format!("!{hash}"),
            false => hash,
        }));
        writer::change_user(&viewer.ctx, &name, change).await
    }
    .await;
    if result.is_ok() {
        portal.sessions.close_user(&name);
    }
    done(
        &viewer,
        client.0.ip(),
        "user.password",
        &name,
        result,
        &back(&name),
        "The password was changed; the user's logins have ended.",
    )
}

#[derive(Deserialize)]
pub struct Toggle {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// `"1"`: disable; anything else: enable.
    #[serde(default)]
    disable: String,
}

/// `POST /portal/admin/user/disable`: disable (a `!` in front of the
/// hash) or enable again.
pub async fn disable(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<Toggle>,
) -> Response {
    if let Err(r) = check_csrf(&viewer, &form.csrf) {
        return *r;
    }
    let name = form.name.trim().to_string();
    if !viewer.administers(&name) {
        return not_found(&viewer);
    }
    let off = form.disable == "1";
    if off && name.eq_ignore_ascii_case(&viewer.name) {
        return error(
            Some(&viewer),
            StatusCode::UNPROCESSABLE_ENTITY,
            "You cannot disable yourself.",
        );
    }
    let change = UserChange::Hash(Box::new(move |old: &str| {
        let bare = old.trim_start_matches('!');
        match off {
            true => format!("!{bare}"),
            false => bare.to_string(),
        }
    }));
    let result = writer::change_user(&viewer.ctx, &name, change).await;
    if result.is_ok() && off {
        portal.sessions.close_user(&name);
    }
    let (action, notice) = match off {
        true => ("user.disable", "The user is disabled and logged out."),
        false => ("user.enable", "The user is enabled."),
    };
    done(
        &viewer,
        client.0.ip(),
        action,
        &name,
        result,
        &back(&name),
        notice,
    )
}

/// `POST /portal/admin/user/delete`: the user and their fax entry.
pub async fn delete(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<UserForm>,
) -> Response {
    let name = match one_user(&viewer, &form) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    if name.eq_ignore_ascii_case(&viewer.name) {
        return error(
            Some(&viewer),
            StatusCode::UNPROCESSABLE_ENTITY,
            "You cannot delete yourself.",
        );
    }
    let result = async {
        writer::change_user(&viewer.ctx, &name, UserChange::Delete).await?;
        portal.sessions.close_user(&name);
        if entry(&directory(&viewer), &name).is_some() {
            writer::edit_directory(&portal, |fax| {
                tables(fax, "user")?.retain(|t| {
                    !t.get("address")
                        .and_then(|a| a.as_str())
                        .is_some_and(|a| a.eq_ignore_ascii_case(&name))
                });
                Ok(())
            })
            .await
            .map_err(|e| format!("user {name} was deleted, but not their fax entry: {e}"))?;
        }
        Ok(())
    }
    .await;
    done(
        &viewer,
        client.0.ip(),
        "user.delete",
        &name,
        result,
        "/portal/admin/users",
        &format!("User {name} deleted."),
    )
}

/// `POST /portal/admin/user/fax`: the user's fax entry.
pub async fn fax(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<UserForm>,
) -> Response {
    let name = match one_user(&viewer, &form) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let result = write_fax(&portal, &viewer, &name, &form.fax).await;
    done(
        &viewer,
        client.0.ip(),
        "user.fax",
        &name,
        result,
        &back(&name),
        "The fax entry was saved.",
    )
}
