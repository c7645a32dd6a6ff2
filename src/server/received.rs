//! The Received header we prepend to every message (RFC 5321 §4.4) and the
//! protocol names of RFC 3848 / RFC 6531 it carries.

use super::session::TlsInfo;
use std::net::IpAddr;

/// `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPSA`, `UTF8SMTPS` …
pub fn protocol_name(esmtp: bool, utf8: bool, tls: bool, auth: bool) -> &'static str {
    match (esmtp, utf8, tls, auth) {
        (false, _, _, _) => "SMTP",
        (true, false, false, false) => "ESMTP",
        (true, false, true, false) => "ESMTPS",
        (true, false, false, true) => "ESMTPA",
        (true, false, true, true) => "ESMTPSA",
        (true, true, false, false) => "UTF8SMTP",
        (true, true, true, false) => "UTF8SMTPS",
        (true, true, false, true) => "UTF8SMTPA",
        (true, true, true, true) => "UTF8SMTPSA",
    }
}

/// The header, folded, CRLF-terminated; `auth`: the SMTP AUTH user
/// (`(Authenticated sender: NAME)`, as Postfix writes it).
#[allow(clippy::too_many_arguments)]
pub fn received_header(
    helo: &str,
    ip: IpAddr,
    hostname: &str,
    protocol: &str,
    id: &str,
    tls: Option<&TlsInfo>,
    auth: Option<&str>,
    for_rcpt: Option<&str>,
) -> Vec<u8> {
    // The HELO name is the client's word: keep it printable and short so
    // it cannot break the header.
    let helo: String = helo
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '(' | ')' | ';'))
        .take(255)
        .collect();
    let mut h = format!("Received: from {helo} ([{ip}])\r\n");
    if let Some(tls) = tls {
        h.push_str(&format!(
            "\t(using {} with cipher {})\r\n",
            tls.version, tls.cipher
        ));
    }
    if let Some(user) = auth {
        let user: String = user
            .chars()
            .filter(|c| !c.is_control() && !matches!(c, '(' | ')'))
            .take(255)
            .collect();
        h.push_str(&format!("\t(Authenticated sender: {user})\r\n"));
    }
    h.push_str(&format!("\tby {hostname} (faxmta) with {protocol} id {id}"));
    if let Some(rcpt) = for_rcpt {
        let rcpt: String = rcpt.chars().filter(|c| !c.is_control()).collect();
        h.push_str(&format!("\r\n\tfor <{rcpt}>"));
    }
    h.push_str(&format!("; {}\r\n", chrono::Local::now().to_rfc2822()));
    h.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_carries_tls_and_protocol() {
        let tls = TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
        };
        let h = received_header(
            "client.example\r\nX-Evil: 1",
            "127.0.0.1".parse().unwrap(),
            "mx.example.test",
            "ESMTPS",
            "ABC123",
            Some(&tls),
            Some("alice@example.test"),
            Some("a@example.test"),
        );
        let h = String::from_utf8(h).unwrap();
        assert!(
            h.starts_with("Received: from client.exampleX-Evil: 1 ([127.0.0.1])\r\n"),
            "{h}"
        );
        assert!(
            h.contains("(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)"),
            "{h}"
        );
        assert!(
            h.contains(
                "by mx.example.test (faxmta) with ESMTPS id ABC123\r\n\tfor <a@example.test>; "
            ),
            "{h}"
        );
        assert!(
            h.contains("\r\n\t(Authenticated sender: alice@example.test)\r\n\tby "),
            "{h}"
        );
        assert!(h.ends_with("\r\n") && h.matches("\r\n").count() == 5, "{h}");
        assert_eq!(protocol_name(true, false, true, true), "ESMTPSA");
        assert_eq!(protocol_name(false, false, true, false), "SMTP");
    }
}
