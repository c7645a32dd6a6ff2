//! Tests of the walk through a message: what is rendered, left out, and
//! noted where; the cover page's fields. (End-to-end tests with every
//! document type are in `transports/fax/tests/fax_render.rs`.)

use super::*;

fn render_ok(msg: &str, opts: &RenderOptions) -> Rendered {
    render(msg.as_bytes(), opts).unwrap_or_else(|e| panic!("{e}"))
}

const HEAD: &str =
    "From: Alice <alice@example.com>\r\nTo: Bob Smith <+15551234567@fax.example.com>\r\n\
                    Subject: Hi\r\nDate: Fri, 01 Mar 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n";

#[test]
fn cover_fields_come_from_the_message_unless_given() {
    let m = mail_parser::MessageParser::default()
        .parse(HEAD.as_bytes())
        .unwrap();
    let given = CoverInfo {
        subject: "Given".into(),
        number: "+1 555".into(),
        ..CoverInfo::default()
    };
    let c = mime::fill_cover(&given, Some(&m));
    assert_eq!(c.from, "Alice <alice@example.com>");
    assert_eq!(c.to, "Bob Smith", "the name, not the gateway address");
    assert_eq!(c.subject, "Given");
    assert_eq!(c.number, "+1 555");
    assert!(c.date.contains("2024"), "{}", c.date);
}

#[test]
fn a_cover_names_its_own_recipient_of_several() {
    let m = mail_parser::MessageParser::default()
        .parse(
            "From: Alice <alice@example.com>\r\nTo: \"Bob Smith, Acme\" <5551234567@fax.example.com>,\r\n \
             Carol <+15559876543@fax.example.com>, 5550000001@fax.example.com\r\n\r\nx\r\n"
                .as_bytes(),
        )
        .unwrap();
    let to = |number: &str| {
        let info = CoverInfo {
            number: number.into(),
            ..CoverInfo::default()
        };
        mime::fill_cover(&info, Some(&m)).to
    };
    assert_eq!(to("+15551234567"), "Bob Smith, Acme");
    assert_eq!(to("+15559876543"), "Carol");
    assert_eq!(to("+15550000001"), "5550000001@fax.example.com");
    // Not one of them (or no number): everyone.
    let everyone = "Bob Smith, Acme, Carol, 5550000001@fax.example.com";
    assert_eq!(to("+4930123456"), everyone);
    assert_eq!(to(""), everyone);
}

#[test]
fn text_parts_share_pages_and_notes_say_where() {
    let msg = format!(
        "{HEAD}Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n\
         First part\r\n--B\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n\
         Second part\r\n--B\r\nContent-Type: text/plain\r\n\r\n   \r\n--B--\r\n"
    );
    let r = render_ok(&msg, &RenderOptions::default());
    assert_eq!(r.pages.len(), 1);
    let notes: Vec<String> = r.parts.iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        [
            "part 1 (text/plain): page 1",
            "part 2 \"notes.txt\" (text/plain): page 1",
            "part 3 (text/plain): left out: empty",
        ]
    );
    // Headers (4 lines), blank, first part, blank, the rule with the file
    // name, second part: after the name, the rule is unbroken ink.
    let p = &r.pages[0];
    let wide_rows = (0..p.height)
        .filter(|&y| (400..1600).all(|x| p.get(x, y)))
        .count();
    assert!((1..=4).contains(&wide_rows), "{wide_rows} rule rows");
}

