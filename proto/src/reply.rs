//! Replies: [`Reply`], the SMTP-style reply (code, enhanced status,
//! text) in which every transport reports, and [`parse_reply`], which
//! reads one from the lines a server sent.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An SMTP-style reply: code, enhanced status code (RFC 3463) and text.
/// Transports that do not speak SMTP (Maildir, fax) still report in this
/// form so that logs, the queue listing and DSNs read the same everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `5.1.1`.
    pub status: String,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &str, text: impl Into<String>) -> Self {
        Reply {
            code,
            status: status.to_string(),
            text: text.into(),
        }
    }

    /// A permanent (5xx) reply?
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.status, self.text)
    }
}

/// Parse a reply's lines (terminators removed) into a [`Reply`]: code,
/// enhanced status (from the text, or `X.0.0` from the code) and the
/// text of all lines.
pub fn parse_reply(lines: &[String]) -> Reply {
    let code: u16 = lines
        .first()
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l.get(4..).unwrap_or("").trim())
        .collect();
    let mut text = texts.join(" ");
    let class = code / 100;
    let mut status = format!("{class}.0.0");
    if let Some((first, rest)) = text.split_once(' ') {
        let parts: Vec<&str> = first.split('.').collect();
        if parts.len() == 3
            && parts[0] == class.to_string()
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        {
            status = first.to_string();
            text = rest.to_string();
        }
    }
    Reply::new(code, &status, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn replies_are_parsed_with_enhanced_status() {
        let r = parse_reply(&lines(&["550-5.1.1 no such", "550 5.1.1 user here"]));
        assert_eq!(
            (r.code, r.status.as_str(), r.text.as_str()),
            (550, "5.1.1", "no such 5.1.1 user here")
        );
        let r = parse_reply(&lines(&["421 closing"]));
        assert_eq!(
            (r.code, r.status.as_str(), r.text.as_str()),
            (421, "4.0.0", "closing")
        );
        // A status of the wrong class is text, not status.
        let r = parse_reply(&lines(&["250 5.1.1 odd"]));
        assert_eq!(r.status, "2.0.0");
        let r = parse_reply(&lines(&["garbage"]));
        assert_eq!(r.code, 0);
    }

    #[test]
    fn replies_print_and_classify() {
        let r = Reply::new(550, "5.1.1", "no such user");
        assert_eq!(r.to_string(), "550 5.1.1 no such user");
        assert!(r.is_permanent());
        assert!(!Reply::new(451, "4.4.1", "later").is_permanent());
    }
}
