//! The HTTP fax API with curl against the real binary: `faxmta token`
//! makes the tokens; a multipart/form-data `POST /fax/send` (XML control
//! file + a PDF) to three numbers queues one fax per number, answered in
//! JSON or XML as `Accept` asks; two faxes are really sent (alice gets
//! the success reports), the busy number fails after its retry, and
//! `GET /fax/status/ID` tells so for a transaction and for the broadcast.
//! Every documented error code is provoked, and none of those requests
//! queues anything. With `[admin] tls = true` the same works over HTTPS
//! with the server's certificate.

mod common;
use common::*;

#[path = "fax_api/client.rs"]
mod client;
use client::*;

#[path = "../transports/tests/fixtures/fax/messages.rs"]
#[allow(dead_code)]
mod fixtures;

#[test]
fn a_fax_posted_over_http_is_sent_and_its_status_told() {
    let work = tempfile::tempdir().unwrap();
    let s = start(&fax_config(work.path()), "");
    let token = new_token(&s, &["scanner"]);
    new_token(&s, &["tmp"]);
    let list = cli_ok(&s, &["token", "list"]);
    assert_contains(&list, "scanner (any sender)");
    assert_contains(&cli_ok(&s, &["token", "del", "tmp"]), "tmp: deleted");
    assert!(!cli_ok(&s, &["token", "list"]).contains("tmp"));
    // Only hashes are kept.
    let file = std::fs::read_to_string(s.path("tokens")).unwrap();
    assert!(
        !file.contains(&token) && file.starts_with("scanner:"),
        "{file}"
    );

    let pdf = write(
        work.path(),
        "memo.pdf",
        &fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)]),
    );
    let meta = write(
        work.path(),
        "job.xml",
        job(
            "alice@example.test",
            &["+15551234567", "5559876543", "+15550000001"],
            &["memo.pdf"],
        )
        .as_bytes(),
    );
    // JSON (the default).
    let (code, body) = post(&http(&s), &token, &meta, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}\n{}", s.log());
    let reply = json(&body);
    let broadcast = reply["broadcastId"].as_str().unwrap().to_string();
    let tx = reply["transactions"].as_array().unwrap();
    assert_eq!(tx.len(), 3, "{body}");
    assert_eq!(tx[0]["number"], "+15551234567");
    assert_eq!(tx[1]["number"], "5559876543");
    let first = tx[0]["transactionId"].as_str().unwrap().to_string();
    let second = tx[1]["transactionId"].as_str().unwrap().to_string();
    let busy = tx[2]["transactionId"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_ne!(first, broadcast);

    // Two are really sent: alice gets a success report for each, with
    // the cover subject of the control file; cover + 1 PDF page. The
    // busy number fails after its retry.
    for (number, result) in [
        ("+15551234567", "sent"),
        ("+15559876543", "sent"),
        ("+15550000001", "failed"),
    ] {
        let subject = format!("Subject: Fax to {number} {result}");
        let mut report = String::new();
        wait_until(60, || {
            report = s
                .maildir("example.test", "alice")
                .iter()
                .map(|f| String::from_utf8_lossy(&read(f)).into_owned())
                .find(|t| t.contains(&subject))
                .unwrap_or_default();
            !report.is_empty()
        });
        assert!(!report.is_empty(), "no report {subject}:\n{}", s.log());
        assert_contains(&report, "Subject:        Quarterly figures");
        if result == "sent" {
            assert_contains(&report, "Pages sent:     2 of 2");
        }
    }
    wait_status(&s, &first, "+15551234567@fax.localhost", "sent", 10);
    wait_status(&s, &second, "5559876543@fax.localhost", "sent", 10);

    // The status of one transaction, in JSON…
    let auth = format!("XM-Token-Authorization: {token}");
    let (code, body) = curl(&s, &format!("/fax/status/{first}"), &["-H", &auth]);
    assert_eq!(code, 200, "{body}");
    let st = json(&body);
    let fax = &st["faxes"][0];
    assert_eq!(st["faxes"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(fax["transactionId"], first.as_str());
    assert_eq!(fax["state"], "sent");
    assert_eq!(fax["number"], "+15551234567");
    assert_eq!(
        (fax["pagesSent"].as_u64(), fax["pagesTotal"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(fax["calls"], 1);
    assert!(st.get("broadcastId").is_none(), "{body}");
    // … and of the broadcast, in XML.
    let (code, body) = curl(
        &s,
        &format!("/fax/status/{broadcast}"),
        &["-H", &auth, "-H", "Accept: application/xml"],
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("<?xml"), "{body}");
    assert_eq!(attr(&body, "<FaxStatus", "broadcastId"), broadcast);
    assert_eq!(body.matches("<Fax ").count(), 3, "{body}");
    assert_eq!(
        attr(&body, &format!("transactionId=\"{second}\""), "state"),
        "sent"
    );
    assert_eq!(
        attr(&body, &format!("transactionId=\"{second}\""), "number"),
        "+15559876543"
    );

    let busy_at = format!("transactionId=\"{busy}\"");
    assert_eq!(attr(&body, &busy_at, "state"), "failed");
    assert_eq!(attr(&body, &busy_at, "calls"), "2");
    assert_contains(attr(&body, &busy_at, "reason"), "busy");

    // A submission answered in XML, with an XML cover note only.
    let meta2 = write(
        work.path(),
        "note.xml",
        br#"<FaxJob><Sender email="alice@example.test"/>
            <Recipients><Recipient number="+15551234567"/></Recipients>
            <Cover subject="Call me" note="Please call back before noon."/></FaxJob>"#,
    );
    let (code, body) = post(
        &http(&s),
        &token,
        &meta2,
        &[],
        &["-H", "Accept: application/xml"],
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("<?xml"), "{body}");
    let b2 = body
        .split("<broadcastId>")
        .nth(1)
        .and_then(|r| r.split("</broadcastId>").next())
        .unwrap_or_else(|| panic!("no broadcastId: {body}"));
    assert!(b2.starts_with('B'), "{body}");
    let t2 = attr(&body, "<Transaction", "transactionId").to_string();
    assert_eq!(attr(&body, "<Transaction", "number"), "+15551234567");
    let (code, body) = curl(
        &s,
        &format!("/fax/status/{t2}"),
        &["-H", &auth, "-H", "Accept: text/xml"],
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("transactionId=\"{t2}\"")), "{body}");
}

#[test]
fn every_documented_error_has_its_code() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let s = start(&fax_config(w), "max_request = \"300K\"");
    let token = new_token(&s, &["scanner"]);
    let alice_only = new_token(&s, &["alice", "--sender", "alice@example.test"]);
    let pdf = write(
        w,
        "memo.pdf",
        &fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)]),
    );
    let good = write(
        w,
        "good.xml",
        job("alice@example.test", &["+15551234567"], &["memo.pdf"]).as_bytes(),
    );

    // 401: no token, a wrong one; also for the status.
    let (code, body) = curl(
        &s,
        "/fax/send",
        &["-F", &format!("metadata=@{}", good.display())],
    );
    refused((code, body), 401, "BAD_TOKEN");
    refused(
        post(&http(&s), "fxt_0000", &good, &[&pdf], &[]),
        401,
        "BAD_TOKEN",
    );
    refused(curl(&s, "/fax/status/X", &[]), 401, "BAD_TOKEN");
    // … in XML when asked.
    let (code, body) = post(
        &http(&s),
        "wrong",
        &good,
        &[&pdf],
        &["-H", "Accept: application/xml"],
    );
    assert_eq!(code, 401);
    assert_contains(&body, "<Error><errorCode>BAD_TOKEN</errorCode><errorMsg>");

    let auth = format!("XM-Token-Authorization: {token}");
    // 415: not multipart/form-data.
    refused(
        curl(
            &s,
            "/fax/send",
            &[
                "-H",
                &auth,
                "-H",
                "Content-Type: application/xml",
                "--data-binary",
                &format!("@{}", good.display()),
            ],
        ),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    // 400 INVALID_MULTIPART: no metadata part; a broken multipart body.
    refused(
        curl(
            &s,
            "/fax/send",
            &[
                "-H",
                &auth,
                "-F",
                &format!("attachments=@{}", pdf.display()),
            ],
        ),
        400,
        "INVALID_MULTIPART",
    );
    refused(
        curl(
            &s,
            "/fax/send",
            &[
                "-H",
                &auth,
                "-H",
                "Content-Type: multipart/form-data; boundary=XX",
                "--data-binary",
                "--XX\r\nbroken",
            ],
        ),
        400,
        "INVALID_MULTIPART",
    );
    // 400 INVALID_XML: not well-formed, the wrong root, a DOCTYPE, a bad
    // option.
    for (name, xml) in [
        ("broken.xml", "<FaxJob><Sender email=\"alice@example.test\">"),
        ("root.xml", "<Job><Sender email=\"alice@example.test\"/></Job>"),
        ("doctype.xml", "<!DOCTYPE FaxJob [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><FaxJob/>"),
        ("option.xml", "<FaxJob><Sender email=\"alice@example.test\"/><Recipients><Recipient number=\"+15551234567\"/></Recipients><Options notify=\"loudly\"/></FaxJob>"),
    ] {
        let meta = write(w, name, xml.as_bytes());
        refused(post(&http(&s), &token, &meta, &[], &[]), 400, "INVALID_XML");
    }
    // 400 NO_SENDER, NO_RECIPIENTS, NO_DOCUMENTS.
    let meta = write(
        w,
        "nosender.xml",
        job("", &["+15551234567"], &["memo.pdf"]).as_bytes(),
    );
    refused(
        post(&http(&s), &token, &meta, &[&pdf], &[]),
        400,
        "NO_SENDER",
    );
    let meta = write(
        w,
        "norcpt.xml",
        job("alice@example.test", &[], &["memo.pdf"]).as_bytes(),
    );
    refused(
        post(&http(&s), &token, &meta, &[&pdf], &[]),
        400,
        "NO_RECIPIENTS",
    );
    let meta = write(
        w,
        "nodoc.xml",
        job("alice@example.test", &["+15551234567"], &[]).as_bytes(),
    );
    refused(
        post(&http(&s), &token, &meta, &[], &[]),
        400,
        "NO_DOCUMENTS",
    );
    // 400 MISSING_ATTACHMENT (named, not sent) and UNLISTED_ATTACHMENT.
    let both = write(
        w,
        "both.xml",
        job(
            "alice@example.test",
            &["+15551234567"],
            &["memo.pdf", "extra.pdf"],
        )
        .as_bytes(),
    );
    let body = refused(
        post(&http(&s), &token, &both, &[&pdf], &[]),
        400,
        "MISSING_ATTACHMENT",
    );
    assert_contains(&body, "extra.pdf");
    let other = write(
        w,
        "other.pdf",
        &fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)]),
    );
    let body = refused(
        post(&http(&s), &token, &good, &[&pdf, &other], &[]),
        400,
        "UNLISTED_ATTACHMENT",
    );
    assert_contains(&body, "other.pdf");
    // 400 BAD_NUMBER: not a number the dial plan takes; an address.
    for bad in ["12", "bob@example.test"] {
        let meta = write(
            w,
            "bad.xml",
            job("alice@example.test", &["+15551234567", bad], &["memo.pdf"]).as_bytes(),
        );
        refused(
            post(&http(&s), &token, &meta, &[&pdf], &[]),
            400,
            "BAD_NUMBER",
        );
    }
    // 403 SENDER_REFUSED: not a fax user; a token limited to alice.
    let meta = write(
        w,
        "mallory.xml",
        job("mallory@example.test", &["+15551234567"], &["memo.pdf"]).as_bytes(),
    );
    let body = refused(
        post(&http(&s), &token, &meta, &[&pdf], &[]),
        403,
        "SENDER_REFUSED",
    );
    assert_contains(&body, "+15551234567");
    let body = refused(
        post(&http(&s), &alice_only, &meta, &[&pdf], &[]),
        403,
        "SENDER_REFUSED",
    );
    assert_contains(&body, "alice");
    // 413 TOO_LARGE: announced by Content-Length (answered before the
    // body is read), and found while reading a chunked body.
    let big = write(w, "big.pdf", &vec![b'x'; 400 * 1024]);
    let bigjob = write(
        w,
        "big.xml",
        job("alice@example.test", &["+15551234567"], &["big.pdf"]).as_bytes(),
    );
    refused(
        post(
            &http(&s),
            &token,
            &bigjob,
            &[&big],
            &["-H", "Expect: 100-continue"],
        ),
        413,
        "TOO_LARGE",
    );
    refused(
        post(
            &http(&s),
            &token,
            &bigjob,
            &[&big],
            &["-H", "Transfer-Encoding: chunked"],
        ),
        413,
        "TOO_LARGE",
    );
    // 404 NOT_FOUND for the status of an unknown id.
    refused(
        curl(&s, "/fax/status/B0000NOSUCH", &["-H", &auth]),
        404,
        "NOT_FOUND",
    );

    // None of these queued anything; the good request still works, and
    // the token limited to alice sees alice's fax.
    assert!(queue_json(&s).is_empty(), "{:?}", queue_json(&s));
    let (code, body) = post(&http(&s), &alice_only, &good, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}");
    let id = json(&body)["transactions"][0]["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    let alice_auth = format!("XM-Token-Authorization: {alice_only}");
    let (code, body) = curl(&s, &format!("/fax/status/{id}"), &["-H", &alice_auth]);
    assert_eq!(code, 200, "{body}");

    // 503 QUEUE_UNAVAILABLE: the queue cannot take the message (its
    // bodies directory replaced by a file: every body write fails, even
    // for root). Nothing is half queued, and the sender is told to retry.
    let before = queue_json(&s).len();
    let bodies = s.path("queue/bodies");
    let aside = s.path("queue/bodies.aside");
    std::fs::rename(&bodies, &aside).unwrap();
    std::fs::write(&bodies, b"not a directory").unwrap();
    refused(
        post(&http(&s), &token, &good, &[&pdf], &[]),
        503,
        "QUEUE_UNAVAILABLE",
    );
    std::fs::remove_file(&bodies).unwrap();
    std::fs::rename(&aside, &bodies).unwrap();
    assert_eq!(queue_json(&s).len(), before);
    let (code, body) = post(&http(&s), &token, &good, &[&pdf], &[]);
    assert_eq!(code, 200, "the queue works again: {body}");

    // 503 FAX_NOT_CONFIGURED: a server without a fax domain.
    let plain = start("", "");
    let token = new_token(&plain, &["scanner"]);
    refused(
        post(&http(&plain), &token, &good, &[&pdf], &[]),
        503,
        "FAX_NOT_CONFIGURED",
    );
}