#[test]
fn signatures_and_inline_pictures_are_left_out_even_when_failing_on_unsupported() {
    let msg = format!(
        "{HEAD}Content-Type: multipart/signed; boundary=S; protocol=\"application/pkcs7-signature\"\r\n\r\n\
         --S\r\nContent-Type: multipart/related; boundary=R\r\n\r\n\
         --R\r\nContent-Type: text/html\r\n\r\n<p>Hello <img src=\"cid:logo\"></p>\r\n\
         --R\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
         --R--\r\n--S\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIB\r\n--S--\r\n"
    );
    let opts = RenderOptions {
        unsupported: Unsupported::Fail,
        ..RenderOptions::default()
    };
    let r = render_ok(&msg, &opts);
    assert_eq!(r.pages.len(), 1);
    let got: Vec<(&str, bool)> = r
        .parts
        .iter()
        .map(|p| {
            (
                p.part.as_str(),
                matches!(p.outcome, PartOutcome::Rendered { .. }),
            )
        })
        .collect();
    assert_eq!(got, [("1.1", true), ("1.2", false), ("2", false)]);
}

#[test]
fn the_cover_is_one_page_however_long_the_note() {
    let opts = RenderOptions {
        cover: Some(CoverInfo {
            note: "A long note line that goes on.\n".repeat(500),
            ..CoverInfo::default()
        }),
        resolution: Resolution::Standard,
        ..RenderOptions::default()
    };
    let msg = format!("{HEAD}\r\nBody text\r\n");
    let r = render_ok(&msg, &opts);
    assert_eq!((r.page_count(), r.pages.len()), (2, 1));
    let cover = r.cover.as_ref().unwrap();
    // Ink reaches into the bottom part (the note) but not the margin.
    let inked = |y0: u32, y1: u32| (y0..y1).any(|y| cover.row(y).iter().any(|&b| b != 0));
    assert!(inked(900, 1070));
    assert!(!inked(1146 - 60, 1146));
    let all: Vec<&Page> = r.all_pages().collect();
    assert!(std::ptr::eq(all[0], cover));
    assert_eq!(r.into_pages().len(), 2);
}

#[test]
fn option_edges() {
    let msg = format!("{HEAD}\r\nBody\r\n");
    let one = RenderOptions {
        max_pages: 1,
        cover: Some(CoverInfo::default()),
        ..RenderOptions::default()
    };
    assert_eq!(
        render(msg.as_bytes(), &one).unwrap_err(),
        RenderError::TooManyPages { limit: 1 }
    );
    let odd = RenderOptions {
        font_size: f32::NAN,
        ..RenderOptions::default()
    };
    assert_eq!(render_ok(&msg, &odd).pages.len(), 1);
    assert_eq!(
        render(b"\x00\x01 not a message", &RenderOptions::default()).map(|r| r.page_count()),
        Err(RenderError::Empty)
    );
}

#[test]
fn delivery_reports_are_text_and_deep_nesting_is_refused() {
    let msg = format!(
        "{HEAD}Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n\
         --R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
         --R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
         Final-Recipient: rfc822; bob@example\r\nStatus: 5.1.1\r\n--R--\r\n"
    );
    let r = render_ok(&msg, &RenderOptions::default());
    let got: Vec<_> = r.parts.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        [
            "part 1 (text/plain): page 1",
            "part 2 (message/delivery-status): page 1"
        ]
    );

    let depth = 40;
    let mut m = format!("{HEAD}Content-Type: multipart/mixed; boundary=b0\r\n\r\n");
    for i in 0..depth {
        m += &format!(
            "--b{i}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n",
            i + 1
        );
    }
    m += &format!("--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b{depth}--\r\n");
    for i in (0..depth).rev() {
        m += &format!("--b{i}--\r\n");
    }
    let e = render(m.as_bytes(), &RenderOptions::default()).unwrap_err();
    assert!(e.to_string().contains("nested more than 32 deep"), "{e}");
    let skip = RenderOptions {
        unsupported: Unsupported::Skip,
        cover: Some(CoverInfo::default()),
        ..RenderOptions::default()
    };
    let r = render_ok(&m, &skip);
    assert_eq!(r.page_count(), 1);
    assert!(matches!(
        r.parts.last().map(|p| &p.outcome),
        Some(PartOutcome::Skipped(_))
    ));
}
