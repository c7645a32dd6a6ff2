//! The fax path end to end with the real binary: swaks sends a mail with a
//! text body and TIFF, PNG and PDF attachments to `+15551234567@
//! fax.localhost`; faxmta renders it, the simulated engine sends it with
//! real T.30 (spandsp) to a simulated fax machine, which stores what it
//! received; the received pages equal the pages we rendered, pixel for
//! pixel; the sender gets the success report. A busy number is retried
//! and then reported as failed; a machine that hangs up after each page
//! gets the missing pages on the next calls; `faxmta fax send` and
//! `faxmta fax status` go through the queue.

mod common;
use common::*;
use faxmta_fax::page::{Compression, Page, Resolution};
use faxmta_fax::tiff::{read_tiff, write_tiff_f, Pixels, ReadPage, TiffHeader};
use mail_parser::MimeHeaders;
use std::path::{Path, PathBuf};

#[path = "../transports/fax/tests/fixtures/fax/messages.rs"]
#[allow(dead_code)]
mod fixtures;

/// The fax domain, a NANP dial plan, alice as the one fax user, and the
/// simulated network: one busy number, one machine that hangs up after
/// every page. Files under `work`.
fn fax_config(work: &Path, extra: &str) -> String {
    let w = work.display();
    format!(
        r#"
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
# Fax requests come from a client that is not trusted: the fax user
# directory decides (tests/fax_addressing.rs shows the default).
senders = "any"
lines = 2
tsi = "+1 555 0100"
retries = 2
retry_interval = "1s"
success_report = true
spool = "{w}/spool"
archive = "{w}/sent"
{extra}
[fax.simulated]
received = "{w}/remote"
inbound = "{w}/inbound"
csid = "REMOTE {{number}}"
busy = ["+15550000001", "15550000001", "5550000001"]
hang_up_after = {{ "+15550000002" = 1, "15550000002" = 1, "5550000002" = 1 }}
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
[[fax.user]]
address = "alice@example.test"
name = "Alice Example"
tsi = "+1 555 0199"
"#
    )
}

/// Every `.tif` under `dir`, sorted.
fn tiffs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(tiffs(&p));
        } else if p.extension().is_some_and(|x| x == "tif") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A page's pixels as packed rows (1 = black), whatever way it was read.
fn bits(p: &ReadPage) -> Vec<u8> {
    match &p.pixels {
        Pixels::Bilevel(b) => b.clone(),
        Pixels::Gray(g) => {
            let stride = p.width.div_ceil(8) as usize;
            let mut out = vec![0u8; stride * p.height as usize];
            for y in 0..p.height as usize {
                for x in 0..p.width as usize {
                    if g[y * p.width as usize + x] < 128 {
                        out[y * stride + x / 8] |= 0x80 >> (x % 8);
                    }
                }
            }
            out
        }
    }
}

/// The mail of the first test's attachments: a 2-page TIFF, a PNG and a
/// 1-page PDF, written into `dir`.
fn attachments(dir: &Path) -> [(String, PathBuf); 3] {
    let mut pages = Vec::new();
    for n in 0..2u32 {
        let mut p = Page::blank(1728, 1100, Resolution::Fine);
        for y in 100 + n * 200..400 + n * 200 {
            for x in 200..900 {
                p.set(x, y, true);
            }
        }
        pages.push(p);
    }
    let tif = dir.join("scan.tif");
    write_tiff_f(&tif, &pages, Compression::Mh, &TiffHeader::default()).unwrap();
    let png = dir.join("logo.png");
    std::fs::write(
        &png,
        fixtures::png(300, 200, |x, y| if x < 150 && y < 100 { 0 } else { 255 }),
    )
    .unwrap();
    let pdf = dir.join("letter.pdf");
    std::fs::write(&pdf, fixtures::pdf(&[(595, 842, fixtures::PDF_PAGE)])).unwrap();
    [
        ("image/tiff".into(), tif),
        ("image/png".into(), png),
        ("application/pdf".into(), pdf),
    ]
}

