//! A user's sent faxes: those still in the queue with their live state
//! (queued, dialling, page N of M: refreshed in place by the page's
//! script, or by reloading), the history of sent and failed faxes with
//! search and paging, one fax's page (facts, page pictures, PDF,
//! resend), and the JSON the live status is read from.
//!
//! A user sees the faxes whose envelope sender is their own name; a
//! domain administrator those of their domains; an administrator all.
//! A fax someone may not see is answered as if it did not exist.

use super::page::{error, html, Nav};
use super::scope::{self, when, Period};
use super::session::same_secret;
use super::{audit, Portal, Viewer};
use crate::admin::fax_api::job::{
    Attachment, Attachments, Cover, FaxJob, Recipient, Recipients, Sender,
};
use crate::admin::fax_api::{Api, File, Submitter};
use crate::admin::http::ClientAddr;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use faxmta_fax::live::LiveState;
use faxmta_queue::{Envelope, FaxQuery, FaxRecord, RcptState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// History rows per page.
const PAGE_SIZE: usize = 25;
/// Faxes in the queue shown at most.
const IN_FLIGHT: usize = 200;

/// A fax recipient still in the queue.
pub struct InFlight {
    pub number: String,
    pub sender: String,
    pub state: String,
    pub text: String,
    pub link: String,
    pub live: String,
}

/// A finished fax.
pub struct Row {
    /// The first page's picture.
    pub thumb: String,
    pub finished: String,
    pub number: String,
    pub sender: String,
    pub pages: String,
    pub outcome: String,
    pub reason: String,
    pub link: String,
}

#[derive(Template)]
#[template(path = "faxes.html")]
struct FaxesPage {
    nav: Nav,
    period: Period,
    queued: Option<String>,
    show_sender: bool,
    in_flight: Vec<InFlight>,
    rows: Vec<Row>,
    next: Option<String>,
}

/// `?id=…&rcpt=…`: one fax recipient.
#[derive(Deserialize)]
pub struct Which {
    #[serde(default)]
    id: String,
    #[serde(default)]
    rcpt: String,
}

fn link(id: &str, rcpt: &str) -> String {
    format!(
        "/portal/fax?id={}&rcpt={}",
        scope::escape(id),
        scope::escape(rcpt)
    )
}

/// The state of recipient `i` of `env` in words and as a class.
fn queued_state(portal: &Portal, env: &Envelope, i: usize) -> (String, String, bool) {
    let r = &env.recipients[i];
    if let Some(p) = portal.live.get(&format!("{}/{i}", env.id)) {
        let class = match p.state {
            LiveState::Sent => "sent",
            LiveState::Failed => "failed",
            LiveState::Deferred => "deferred",
            LiveState::Queued | LiveState::Rendering | LiveState::WaitingForLine => "queued",
            LiveState::Dialling | LiveState::Ringing | LiveState::Answered => "dialling",
            LiveState::Sending | LiveState::Receiving => "sending",
        };
        let done = p.state.is_end() && !r.state.is_active();
        return (class.into(), p.describe(), done);
    }
    let fax = r.fax.clone().unwrap_or_default();
    let why = match (fax.last.as_str(), fax.reason.as_str()) {
        ("", _) => r
            .last_reply
            .as_ref()
            .map(|r| r.text.clone())
            .unwrap_or_default(),
        (last, "") => last.to_string(),
        (last, why) => format!("{last}: {why}"),
    };
    match r.state {
        RcptState::Pending | RcptState::Deferred if env.held => {
            ("held".into(), "held in the queue".into(), false)
        }
        RcptState::Pending => ("queued".into(), "queued".into(), false),
        RcptState::Deferred => (
            "deferred".into(),
            format!("waiting to try again: {why}"),
            false,
        ),
        RcptState::Delivered => ("sent".into(), "sent".into(), true),
        RcptState::Failed => ("failed".into(), format!("failed: {why}"), true),
    }
}

/// The fax recipients of the queue the viewer may see.
fn in_flight(portal: &Portal, viewer: &Viewer) -> Vec<InFlight> {
    let mut out = Vec::new();
    for env in viewer.ctx.store.envelopes().flatten() {
        if !viewer.may_see(&env.sender) {
            continue;
        }
        for (i, r) in env.recipients.iter().enumerate() {
            let Some(number) = r
                .fax
                .as_ref()
                .map(|f| f.number.clone())
                .filter(|n| !n.is_empty())
                .or_else(|| viewer.ctx.router.fax_number(&r.address))
            else {
                continue;
            };
            if !r.state.is_active() {
                continue;
            }
            let (state, text, _) = queued_state(portal, &env, i);
            out.push(InFlight {
                number,
                sender: env.sender.clone(),
                state,
                text,
                link: link(&env.id, &r.address),
                live: format!(
                    "/portal/fax/live?id={}&rcpt={}",
                    scope::escape(&env.id),
                    scope::escape(&r.address)
                ),
            });
            if out.len() >= IN_FLIGHT {
                return out;
            }
        }
    }
    out
}

fn pages(record: &FaxRecord) -> String {
    let p = &record.progress;
    match p.pages_total {
        0 => p.pages_sent.to_string(),
        total => format!("{} of {total}", p.pages_sent),
    }
}

fn reason(record: &FaxRecord) -> String {
    let p = &record.progress;
    match (p.last.as_str(), p.reason.as_str()) {
        _ if record.outcome == "sent" => String::new(),
        ("", _) => record
            .reply
            .as_ref()
            .map(|r| r.text.clone())
            .unwrap_or_default(),
        (last, "") => last.to_string(),
        (last, why) => format!("{last}: {why}"),
    }
}

/// How a finished fax ended, in words: `sent 3 of 3 pages to +1555…`,
/// `failed: the line was busy`.
fn outcome_text(record: &FaxRecord) -> String {
    match reason(record) {
        w if w.is_empty() => format!(
            "{} {} pages to {}",
            record.outcome,
            pages(record),
            record.progress.number
        ),
        w => format!("{}: {w}", record.outcome),
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(flatten)]
    period: Period,
    #[serde(default)]
    after: String,
    #[serde(default)]
    queued: String,
}

/// `GET /portal/faxes`.
pub async fn list(
    State(portal): State<Arc<Portal>>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let (senders, domains) = scope::whose(&viewer);
    let query = FaxQuery {
        senders,
        domains,
        text: Some(q.period.q.trim().to_string()).filter(|t| !t.is_empty()),
        since: q.period.since(),
        until: q.period.until(),
        limit: PAGE_SIZE,
        after: q.after.parse().ok(),
    };
    let found = scope::read(&viewer, "The fax history", move |store| {
        store.fax_history_query(&query)
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
                "/portal/fax/page.png?id={}&rcpt={}&n=1",
                scope::escape(&r.id),
                scope::escape(&r.recipient)
            ),
            finished: when(r.finished),
            number: r.progress.number.clone(),
            sender: r.sender.clone(),
            pages: pages(r),
            outcome: r.outcome.clone(),
            reason: reason(r),
            link: link(&r.id, &r.recipient),
        })
        .collect();
    let next = page
        .next
        .map(|c| format!("/portal/faxes?{}after={c}", q.period.query()));
    let page = FaxesPage {
        nav: Nav::new(&viewer, "Sent faxes"),
        in_flight: in_flight(&portal, &viewer),
        show_sender: viewer.is_admin(),
        queued: Some(q.queued).filter(|q| !q.is_empty()),
        rows,
        next,
        period: q.period,
    };
    html(&page)
}

