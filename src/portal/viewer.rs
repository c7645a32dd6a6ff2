//! Who is asking: the logged-in user of a portal request ([`Viewer`],
//! an axum extractor) and what they may see ([`Role`]).
//!
//! The role is worked out at every request from the configuration in
//! force (`[portal] admins`, `domain_admins`), and the user is looked up
//! again: a user deleted or disabled since the login is logged out at
//! once.

use super::session::COOKIE;
use super::Portal;
use crate::server::ServerContext;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use std::sync::Arc;

/// What a user may administer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Their own faxes only.
    User,
    /// The users, numbers and mail of these domains (lower case).
    DomainAdmin(Vec<String>),
    /// Everything.
    Admin,
}

/// The logged-in user of a request.
pub struct Viewer {
    /// The name they logged in with, as the users file spells it.
    pub name: String,
    pub role: Role,
    /// The session's CSRF token (every form carries it).
    pub csrf: String,
    /// The session id (the cookie's value).
    pub session: String,
    /// The server's parts in force for this request.
    pub ctx: Arc<ServerContext>,
}

impl Viewer {
    /// Whether they administer anything.
    pub fn is_admin(&self) -> bool {
        self.role != Role::User
    }

    /// Whether they administer everything.
    pub fn is_global_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether they administer the domain of `address` (or everything).
    pub fn administers(&self, address: &str) -> bool {
        match &self.role {
            Role::Admin => true,
            Role::User => false,
            Role::DomainAdmin(domains) => {
                let domain = address
                    .rsplit_once('@')
                    .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
                    .unwrap_or_default();
                domains.contains(&domain)
            }
        }
    }

    /// Whether a fax sent by (or received for) `address` is theirs to
    /// see: their own, or one of a domain they administer.
    #[cfg_attr(not(feature = "fax"), allow(dead_code))]
    pub fn may_see(&self, address: &str) -> bool {
        address.eq_ignore_ascii_case(&self.name) || self.administers(address)
    }

    /// The role of `user` under the configuration in force.
    pub fn role_of(ctx: &ServerContext, user: &str) -> Role {
        let portal = &ctx.config.portal;
        if portal.is_admin(user) {
            return Role::Admin;
        }
        match portal.admin_domains(user) {
            d if d.is_empty() => Role::User,
            d => Role::DomainAdmin(d),
        }
    }
}

/// Whether `user` may use the portal now: they exist and are not
/// disabled.
pub fn active(ctx: &ServerContext, user: &str) -> bool {
    ctx.users
        .as_ref()
        .and_then(|db| db.find(user))
        .is_some_and(|u| !u.disabled())
}

impl FromRequestParts<Arc<Portal>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Viewer, Response> {
        let ctx = portal.context();
        let settings = &ctx.config.portal;
        let jar = CookieJar::from_headers(&parts.headers);
        let found = jar.get(COOKIE).and_then(|cookie| {
            let id = cookie.value().to_string();
            portal
                .sessions
                .find(
                    &id,
                    settings.session_idle.std(),
                    settings.session_lifetime.std(),
                )
                .map(|s| (id, s))
        });
        let Some((id, session)) = found else {
            return Err(not_logged_in(parts));
        };
        if !active(&ctx, &session.user) {
            portal.sessions.close_user(&session.user);
            return Err(not_logged_in(parts));
        }
        Ok(Viewer {
            role: Viewer::role_of(&ctx, &session.user),
            name: session.user,
            csrf: session.csrf,
            session: id,
            ctx,
        })
    }
}

/// A page asked for without a login goes to the login form (and comes
/// back after it); anything else is refused.
fn not_logged_in(parts: &Parts) -> Response {
    if parts.method == Method::GET {
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/portal/");
        let next = url_escape(here);
        return Redirect::to(&format!("/portal/login?next={next}")).into_response();
    }
    (
        StatusCode::FORBIDDEN,
        "not logged in (or the login has expired)\n",
    )
        .into_response()
}

/// Percent-encoding for a query value.
pub fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_escaped() {
        assert_eq!(url_escape("/portal/fax?id=1&x"), "/portal/fax%3Fid%3D1%26x");
    }
}
