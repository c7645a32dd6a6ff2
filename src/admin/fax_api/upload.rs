//! The request's parts: the multipart/form-data body of a send request
//! read into the XML control file (`metadata`) and the documents
//! (`attachments`), and the documents matched to the control file's list.

use super::job::FaxJob;
use super::reply::{ApiError, Code};
use axum::extract::Multipart;
use axum::http::StatusCode;
use faxmta_fax::media::media_type;

/// A document of the request.
pub struct File {
    pub name: String,
    pub media_type: String,
    pub data: axum::body::Bytes,
}

/// `TOO_LARGE`: the request passed `[admin] max_request`.
pub(super) fn too_large(limit: u64) -> ApiError {
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
pub(super) async fn read_parts(
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
pub(super) fn match_attachments(job: &FaxJob, mut files: Vec<File>) -> Result<Vec<File>, ApiError> {
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