#[derive(Template)]
#[template(path = "fax.html")]
struct FaxPage {
    nav: Nav,
    csrf: String,
    id: String,
    rcpt: String,
    number: String,
    sender: String,
    state: String,
    text: String,
    /// The live status URL while the fax is in the queue.
    live: Option<String>,
    facts: Vec<(String, String)>,
    /// Picture URLs of the pages, when the document is kept.
    pictures: Vec<String>,
    pdf: Option<String>,
}

/// A fax recipient found: in the queue (the envelope and the
/// recipient's index), and/or finished (its record).
type Found = (Option<(Envelope, usize)>, Option<FaxRecord>);

/// The fax `id`/`rcpt` if the viewer may see it; the error page if not.
fn find(viewer: &Viewer, id: &str, rcpt: &str) -> Result<Found, Box<Response>> {
    let store = &viewer.ctx.store;
    let queued = store.get(id).ok().flatten().and_then(|env| {
        let i = env.recipients.iter().position(|r| r.address == rcpt)?;
        Some((env, i))
    });
    let record = store.fax_record(id, rcpt).ok().flatten();
    let sender = match (&queued, &record) {
        (Some((env, _)), _) => env.sender.clone(),
        (None, Some(r)) => r.sender.clone(),
        (None, None) => String::new(),
    };
    if sender.is_empty() || !viewer.may_see(&sender) {
        return Err(Box::new(error(
            Some(viewer),
            StatusCode::NOT_FOUND,
            "There is no such fax (or it is not yours to see).",
        )));
    }
    Ok((queued, record))
}

