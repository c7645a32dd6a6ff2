//! What every page shares: the navigation bar of the layout template,
//! turning a template into a response, the error page, and the home
//! page.

use super::Viewer;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// The layout's part of every page of a logged-in user.
pub struct Nav {
    pub title: String,
    pub user: String,
    pub admin: bool,
    /// For the logout form.
    pub csrf: String,
}

impl Nav {
    /// For pages without a login (the login form, errors).
    pub fn anonymous(title: &str) -> Nav {
        Nav {
            title: title.to_string(),
            user: String::new(),
            admin: false,
            csrf: String::new(),
        }
    }

    pub fn new(viewer: &Viewer, title: &str) -> Nav {
        Nav {
            title: title.to_string(),
            user: viewer.name.clone(),
            admin: viewer.is_admin(),
            csrf: viewer.csrf.clone(),
        }
    }
}

/// A rendered template, or a plain 500 if it cannot be rendered.
pub fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(text) => Html(text).into_response(),
        Err(e) => {
            tracing::error!("portal: cannot render a page: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render the page\n",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    nav: Nav,
    message: String,
}

/// An error page with `status`, inside the layout when someone is
/// logged in.
pub fn error(viewer: Option<&Viewer>, status: StatusCode, message: impl Into<String>) -> Response {
    let page = ErrorPage {
        nav: viewer
            .map(|v| Nav::new(v, "Error"))
            .unwrap_or_else(|| Nav::anonymous("Error")),
        message: message.into(),
    };
    (status, html(&page)).into_response()
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    nav: Nav,
}

/// `/portal/`: where a user starts.
pub async fn home(viewer: Viewer) -> Response {
    html(&Home {
        nav: Nav::new(&viewer, "Fax"),
    })
}
