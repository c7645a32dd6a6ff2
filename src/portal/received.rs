//! Received faxes: those routed to the viewer (by the number called, the
//! directory or the inbound rules), with search and paging, and one fax's
//! page (who sent it, the number called, the pages, a PDF). A domain
//! administrator sees those routed into their domains, an administrator
//! all.

use super::page::{error, html, Nav};
use super::scope::{self, when, Period};
use super::Viewer;
use askama::Template;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use faxmta_queue::ReceivedQuery;
use serde::Deserialize;

const PAGE_SIZE: usize = 25;

/// A received fax in the list.
pub struct Row {
    /// The first page's picture.
    pub thumb: String,
    pub received: String,
    pub from: String,
    pub called: String,
    pub to: String,
    pub pages: u32,
    pub status: String,
    pub link: String,
}

#[derive(Template)]
#[template(path = "received.html")]
struct ReceivedPage {
    nav: Nav,
    period: Period,
    show_to: bool,
    rows: Vec<Row>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(flatten)]
    period: Period,
    #[serde(default)]
    after: String,
}

/// The sender in words: the station id, the calling number, or both.
fn caller(tsi: &str, number: &str) -> String {
    match (tsi.trim(), number.trim()) {
        ("", "") => "unknown".into(),
        (t, "") => t.to_string(),
        ("", n) => n.to_string(),
        (t, n) if t == n => t.to_string(),
        (t, n) => format!("{t} ({n})"),
    }
}

/// `GET /portal/received`.
pub async fn list(viewer: Viewer, Query(q): Query<ListQuery>) -> Response {
    let (recipients, domains) = scope::whose(&viewer);
    let query = ReceivedQuery {
        recipients,
        domains,
        text: Some(q.period.q.trim().to_string()).filter(|t| !t.is_empty()),
        since: q.period.since(),
        until: q.period.until(),
        limit: PAGE_SIZE,
        after: q.after.parse().ok(),
    };
    let found = scope::read(&viewer, "The received faxes", move |store| {
        store.received_query(&query)
    });
    let page = match found.await {
        Ok(page) => page,
        Err(r) => return *r,
    };
    let rows = page
        .records
        .iter()
        .map(|r| Row {
            thumb: format!(
                "/portal/received/page.png?key={}&n=1",
                scope::escape(&r.key)
            ),
            received: when(r.received_at),
            from: caller(&r.remote_tsi, &r.caller),
            called: r.called.clone(),
            to: r
                .recipients
                .iter()
                .filter(|a| viewer.may_see(a))
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            pages: r.pages,
            status: r.status.clone(),
            link: format!("/portal/received/fax?key={}", scope::escape(&r.key)),
        })
        .collect();
    let next = page
        .next
        .map(|c| format!("/portal/received?{}after={c}", q.period.query()));
    html(&ReceivedPage {
        nav: Nav::new(&viewer, "Received faxes"),
        show_to: viewer.is_admin(),
        rows,
        next,
        period: q.period,
    })
}

#[derive(Template)]
#[template(path = "received_fax.html")]
struct ReceivedFaxPage {
    nav: Nav,
    status: String,
    facts: Vec<(String, String)>,
    pictures: Vec<String>,
    pdf: Option<String>,
}

#[derive(Deserialize)]
pub struct Which {
    #[serde(default)]
    key: String,
}

/// `GET /portal/received/fax?key=…`.
pub async fn show(viewer: Viewer, Query(which): Query<Which>) -> Response {
    let store = viewer.ctx.store.clone();
    let key = which.key.clone();
    let record = tokio::task::spawn_blocking(move || store.received_record(&key))
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
        .filter(|r| r.recipients.iter().any(|a| viewer.may_see(a)));
    let Some(r) = record else {
        return error(
            Some(&viewer),
            StatusCode::NOT_FOUND,
            "There is no such fax (or it is not yours to see).",
        );
    };
    let from = caller(&r.remote_tsi, &r.caller);
    let mut facts = vec![
        ("Received".to_string(), when(r.received_at)),
        ("From".into(), from.clone()),
        ("Number called".into(), r.called.clone()),
        ("Pages".into(), r.pages.to_string()),
        (
            "On the line".into(),
            format!("{} s", r.duration_ms.div_ceil(1000)),
        ),
    ];
    let to: Vec<String> = r
        .recipients
        .iter()
        .filter(|a| viewer.may_see(a))
        .cloned()
        .collect();
    facts.push(("Delivered to".into(), to.join(", ")));
    let (pictures, pdf) =
        super::documents::pictures(&viewer, &r.document_key(), "received", &r.key, "").await;
    html(&ReceivedFaxPage {
        nav: Nav::new(&viewer, &format!("Fax from {from}")),
        status: r.status.clone(),
        facts,
        pictures,
        pdf,
    })
}
