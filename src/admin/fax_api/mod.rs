//! The HTTP fax API on the admin listener, in the shape of XMedius
//! Cloud's web service: `POST /restservice/sendfax` (also `/fax/send`; a
//! multipart/form-data request: an XML control file in the `metadata`
//! part, the documents in `attachments` parts), the status call `GET
//! /restservice/status/ID` (also `/fax/status/ID`), and XMedius' service
//! discovery `GET /services/ACCOUNT/fax/restservice/url`.
//!
//! Every request carries a token in the `XM-Token-Authorization` header
//! (`faxmta token add`). A request becomes one message in the queue with
//! a recipient per number (`NUMBER@` the first fax domain, each checked
//! with `crate::policy::fax` like `faxmta fax send`): the documents
//! are stored once, and the message is queued in one durable write or
//! not at all. Recipient N of message Q has the transaction id `Q-N`; the
//! broadcast id `BQ` names them together. Replies are JSON, or XML when
//! the `Accept` header asks for it, in XMedius' envelope (`success`, and
//! `successInfo` or `errorInfo` with an `errorCode` from [`reply::Code`]);
//! see docs/configuration.md, "HTTP fax API", and docs/openapi.yaml.

pub mod job;
pub mod reply;
mod status;

use crate::admin::tokens::{self, Token};
use crate::config::{Config, DomainKind};
use crate::policy::fax::{may_fax_address, Asker};
use crate::router::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use faxmta_fax::media::media_type;
use faxmta_queue::{BroadcastEntry, NewMessage, Store};
use job::FaxJob;
use reply::{ApiError, Code, Format, Submitted, Transaction};
use std::sync::Arc;

/// The header that carries the token.
pub const TOKEN_HEADER: &str = "XM-Token-Authorization";

/// What the handlers need.
pub struct Api {
    pub config: Arc<Config>,
    pub router: Arc<Router>,
    pub store: Store,
    /// What each fax in flight is doing now (the status view adds it).
    pub live: faxmta_fax::live::LiveBoard,
}

/// The routes, with the request size limit of `[admin] max_request`.
pub fn routes(api: Arc<Api>) -> axum::Router {
    let limit = usize::try_from(api.config.admin.max_request.0).unwrap_or(usize::MAX);
    axum::Router::new()
        .route("/restservice/sendfax", post(send))
        .route("/restservice/status/{id}", get(status))
        .route("/services/{account}/fax/restservice/url", get(service_url))
        .route("/fax/send", post(send))
        .route("/fax/status/{id}", get(status))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(api)
}

/// Any other request: `404 NOT_FOUND` in the API's envelope.
pub async fn unknown(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let e = ApiError::new(
        Code::NotFound,
        format!("{method} {}: no such request here", uri.path()),
    );
    reply::error(Format::from_headers(&headers), &e)
}

/// A document of the request.
pub struct File {
    pub name: String,
    pub media_type: String,
    pub data: axum::body::Bytes,
}

/// Who queues a fax: for the log and the queue's client record.
pub struct Submitter<'a> {
    /// The API token's name, or the portal user.
    pub name: &'a str,
    /// `HTTP` (the API) or `portal`.
    pub protocol: &'a str,
}

impl Api {
    /// The token of the request, or `BAD_TOKEN`.
    fn token(&self, headers: &HeaderMap) -> Result<Token, ApiError> {
        let presented = headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("");
        if presented.is_empty() {
            return Err(ApiError::new(
                Code::BadToken,
                format!("no token: send one in the {TOKEN_HEADER} header"),
            ));
        }
        let checked = match self.config.accounts.backend {
            crate::config::AccountsBackend::Files => {
                tokens::check(&self.config.admin.tokens_file, presented)
            }
            crate::config::AccountsBackend::Database => {
                tokens::check_database(self.store.accounts(), presented)
            }
        };
        match checked {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(ApiError::new(Code::BadToken, "the token is not valid")),
            Err(e) => {
                tracing::warn!("HTTP fax API: {e}");
                Err(ApiError::new(
                    Code::BadToken,
                    "the tokens cannot be checked",
                ))
            }
        }
    }

