//! Sending a fax from the browser: the form (numbers, a cover page with
//! subject and note, documents of any kind the renderer takes), the
//! preview of the pages the line will send, then the fax is queued.
//!
//! The form posts to the preview: the documents are kept in a draft (in
//! memory, the user's own, for 30 minutes) while the user looks at the
//! rendered pages; "Send" queues the draft exactly as the HTTP fax API
//! would queue the same request ([`crate::admin::fax_api::Api::submit`]:
//! the same checks of every number against the dial plan, the rules and
//! the fax user directory; one message with a recipient per number).

use super::page::{error, html, Nav};
use super::session::same_secret;
use super::{audit, Portal, Viewer};
use crate::admin::fax_api::job::{
    Attachment, Attachments, Cover, FaxJob, Recipient, Recipients, Sender,
};
use crate::admin::fax_api::{build_message, Api, File, Submitter};
use crate::admin::http::ClientAddr;
use askama::Template;
use axum::extract::{Form, Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a draft waits for its "Send".
const DRAFT_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Drafts per user at most (the oldest goes).
const DRAFTS_PER_USER: usize = 3;
/// Pages shown in the preview at most.
const PREVIEW_PAGES: u32 = 20;
/// The preview pictures' width in pixels.
const PREVIEW_WIDTH: u32 = 432;

/// A fax previewed and not yet sent.
pub struct Draft {
    owner: String,
    created: Instant,
    job: FaxJob,
    files: Vec<File>,
}

/// The drafts of this process.
#[derive(Default)]
pub struct Drafts(Mutex<HashMap<String, Draft>>);

impl Drafts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Draft>> {
        match self.0.lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn keep(&self, draft: Draft) -> String {
        let id = super::session::token();
        let mut drafts = self.lock();
        drafts.retain(|_, d| d.created.elapsed() < DRAFT_LIFETIME);
        let mut own: Vec<(String, Instant)> = drafts
            .iter()
            .filter(|(_, d)| d.owner == draft.owner)
            .map(|(k, d)| (k.clone(), d.created))
            .collect();
        own.sort_by_key(|(_, t)| *t);
        while own.len() >= DRAFTS_PER_USER {
            let (oldest, _) = own.remove(0);
            drafts.remove(&oldest);
        }
        drafts.insert(id.clone(), draft);
        id
    }

    fn take(&self, id: &str, owner: &str) -> Option<Draft> {
        let mut drafts = self.lock();
        match drafts.get(id) {
            Some(d) if d.owner == owner && d.created.elapsed() < DRAFT_LIFETIME => {
                drafts.remove(id)
            }
            _ => None,
        }
    }
}

#[derive(Template)]
#[template(path = "send.html")]
struct SendPage {
    nav: Nav,
    csrf: String,
    numbers: String,
    subject: String,
    note: String,
    cover: bool,
    message: Option<String>,
}

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewPage {
    nav: Nav,
    csrf: String,
    draft: String,
    numbers: Vec<String>,
    subject: String,
    files: Vec<String>,
    /// `data:image/png;base64,…` of each page shown.
    pages: Vec<String>,
    page_count: u32,
}

#[derive(Deserialize, Default)]
pub struct Prefill {
    #[serde(default)]
    number: String,
}

/// `GET /portal/send`.
pub async fn form(viewer: Viewer, Query(prefill): Query<Prefill>) -> Response {
    let page = SendPage {
        nav: Nav::new(&viewer, "Send a fax"),
        csrf: viewer.csrf.clone(),
        numbers: prefill.number,
        subject: String::new(),
        note: String::new(),
        cover: true,
        message: None,
    };
    html(&page)
}

/// What the form sent.
#[derive(Default)]
struct Filled {
    csrf: String,
    numbers: String,
    subject: String,
    note: String,
    cover: bool,
    files: Vec<File>,
}

async fn read_form(mut multipart: Multipart) -> Result<Filled, String> {
    let mut f = Filled::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| format!("the form did not arrive whole: {}", e.body_text()))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "files" {
            let file_name = field
                .file_name()
                .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f).trim().to_string())
                .unwrap_or_default();
            let given_type = field.content_type().map(str::to_string);
            let data = field
                .bytes()
                .await
                .map_err(|e| format!("a document did not arrive whole: {}", e.body_text()))?;
            // A file input left empty still sends a part, without a name.
            if file_name.is_empty() && data.is_empty() {
                continue;
            }
            let media_type = match given_type {
                Some(t) if !t.eq_ignore_ascii_case("application/octet-stream") => t,
                _ => faxmta_fax::media::media_type(&file_name).to_string(),
            };
            if f.files.iter().any(|x| x.name == file_name) {
                return Err(format!("two documents are named {file_name:?}"));
            }
            f.files.push(File {
                name: file_name,
                media_type,
                data,
            });
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|e| format!("the form did not arrive whole: {}", e.body_text()))?;
        match name.as_str() {
            "csrf" => f.csrf = text,
            "numbers" => f.numbers = text,
            "subject" => f.subject = text,
            "note" => f.note = text,
            "cover" => f.cover = true,
            _ => {}
        }
    }
    Ok(f)
}

