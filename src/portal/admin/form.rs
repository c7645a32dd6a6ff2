//! What the settings pages' forms share: the CSRF check, lists typed
//! into a text field, and the answer to a change (written to the audit
//! log, then back to the page with a notice, or the error shown).

use super::super::page::error;
use super::super::session::same_secret;
use super::super::viewer::url_escape;
use super::super::{audit, Viewer};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::IpAddr;

/// Refused unless the form carries the session's CSRF token.
pub fn check_csrf(viewer: &Viewer, csrf: &str) -> Result<(), Box<Response>> {
    match !csrf.is_empty() && same_secret(&viewer.csrf, csrf) {
        true => Ok(()),
        false => Err(Box::new(error(
            Some(viewer),
            StatusCode::FORBIDDEN,
            "This form had expired or came from elsewhere: nothing was done.",
        ))),
    }
}

/// The page asked for does not exist for this viewer.
pub fn not_found(viewer: &Viewer) -> Response {
    error(
        Some(viewer),
        StatusCode::NOT_FOUND,
        "There is no such page.",
    )
}

/// The items of a list typed as text: separated by commas, spaces or
/// new lines; empty ones left out.
pub fn list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `Some(text)` trimmed, `None` when empty.
pub fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// The answer to a change: logged (who, what, the result), then the
/// page `back` with `notice`, or the error page.
pub fn done(
    viewer: &Viewer,
    ip: IpAddr,
    action: &str,
    object: &str,
    result: Result<(), String>,
    back: &str,
    notice: &str,
) -> Response {
    match result {
        Ok(()) => {
            audit::record(&viewer.ctx, &viewer.name, ip, action, object, "ok");
            let join = if back.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{back}{join}done={}", url_escape(notice))).into_response()
        }
        Err(e) => {
            audit::record(
                &viewer.ctx,
                &viewer.name,
                ip,
                action,
                object,
                &format!("refused: {e}"),
            );
            error(
                Some(viewer),
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Nothing was changed: {e}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_split_on_commas_and_spaces() {
        assert_eq!(list(" 100, 200\n300 ,,"), ["100", "200", "300"]);
        assert!(list("  ").is_empty());
        assert_eq!(optional("  x "), Some("x".into()));
        assert_eq!(optional(" "), None);
    }
}

/// A rule list's row action: move rule `index` (0-based) `up` or `down`,
/// or `delete` it.
#[derive(serde::Deserialize)]
pub struct RuleAction {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub index: usize,
    /// `up`, `down` or `delete`.
    #[serde(default)]
    pub action: String,
}

/// Carry out `form` on the list of rules `locate` finds in the
/// configuration (global administrators only), audited as
/// `{audit}.{action}`, then back to `back`.
pub async fn reorder(
    portal: &super::super::Portal,
    viewer: &Viewer,
    ip: IpAddr,
    form: &RuleAction,
    locate: for<'a> fn(
        &'a mut toml_edit::DocumentMut,
    ) -> Result<&'a mut toml_edit::ArrayOfTables, String>,
    audit: &str,
    back: &str,
) -> Response {
    if let Err(r) = check_csrf(viewer, &form.csrf) {
        return *r;
    }
    if !viewer.is_global_admin() {
        return not_found(viewer);
    }
    let (i, action) = (form.index, form.action.clone());
    let result = super::writer::edit_config(portal, |doc| {
        super::writer::change_order(locate(doc)?, i, &action)
    })
    .await;
    done(
        viewer,
        ip,
        &format!("{audit}.{}", form.action),
        &format!("rule {}", i + 1),
        result,
        back,
        "The rules were changed.",
    )
}
