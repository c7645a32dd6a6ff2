//! The administrators' pages under `/portal/admin/`: the mail queue, the
//! fax lines, usage per user and group, and (in their own modules) the
//! users, groups, fax numbers and routing, and retention. A global
//! administrator (`[portal] admins`) sees everything; a domain
//! administrator (`[portal] domain_admins`) the users, numbers, usage and
//! mail of their domains; anyone else gets 404 on every page here.
//!
//! Every change is checked against the session's CSRF token, written
//! back safely (the configuration through [`crate::portal`]'s writer and
//! a reload, the users file atomically, the queue through the same
//! commands as `faxmta queue`), and written to the audit log.

mod form;
mod groups;
#[cfg(feature = "fax")]
mod lines;
mod numbers;
mod queue;
mod retention;
mod rules;
mod usage;
mod users;
mod writer;

use super::page::{error, html, Nav};
use super::{Portal, Viewer};
use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;

/// The viewer of an administration page: refused (404, as if the page
/// did not exist) unless they administer something.
pub struct Admin(pub Viewer);

impl FromRequestParts<Arc<Portal>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Admin, Response> {
        let viewer = Viewer::from_request_parts(parts, portal).await?;
        match viewer.is_admin() {
            true => Ok(Admin(viewer)),
            false => Err(error(
                Some(&viewer),
                StatusCode::NOT_FOUND,
                "There is no such page.",
            )),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/index.html")]
struct Index {
    nav: Nav,
    global: bool,
    domains: Vec<String>,
}

/// `GET /portal/admin/`.
async fn index(Admin(viewer): Admin) -> Response {
    let domains = match &viewer.role {
        super::Role::DomainAdmin(d) => d.clone(),
        _ => Vec::new(),
    };
    html(&Index {
        nav: Nav::new(&viewer, "Administration"),
        global: viewer.is_global_admin(),
        domains,
    })
}

/// The administration routes.
pub fn routes() -> axum::Router<Arc<Portal>> {
    let router = axum::Router::new();
    #[cfg(feature = "fax")]
    let router = router.route("/portal/admin/lines", get(lines::show));
    router
        .route("/portal/admin/", get(index))
        .route("/portal/admin/queue", get(queue::list).post(queue::act))
        .route("/portal/admin/queue/message", get(queue::show))
        .route("/portal/admin/usage", get(usage::show))
        .route("/portal/admin/usage.csv", get(usage::csv))
        .route("/portal/admin/users", get(users::list_page))
        .route("/portal/admin/users/add", post(users::add))
        .route("/portal/admin/user", get(users::show))
        .route("/portal/admin/user/fax", post(users::fax))
        .route("/portal/admin/user/password", post(users::password))
        .route("/portal/admin/user/disable", post(users::disable))
        .route("/portal/admin/user/delete", post(users::delete))
        .route("/portal/admin/groups", get(groups::page).post(groups::save))
        .route("/portal/admin/rules", get(rules::page).post(rules::save))
        .route("/portal/admin/rules/move", post(rules::rule_action))
        .route("/portal/admin/numbers", get(numbers::page))
        .route("/portal/admin/numbers/rule", post(numbers::save_rule))
        .route(
            "/portal/admin/numbers/rule/move",
            post(numbers::rule_action),
        )
        .route("/portal/admin/numbers/default", post(numbers::default_to))
        .route(
            "/portal/admin/retention",
            get(retention::page).post(retention::save),
        )
}