/// The newest mail in alice's Maildir whose text contains `needle`.
fn report_with(s: &Server, needle: &str, secs: u64) -> String {
    let mut found = String::new();
    wait_until(secs, || {
        for f in s.maildir("example.test", "alice") {
            let text = String::from_utf8_lossy(&read(&f)).into_owned();
            if text.contains(needle) {
                found = text;
                return true;
            }
        }
        false
    });
    assert!(
        !found.is_empty(),
        "no report with {needle:?} for alice:\n{}",
        s.log()
    );
    found
}

#[test]
fn a_mail_becomes_a_fax_and_the_remote_gets_our_pixels() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &fax_config(work.path(), ""));
    let files = attachments(work.path());
    let mut args: Vec<String> = [
        "--server",
        &format!("127.0.0.1:{}", s.mx_port),
        "--from",
        "alice@example.test",
        "--to",
        "+15551234567@fax.localhost",
        "--header",
        "Subject: Quarterly figures",
        "--body",
        "Dear Bob,\n\nthe figures are attached.\n\nAlice",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    for (ctype, path) in &files {
        args.extend([
            "--attach-type".into(),
            ctype.clone(),
            "--attach".into(),
            format!("@{}", path.display()),
        ]);
    }
    // POSIXLY_CORRECT: else swaks (Getopt::Long) takes a word starting
    // with "+" for an option.
    let out = std::process::Command::new("swaks")
        .args(&args)
        .env("POSIXLY_CORRECT", "1")
        .output()
        .expect("swaks is installed by scripts/test");
    let transcript = output_text(&out);
    assert!(out.status.success(), "{transcript}");
    let id = transcript
        .lines()
        .find_map(|l| l.split("queued as ").nth(1))
        .unwrap_or_else(|| panic!("not queued:\n{transcript}"))
        .trim()
        .to_string();

    let report = report_with(&s, "Subject: Fax to +15551234567 sent", 60);
    wait_status(&s, &id, "+15551234567@fax.localhost", "sent", 5);

    // What we rendered (kept in the archive) and what the remote machine
    // stored: cover + text + 2 TIFF pages + PNG + PDF = 6 pages, equal.
    let sent = tiffs(&work.path().join("sent"));
    let received = tiffs(&work.path().join("remote"));
    assert_eq!(
        (sent.len(), received.len()),
        (1, 1),
        "{sent:?} {received:?}"
    );
    let ours = read_tiff(&sent[0]).unwrap();
    let theirs = read_tiff(&received[0]).unwrap();
    assert_eq!(ours.len(), 6);
    assert_eq!(theirs.len(), 6);
    for (n, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            (a.width, a.y_dpi.map(|d| d.round() as u32)),
            (1728, Some(196))
        );
        assert_eq!((a.width, a.height), (b.width, b.height), "page {}", n + 1);
        assert!(bits(a) == bits(b), "page {} differs", n + 1);
        assert!(bits(a).iter().any(|&x| x != 0), "page {} is blank", n + 1);
    }
    // The remote machine heard alice's own station identity (the
    // directory's, over [fax] tsi); spandsp keeps it in ImageDescription.
    assert_eq!(theirs[0].description.as_deref(), Some("+1 555 0199"));
    // libtiff reads our document without a word of warning.
    let info = std::process::Command::new("tiffinfo")
        .arg(&sent[0])
        .output()
        .unwrap();
    assert!(info.status.success());
    let stderr = String::from_utf8_lossy(&info.stderr);
    assert!(stderr.trim().is_empty(), "tiffinfo: {stderr}");
    assert_contains(&String::from_utf8_lossy(&info.stdout), "CCITT Group 3");

    // The success report: readable and machine-readable.
    for needle in [
        "Your fax was sent.",
        "Pages sent:     6 of 6",
        "Remote station: REMOTE",
        "Subject:        Quarterly figures",
        "X-Fax-Number: +15551234567",
        "X-Fax-Result: sent",
        "X-Fax-Pages: 6 of 6",
        "X-Fax-Calls: 1",
        "Action: delivered",
        "Status: 2.0.0",
    ] {
        assert_contains(&report, needle);
    }

    // fax status and the metrics agree.
    let status = cli_ok(&s, &["fax", "status", &id]);
    assert_contains(&status, "+15551234567");
    assert_contains(&status, "sent");
    assert_contains(&status, "6/6");
    let metrics = s.http_get("/metrics");
    assert_contains(&metrics, "faxmta_fax_pages_rendered_total 6");
    assert_contains(&metrics, "faxmta_fax_render_seconds_count 1");
    assert_contains(&metrics, "faxmta_fax_calls_total{result=\"sent\"} 1");
    assert_contains(&metrics, "faxmta_fax_pages_sent_total 6");
    assert_contains(
        &metrics,
        "faxmta_faxes_total{outcome=\"sent\",reason=\"sent\"} 1",
    );
    assert_contains(&metrics, "faxmta_fax_lines{state=\"total\"} 2");
}

