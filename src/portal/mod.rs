//! The web portal for fax users and administrators, served by the admin
//! listener under `/portal/` (src/admin/http.rs merges [`routes`]).
//!
//! Plain server-rendered HTML (askama templates in `templates/`, one CSS
//! file, one small script for live status): every form works without
//! JavaScript. Users log in with their SMTP AUTH name and password
//! ([`auth`]); a login is a session ([`session`]) whose cookie is
//! `Secure`, `HttpOnly` and `SameSite=Strict`, and every form carries
//! the session's CSRF token, checked together with the request's
//! `Origin` ([`guard`]). Roles come from `[portal]`: `admins` administer
//! everything, `domain_admins` their domains; everyone else is a fax
//! user who sees only their own faxes.
//!
//! The portal reads the configuration in force at each request (it
//! follows reloads), and writes changes back through the reloader.

mod admin;
mod assets;
pub mod audit;
mod auth;
#[cfg(feature = "fax")]
mod documents;
#[cfg(feature = "fax")]
mod faxes;
mod guard;
mod page;
#[cfg(feature = "fax")]
mod received;
// The list pages' helpers serve the fax pages only.
#[cfg_attr(not(feature = "fax"), allow(dead_code))]
mod scope;
#[cfg(feature = "fax")]
mod send;
pub mod session;
mod viewer;

use crate::reload::Reloader;
use crate::server::ServerContext;
use axum::extract::DefaultBodyLimit;
use axum::response::Redirect;
use axum::routing::{get, post};
use std::sync::Arc;
use tokio::sync::watch;

pub use viewer::{Role, Viewer};

/// What the portal's handlers share.
pub struct Portal {
    /// The server's parts as they are now (configuration, store, users,
    /// limits…): they follow reloads.
    pub server: watch::Receiver<Arc<ServerContext>>,
    /// Puts a changed configuration in force.
    pub reloader: Arc<Reloader>,
    pub sessions: session::Sessions,
    /// What each fax in flight is doing now.
    #[cfg_attr(not(feature = "fax"), allow(dead_code))]
    pub live: faxmta_fax::live::LiveBoard,
    /// Faxes previewed, not yet sent.
    #[cfg(feature = "fax")]
    pub drafts: send::Drafts,
    /// The fax engine (its lines and trunks).
    #[cfg(feature = "fax")]
    pub engine: Option<Arc<dyn faxmta_fax::engine::FaxEngine>>,
    /// Renders the preview (`None`: no fax transport).
    #[cfg(feature = "fax")]
    pub preview: Option<Arc<crate::fax::preview::Previewer>>,
}

impl Portal {
    /// The server's parts in force now.
    pub fn context(&self) -> Arc<ServerContext> {
        self.server.borrow().clone()
    }
}

/// The portal's routes (under `/portal/`), and `/` leading to it.
pub fn routes(portal: Arc<Portal>) -> axum::Router {
    let limit = usize::try_from(portal.context().config.admin.max_request.0).unwrap_or(usize::MAX);
    let router = axum::Router::new();
    #[cfg(feature = "fax")]
    let router = router
        .route("/portal/send", get(send::form).post(send::preview))
        .route("/portal/send/confirm", post(send::confirm))
        .route("/portal/faxes", get(faxes::list))
        .route("/portal/fax", get(faxes::show))
        .route("/portal/fax/live", get(faxes::live))
        .route("/portal/fax/resend", post(faxes::resend))
        .route("/portal/fax/page.png", get(documents::sent_png))
        .route("/portal/fax/fax.pdf", get(documents::sent_pdf))
        .route("/portal/received", get(received::list))
        .route("/portal/received/fax", get(received::show))
        .route("/portal/received/page.png", get(documents::received_png))
        .route("/portal/received/fax.pdf", get(documents::received_pdf));
    router
        .merge(admin::routes())
        .route("/portal/", get(page::home))
        .route("/portal/login", get(auth::form).post(auth::login))
        .route("/portal/logout", post(auth::logout))
        .route("/portal/static/{file}", get(assets::file))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            portal.clone(),
            guard::guard,
        ))
        .with_state(portal)
        .route("/", get(|| async { Redirect::to("/portal/") }))
        .route("/portal", get(|| async { Redirect::to("/portal/") }))
}
