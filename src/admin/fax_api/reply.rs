//! The answers of the HTTP fax API, in JSON or XML as the client's
//! `Accept` header asks, and the table of error codes (documented in
//! docs/configuration.md, "HTTP fax API", and docs/openapi.yaml).

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quick_xml::escape::escape;
use serde::Serialize;

/// The reply format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// JSON unless `Accept` names an XML type before (or without) JSON.
    pub fn from_headers(headers: &HeaderMap) -> Format {
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase();
        let pos = |needle: &str| accept.find(needle);
        let xml = [pos("application/xml"), pos("text/xml")]
            .into_iter()
            .flatten()
            .min();
        match (xml, pos("application/json")) {
            (Some(x), Some(j)) if j < x => Format::Json,
            (Some(_), _) => Format::Xml,
            _ => Format::Json,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml; charset=utf-8",
        }
    }
}

/// What went wrong: the errorCode of the reply and its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidMultipart,
    InvalidXml,
    NoSender,
    NoRecipients,
    NoDocuments,
    MissingAttachment,
    UnlistedAttachment,
    BadNumber,
    BadToken,
    SenderRefused,
    NotFound,
    TooLarge,
    UnsupportedMediaType,
    FaxNotConfigured,
    QueueUnavailable,
}

impl Code {
    /// Every code (the documentation must name each).
    #[cfg(test)]
    pub const ALL: [Code; 15] = [
        Code::InvalidMultipart,
        Code::InvalidXml,
        Code::NoSender,
        Code::NoRecipients,
        Code::NoDocuments,
        Code::MissingAttachment,
        Code::UnlistedAttachment,
        Code::BadNumber,
        Code::BadToken,
        Code::SenderRefused,
        Code::NotFound,
        Code::TooLarge,
        Code::UnsupportedMediaType,
        Code::FaxNotConfigured,
        Code::QueueUnavailable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Code::InvalidMultipart => "INVALID_MULTIPART",
            Code::InvalidXml => "INVALID_XML",
            Code::NoSender => "NO_SENDER",
            Code::NoRecipients => "NO_RECIPIENTS",
            Code::NoDocuments => "NO_DOCUMENTS",
            Code::MissingAttachment => "MISSING_ATTACHMENT",
            Code::UnlistedAttachment => "UNLISTED_ATTACHMENT",
            Code::BadNumber => "BAD_NUMBER",
            Code::BadToken => "BAD_TOKEN",
            Code::SenderRefused => "SENDER_REFUSED",
            Code::NotFound => "NOT_FOUND",
            Code::TooLarge => "TOO_LARGE",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::FaxNotConfigured => "FAX_NOT_CONFIGURED",
            Code::QueueUnavailable => "QUEUE_UNAVAILABLE",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidMultipart
            | Code::InvalidXml
            | Code::NoSender
            | Code::NoRecipients
            | Code::NoDocuments
            | Code::MissingAttachment
            | Code::UnlistedAttachment
            | Code::BadNumber => StatusCode::BAD_REQUEST,
            Code::BadToken => StatusCode::UNAUTHORIZED,
            Code::SenderRefused => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::FaxNotConfigured | Code::QueueUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A failed request: its code and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub msg: String,
}

impl ApiError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        ApiError {
            code,
            msg: msg.into(),
        }
    }
}

/// One recipient of an accepted submission.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub number: String,
    pub transaction_id: String,
}

/// The answer to an accepted `POST /fax/send`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Submitted {
    pub broadcast_id: String,
    pub transactions: Vec<Transaction>,
}

/// One fax in a status answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaxState {
    pub transaction_id: String,
    pub number: String,
    pub sender: String,
    /// queued, deferred, held, sent, failed or unknown.
    pub state: String,
    pub pages_sent: u32,
    pub pages_total: u32,
    pub calls: u32,
    pub reason: String,
}

/// The answer to `GET /fax/status/ID`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast_id: Option<String>,
    pub faxes: Vec<FaxState>,
}

fn respond(format: Format, status: StatusCode, json: String, xml: String) -> Response {
    let body = match format {
        Format::Json => json,
        Format::Xml => format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{xml}\n"),
    };
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"errorMsg\":\"{e}\"}}"))
}

pub fn error(format: Format, e: &ApiError) -> Response {
    let json = json(&serde_json::json!({"errorCode": e.code.name(), "errorMsg": e.msg}));
    let xml = format!(
        "<Error><errorCode>{}</errorCode><errorMsg>{}</errorMsg></Error>",
        e.code.name(),
        escape(e.msg.as_str())
    );
    respond(format, e.code.status(), json, xml)
}

pub fn submitted(format: Format, s: &Submitted) -> Response {
    let mut xml = format!(
        "<FaxSendResult><broadcastId>{}</broadcastId>",
        escape(s.broadcast_id.as_str())
    );
    for t in &s.transactions {
        xml.push_str(&format!(
            "<Transaction number=\"{}\" transactionId=\"{}\"/>",
            escape(t.number.as_str()),
            escape(t.transaction_id.as_str())
        ));
    }
    xml.push_str("</FaxSendResult>");
    respond(format, StatusCode::OK, json(s), xml)
}

pub fn status(format: Format, s: &Status) -> Response {
    let mut xml = String::from("<FaxStatus");
    if let Some(b) = &s.broadcast_id {
        xml.push_str(&format!(" broadcastId=\"{}\"", escape(b.as_str())));
    }
    xml.push('>');
    for f in &s.faxes {
        xml.push_str(&format!(
            "<Fax transactionId=\"{}\" number=\"{}\" sender=\"{}\" state=\"{}\" \
             pagesSent=\"{}\" pagesTotal=\"{}\" calls=\"{}\" reason=\"{}\"/>",
            escape(f.transaction_id.as_str()),
            escape(f.number.as_str()),
            escape(f.sender.as_str()),
            escape(f.state.as_str()),
            f.pages_sent,
            f.pages_total,
            f.calls,
            escape(f.reason.as_str())
        ));
    }
    xml.push_str("</FaxStatus>");
    respond(format, StatusCode::OK, json(s), xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_with_its_status() {
        let reference = include_str!("../../../docs/configuration.md");
        let openapi = include_str!("../../../docs/openapi.yaml");
        for code in Code::ALL {
            let row = format!("| {} | `{}` |", code.status().as_u16(), code.name());
            assert!(
                reference.contains(&row),
                "{row} not in docs/configuration.md"
            );
            assert!(
                openapi.contains(&format!("- {}\n", code.name())),
                "{} not in docs/openapi.yaml",
                code.name()
            );
        }
    }

    #[test]
    fn accept_picks_the_format() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, v.parse().unwrap());
            Format::from_headers(&h)
        };
        assert_eq!(Format::from_headers(&HeaderMap::new()), Format::Json);
        assert_eq!(with("application/xml"), Format::Xml);
        assert_eq!(with("text/xml;q=0.9"), Format::Xml);
        assert_eq!(with("application/json, application/xml"), Format::Json);
        assert_eq!(with("application/xml, application/json"), Format::Xml);
        assert_eq!(with("*/*"), Format::Json);
    }
}