#[test]
fn a_busy_number_is_retried_then_reported() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &fax_config(work.path(), "report_first_page = true"));
    let id = send(
        &s,
        "alice@example.test",
        "+15550000001@fax.localhost",
        "Subject: busy test\r\n\r\nHello\r\n",
    );
    let report = report_with(&s, "Subject: Fax to +15550000001 failed", 60);
    for needle in [
        "I'm sorry: your fax could not be sent.",
        "the line was busy (3 calls)",
        "Calls:          3",
        "Action: failed",
        "Status: 5.4.1",
        "Diagnostic-Code: X-Fax; 554 5.4.1",
        "X-Fax-Result: busy",
        "X-Fax-Calls: 3",
    ] {
        assert_contains(&report, needle);
    }
    // The first page (the cover) as a picture, half size.
    let parsed = mail_parser::MessageParser::default()
        .parse(report.as_bytes())
        .unwrap();
    let png = parsed
        .attachments()
        .find(|a| a.content_type().is_some_and(|c| c.subtype() == Some("png")))
        .unwrap_or_else(|| panic!("no picture in:\n{report}"));
    let picture = image::load_from_memory(png.contents()).unwrap().to_luma8();
    assert_eq!(picture.width(), 864);
    assert!(picture.pixels().any(|p| p.0[0] < 128), "the page is blank");
    // Two deferrals at the fax interval, then the failure.
    let log = s.log();
    let deferred = log
        .lines()
        .filter(|l| l.contains(&format!("{id}: to=<")) && l.contains("status=deferred"))
        .count();
    assert_eq!(deferred, 2, "{log}");
    wait_status(&s, &id, "+15550000001@fax.localhost", "bounced", 5);
    assert!(tiffs(&work.path().join("remote")).is_empty());
    let metrics = s.http_get("/metrics");
    assert_contains(&metrics, "faxmta_fax_calls_total{result=\"busy\"} 3");
    assert_contains(
        &metrics,
        "faxmta_faxes_total{outcome=\"failed\",reason=\"busy\"} 1",
    );
}

/// A final failure whose report cannot be queued (a failpoint makes the
/// first enqueue fail) is not dialled again: only the report is retried.
#[test]
fn a_failure_report_that_cannot_be_queued_is_retried_without_dialling_again() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with_env(
        "",
        &fax_config(work.path(), ""),
        &[("FAXMTA_FAILPOINT", "report-enqueue-fails-once")],
    );
    let id = send(
        &s,
        "alice@example.test",
        "+15550000001@fax.localhost",
        "Subject: busy, report lost once\r\n\r\nHello\r\n",
    );
    let report = report_with(&s, "Subject: Fax to +15550000001 failed", 60);
    assert_contains(&report, "the line was busy (3 calls)");
    assert_contains(&s.log(), &format!("{id}: cannot queue a report: failpoint"));
    wait_status(&s, &id, "+15550000001@fax.localhost", "bounced", 10);
    // The three calls of `retries = 2`, and no fourth after the lost
    // report.
    let metrics = s.http_get("/metrics");
    assert_contains(&metrics, "faxmta_fax_calls_total{result=\"busy\"} 3");
    let reports = s
        .maildir("example.test", "alice")
        .iter()
        .filter(|f| {
            String::from_utf8_lossy(&read(f)).contains("Subject: Fax to +15550000001 failed")
        })
        .count();
    assert_eq!(reports, 1, "one report");
}