/// `GET /portal/fax?id=…&rcpt=…`.
pub async fn show(
    State(portal): State<Arc<Portal>>,
    viewer: Viewer,
    Query(which): Query<Which>,
) -> Response {
    let (queued, record) = match find(&viewer, &which.id, &which.rcpt) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let mut facts = Vec::new();
    let (number, sender, state, text, live) = match (&queued, &record) {
        (Some((env, i)), _) if env.recipients[*i].state.is_active() => {
            let (state, text, _) = queued_state(&portal, env, *i);
            let r = &env.recipients[*i];
            facts.push(("Queued".to_string(), when(env.arrival)));
            if r.attempts > 0 {
                facts.push(("Calls so far".into(), r.attempts.to_string()));
            }
            let number = r
                .fax
                .as_ref()
                .map(|f| f.number.clone())
                .filter(|n| !n.is_empty())
                .or_else(|| viewer.ctx.router.fax_number(&r.address))
                .unwrap_or_default();
            let live = format!(
                "/portal/fax/live?id={}&rcpt={}",
                scope::escape(&env.id),
                scope::escape(&r.address)
            );
            (number, env.sender.clone(), state, text, Some(live))
        }
        (_, Some(r)) => {
            let p = &r.progress;
            facts.push(("Queued".into(), when(r.arrival)));
            facts.push(("Finished".into(), when(r.finished)));
            facts.push(("Pages".into(), pages(r)));
            facts.push(("Calls".into(), p.calls.to_string()));
            if let Some(csid) = p.remote_csid.as_ref().filter(|c| !c.is_empty()) {
                facts.push(("Remote station".into(), csid.clone()));
            }
            if p.line_ms > 0 {
                facts.push((
                    "On the line".into(),
                    format!("{} s", p.line_ms.div_ceil(1000)),
                ));
            }
            if p.bit_rate > 0 {
                facts.push(("Speed".into(), format!("{} bit/s", p.bit_rate)));
            }
            let text = outcome_text(r);
            (
                p.number.clone(),
                r.sender.clone(),
                r.outcome.clone(),
                text,
                None,
            )
        }
        (Some((env, i)), None) => {
            let (state, text, _) = queued_state(&portal, env, *i);
            (String::new(), env.sender.clone(), state, text, None)
        }
        (None, None) => {
            return error(
                Some(&viewer),
                StatusCode::NOT_FOUND,
                "There is no such fax.",
            )
        }
    };
    let key = faxmta_queue::sent_document_key(&which.id, &which.rcpt);
    let (pictures, pdf) =
        super::documents::pictures(&viewer, &key, "sent", &which.id, &which.rcpt).await;
    let page = FaxPage {
        nav: Nav::new(&viewer, &format!("Fax to {number}")),
        csrf: viewer.csrf.clone(),
        id: which.id.clone(),
        rcpt: which.rcpt.clone(),
        number,
        sender,
        state,
        text,
        live,
        facts,
        pictures,
        pdf,
    };
    html(&page)
}

