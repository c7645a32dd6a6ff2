//! The mail queue for administrators: the messages with filters (words
//! in the id, sender or recipients; state; a recipient domain), one
//! message (envelope, recipients, its text), and the actions of
//! `faxmta queue` / `postsuper`: hold, release, delete, flush one, flush
//! a domain, flush everything deferred. Actions go through the same
//! [`crate::admin::control::execute`] as the command line (and are
//! synced before the answer), and into the audit log.
//!
//! A domain administrator sees, and acts on, the messages whose sender
//! or a recipient is in their domains; flushing everything is for
//! global administrators.

use super::Admin;
use crate::admin::control::{execute, Request, Response as Answer};
use crate::admin::http::ClientAddr;
use crate::portal::audit;
use crate::portal::page::{error, html, Nav};
use crate::portal::scope::{escape, when};
use crate::portal::session::same_secret;
use crate::portal::Viewer;
use askama::Template;
use axum::extract::{Form, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use faxmta_queue::{Envelope, RcptState};
use serde::Deserialize;

/// Messages listed at most.
const SHOWN: usize = 200;
/// Octets of a message's text shown at most.
const TEXT: usize = 64 * 1024;

pub struct Row {
    pub id: String,
    pub arrival: String,
    pub sender: String,
    pub recipients: String,
    pub state: String,
    pub held: bool,
    pub size: u64,
    pub link: String,
}

#[derive(Template)]
#[template(path = "admin/queue.html")]
struct QueuePage {
    nav: Nav,
    csrf: String,
    filter: Filter,
    notice: String,
    rows: Vec<Row>,
    matched: usize,
    total: usize,
    global: bool,
}

#[derive(Deserialize, Default, Clone)]
pub struct Filter {
    /// Words in the id, sender or recipients.
    #[serde(default)]
    q: String,
    /// `deferred`, `held`, `active` or empty (all).
    #[serde(default)]
    state: String,
    /// A recipient domain.
    #[serde(default)]
    domain: String,
    /// What was just done (after a redirect).
    #[serde(default)]
    done: String,
}

/// Whether the viewer may see `env`.
fn visible(viewer: &Viewer, env: &Envelope) -> bool {
    viewer.administers(&env.sender)
        || env
            .recipients
            .iter()
            .any(|r| viewer.administers(&r.address))
}

fn state_of(env: &Envelope) -> &'static str {
    let active: Vec<_> = env
        .recipients
        .iter()
        .filter(|r| r.state.is_active())
        .collect();
    if env.held {
        "held"
    } else if active.iter().any(|r| r.state == RcptState::Deferred) {
        "deferred"
    } else if active.is_empty() {
        "done"
    } else {
        "queued"
    }
}

fn matches(f: &Filter, env: &Envelope) -> bool {
    let q = f.q.trim().to_lowercase();
    let words = q.is_empty()
        || env.id.to_lowercase().contains(&q)
        || env.sender.to_lowercase().contains(&q)
        || env
            .recipients
            .iter()
            .any(|r| r.address.to_lowercase().contains(&q));
    let state = match f.state.as_str() {
        "held" => env.held,
        "deferred" => state_of(env) == "deferred",
        "active" => !env.held,
        _ => true,
    };
    let domain = f.domain.trim().trim_end_matches('.').to_lowercase();
    let domain = domain.is_empty()
        || env.recipients.iter().any(|r| {
            r.address
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.trim_end_matches('.').eq_ignore_ascii_case(&domain))
        });
    words && state && domain
}

/// `GET /portal/admin/queue`.
pub async fn list(Admin(viewer): Admin, Query(filter): Query<Filter>) -> Response {
    let store = viewer.ctx.store.clone();
    let (f, v) = (filter.clone(), viewer.role.clone());
    let name = viewer.name.clone();
    let ctx = viewer.ctx.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let who = Viewer {
            name,
            role: v,
            csrf: String::new(),
            session: String::new(),
            ctx,
        };
        let (mut rows, mut matched, mut total) = (Vec::new(), 0, 0);
        for env in store.envelopes().flatten() {
            if !visible(&who, &env) {
                continue;
            }
            total += 1;
            if !matches(&f, &env) {
                continue;
            }
            matched += 1;
            if rows.len() < SHOWN {
                rows.push(Row {
                    link: format!("/portal/admin/queue/message?id={}", escape(&env.id)),
                    arrival: when(env.arrival),
                    sender: match env.sender.as_str() {
                        "" => "<>".into(),
                        s => s.to_string(),
                    },
                    recipients: env
                        .recipients
                        .iter()
                        .filter(|r| r.state.is_active())
                        .map(|r| r.address.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    state: state_of(&env).into(),
                    held: env.held,
                    size: env.size,
                    id: env.id,
                });
            }
        }
        (rows, matched, total)
    })
    .await;
    let Ok((rows, matched, total)) = listed else {
        return error(
            Some(&viewer),
            StatusCode::INTERNAL_SERVER_ERROR,
            "The queue cannot be read now.",
        );
    };
    html(&QueuePage {
        nav: Nav::new(&viewer, "Mail queue"),
        csrf: viewer.csrf.clone(),
        notice: filter.done.clone(),
        filter,
        rows,
        matched,
        total,
        global: viewer.is_global_admin(),
    })
}

pub struct RcptRow {
    pub address: String,
    pub state: String,
    pub attempts: u32,
    pub next: String,
    pub reply: String,
}

