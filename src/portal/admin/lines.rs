//! The fax lines: the engine, lines configured and in use, each SIP
//! trunk (calls, failures by cause, pages, time on the line,
//! registration), and the faxes on the line now with what each is doing
//! (the live board).

use super::Admin;
use crate::portal::page::{html, Nav};
use crate::portal::Portal;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;

pub struct Trunk {
    pub name: String,
    pub busy: String,
    pub calls: String,
    pub failures: String,
    pub pages: u64,
    pub minutes: String,
    pub registered: String,
}

pub struct OnLine {
    pub job: String,
    pub engine: String,
    pub text: String,
    pub state: String,
}

#[derive(Template)]
#[template(path = "admin/lines.html")]
struct LinesPage {
    nav: Nav,
    engine: String,
    lines: usize,
    busy: usize,
    trunks: Vec<Trunk>,
    on_line: Vec<OnLine>,
}

/// `GET /portal/admin/lines`.
pub async fn show(State(portal): State<Arc<Portal>>, Admin(viewer): Admin) -> Response {
    let (engine, lines, busy, trunks) = match &portal.engine {
        Some(e) => (e.name().to_string(), e.lines(), e.lines_busy(), e.trunks()),
        None => ("none".to_string(), 0, 0, Vec::new()),
    };
    let trunks = trunks
        .into_iter()
        .map(|t| Trunk {
            busy: format!("{} of {}", t.busy, t.max_calls),
            calls: format!("{} out, {} in", t.calls_out, t.calls_in),
            failures: t
                .failures
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(cause, n)| format!("{cause} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            pages: t.pages,
            minutes: format!("{:.1}", t.line_seconds / 60.0),
            registered: match t.registered {
                Some(true) => "registered".into(),
                Some(false) => "not registered".into(),
                None => "peer by address".into(),
            },
            name: t.name,
        })
        .collect();
    // Faxes of other domains are not a domain administrator's business:
    // they see the numbers of their own only through the queue; the
    // board's entries name queue jobs, shown to global administrators.
    let on_line = match viewer.is_global_admin() {
        true => portal
            .live
            .list()
            .into_iter()
            .map(|p| OnLine {
                text: p.describe(),
                state: format!("{:?}", p.state).to_lowercase(),
                engine: p.engine,
                job: p.job_id,
            })
            .collect(),
        false => Vec::new(),
    };
    html(&LinesPage {
        nav: Nav::new(&viewer, "Fax lines"),
        engine,
        lines,
        busy,
        trunks,
        on_line,
    })
}