/// The live status JSON read by the page's script.
#[derive(Serialize)]
pub struct LiveJson {
    state: String,
    text: String,
    done: bool,
}

/// `GET /portal/fax/live?id=…&rcpt=…`.
pub async fn live(
    State(portal): State<Arc<Portal>>,
    viewer: Viewer,
    Query(which): Query<Which>,
) -> Response {
    let (queued, record) = match find(&viewer, &which.id, &which.rcpt) {
        Ok(f) => f,
        Err(_) => return (StatusCode::NOT_FOUND, "no such fax\n").into_response(),
    };
    let answer = match (&queued, &record) {
        (Some((env, i)), _) if env.recipients[*i].state.is_active() => {
            let (state, text, done) = queued_state(&portal, env, *i);
            LiveJson { state, text, done }
        }
        (_, Some(r)) => LiveJson {
            state: r.outcome.clone(),
            text: outcome_text(r),
            done: true,
        },
        (Some((env, i)), None) => {
            let (state, text, done) = queued_state(&portal, env, *i);
            LiveJson { state, text, done }
        }
        (None, None) => return (StatusCode::NOT_FOUND, "no such fax\n").into_response(),
    };
    let body = serde_json::to_string(&answer).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Deserialize)]
pub struct Resend {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    rcpt: String,
}

/// `POST /portal/fax/resend`: the same pages to the same number again,
/// as a new fax from the viewer.
pub async fn resend(
    State(portal): State<Arc<Portal>>,
    viewer: Viewer,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<Resend>,
) -> Response {
    if !same_secret(&viewer.csrf, &form.csrf) {
        return error(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "This form had expired or came from elsewhere: nothing was done.",
        );
    }
    let record = match find(&viewer, &form.id, &form.rcpt) {
        Ok((_, Some(r))) => r,
        Ok(_) => {
            return error(
                Some(&viewer),
                StatusCode::CONFLICT,
                "This fax is still in the queue: it can be sent again once it has finished.",
            )
        }
        Err(r) => return *r,
    };
    let key = record.document_key();
    let store = viewer.ctx.store.clone();
    let document = tokio::task::spawn_blocking(move || store.document(&key))
        .await
        .ok()
        .and_then(|d| d.ok())
        .flatten();
    let Some(document) = document else {
        return error(
            Some(&viewer),
            StatusCode::GONE,
            "The pages of this fax are no longer kept ([fax] documents_days): send it again from the documents.",
        );
    };
    let name = format!("fax-{}.tif", record.id);
    let job = FaxJob {
        sender: Some(Sender {
            email: viewer.name.clone(),
            name: String::new(),
        }),
        recipients: Recipients {
            list: vec![Recipient {
                number: record.progress.number.clone(),
                ..Default::default()
            }],
        },
        cover: Cover {
            subject: format!(
                "Sent again: fax {} to {}",
                record.id, record.progress.number
            ),
            note: String::new(),
            // The pages are the ones sent, cover page included.
            page: "no".into(),
        },
        attachments: Attachments {
            list: vec![Attachment { name: name.clone() }],
        },
        options: Default::default(),
    };
    let files = [File {
        name,
        media_type: "image/tiff".into(),
        data: document.into(),
    }];
    let api = Api {
        config: viewer.ctx.config.clone(),
        router: viewer.ctx.router.clone(),
        store: viewer.ctx.store.clone(),
        live: portal.live.clone(),
    };
    let by = Submitter {
        name: &viewer.name,
        protocol: "portal",
    };
    match api.submit(&job, &files, &by).await {
        Ok(submitted) => {
            audit::record(
                &viewer.ctx,
                &viewer.name,
                client.0.ip(),
                "fax.resend",
                &format!(
                    "{}/{} as {}",
                    record.id, record.recipient, submitted.broadcast_id
                ),
                "ok",
            );
            Redirect::to(&format!(
                "/portal/faxes?queued={}",
                scope::escape(&submitted.broadcast_id)
            ))
            .into_response()
        }
        Err(e) => error(Some(&viewer), StatusCode::UNPROCESSABLE_ENTITY, e.msg),
    }
}
