//! SMTP smuggling (CVE-2023-51764 and friends): every end-of-data variant
//! of hannob/smtpsmug, sent over a raw socket, in both `bare_newline`
//! modes. Whatever the mode, the message ends only at CRLF.CRLF: each
//! connection gets exactly one reply to its data, at most one message is
//! queued, and it holds exactly the bytes docs/configuration.md says —
//! refused (554 5.6.0) in `reject` mode, every bare CR or LF stored as
//! CRLF in `normalize` mode; the would-be second transaction is text.

mod common;
use common::*;

const VARIANTS: [&[u8]; 9] = [
    b"\n.\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
];

const AFTER: &[u8] = b"MAIL FROM:<evil@x>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nsmuggled\r\n";

/// Read replies until the server closes the connection.
fn replies_until_closed(c: &mut Smtp) -> Vec<String> {
    let mut all = Vec::new();
    loop {
        let r = c.reply();
        if r == "<closed>" {
            return all;
        }
        all.push(r);
        assert!(all.len() < 100, "runaway replies: {all:?}");
    }
}

/// Send every variant on its own connection; each reply to the data
/// (`None`: refused) with the queue id of the message it accepted.
fn send_variants(server: &Server) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for v in VARIANTS {
        let mut c = server.connect();
        c.cmd("EHLO smuggle.test");
        assert!(c.cmd("MAIL FROM:<s@smuggle.test>").starts_with("250 2.1.0"));
        assert!(c.cmd("RCPT TO:<bob@example.test>").starts_with("250 2.1.5"));
        assert!(c.cmd("DATA").starts_with("354 "));
        let mut w = b"Subject: outer\r\n\r\nfirst".to_vec();
        w.extend_from_slice(v);
        w.extend_from_slice(AFTER);
        w.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        c.send(&w);
        let replies = replies_until_closed(&mut c);
        // One reply to the data and one to QUIT: nothing else was run.
        assert_eq!(replies.len(), 2, "variant {v:?}: {replies:#?}");
        assert!(replies[1].starts_with("221 2.0.0"), "{replies:#?}");
        out.push(match replies[0].starts_with("250 ") {
            true => Some(queued_id(&replies[0])),
            false => {
                assert!(replies[0].starts_with("554 5.6.0"), "{v:?}: {replies:#?}");
                None
            }
        });
    }
    out
}

/// The message text of a queued message (`faxmta queue show`).
fn queued_text(server: &Server, id: &str) -> String {
    let show = cli_ok(server, &["queue", "show", id]);
    show.split_once("--- message ---\n")
        .map(|(_, m)| m.to_string())
        .unwrap_or_else(|| panic!("no message in:\n{show}"))
}

/// The bytes each variant must be stored as, after "first".
fn check_queue(server: &Server, ids: &[Option<String>], stored: impl Fn(&[u8]) -> &'static str) {
    let accepted: Vec<&String> = ids.iter().flatten().collect();
    let queue = queue_json(server);
    assert_eq!(queue.len(), accepted.len(), "{queue:#?}");
    for (v, id) in VARIANTS.iter().zip(ids) {
        let Some(id) = id else { continue };
        let text = queued_text(server, id);
        let want = format!(
            "Subject: outer\r\n\r\nfirst{}{}\r\n",
            stored(v),
            String::from_utf8_lossy(AFTER)
        );
        assert!(
            text.ends_with(&want),
            "variant {v:?}: stored\n{text:?}\nwant the end\n{want:?}"
        );
        assert_eq!(text.matches("Subject: outer").count(), 1, "{text:?}");
        let env = find(&queue, id).unwrap();
        assert_eq!(env["recipients"].as_array().unwrap().len(), 1, "{env:#}");
    }
}

#[test]
fn reject_mode_refuses_every_bare_newline_variant() {
    let server = Server::start();
    block(&server, "bob"); // keep the messages in the queue to look at
    let ids = send_variants(&server);
    // Only the variant without a bare CR or LF is a message: one, with
    // the NUL and the would-be commands as text.
    let accepted: Vec<usize> = (0..ids.len()).filter(|&i| ids[i].is_some()).collect();
    assert_eq!(accepted, [8], "{ids:?}");
    check_queue(&server, &ids, |_| "\r\n\u{0}.\r\n");
}

#[test]
fn normalize_mode_keeps_every_variant_as_text() {
    let server = Server::start_with("bare_newline = \"normalize\"", "");
    block(&server, "bob");
    let ids = send_variants(&server);
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    // Each bare CR or LF is a CRLF line end; the dot stays a line of its
    // own, as text (it was not the end of the data).
    check_queue(&server, &ids, |v| match v {
        b"\r\n\x00.\r\n" => "\r\n\u{0}.\r\n",
        _ => "\r\n.\r\n",
    });
}