/// Two (three) addresses for one number in one message: one document,
/// one call; every recipient gets the outcome.
#[test]
fn two_addresses_for_one_number_are_rendered_and_dialled_once() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &fax_config(work.path(), "cover_page = false"));
    let rcpts = [
        "+15551234567@fax.localhost",
        "FAX=+15551234567@example.test",
        "IMCEAFAX-+2B15551234567@example.test",
    ];
    let mut c = s.connect();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<alice@example.test>").starts_with("250"));
    for r in rcpts {
        let reply = c.cmd(&format!("RCPT TO:<{r}>"));
        assert!(reply.starts_with("250"), "{r}: {reply}");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: twice\r\n\r\nOne page.\r\n.\r\n");
    let id = queued_id(&c.reply());
    c.cmd("QUIT");
    for r in rcpts {
        wait_status(&s, &id, r, "sent", 60);
    }
    let received = tiffs(&work.path().join("remote"));
    assert_eq!(received.len(), 1, "dialled more than once: {received:?}");
    let metrics = s.http_get("/metrics");
    assert_contains(&metrics, "faxmta_fax_calls_total{result=\"sent\"} 1");
    // One render of one page.
    assert_contains(&metrics, "faxmta_fax_render_seconds_count 1");
    assert_contains(&metrics, "faxmta_fax_pages_rendered_total 1");
}