    async fn send(
        &self,
        headers: &HeaderMap,
        multipart: Result<Multipart, MultipartRejection>,
    ) -> Result<Submitted, ApiError> {
        let token = self.token(headers)?;
        let limit = self.config.admin.max_request.0;
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if length.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let ctype = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ctype
            .to_ascii_lowercase()
            .trim_start()
            .starts_with("multipart/form-data")
        {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                format!("send multipart/form-data, not {ctype:?}"),
            ));
        }
        let multipart = multipart.map_err(|e| {
            ApiError::new(
                Code::InvalidMultipart,
                format!("bad multipart request: {e}"),
            )
        })?;
        let (metadata, files) = read_parts(multipart, limit).await?;
        let job = FaxJob::parse(&metadata)?;
        let files = match_attachments(&job, files)?;
        if files.is_empty() && job.cover.note.trim().is_empty() {
            return Err(ApiError::new(
                Code::NoDocuments,
                "nothing to send: no attachments and no cover note",
            ));
        }
        let (sender, _) = job.sender();
        if !token.allows(sender) {
            return Err(ApiError::new(
                Code::SenderRefused,
                format!("the token {} may not send as <{sender}>", token.name),
            ));
        }
        let by = Submitter {
            name: &token.name,
            protocol: "HTTP",
        };
        self.submit(&job, &files, &by).await
    }

    /// Queue `job` with its `files` (checked against the control file):
    /// one message, a recipient per number, each authorised for the
    /// sender. The HTTP API and the portal both come here.
    pub async fn submit(
        &self,
        job: &FaxJob,
        files: &[File],
        by: &Submitter<'_>,
    ) -> Result<Submitted, ApiError> {
        let (sender, _) = job.sender();
        let addresses = self.addresses(job)?;
        let notify = job.notify()?;
        // One message for all recipients: the documents are stored once,
        // and it is queued in one durable write, so nothing ever has to
        // be taken back (a message taken back could already be on a
        // line). Each recipient keeps its own transaction id and state.
        let body = build_message(job, &addresses, files)?;
        let mut message = NewMessage::local(sender, &addresses, &self.config.hostname, &body);
        for r in &mut message.recipients {
            r.notify = notify;
        }
        message.client.addr = "http".into();
        message.client.protocol = by.protocol.into();
        message.client.auth_user = Some(by.name.to_string());
        if let Err(e) = crate::server::path::check_message(&message) {
            return Err(ApiError::new(Code::BadNumber, e));
        }
        // The disk reserve ([queue] min_free), as for SMTP: refused
        // before anything is written.
        self.store
            .check_room(self.config.queue.min_free.0, body.len() as u64)
            .map_err(|e| {
                ApiError::new(
                    Code::QueueFull,
                    format!("the queue cannot take the fax now, try again later: {e}"),
                )
            })?;
        let id = self.store.new_id().map_err(unavailable)?;
        let broadcast = Store::broadcast_id(&id);
        let transactions: Vec<Transaction> = job
            .recipients
            .list
            .iter()
            .enumerate()
            .map(|(i, r)| Transaction {
                number: r.number.trim().to_string(),
                transaction_id: format!("{id}-{}", i + 1),
            })
            .collect();
        let entries: Vec<BroadcastEntry> = transactions
            .iter()
            .zip(&addresses)
            .map(|(t, a)| BroadcastEntry {
                transaction: t.transaction_id.clone(),
                recipient: a.clone(),
            })
            .collect();
        // The record first: the enqueue's sync makes it durable with the
        // message; a record without its message is harmless.
        self.store
            .record_broadcast(&broadcast, &entries)
            .map_err(unavailable)?;
        if let Err(e) = self.store.enqueue(id.clone(), message, &body).await {
            let _ = self.store.remove_broadcast(&broadcast);
            return Err(unavailable(e));
        }
        for (t, address) in transactions.iter().zip(&addresses) {
            let via = match by.protocol {
                "HTTP" => format!("HTTP fax API (token {}", by.name),
                other => format!("{other} (user {}", by.name),
            };
            tracing::info!(
                "{id}: from=<{sender}>, to=<{address}>, transaction {}, queued by the \
                 {via}, broadcast {broadcast})",
                t.transaction_id,
            );
        }
        Ok(Submitted {
            broadcast_id: broadcast,
            transactions,
        })
    }

    /// `NUMBER@` the first fax domain for each recipient, each one
    /// authorised for the sender (nothing is queued unless all are).
    pub fn addresses(&self, job: &FaxJob) -> Result<Vec<String>, ApiError> {
        let domain = self
            .config
            .domains
            .iter()
            .find(|d| d.kind == DomainKind::Fax)
            .ok_or_else(|| {
                ApiError::new(
                    Code::FaxNotConfigured,
                    "this server has no fax domain ([[domain]] kind = \"fax\")",
                )
            })?;
        let (sender, _) = job.sender();
        let mut out = Vec::new();
        let mut numbers: Vec<String> = Vec::new();
        for r in &job.recipients.list {
            let number = r.number.trim();
            if number.contains('@') || number.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ApiError::new(
                    Code::BadNumber,
                    format!("{number:?}: give the fax number alone (e.g. +15551234567)"),
                ));
            }
            let address = format!("{number}@{}", domain.name.0);
            if let Err(e) = crate::server::path::check_address(&address, false) {
                return Err(ApiError::new(Code::BadNumber, format!("{number:?}: {e}")));
            }
            if let Err(reply) =
                may_fax_address(&self.router, &Asker::trusted(sender, None), &address)
            {
                let code = match reply.status.as_str() {
                    "5.7.1" => Code::SenderRefused,
                    _ => Code::BadNumber,
                };
                return Err(ApiError::new(code, format!("{number}: {}", reply.text)));
            }
            // One call per number: the same number twice (however it is
            // written) is a mistake of the request.
            let dialled = self
                .router
                .fax_number(&address)
                .unwrap_or_else(|| address.clone());
            if numbers.contains(&dialled) {
                return Err(ApiError::new(
                    Code::BadNumber,
                    format!("{number}: listed twice ({dialled})"),
                ));
            }
            numbers.push(dialled);
            out.push(address);
        }
        Ok(out)
    }
}

