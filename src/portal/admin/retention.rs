//! `/portal/admin/retention` (global administrators): how long faxes are
//! kept — `[fax] history_days` (the records of faxes sent and received
//! and the usage rows), `[fax] documents_days` (their pages, for the
//! download and resend), `[fax.incoming] retention_days` (the received
//! images).

use super::form::{check_csrf, done, not_found};
use super::writer::{self, set};
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
use toml_edit::{Item, Table};

#[derive(Template)]
#[template(path = "admin/retention.html")]
struct RetentionPage {
    nav: Nav,
    csrf: String,
    done: Option<String>,
    history_days: u32,
    documents_days: u32,
    retention_days: u32,
}

#[derive(Deserialize, Default)]
pub struct Shown {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /portal/admin/retention`.
pub async fn page(Admin(viewer): Admin, Query(shown): Query<Shown>) -> Response {
    if !viewer.is_global_admin() {
        return not_found(&viewer);
    }
    let fax = &viewer.ctx.config.fax;
    html(&RetentionPage {
        nav: Nav::new(&viewer, "Retention"),
        csrf: viewer.csrf.clone(),
        done: shown.done,
        history_days: fax.history_days,
        documents_days: fax.documents_days,
        retention_days: fax.incoming.retention_days,
    })
}

#[derive(Deserialize)]
pub struct RetentionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    history_days: String,
    #[serde(default)]
    documents_days: String,
    #[serde(default)]
    retention_days: String,
}

fn days(field: &str, text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<u32>()
        .map(i64::from)
        .map_err(|_| format!("{field}: {text:?} is not a number of days"))
}

/// `POST /portal/admin/retention`.
pub async fn save(
    State(portal): State<Arc<Portal>>,
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<RetentionForm>,
) -> Response {
    if let Err(r) = check_csrf(&viewer, &form.csrf) {
        return *r;
    }
    if !viewer.is_global_admin() {
        return not_found(&viewer);
    }
    let values = (|| {
        Ok::<_, String>((
            days("history_days", &form.history_days)?,
            days("documents_days", &form.documents_days)?,
            days("retention_days", &form.retention_days)?,
        ))
    })();
    let object = format!(
        "history_days={} documents_days={} retention_days={}",
        form.history_days.trim(),
        form.documents_days.trim(),
        form.retention_days.trim()
    );
    let result = match values {
        Err(e) => Err(e),
        Ok((history, documents, retention)) => {
            writer::edit_config(&portal, |doc| {
                let fax = doc
                    .as_table_mut()
                    .entry("fax")
                    .or_insert_with(|| Item::Table(Table::new()))
                    .as_table_mut()
                    .ok_or("[fax] is not a table")?;
                set(fax, "history_days", Some(history.into()));
                set(fax, "documents_days", Some(documents.into()));
                let incoming = fax
                    .entry("incoming")
                    .or_insert_with(|| Item::Table(Table::new()))
                    .as_table_mut()
                    .ok_or("[fax.incoming] is not a table")?;
                set(incoming, "retention_days", Some(retention.into()));
                Ok(())
            })
            .await
        }
    };
    done(
        &viewer,
        client.0.ip(),
        "retention",
        &object,
        result,
        "/portal/admin/retention",
        "The retention was saved.",
    )
}