/// An extension in the address (`x12`, `;ext=`) is dialled as DTMF
/// after the answer: the simulated remote heard it.
#[test]
fn an_extension_is_dialled_after_the_answer() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &fax_config(work.path(), "cover_page = false"));
    let id = send(
        &s,
        "alice@example.test",
        "+15551234567x12@fax.localhost",
        "Subject: to an extension\r\n\r\nHello\r\n",
    );
    wait_status(&s, &id, "+15551234567x12@fax.localhost", "sent", 60);
    let id2 = send(
        &s,
        "alice@example.test",
        "\"FAX=+15557654321;ext=7*0\"@example.test",
        "Subject: to another\r\n\r\nHello\r\n",
    );
    wait_status(
        &s,
        &id2,
        "\"FAX=+15557654321;ext=7*0\"@example.test",
        "sent",
        60,
    );
    // What the remotes heard, beside what they received (`NAME.dtmf`).
    fn dtmf(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dtmf(&p, out);
            } else if p.extension().is_some_and(|x| x == "dtmf") {
                out.push(std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut heard = Vec::new();
    dtmf(&work.path().join("remote"), &mut heard);
    heard.sort();
    assert_eq!(heard, ["12", "7*0"]);
}

#[test]
fn a_broken_call_is_finished_with_the_missing_pages() {
    let work = tempfile::tempdir().unwrap();
    // No cover page: the three text pages are the whole fax.
    let s = Server::start_with("", &fax_config(work.path(), "cover_page = false"));
    let mut text = String::from("Subject: long\r\n\r\n");
    for i in 0..180 {
        text.push_str(&format!("Line {i} of a text that needs three pages.\r\n"));
    }
    let id = send(
        &s,
        "alice@example.test",
        "+15550000002@fax.localhost",
        &text,
    );
    let report = report_with(&s, "Subject: Fax to +15550000002 sent", 60);
    assert_contains(&report, "Pages sent:     3 of 3");
    assert_contains(&report, "X-Fax-Calls: 3");
    // Each call got one page further: the remote stored page 1, then 2,
    // then 3 — each equal to our page.
    let received = tiffs(&work.path().join("remote"));
    assert_eq!(received.len(), 3, "{received:?}");
    let ours = read_tiff(&tiffs(&work.path().join("sent"))[0]).unwrap();
    assert_eq!(ours.len(), 3);
    for (n, file) in received.iter().enumerate() {
        let got = read_tiff(file).unwrap();
        assert_eq!(got.len(), 1, "{}", file.display());
        assert!(
            bits(&got[0]) == bits(&ours[n]),
            "call {} sent the wrong page",
            n + 1
        );
    }
    let log = s.log();
    assert_contains(&log, "the call broke off after 1 of 3 pages");
    assert_contains(&log, "the call broke off after 2 of 3 pages");
    wait_status(&s, &id, "+15550000002@fax.localhost", "sent", 5);
}

#[test]
fn fax_send_goes_through_the_queue() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &fax_config(work.path(), ""));
    let pdf = work.path().join("memo.pdf");
    std::fs::write(&pdf, fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)])).unwrap();
    let out = cli_ok(
        &s,
        &[
            "fax",
            "send",
            "--to",
            "+15551234567",
            "--from",
            "alice@example.test",
            pdf.to_str().unwrap(),
        ],
    );
    let id = out.split(':').next().unwrap_or("").trim().to_string();
    assert_contains(&out, "fax to +15551234567@fax.localhost queued");
    report_with(&s, "Subject: Fax to +15551234567 sent", 60);
    let status = cli_ok(&s, &["fax", "status", &id]);
    assert_contains(&status, "sent");
    assert_contains(&status, "2/2");

    // Not a fax user: refused before anything is queued.
    let refused = s.cli(&[
        "fax",
        "send",
        "--to",
        "+15551234567",
        "--from",
        "mallory@example.test",
        pdf.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert_contains(&output_text(&refused), "5.7.1");
}

#[test]
fn an_attachment_that_cannot_be_faxed_is_named_in_the_report() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &fax_config(work.path(), ""));
    let msg = fixtures::message(
        "contract",
        &[
            fixtures::Part("text/plain", None, b"See the contract.\r\n".to_vec()),
            fixtures::Part(
                "application/msword",
                Some("contract.doc"),
                b"\xd0\xcf\x11\xe0 not really a document".to_vec(),
            ),
        ],
    );
    let id = send(
        &s,
        "alice@example.test",
        "+15551234567@fax.localhost",
        &String::from_utf8(msg).unwrap(),
    );
    let report = report_with(&s, "Subject: Fax to +15551234567 failed", 30);
    assert_contains(&report, "contract.doc");
    assert_contains(&report, "application/msword");
    assert_contains(&report, "Status: 5.6.1");
    assert_contains(&report, "X-Fax-Result: render-failed");
    wait_status(&s, &id, "+15551234567@fax.localhost", "bounced", 5);
    // Nothing was dialled.
    assert!(tiffs(&work.path().join("remote")).is_empty());

    // With unsupported = "skip" the rest goes out.
    let work2 = tempfile::tempdir().unwrap();
    let s2 = Server::start_with("", &fax_config(work2.path(), "unsupported = \"skip\""));
    let msg = fixtures::message(
        "contract",
        &[
            fixtures::Part("text/plain", None, b"See the contract.\r\n".to_vec()),
            fixtures::Part("application/msword", Some("contract.doc"), b"x".to_vec()),
        ],
    );
    send(
        &s2,
        "alice@example.test",
        "+15551234567@fax.localhost",
        &String::from_utf8(msg).unwrap(),
    );
    let report = report_with(&s2, "Subject: Fax to +15551234567 sent", 30);
    assert_contains(&report, "Pages sent:     2 of 2");
}
