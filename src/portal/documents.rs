//! The pages of a sent or received fax as the portal shows them: a
//! picture per page (PNG, made from the TIFF-F document kept in the
//! store) and the whole fax as a PDF download. Each request checks that
//! the viewer may see that fax, like its page does.

use super::page::error;
use super::scope::escape;
use super::Viewer;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use faxmta_queue::{received_document_key, sent_document_key};
use serde::Deserialize;

/// Pictures on a fax's page at most.
const PICTURES: u32 = 50;
/// A picture's width in pixels.
const WIDTH: u32 = 300;

/// The document under `key` (on a blocking thread).
async fn document(viewer: &Viewer, key: String) -> Option<Vec<u8>> {
    let store = viewer.ctx.store.clone();
    tokio::task::spawn_blocking(move || store.document(&key))
        .await
        .ok()
        .and_then(|d| d.ok())
        .flatten()
}

/// The picture URLs of the pages of the document `key` and its PDF's
/// URL, if the document is kept. `kind` is `sent` (with `id` and `rcpt`)
/// or `received` (`id` is the record's key).
pub async fn pictures(
    viewer: &Viewer,
    key: &str,
    kind: &str,
    id: &str,
    rcpt: &str,
) -> (Vec<String>, Option<String>) {
    let Some(doc) = document(viewer, key.to_string()).await else {
        return (Vec::new(), None);
    };
    let count = faxmta_fax::tiff::TiffReader::open(&doc, &Default::default())
        .map(|r| r.page_count())
        .unwrap_or(0);
    let which = match kind {
        "sent" => format!("id={}&rcpt={}", escape(id), escape(rcpt)),
        _ => format!("key={}", escape(id)),
    };
    let base = match kind {
        "sent" => "/portal/fax",
        _ => "/portal/received",
    };
    let pictures = (1..=count.min(PICTURES))
        .map(|n| format!("{base}/page.png?{which}&n={n}"))
        .collect();
    (pictures, Some(format!("{base}/fax.pdf?{which}")))
}

#[derive(Deserialize)]
pub struct PageOf {
    #[serde(default)]
    id: String,
    #[serde(default)]
    rcpt: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    n: u32,
}

/// The document key of the fax asked for, if the viewer may see it.
async fn allowed(viewer: &Viewer, sent: bool, q: &PageOf) -> Result<String, Response> {
    let not_found = || {
        error(
            Some(viewer),
            StatusCode::NOT_FOUND,
            "There is no such fax (or it is not yours to see).",
        )
    };
    let store = viewer.ctx.store.clone();
    if sent {
        let (id, rcpt) = (q.id.clone(), q.rcpt.clone());
        let record = tokio::task::spawn_blocking(move || store.fax_record(&id, &rcpt))
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten();
        match record {
            Some(r) if viewer.may_see(&r.sender) => Ok(sent_document_key(&q.id, &q.rcpt)),
            _ => Err(not_found()),
        }
    } else {
        let key = q.key.clone();
        let record = tokio::task::spawn_blocking(move || store.received_record(&key))
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten();
        match record {
            Some(r) if r.recipients.iter().any(|a| viewer.may_see(a)) => {
                Ok(received_document_key(&q.key))
            }
            _ => Err(not_found()),
        }
    }
}

async fn png(viewer: Viewer, sent: bool, q: PageOf) -> Response {
    let key = match allowed(&viewer, sent, &q).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Some(doc) = document(&viewer, key).await else {
        return (StatusCode::NOT_FOUND, "the pages are no longer kept\n").into_response();
    };
    let index = q.n.saturating_sub(1);
    let made = tokio::task::spawn_blocking(move || {
        faxmta_fax::thumbnail::tiff_page_png(&doc, index, WIDTH)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match made {
        Ok((png, _)) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            png,
        )
            .into_response(),
        Err(e) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    }
}

async fn pdf(viewer: Viewer, sent: bool, q: PageOf) -> Response {
    let key = match allowed(&viewer, sent, &q).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Some(doc) = document(&viewer, key).await else {
        return error(
            Some(&viewer),
            StatusCode::NOT_FOUND,
            "The pages of this fax are no longer kept.",
        );
    };
    let made = tokio::task::spawn_blocking(move || {
        let pages =
            faxmta_fax::tiff::decode_tiff(&doc, &Default::default()).map_err(|e| e.to_string())?;
        faxmta_fax::pdf::pages_to_pdf(&pages).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let name: String = match sent {
        true => format!("fax-{}.pdf", q.id),
        false => format!("received-{}.pdf", q.key),
    }
    .chars()
    .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
    .collect();
    match made {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => error(
            Some(&viewer),
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("The PDF cannot be made: {e}"),
        ),
    }
}

/// `GET /portal/fax/page.png?id=…&rcpt=…&n=N`.
pub async fn sent_png(viewer: Viewer, Query(q): Query<PageOf>) -> Response {
    png(viewer, true, q).await
}

/// `GET /portal/fax/fax.pdf?id=…&rcpt=…`.
pub async fn sent_pdf(viewer: Viewer, Query(q): Query<PageOf>) -> Response {
    pdf(viewer, true, q).await
}

/// `GET /portal/received/page.png?key=…&n=N`.
pub async fn received_png(viewer: Viewer, Query(q): Query<PageOf>) -> Response {
    png(viewer, false, q).await
}

/// `GET /portal/received/fax.pdf?key=…`.
pub async fn received_pdf(viewer: Viewer, Query(q): Query<PageOf>) -> Response {
    pdf(viewer, false, q).await
}
