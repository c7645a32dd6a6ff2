//! The XML control file of `POST /fax/send` (the `metadata` part), in
//! the style of XMediusFAX's web service:
//!
//! ```xml
//! <FaxJob>
//!   <Sender email="alice@example.test" name="Alice Example"/>
//!   <Recipients>
//!     <Recipient number="+15551234567" name="Bob" company="Acme"/>
//!   </Recipients>
//!   <Cover subject="Quarterly figures" note="Please call back"/>
//!   <Attachments><Attachment name="report.pdf"/></Attachments>
//!   <Options notify="failure"/>
//! </FaxJob>
//! ```
//!
//! quick-xml expands no external entities and no DTD, so a hostile
//! control file can only be rejected (`INVALID_XML`).

use super::reply::{ApiError, Code};
use faxmta_queue::Notify;
use serde::Deserialize;

/// The root element.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FaxJob {
    #[serde(rename = "Sender")]
    pub sender: Option<Sender>,
    #[serde(rename = "Recipients", default)]
    pub recipients: Recipients,
    #[serde(rename = "Cover", default)]
    pub cover: Cover,
    #[serde(rename = "Attachments", default)]
    pub attachments: Attachments,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sender {
    #[serde(rename = "@email", default)]
    pub email: String,
    #[serde(rename = "@name", default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Recipients {
    #[serde(rename = "Recipient", default)]
    pub list: Vec<Recipient>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Recipient {
    #[serde(rename = "@number", default)]
    pub number: String,
    #[serde(rename = "@name", default)]
    pub name: String,
    #[serde(rename = "@company", default)]
    pub company: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Cover {
    #[serde(rename = "@subject", default)]
    pub subject: String,
    #[serde(rename = "@note", default)]
    pub note: String,
    /// `yes` or `no`: a cover page or none for this fax, whatever the
    /// sender's setting (absent: as configured).
    #[serde(rename = "@page", default)]
    pub page: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Attachments {
    #[serde(rename = "Attachment", default)]
    pub list: Vec<Attachment>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Attachment {
    #[serde(rename = "@name", default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Options {
    /// `failure` (default), `always` or `never`.
    #[serde(rename = "@notify", default)]
    pub notify: String,
}

/// Recipients in one request at most.
pub const MAX_RECIPIENTS: usize = 100;

impl FaxJob {
    /// Parse and check a control file: well-formed, `<FaxJob>` at the
    /// root, a sender, recipients with numbers, known options.
    pub fn parse(xml: &[u8]) -> Result<FaxJob, ApiError> {
        let bad = |msg: String| ApiError::new(Code::InvalidXml, msg);
        let text =
            std::str::from_utf8(xml).map_err(|e| bad(format!("the metadata is not UTF-8: {e}")))?;
        let root = root_element(text).map_err(bad)?;
        if root != "FaxJob" {
            return Err(bad(format!(
                "the root element is <{root}>; expected <FaxJob>"
            )));
        }
        let job: FaxJob = quick_xml::de::from_str(text)
            .map_err(|e| bad(format!("the metadata is not a valid <FaxJob>: {e}")))?;
        job.notify()?;
        let sender = job.sender.as_ref().map(|s| s.email.trim()).unwrap_or("");
        if sender.is_empty() || !sender.contains('@') {
            return Err(ApiError::new(
                Code::NoSender,
                "<Sender email=\"…\"/> is missing or not an address",
            ));
        }
        // The sender goes into the envelope, and from there into MAIL
        // FROM at the next hop: it must be an address by RFC 5321's
        // grammar (a CR LF in it would be a command of its own).
        if let Err(e) = crate::server::path::check_address(sender, false) {
            return Err(ApiError::new(
                Code::NoSender,
                format!("<Sender email=\"…\"/> is not an address: {e}"),
            ));
        }
        if job.recipients.list.is_empty() {
            return Err(ApiError::new(
                Code::NoRecipients,
                "<Recipients> names no <Recipient number=\"…\"/>",
            ));
        }
        if job.recipients.list.len() > MAX_RECIPIENTS {
            return Err(ApiError::new(
                Code::NoRecipients,
                format!("more than {MAX_RECIPIENTS} recipients in one request"),
            ));
        }
        if let Some(r) = job
            .recipients
            .list
            .iter()
            .find(|r| r.number.trim().is_empty())
        {
            return Err(ApiError::new(
                Code::BadNumber,
                format!("<Recipient name=\"{}\"> has no number", r.name),
            ));
        }
        if let Some(a) = job
            .attachments
            .list
            .iter()
            .find(|a| a.name.trim().is_empty())
        {
            return Err(bad(format!("an <Attachment> has no name ({a:?})")));
        }
        Ok(job)
    }

    pub fn sender(&self) -> (&str, &str) {
        self.sender
            .as_ref()
            .map(|s| (s.email.trim(), s.name.trim()))
            .unwrap_or(("", ""))
    }

    /// The DSN NOTIFY of every recipient.
    pub fn notify(&self) -> Result<Option<Notify>, ApiError> {
        match self.options.notify.trim().to_ascii_lowercase().as_str() {
            "" | "failure" => Ok(None),
            "always" => Ok(Some(Notify {
                success: true,
                failure: true,
                delay: true,
                never: false,
            })),
            "never" => Ok(Some(Notify {
                never: true,
                ..Notify::default()
            })),
            other => Err(ApiError::new(
                Code::InvalidXml,
                format!("<Options notify=\"{other}\">: expected failure, always or never"),
            )),
        }
    }
}

/// The name of the first element, or why the document is not XML.
fn root_element(text: &str) -> Result<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                return Ok(String::from_utf8_lossy(e.name().as_ref()).into_owned())
            }
            Ok(Event::Eof) => return Err("the metadata holds no XML element".into()),
            Ok(Event::DocType(_)) => return Err("a DOCTYPE is not allowed in the metadata".into()),
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "the metadata is not well-formed XML (at byte {}): {e}",
                    reader.error_position()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"<?xml version="1.0"?>
<FaxJob>
  <Sender email="alice@example.test" name="Alice"/>
  <Recipients>
    <Recipient number="+15551234567" name="Bob" company="Acme &amp; Co"/>
    <Recipient number="5550000001"/>
  </Recipients>
  <Cover subject="Figures" note="Call back"/>
  <Attachments><Attachment name="a.pdf"/><Attachment name="b.txt"/></Attachments>
  <Options notify="always"/>
</FaxJob>"#;

    #[test]
    fn a_full_job_parses() {
        let job = FaxJob::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(job.sender(), ("alice@example.test", "Alice"));
        assert_eq!(job.recipients.list.len(), 2);
        assert_eq!(job.recipients.list[0].company, "Acme & Co");
        assert_eq!(job.cover.subject, "Figures");
        let names: Vec<&str> = job
            .attachments
            .list
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, ["a.pdf", "b.txt"]);
        assert!(job.notify().unwrap().unwrap().success);
    }

    #[test]
    fn bad_jobs_get_their_codes() {
        let code = |xml: &str| FaxJob::parse(xml.as_bytes()).unwrap_err().code;
        assert_eq!(code("<FaxJob><Sender"), Code::InvalidXml);
        assert_eq!(code("<Job/>"), Code::InvalidXml);
        assert_eq!(code(""), Code::InvalidXml);
        assert_eq!(
            code("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><FaxJob/>"),
            Code::InvalidXml
        );
        assert_eq!(code("<FaxJob/>"), Code::NoSender);
        assert_eq!(
            code(
                r#"<FaxJob><Sender email="a@b.test&#13;&#10;RCPT TO:&lt;x@y.test&gt;"/></FaxJob>"#
            ),
            Code::NoSender
        );
        assert_eq!(
            code(r#"<FaxJob><Sender email="a@b"/></FaxJob>"#),
            Code::NoRecipients
        );
        assert_eq!(
            code(
                r#"<FaxJob><Sender email="a@b"/><Recipients><Recipient name="x"/></Recipients></FaxJob>"#
            ),
            Code::BadNumber
        );
        assert_eq!(
            code(r#"<FaxJob><Sender email="a@b"/><Options notify="loud"/></FaxJob>"#),
            Code::InvalidXml
        );
    }
}