#[test]
fn the_api_speaks_https_when_configured() {
    let work = tempfile::tempdir().unwrap();
    let s = start(&fax_config(work.path()), "tls = true");
    let token = new_token(&s, &["scanner"]);
    let https = format!("https://127.0.0.1:{}", s.admin_port);
    let pdf = write(
        work.path(),
        "memo.pdf",
        &fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)]),
    );
    let meta = write(
        work.path(),
        "job.xml",
        job("alice@example.test", &["+15551234567"], &["memo.pdf"]).as_bytes(),
    );
    // The server's generated certificate ([tls]): -k.
    let (code, body) = post(&https, &token, &meta, &[&pdf], &["-k"]);
    assert_eq!(code, 200, "{body}\n{}", s.log());
    let id = json(&body)["transactions"][0]["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = format!("XM-Token-Authorization: {token}");
    let (code, body) = curl_at(&format!("{https}/fax/status/{id}"), &["-k", "-H", &auth]);
    assert_eq!(code, 200, "{body}");
    // The certificate is the one the SMTP side uses.
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(s.path("tls/cert.pem"))
        .args([
            "--resolve",
            &format!("mx.example.test:{}:127.0.0.1", s.admin_port),
        ])
        .arg(format!("https://mx.example.test:{}/metrics", s.admin_port))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    // Plain HTTP gets no answer from the TLS port.
    let plain = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("{}/metrics", http(&s)))
        .output()
        .unwrap();
    assert!(!plain.status.success(), "{}", output_text(&plain));
}
