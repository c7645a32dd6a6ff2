//! The queued message of a fax request: built with mail-builder from the
//! control file and the documents, as a mail to the fax domain would be.

use super::job::FaxJob;
use super::reply::{ApiError, Code};
use super::File;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
