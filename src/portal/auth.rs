//! Logging in and out of the portal.
//!
//! The login form is paired with its browser by a random token, in a
//! cookie and in a hidden field (a login that another site posts in the
//! user's browser has no cookie to match). Names and passwords are the
//! SMTP AUTH users' ([`crate::policy::users::UserDb`]); failed logins
//! count against the client's address exactly like failed SMTP AUTH
//! (the same `[auth] max_failures` budget, the same growing delay, the
//! same block), counted before the password is verified. A successful
//! login gets a new session id, so an id planted in the browser before
//! it is worth nothing.

use super::page::html;
use super::session::{self, same_secret, COOKIE, LOGIN_COOKIE};
use super::viewer::active;
use super::{audit, Portal, Viewer};
use crate::admin::http::ClientAddr;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: super::page::Nav,
    token: String,
    next: String,
    user: String,
    message: Option<String>,
}

#[derive(Deserialize)]
pub struct Next {
    #[serde(default)]
    next: String,
}

/// Where to go after the login: a portal page, nothing else.
fn next_page(next: &str) -> String {
    match next.starts_with("/portal/") && !next.contains("//") && !next.contains('\\') {
        true => next.to_string(),
        false => "/portal/".to_string(),
    }
}

/// A cookie as the portal sets them.
pub fn cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build()
}

/// The form, with a fresh pairing token.
fn login_page(jar: CookieJar, next: &str, user: &str, message: Option<String>) -> Response {
    let token = session::token();
    let page = LoginPage {
        nav: super::page::Nav::anonymous("Log in"),
        token: token.clone(),
        next: next_page(next),
        user: user.to_string(),
        message,
    };
    (jar.add(cookie(LOGIN_COOKIE, token)), html(&page)).into_response()
}

/// `GET /portal/login`.
pub async fn form(
    State(portal): State<Arc<Portal>>,
    jar: CookieJar,
    Query(next): Query<Next>,
) -> Response {
    let ctx = portal.context();
    let settings = &ctx.config.portal;
    let logged_in = jar.get(COOKIE).is_some_and(|c| {
        portal
            .sessions
            .find(
                c.value(),
                settings.session_idle.std(),
                settings.session_lifetime.std(),
            )
            .is_some_and(|s| active(&ctx, &s.user))
    });
    if logged_in {
        return Redirect::to(&next_page(&next.next)).into_response();
    }
    login_page(jar, &next.next, "", None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// `POST /portal/login`.
pub async fn login(
    State(portal): State<Arc<Portal>>,
    Extension(client): Extension<ClientAddr>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let ctx = portal.context();
    let ip = client.0.ip();
    let paired = jar
        .get(LOGIN_COOKIE)
        .is_some_and(|c| !form.token.is_empty() && same_secret(c.value(), &form.token));
    if !paired {
        tracing::info!("portal: login from [{ip}] without its form's token");
        let message = "The login form had expired or came from elsewhere: please log in again.";
        let mut response = login_page(jar, &form.next, &form.user, Some(message.into()));
        *response.status_mut() = StatusCode::FORBIDDEN;
        return response;
    }
    let name: String = form
        .user
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(256)
        .collect();
    let blocked = || {
        tracing::info!("portal: too many failed logins from [{ip}]");
        let message = "Too many failed logins from your address: try again later.";
        let mut response = login_page(jar.clone(), &form.next, &name, Some(message.into()));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response
    };
    if ctx.limits.auth_blocked(ip) {
        return blocked();
    }
    let Some(attempt) = ctx.limits.auth_attempt(ip) else {
        return blocked();
    };
    let user = match &ctx.users {
        Some(db) => {
            ctx.metrics.auth_verifications.inc();
            db.authenticate(&name, &form.password).await
        }
        None => None,
    };
    let Some(user) = user.filter(|u| !u.disabled()) else {
        tracing::warn!(
            "portal: login failed for {name:?} from [{ip}] (answered after {:?})",
            attempt.delay
        );
        tokio::time::sleep(attempt.delay).await;
        let message = "Wrong name or password.";
        let mut response = login_page(jar, &form.next, &name, Some(message.into()));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    };
    ctx.limits.auth_succeeded(&attempt);
    let settings = &ctx.config.portal;
    portal
        .sessions
        .sweep(settings.session_idle.std(), settings.session_lifetime.std());
    let id = portal.sessions.open(&user.name);
    tracing::info!("portal: {} logged in from [{ip}]", user.name);
    audit::record(&ctx, &user.name, ip, "login", &user.name, "ok");
    let jar = jar
        .remove(cookie(LOGIN_COOKIE, String::new()))
        .add(cookie(COOKIE, id));
    (jar, Redirect::to(&next_page(&form.next))).into_response()
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /portal/logout`.
pub async fn logout(
    State(portal): State<Arc<Portal>>,
    viewer: Viewer,
    Extension(client): Extension<ClientAddr>,
    jar: CookieJar,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !same_secret(&viewer.csrf, &form.csrf) {
        return super::page::error(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "This form had expired or came from elsewhere: nothing was done.",
        );
    }
    portal.sessions.close(&viewer.session);
    audit::record(
        &viewer.ctx,
        &viewer.name,
        client.0.ip(),
        "logout",
        &viewer.name,
        "ok",
    );
    let jar = jar.remove(cookie(COOKIE, String::new()));
    (jar, Redirect::to("/portal/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_the_login_only_portal_pages() {
        assert_eq!(next_page("/portal/faxes?q=1"), "/portal/faxes?q=1");
        assert_eq!(next_page("https://evil.example/"), "/portal/");
        assert_eq!(next_page("//evil.example/portal/"), "/portal/");
        assert_eq!(next_page("/portal//evil.example"), "/portal/");
        assert_eq!(next_page("/portal/\\evil"), "/portal/");
        assert_eq!(next_page(""), "/portal/");
    }
}
