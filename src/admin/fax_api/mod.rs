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
mod message;
pub mod reply;
mod status;
mod upload;

use crate::admin::tokens::{self, Token};
use crate::config::{Config, DomainKind};
use crate::policy::fax::{may_fax_address, Asker};
use crate::router::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use faxmta_queue::{BroadcastEntry, NewMessage, Store};
use job::FaxJob;
pub use message::build_message;
use reply::{ApiError, Code, Format, Submitted, Transaction};
use std::sync::Arc;
pub use upload::File;
use upload::{match_attachments, read_parts, too_large};

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