/// The numbers of the form: one per line, or separated by commas or
/// semicolons.
fn numbers(text: &str) -> Vec<String> {
    text.split(['\n', ',', ';'])
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The request the form describes, in the HTTP API's terms.
fn job(viewer: &Viewer, f: &Filled) -> FaxJob {
    let name = viewer
        .ctx
        .router
        .fax_policy()
        .directory
        .lookup(&viewer.name)
        .and_then(|s| s.name)
        .unwrap_or_default();
    FaxJob {
        sender: Some(Sender {
            email: viewer.name.clone(),
            name,
        }),
        recipients: Recipients {
            list: numbers(&f.numbers)
                .into_iter()
                .map(|number| Recipient {
                    number,
                    ..Default::default()
                })
                .collect(),
        },
        cover: Cover {
            subject: f.subject.trim().to_string(),
            note: f.note.trim().to_string(),
            page: if f.cover { "yes" } else { "no" }.into(),
        },
        attachments: Attachments {
            list: f
                .files
                .iter()
                .map(|file| Attachment {
                    name: file.name.clone(),
                })
                .collect(),
        },
        options: Default::default(),
    }
}

fn api(portal: &Portal, viewer: &Viewer) -> Api {
    Api {
        config: viewer.ctx.config.clone(),
        router: viewer.ctx.router.clone(),
        store: viewer.ctx.store.clone(),
        live: portal.live.clone(),
    }
}

fn forbidden(viewer: &Viewer) -> Response {
    error(
        Some(viewer),
        StatusCode::FORBIDDEN,
        "This form had expired or came from elsewhere: nothing was done.",
    )
}

/// `POST /portal/send`: check the form, render the pages, show them.
pub async fn preview(
    State(portal): State<Arc<Portal>>,
    viewer: Viewer,
    multipart: Multipart,
) -> Response {
    let filled = match read_form(multipart).await {
        Ok(f) => f,
        Err(e) => return error(Some(&viewer), StatusCode::BAD_REQUEST, e),
    };
    if !same_secret(&viewer.csrf, &filled.csrf) {
        return forbidden(&viewer);
    }
    let again = |message: String| {
        let page = SendPage {
            nav: Nav::new(&viewer, "Send a fax"),
            csrf: viewer.csrf.clone(),
            numbers: filled.numbers.clone(),
            subject: filled.subject.clone(),
            note: filled.note.clone(),
            cover: filled.cover,
            message: Some(message),
        };
        (StatusCode::UNPROCESSABLE_ENTITY, html(&page)).into_response()
    };
    let job = job(&viewer, &filled);
    if job.recipients.list.is_empty() {
        return again("Give at least one fax number.".into());
    }
    if job.recipients.list.len() > crate::admin::fax_api::job::MAX_RECIPIENTS {
        return again(format!(
            "At most {} numbers in one fax.",
            crate::admin::fax_api::job::MAX_RECIPIENTS
        ));
    }
    if filled.files.is_empty() && job.cover.note.is_empty() {
        return again("Nothing to send: attach a document or write a note.".into());
    }
    let api = api(&portal, &viewer);
    let addresses = match api.addresses(&job) {
        Ok(a) => a,
        Err(e) => return again(e.msg),
    };
    let message = match build_message(&job, &addresses, &filled.files) {
        Ok(m) => m,
        Err(e) => return again(e.msg),
    };
    let Some(previewer) = portal.preview.clone() else {
        return again("This server has no fax transport.".into());
    };
    let number = job.recipients.list[0].number.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let tiff = previewer.document(&message, &number)?;
        faxmta_fax::thumbnail::tiff_pngs(&tiff, PREVIEW_WIDTH, PREVIEW_PAGES)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let (pngs, page_count) = match rendered {
        Ok(r) => r,
        Err(e) => return again(format!("The documents cannot be sent as a fax: {e}")),
    };
    let pages = pngs
        .iter()
        .map(|png| {
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(png)
            )
        })
        .collect();
    let page = PreviewPage {
        nav: Nav::new(&viewer, "Check the fax"),
        csrf: viewer.csrf.clone(),
        numbers: job
            .recipients
            .list
            .iter()
            .map(|r| r.number.clone())
            .collect(),
        subject: job.cover.subject.clone(),
        files: filled.files.iter().map(|f| f.name.clone()).collect(),
        pages,
        page_count,
        draft: String::new(),
    };
    let draft = portal.drafts.keep(Draft {
        owner: viewer.name.clone(),
        created: Instant::now(),
        job,
        files: filled.files,
    });
    html(&PreviewPage { draft, ..page })
}

#[derive(Deserialize)]
pub struct Confirm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    draft: String,
}

/// `POST /portal/send/confirm`: queue the previewed fax.
pub async fn confirm(
    State(portal): State<Arc<Portal>>,
    viewer: Viewer,
    Extension(client): Extension<ClientAddr>,
    Form(form): Form<Confirm>,
) -> Response {
    if !same_secret(&viewer.csrf, &form.csrf) {
        return forbidden(&viewer);
    }
    let Some(draft) = portal.drafts.take(&form.draft, &viewer.name) else {
        return error(
            Some(&viewer),
            StatusCode::GONE,
            "This fax was sent already, or its preview is too old: start again.",
        );
    };
    let by = Submitter {
        name: &viewer.name,
        protocol: "portal",
    };
    match api(&portal, &viewer)
        .submit(&draft.job, &draft.files, &by)
        .await
    {
        Ok(submitted) => {
            let object = format!(
                "{} to {}",
                submitted.broadcast_id,
                draft
                    .job
                    .recipients
                    .list
                    .iter()
                    .map(|r| r.number.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            audit::record(
                &viewer.ctx,
                &viewer.name,
                client.0.ip(),
                "fax.send",
                &object,
                "ok",
            );
            Redirect::to(&format!(
                "/portal/faxes?queued={}",
                super::viewer::url_escape(&submitted.broadcast_id)
            ))
            .into_response()
        }
        Err(e) => error(Some(&viewer), StatusCode::UNPROCESSABLE_ENTITY, e.msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_by_line_comma_or_semicolon() {
        assert_eq!(
            numbers(" +15551234567\n5559876543, 030 1234;\n\n"),
            vec!["+15551234567", "5559876543", "030 1234"]
        );
    }
}