fn unavailable(e: faxmta_queue::QueueError) -> ApiError {
    ApiError::new(Code::QueueUnavailable, format!("cannot queue the fax: {e}"))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        Code::TooLarge,
        format!("the request is larger than {limit} octets ([admin] max_request)"),
    )
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(limit);
    }
    ApiError::new(
        Code::InvalidMultipart,
        format!("bad multipart request: {}", e.body_text()),
    )
}

/// The `metadata` part and the `attachments` parts.
async fn read_parts(
    mut multipart: Multipart,
    limit: u64,
) -> Result<(axum::body::Bytes, Vec<File>), ApiError> {
    let bad = |msg: String| ApiError::new(Code::InvalidMultipart, msg);
    let mut metadata = None;
    let mut files: Vec<File> = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "metadata" => {
                if metadata.is_some() {
                    return Err(bad("more than one metadata part".into()));
                }
                metadata = Some(field.bytes().await.map_err(|e| multipart_error(e, limit))?);
            }
            "attachments" | "attachment" => {
                let file_name = field
                    .file_name()
                    .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f).to_string())
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| bad("an attachments part has no filename".into()))?;
                if files.iter().any(|f| f.name == file_name) {
                    return Err(bad(format!("two attachments are named {file_name:?}")));
                }
                let media_type = match field.content_type() {
                    Some(t) if !t.eq_ignore_ascii_case("application/octet-stream") => t.to_string(),
                    _ => media_type(&file_name).to_string(),
                };
                let data = field.bytes().await.map_err(|e| multipart_error(e, limit))?;
                files.push(File {
                    name: file_name,
                    media_type,
                    data,
                });
            }
            other => {
                return Err(bad(format!(
                    "unexpected part {other:?}: send metadata and attachments"
                )))
            }
        }
    }
    let metadata = metadata.ok_or_else(|| bad("no metadata part (the XML control file)".into()))?;
    Ok((metadata, files))
}

/// The files in the order the control file lists them; each listed
/// one must be there, and none that is not listed.
fn match_attachments(job: &FaxJob, mut files: Vec<File>) -> Result<Vec<File>, ApiError> {
    let mut out = Vec::new();
    for a in &job.attachments.list {
        let name = a.name.trim();
        let Some(i) = files.iter().position(|f| f.name == name) else {
            return Err(ApiError::new(
                Code::MissingAttachment,
                format!("the metadata names {name:?} but the request has no such attachment"),
            ));
        };
        out.push(files.remove(i));
    }
    if let Some(extra) = files.first() {
        return Err(ApiError::new(
            Code::UnlistedAttachment,
            format!(
                "the attachment {:?} is not named in <Attachments>",
                extra.name
            ),
        ));
    }
    Ok(out)
}

