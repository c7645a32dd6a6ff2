//! Reverse- and forward-paths: the RFC 5321 grammar and the MAIL/RCPT
//! command lines are pure, in faxmta-proto (`path.rs`); here is what
//! needs the queue's types: every address of a message that enters the
//! queue from outside SMTP is checked by the same grammar.

pub use faxmta_proto::path::{check_address, parse_command};

/// Check every address of a message about to be queued with
/// [`check_address`] (the sender may be null).
pub fn check_message(message: &faxmta_queue::NewMessage) -> Result<(), String> {
    check_address(&message.sender, true).map_err(|e| format!("sender: {e}"))?;
    for r in &message.recipients {
        check_address(&r.address, false).map_err(|e| format!("recipient: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faxmta_queue::{NewMessage, NewRecipient};

    #[test]
    fn every_address_of_a_message_is_checked() {
        let mut message = NewMessage {
            sender: String::new(),
            recipients: vec![NewRecipient::new("a@b.test")],
            ..Default::default()
        };
        assert_eq!(check_message(&message), Ok(()));
        message
            .recipients
            .push(NewRecipient::new("x@y.test\r\nDATA"));
        assert!(check_message(&message)
            .unwrap_err()
            .starts_with("recipient: "));
        message.sender = "@r.test:a@b.test".into();
        assert!(check_message(&message).unwrap_err().starts_with("sender: "));
    }
}