#[derive(Template)]
#[template(path = "admin/message.html")]
struct MessagePage {
    nav: Nav,
    csrf: String,
    id: String,
    held: bool,
    facts: Vec<(String, String)>,
    recipients: Vec<RcptRow>,
    text: String,
    cut: bool,
}

#[derive(Deserialize)]
pub struct Which {
    #[serde(default)]
    id: String,
}

/// `GET /portal/admin/queue/message?id=…`.
pub async fn show(Admin(viewer): Admin, Query(which): Query<Which>) -> Response {
    let store = viewer.ctx.store.clone();
    let id = which.id.clone();
    let answer = tokio::task::spawn_blocking(move || execute(&store, &Request::Show { id })).await;
    let (envelope, message) = match answer {
        Ok(Answer::Show { envelope, message }) if visible(&viewer, &envelope) => {
            (envelope, message)
        }
        _ => {
            return error(
                Some(&viewer),
                StatusCode::NOT_FOUND,
                "There is no such message in the queue (or it is not yours to see).",
            )
        }
    };
    let mut facts = vec![
        ("Arrived".to_string(), when(envelope.arrival)),
        (
            "From".into(),
            match envelope.sender.as_str() {
                "" => "<> (a report)".into(),
                s => s.to_string(),
            },
        ),
        ("Size".into(), format!("{} octets", envelope.size)),
        (
            "Client".into(),
            format!("{} ({})", envelope.client.addr, envelope.client.protocol),
        ),
    ];
    if let Some(user) = &envelope.client.auth_user {
        facts.push(("Authenticated as".into(), user.clone()));
    }
    let recipients = envelope
        .recipients
        .iter()
        .map(|r| RcptRow {
            address: r.address.clone(),
            state: r.state.to_string(),
            attempts: r.attempts,
            next: match r.state.is_active() && r.next_attempt > 0 {
                true => when(r.next_attempt),
                false => String::new(),
            },
            reply: r
                .last_reply
                .as_ref()
                .map(|r| format!("{} {} {}", r.code, r.status, r.text))
                .unwrap_or_default(),
        })
        .collect();
    let cut = message.len() > TEXT;
    let mut end = message.len().min(TEXT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    html(&MessagePage {
        nav: Nav::new(&viewer, &format!("Message {}", envelope.id)),
        csrf: viewer.csrf.clone(),
        id: envelope.id.clone(),
        held: envelope.held,
        facts,
        recipients,
        text: message[..end].to_string(),
        cut,
    })
}

#[derive(Deserialize)]
pub struct Act {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    /// `hold`, `release`, `delete`, `flush`; or `flush-domain` (with
    /// `domain`), `flush-all`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    domain: String,
}

/// `POST /portal/admin/queue`: one action.
pub async fn act(
    Admin(viewer): Admin,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<Act>,
) -> Response {
    if !same_secret(&viewer.csrf, &form.csrf) {
        return error(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "This form had expired or came from elsewhere: nothing was done.",
        );
    }
    let id = form.id.trim().to_string();
    let domain = form.domain.trim().trim_end_matches('.').to_lowercase();
    let request = match form.action.as_str() {
        "hold" => Request::Hold { id: id.clone() },
        "release" => Request::Release { id: id.clone() },
        "delete" => Request::Delete { id: id.clone() },
        "flush" => Request::Flush {
            id: Some(id.clone()),
            domain: None,
        },
        "flush-domain" => Request::Flush {
            id: None,
            domain: Some(domain.clone()),
        },
        "flush-all" => Request::Flush {
            id: None,
            domain: None,
        },
        other => {
            return error(
                Some(&viewer),
                StatusCode::BAD_REQUEST,
                format!("{other:?}: not a queue action"),
            )
        }
    };
    // Who may do it: a message they may see, a domain of theirs, or
    // (flush everything) a global administrator.
    let store = viewer.ctx.store.clone();
    let allowed = match &request {
        Request::Flush {
            id: None,
            domain: None,
        } => viewer.is_global_admin(),
        Request::Flush {
            domain: Some(d), ..
        } => viewer.administers(&format!("x@{d}")),
        _ => {
            let (store, id) = (store.clone(), id.clone());
            let env = tokio::task::spawn_blocking(move || store.get(&id))
                .await
                .ok()
                .and_then(|e| e.ok())
                .flatten();
            env.is_some_and(|e| visible(&viewer, &e))
        }
    };
    if !allowed {
        return error(
            Some(&viewer),
            StatusCode::NOT_FOUND,
            "There is no such message in the queue (or it is not yours to change).",
        );
    }
    let answer = tokio::task::spawn_blocking(move || execute(&store, &request)).await;
    let object = match form.action.as_str() {
        "flush-domain" => domain.clone(),
        "flush-all" => "deferred mail".into(),
        _ => id.clone(),
    };
    let (result, done) = match answer {
        Ok(Answer::Count(n)) => ("ok".to_string(), format!("{}: {n} message(s)", form.action)),
        Ok(Answer::Error(e)) => (format!("error: {e}"), e),
        Ok(_) => ("ok".into(), form.action.clone()),
        Err(e) => (format!("error: {e}"), e.to_string()),
    };
    audit::record(
        &viewer.ctx,
        &viewer.name,
        client.0.ip(),
        &format!("queue.{}", form.action),
        &object,
        &result,
    );
    Redirect::to(&format!("/portal/admin/queue?done={}", escape(&done))).into_response()
}