/// The message of a request: the recipients (their names from the
/// control file) in `To:`, the cover fields in its headers, the note as a
/// text part, the documents as attachments.
pub fn build_message(
    job: &FaxJob,
    addresses: &[String],
    files: &[File],
) -> Result<Vec<u8>, ApiError> {
    use mail_builder::headers::address::Address;
    let (email, name) = job.sender();
    let from = match name.is_empty() {
        true => Address::new_address(None::<String>, email.to_string()),
        false => Address::new_address(Some(name.to_string()), email.to_string()),
    };
    let to: Vec<Address> = job
        .recipients
        .list
        .iter()
        .zip(addresses)
        .map(|(recipient, address)| {
            let display = [recipient.name.trim(), recipient.company.trim()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            match display.is_empty() {
                true => Address::new_address(None::<String>, address.to_string()),
                false => Address::new_address(Some(display), address.to_string()),
            }
        })
        .collect();
    let mut to = to;
    let to = match to.len() {
        1 => to.swap_remove(0),
        _ => Address::new_list(to),
    };
    let subject = match job.cover.subject.trim() {
        "" => files
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        s => s.to_string(),
    };
    let mut builder = mail_builder::MessageBuilder::new()
        .from(from)
        .to(to)
        .subject(subject)
        .header(
            "X-Mailer",
            mail_builder::headers::raw::Raw::new("faxmta HTTP fax API"),
        );
    match job.cover.page.trim().to_ascii_lowercase().as_str() {
        "yes" | "no" => {
            let page = job.cover.page.trim().to_ascii_lowercase();
            builder = builder.header("X-Fax-Cover", mail_builder::headers::raw::Raw::new(page));
        }
        _ => {}
    }
    if !job.cover.note.trim().is_empty() {
        builder = builder.text_body(job.cover.note.clone());
    }
    for f in files {
        builder = builder.attachment(f.media_type.clone(), f.name.clone(), f.data.to_vec());
    }
    builder.write_to_vec().map_err(|e| {
        ApiError::new(
            Code::QueueUnavailable,
            format!("cannot build the message: {e}"),
        )
    })
}

async fn send(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let format = Format::from_headers(&headers);
    match api.send(&headers, multipart).await {
        Ok(s) => reply::submitted(format, &s),
        Err(e) => {
            tracing::info!("HTTP fax API: refused {}: {}", e.code.name(), e.msg);
            reply::error(format, &e)
        }
    }
}

/// XMedius' first step (`GET https://portal.…/services/ACCOUNT/fax/
/// restservice/url`): the body is the URL of the REST service, to which
/// the client appends `sendfax`. Ours is on this listener, whatever the
/// account.
async fn service_url(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let scheme = match api.config.admin.tls {
        true => "https",
        false => "http",
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| api.config.admin.listen.to_string());
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{scheme}://{host}/restservice/"),
    )
        .into_response()
}

async fn status(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let format = Format::from_headers(&headers);
    let token = match api.token(&headers) {
        Ok(t) => t,
        Err(e) => return reply::error(format, &e),
    };
    let (store, router, live) = (api.store.clone(), api.router.clone(), api.live.clone());
    let wanted = id.clone();
    let found =
        tokio::task::spawn_blocking(move || status::lookup(&store, &router, &live, &wanted))
            .await
            .unwrap_or_else(|e| Err(ApiError::new(Code::QueueUnavailable, e.to_string())));
    // A token limited to senders sees only their faxes.
    let found = found.and_then(|mut s| {
        s.faxes
            .retain(|f| f.sender.is_empty() || token.allows(&f.sender));
        match s.faxes.is_empty() {
            true => Err(ApiError::new(
                Code::NotFound,
                format!("{id}: no fax or broadcast with this id"),
            )),
            false => Ok(s),
        }
    });
    match found {
        Ok(s) => reply::status(format, &s),
        Err(e) => reply::error(format, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> File {
        File {
            name: name.into(),
            media_type: media_type(name).into(),
            data: axum::body::Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn the_cover_page_choice_travels_in_the_message() {
        let xml = |page: &str| {
            format!(
                r#"<FaxJob><Sender email="a@b.test"/><Recipients><Recipient number="1"/></Recipients>
                <Cover subject="S" note="N" {page}/></FaxJob>"#
            )
        };
        let message = |page: &str| {
            let job = FaxJob::parse(xml(page).as_bytes()).unwrap();
            String::from_utf8(build_message(&job, &["1@fax.test".into()], &[]).unwrap()).unwrap()
        };
        assert!(message(r#"page="no""#).contains("X-Fax-Cover: no\r\n"));
        assert!(message(r#"page="YES""#).contains("X-Fax-Cover: yes\r\n"));
        assert!(!message("").contains("X-Fax-Cover"));
        assert!(!message(r#"page="maybe""#).contains("X-Fax-Cover"));
    }

    #[test]
    fn attachments_must_match_the_metadata() {
        let job = FaxJob::parse(
            br#"<FaxJob><Sender email="a@b"/><Recipients><Recipient number="1"/></Recipients>
            <Attachments><Attachment name="b.pdf"/><Attachment name="a.txt"/></Attachments></FaxJob>"#,
        )
        .unwrap();
        let got = match_attachments(&job, vec![file("a.txt"), file("b.pdf")]).unwrap();
        assert_eq!(got[0].name, "b.pdf");
        assert_eq!(got[1].media_type, "text/plain");
        let e = match_attachments(&job, vec![file("a.txt")]).err().unwrap();
        assert_eq!(e.code, Code::MissingAttachment);
        let e = match_attachments(&job, vec![file("a.txt"), file("b.pdf"), file("c.png")])
            .err()
            .unwrap();
        assert_eq!(e.code, Code::UnlistedAttachment);
    }
}
