//! Outbound command lines: [`check_line`], which every line the SMTP
//! client writes passes first (no CR, LF, NUL or other control character
//! inside it), and [`step`], which names what a write is for messages.

use crate::Reply;

/// Whether `line` may go on the wire as one command: it ends in CRLF,
/// and has no other CR or LF, no NUL and no other control character
/// (tab aside) — which would end the command early and start one the
/// next hop takes for ours (a recipient of its own, say). `Err` is the
/// client's own permanent failure; nothing was sent. A pipelined batch
/// is checked line by line before it is joined.
pub fn check_line(line: &[u8]) -> Result<(), Reply> {
    match line.strip_suffix(b"\r\n") {
        Some(text)
            if !text.is_empty() && text.iter().all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t') =>
        {
            Ok(())
        }
        _ => Err(refused(line)),
    }
}

fn refused(bytes: &[u8]) -> Reply {
    let shown: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
    Reply::new(
        554,
        "5.5.2",
        format!(
            "refused to send {}: a command with a CR, LF, NUL or other control character in it ({shown:?})",
            step(bytes)
        ),
    )
}

/// What writing `bytes` is, for messages: the command's verb ("MAIL
/// FROM"), the message data or the end of the data.
pub fn step(bytes: &[u8]) -> &'static str {
    if bytes == b".\r\n" || bytes.ends_with(b"\r\n.\r\n") {
        return "end of DATA";
    }
    let word: Vec<u8> = bytes
        .iter()
        .take(16)
        .take_while(|b| b.is_ascii_alphabetic())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    match word.as_slice() {
        b"MAIL" => "MAIL FROM",
        b"RCPT" => "RCPT TO",
        b"EHLO" => "EHLO",
        b"HELO" => "HELO",
        b"LHLO" => "LHLO",
        b"DATA" => "DATA",
        b"RSET" => "RSET",
        b"QUIT" => "QUIT",
        b"STARTTLS" => "STARTTLS",
        b"AUTH" => "AUTH",
        b"ETRN" => "ETRN",
        // AUTH LOGIN's base64 lines.
        _ if bytes.len() <= 512
            && bytes.strip_suffix(b"\r\n").is_some_and(|b| {
                b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(c))
            }) =>
        {
            "AUTH data"
        }
        _ => "message data",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_with_cr_lf_or_nul_inside_are_refused() {
        for ok in [&b"MAIL FROM:<a@b.test> SIZE=10\r\n"[..], b"dGVzdA==\r\n"] {
            assert_eq!(check_line(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            &b"MAIL FROM:<a@b.test\r\nRCPT TO:<x@y.test>>\r\n"[..],
            b"RCPT TO:<a@b.test\nRCPT TO:<x@y.test>>\r\n",
            b"RCPT TO:<a@b.test\rX>\r\n",
            b"RCPT TO:<a\0@b.test>\r\n",
            b"MAIL FROM:<a@b.test>",
            b"MAIL FROM:<a@b.test>\n",
            b"\r\n",
            b"MAIL FROM:<a@b.test>\r\n\r\nDATA\r\n",
        ] {
            let e = check_line(bad).unwrap_err();
            assert_eq!((e.code, e.status.as_str()), (554, "5.5.2"), "{bad:?}");
            assert!(e.text.contains("CR, LF, NUL"), "{}", e.text);
        }
    }

    #[test]
    fn steps_are_named_for_messages() {
        assert_eq!(step(b"MAIL FROM:<a@b.test>\r\n"), "MAIL FROM");
        assert_eq!(step(b"rcpt to:<a@b.test>\r\n"), "RCPT TO");
        assert_eq!(step(b"x\r\n.\r\n"), "end of DATA");
        assert_eq!(step(b"dGVzdA==\r\n"), "AUTH data");
        assert_eq!(step(b"Subject: x\r\n"), "message data");
    }
}
