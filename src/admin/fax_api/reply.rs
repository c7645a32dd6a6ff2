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
    QueueFull,
    RequestTimeout,
    TooManyConnections,
}

impl Code {
    /// Every code (the documentation must name each).
    #[cfg(test)]
    pub const ALL: [Code; 18] = [
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
        Code::QueueFull,
        Code::RequestTimeout,
        Code::TooManyConnections,
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
            Code::QueueFull => "QUEUE_FULL",
            Code::RequestTimeout => "REQUEST_TIMEOUT",
            Code::TooManyConnections => "TOO_MANY_CONNECTIONS",
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
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::QueueFull => StatusCode::INSUFFICIENT_STORAGE,
            Code::FaxNotConfigured | Code::QueueUnavailable | Code::TooManyConnections => {
                StatusCode::SERVICE_UNAVAILABLE
            }
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

/// The answer to an accepted `POST /restservice/sendfax` (`/fax/send`).
#[derive(Debug, Clone)]
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
    /// What the fax is doing right now, while an attempt is under way
    /// (or has just ended): from the live board; absent otherwise.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveFields>,
}

/// The live state of a fax in flight, added to its [`FaxState`] (JSON
/// fields and XML attributes `liveState`, `livePage`, `liveSince`,
/// `liveText`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveFields {
    /// rendering, waiting_for_line, dialling, ringing, answered, sending,
    /// sent, failed or deferred.
    pub live_state: String,
    /// While sending: the page on the line; after the end: the pages
    /// confirmed.
    pub live_page: u32,
    /// Since when (Unix seconds) in this state.
    pub live_since: u64,
    /// In words: `sending page 2 of 3 to +4930…`.
    pub live_text: String,
}

/// The answer to `GET /restservice/status/ID` (`/fax/status/ID`).
#[derive(Debug, Clone)]
pub struct Status {
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

fn json(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!("{{\"success\":\"false\",\"errorInfo\":{{\"errorMsg\":\"{e}\"}}}}")
    })
}

/// The XML of an element with text.
fn element(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", escape(text))
}

/// `<transactionIds><transactionId>…</transactionId>…</transactionIds>`.
fn transaction_ids_xml<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let mut xml = String::from("<transactionIds>");
    for id in ids {
        xml.push_str(&element("transactionId", id));
    }
    xml.push_str("</transactionIds>");
    xml
}

/// A failure, in XMedius' shape: `{"success":"false","errorInfo":
/// {"errorMsg":…,"errorCode":…}}`; in XML `<response><success>false
/// </success><errorInfo><errorMsg>…</errorMsg><errorCode>…</errorCode>
/// </errorInfo></response>`.
pub fn error(format: Format, e: &ApiError) -> Response {
    respond(format, e.code.status(), error_json(e), error_xml(e))
}

/// The JSON body of a failure.
pub fn error_json(e: &ApiError) -> String {
    json(&serde_json::json!({
        "success": "false",
        "errorInfo": {"errorMsg": e.msg, "errorCode": e.code.name()},
    }))
}

/// The XML body of a failure (without the XML declaration).
fn error_xml(e: &ApiError) -> String {
    format!(
        "<response><success>false</success><errorInfo>{}{}</errorInfo></response>",
        element("errorMsg", &e.msg),
        element("errorCode", e.code.name())
    )
}

/// An accepted submission: `{"success":"true","successInfo":
/// {"broadcastId":…,"transactionIds":{"transactionId":[…]}}}` (XMedius'
/// shape), with our `transactions` (each number and its id) beside.
pub fn submitted(format: Format, s: &Submitted) -> Response {
    let ids: Vec<&str> = s
        .transactions
        .iter()
        .map(|t| t.transaction_id.as_str())
        .collect();
    let json = json(&serde_json::json!({
        "success": "true",
        "successInfo": {
            "broadcastId": s.broadcast_id,
            "transactionIds": {"transactionId": ids},
            "transactions": s.transactions,
        },
    }));
    let mut xml = String::from("<response><success>true</success><successInfo>");
    xml.push_str(&element("broadcastId", &s.broadcast_id));
    xml.push_str(&transaction_ids_xml(ids.iter().copied()));
    xml.push_str("<transactions>");
    for t in &s.transactions {
        xml.push_str(&format!(
            "<transaction number=\"{}\" transactionId=\"{}\"/>",
            escape(t.number.as_str()),
            escape(t.transaction_id.as_str())
        ));
    }
    xml.push_str("</transactions></successInfo></response>");
    respond(format, StatusCode::OK, json, xml)
}

/// The state of faxes, in the same envelope: `successInfo` holds the
/// `broadcastId` (when asked for a broadcast), the `transactionIds` and
/// one entry per fax in `faxes`.
pub fn status(format: Format, s: &Status) -> Response {
    let ids: Vec<&str> = s.faxes.iter().map(|f| f.transaction_id.as_str()).collect();
    let mut info = serde_json::json!({
        "transactionIds": {"transactionId": ids},
        "faxes": s.faxes,
    });
    if let Some(b) = &s.broadcast_id {
        info["broadcastId"] = serde_json::Value::from(b.as_str());
    }
    let json = json(&serde_json::json!({"success": "true", "successInfo": info}));
    let mut xml = String::from("<response><success>true</success><successInfo>");
    if let Some(b) = &s.broadcast_id {
        xml.push_str(&element("broadcastId", b));
    }
    xml.push_str(&transaction_ids_xml(ids.iter().copied()));
    xml.push_str("<faxes>");
    for f in &s.faxes {
        xml.push_str(&format!(
            "<fax transactionId=\"{}\" number=\"{}\" sender=\"{}\" state=\"{}\" \
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
        if let Some(live) = &f.live {
            // Inside the element, before its `/>`.
            xml.truncate(xml.len() - 2);
            xml.push_str(&format!(
                " liveState=\"{}\" livePage=\"{}\" liveSince=\"{}\" liveText=\"{}\"/>",
                escape(live.live_state.as_str()),
                live.live_page,
                live.live_since,
                escape(live.live_text.as_str())
            ));
        }
    }
    xml.push_str("</faxes></successInfo></response>");
    respond(format, StatusCode::OK, json, xml)
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
