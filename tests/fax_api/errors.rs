//! Every error of the HTTP fax API that the guide documents, with its
//! code, in JSON and XML.

use crate::client::*;
use crate::common::*;
use crate::fixtures;

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
    refused_xml(
        post(
            &http(&s),
            "wrong",
            &good,
            &[&pdf],
            &["-H", "Accept: application/xml"],
        ),
        401,
        "BAD_TOKEN",
    );
    refused_xml(
        curl(&s, "/restservice/status/X", &["-H", "Accept: text/xml"]),
        401,
        "BAD_TOKEN",
    );

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
        let xml = ["-H", "Accept: application/xml"];
        refused_xml(post(&http(&s), &token, &meta, &[], &xml), 400, "INVALID_XML");
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
    // 400 BAD_NUMBER: not a number the dial plan takes; an address; the
    // same number twice (however written).
    for bad in ["12", "bob@example.test", "+15551234567", "15551234567"] {
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
    let root = refused_xml(
        post(
            &http(&s),
            &alice_only,
            &meta,
            &[&pdf],
            &["-H", "Accept: text/xml"],
        ),
        403,
        "SENDER_REFUSED",
    );
    assert_contains(&root.child("errorInfo").child("errorMsg").text, "alice");
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
    // 404 NOT_FOUND for the status of an unknown id (a broadcast, a
    // transaction, a queue id), and for a path not served.
    for id in ["B0000NOSUCH", "0000NOSUCH-1", "0000NOSUCH"] {
        refused(
            curl(&s, &format!("/restservice/status/{id}"), &["-H", &auth]),
            404,
            "NOT_FOUND",
        );
    }
    refused(curl(&s, "/restservice/nosuch", &[]), 404, "NOT_FOUND");
    refused_xml(
        curl(&s, "/nosuch", &["-H", "Accept: application/xml"]),
        404,
        "NOT_FOUND",
    );

    // None of these queued anything; the good request still works, and
    // the token limited to alice sees alice's fax.
    assert!(queue_json(&s).is_empty(), "{:?}", queue_json(&s));
    let (code, body) = post(&http(&s), &alice_only, &good, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}");
    let id = transaction_ids(&success_info(&body))[0].clone();
    let alice_auth = format!("XM-Token-Authorization: {alice_only}");
    let (code, body) = curl(&s, &format!("/fax/status/{id}"), &["-H", &alice_auth]);
    assert_eq!(code, 200, "{body}");

    // 503 QUEUE_UNAVAILABLE: the queue cannot take the message (its
    // bodies directory replaced by a file: making a body file fails, even
    // for root; a body over 256 KiB gets a file of its own, smaller ones
    // go to a segment file the queue holds open). Nothing is half queued,
    // and the sender is told to retry.
    let mut padded = fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)]);
    padded.extend(std::iter::repeat_n(b' ', 220 * 1024));
    let big_pdf = write(w, "big.pdf", &padded);
    let big = write(
        w,
        "big.xml",
        job("alice@example.test", &["+15551234567"], &["big.pdf"]).as_bytes(),
    );
    let before = queue_json(&s).len();
    let bodies = s.path("queue/bodies");
    let aside = s.path("queue/bodies.aside");
    std::fs::rename(&bodies, &aside).unwrap();
    std::fs::write(&bodies, b"not a directory").unwrap();
    refused(
        post(&http(&s), &token, &big, &[&big_pdf], &[]),
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
    refused_xml(
        post(
            &http(&plain),
            &token,
            &good,
            &[&pdf],
            &["-H", "Accept: application/xml"],
        ),
        503,
        "FAX_NOT_CONFIGURED",
    );
}
