//! The HTTP fax API with curl against the real binary, in XMedius' shape
//! (every reply parsed and checked field by field, JSON and XML):
//! `faxmta token` makes the tokens; XMedius' service discovery gives the
//! REST URL, to which `sendfax` is appended; a multipart/form-data
//! request (XML control file + a PDF) to three numbers queues one message
//! with three recipients, answered `{"success":"true","successInfo":…}`;
//! two faxes are really sent (alice gets the success reports), the busy
//! number fails after its retry, and the status call tells so for a
//! transaction and for the broadcast. Every documented error code is
//! provoked (`{"success":"false","errorInfo":…}`), and none of those
//! requests queues anything. A request is one message whose documents
//! are stored once. The listener cuts a half-sent request and a stalled
//! body, and refuses connections over its cap. With `[admin] tls = true`
//! the same works over HTTPS with the server's certificate.

mod common;
use common::*;

#[path = "fax_api/client.rs"]
mod client;
use client::*;

#[path = "../transports/fax/tests/fixtures/fax/messages.rs"]
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
    // XMedius' first step: the URL of the REST service (for any
    // account), to which the client appends `sendfax`.
    let (code, url) = curl(&s, "/services/acme/fax/restservice/url", &[]);
    assert_eq!(code, 200, "{url}");
    assert_eq!(url, format!("{}/restservice/", http(&s)));
    // JSON (the default).
    let (code, body) = post_at(&format!("{url}sendfax"), &token, &meta, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}\n{}", s.log());
    let reply = json(&body);
    let mut keys: Vec<&String> = reply.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["success", "successInfo"], "{body}");
    let info = success_info(&body);
    let broadcast = info["broadcastId"].as_str().unwrap().to_string();
    let ids = transaction_ids(&info);
    assert_eq!(ids.len(), 3, "{body}");
    // Our own detail beside XMedius' fields: each number and its id.
    let tx = info["transactions"].as_array().unwrap();
    assert_eq!(tx.len(), 3, "{body}");
    for (t, (number, id)) in tx.iter().zip(
        ["+15551234567", "5559876543", "+15550000001"]
            .iter()
            .zip(&ids),
    ) {
        assert_eq!(t["number"], *number, "{body}");
        assert_eq!(t["transactionId"], id.as_str(), "{body}");
    }
    let (first, second, busy) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    assert!(
        first != second && second != busy && first != broadcast,
        "{body}"
    );
    // One message: the three transactions are its recipients.
    let queue_id = first.rsplit_once('-').unwrap().0.to_string();
    assert_eq!(broadcast, format!("B{queue_id}"));
    assert_eq!(ids, [1, 2, 3].map(|n| format!("{queue_id}-{n}")), "{body}");

    // Two are really sent: alice gets a success report naming each (one
    // message: recipients done together share a report, as for a mail to
    // several numbers), with the cover subject of the control file;
    // cover + 1 PDF page. The busy number fails after its retry.
    for (number, result) in [
        ("+15551234567", "sent"),
        ("+15559876543", "sent"),
        ("+15550000001", "failed"),
    ] {
        let fact = format!("Fax number:     {number} <");
        let mut report = String::new();
        wait_until(60, || {
            report = s
                .maildir("example.test", "alice")
                .iter()
                .map(|f| String::from_utf8_lossy(&read(f)).into_owned())
                .find(|t| {
                    t.lines().any(|l| {
                        l.starts_with("Subject: Fax to ") && l.ends_with(&format!(" {result}"))
                    }) && t.contains(&fact)
                })
                .unwrap_or_default();
            !report.is_empty()
        });
        assert!(
            !report.is_empty(),
            "no report {number} {result}:\n{}",
            s.log()
        );
        assert_contains(&report, "Subject:        Quarterly figures");
        if result == "sent" {
            assert_contains(&report, "Pages sent:     2 of 2");
        }
    }
    wait_status(&s, &queue_id, "+15551234567@fax.localhost", "sent", 10);
    wait_status(&s, &queue_id, "5559876543@fax.localhost", "sent", 10);

    // The status of one transaction, in JSON (XMedius' path; ours too).
    let auth = format!("XM-Token-Authorization: {token}");
    for path in ["/restservice/status", "/fax/status"] {
        let (code, body) = curl(&s, &format!("{path}/{first}"), &["-H", &auth]);
        assert_eq!(code, 200, "{body}");
        let st = success_info(&body);
        assert!(st.get("broadcastId").is_none(), "{body}");
        assert_eq!(transaction_ids(&st), std::slice::from_ref(&first), "{body}");
        let faxes = st["faxes"].as_array().unwrap();
        assert_eq!(faxes.len(), 1, "{body}");
        let fax = &faxes[0];
        assert_eq!(fax["transactionId"], first.as_str());
        assert_eq!(fax["state"], "sent");
        assert_eq!(fax["number"], "+15551234567");
        assert_eq!(fax["sender"], "alice@example.test");
        assert_eq!(
            (fax["pagesSent"].as_u64(), fax["pagesTotal"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(fax["calls"], 1);
    }
    // … and of the broadcast, in XML.
    let (code, body) = curl(
        &s,
        &format!("/restservice/status/{broadcast}"),
        &["-H", &auth, "-H", "Accept: application/xml"],
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("<?xml"), "{body}");
    let root = xml(&body);
    assert_eq!(root.name, "response", "{body}");
    assert_eq!(root.names(), ["success", "successInfo"], "{body}");
    assert_eq!(root.child("success").text, "true");
    let st = root.child("successInfo");
    assert_eq!(st.child("broadcastId").text, broadcast);
    let listed: Vec<&str> = st
        .child("transactionIds")
        .all("transactionId")
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(listed, ids, "{body}");
    let faxes = st.child("faxes").all("fax");
    assert_eq!(faxes.len(), 3, "{body}");
    let of = |id: &str| {
        *faxes
            .iter()
            .find(|f| f.attr("transactionId") == id)
            .unwrap_or_else(|| panic!("no {id}: {body}"))
    };
    assert_eq!(of(&second).attr("state"), "sent");
    assert_eq!(of(&second).attr("number"), "+15559876543");
    assert_eq!(of(&second).attr("pagesSent"), "2");
    assert_eq!(of(&busy).attr("state"), "failed");
    assert_eq!(of(&busy).attr("calls"), "2");
    assert_contains(of(&busy).attr("reason"), "busy");
    // The queue id alone: all the faxes of the message.
    let (code, body) = curl(
        &s,
        &format!("/restservice/status/{queue_id}"),
        &["-H", &auth],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(transaction_ids(&success_info(&body)), ids, "{body}");

    // A submission answered in XML, with an XML cover note only.
    let meta2 = write(
        work.path(),
        "note.xml",
        br#"<FaxJob><Sender email="alice@example.test"/>
            <Recipients><Recipient number="+15551234567"/></Recipients>
            <Cover subject="Call me" note="Please call back before noon."/></FaxJob>"#,
    );
    // Our own path takes the same.
    let (code, body) = post_at(
        &format!("{}/fax/send", http(&s)),
        &token,
        &meta2,
        &[],
        &["-H", "Accept: application/xml"],
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("<?xml"), "{body}");
    let root = xml(&body);
    assert_eq!(root.name, "response", "{body}");
    assert_eq!(root.names(), ["success", "successInfo"], "{body}");
    assert_eq!(root.child("success").text, "true", "{body}");
    let info = root.child("successInfo");
    let b2 = info.child("broadcastId").text.clone();
    assert!(b2.starts_with('B'), "{body}");
    let ids2 = info.child("transactionIds").all("transactionId");
    assert_eq!(ids2.len(), 1, "{body}");
    let t2 = ids2[0].text.clone();
    assert_eq!(t2, format!("{}-1", &b2[1..]), "{body}");
    let t = info.child("transactions").child("transaction");
    assert_eq!(t.attr("number"), "+15551234567");
    assert_eq!(t.attr("transactionId"), t2);
    let (code, body) = curl(
        &s,
        &format!("/restservice/status/{t2}"),
        &["-H", &auth, "-H", "Accept: text/xml"],
    );
    assert_eq!(code, 200, "{body}");
    let root = xml(&body);
    let info = root.child("successInfo");
    assert!(info.all("broadcastId").is_empty(), "{body}");
    assert_eq!(info.child("faxes").child("fax").attr("transactionId"), t2);
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
    let id = transaction_ids(&success_info(&body))[0].clone();
    let auth = format!("XM-Token-Authorization: {token}");
    let (code, body) = curl_at(
        &format!("{https}/restservice/status/{id}"),
        &["-k", "-H", &auth],
    );
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

#[test]
fn one_request_is_one_message_with_its_documents_stored_once() {
    let work = tempfile::tempdir().unwrap();
    // Every number busy and the retry 20 minutes away: the message stays.
    let config = fax_config(work.path())
        .replace("retry_interval = \"1s\"", "retry_interval = \"20m\"")
        .replace(
            "busy = [",
            "busy = [\"+15550000002\", \"15550000002\", \"5550000002\", \
             \"+15550000003\", \"15550000003\", \"5550000003\", ",
        );
    let s = start(&config, "");
    let token = new_token(&s, &["scanner"]);
    let pdf = write(
        work.path(),
        "memo.pdf",
        &fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)]),
    );
    let numbers = ["+15550000001", "5550000002", "+15550000003"];
    let meta = write(
        work.path(),
        "job.xml",
        job("alice@example.test", &numbers, &["memo.pdf"]).as_bytes(),
    );
    let (code, body) = post(&http(&s), &token, &meta, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}\n{}", s.log());
    let info = success_info(&body);
    let ids = transaction_ids(&info);
    let queue_id = ids[0].rsplit_once('-').unwrap().0.to_string();

    // One message in the queue with the three recipients, one body: the
    // documents are stored once, and a request is queued in one write
    // (nothing to take back if a later part failed, so nothing that
    // could already be on a line is ever removed).
    let queue = queue_json(&s);
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0]["id"], queue_id.as_str());
    let rcpts: Vec<&str> = queue[0]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        rcpts,
        numbers.map(|n| format!("{n}@fax.localhost")),
        "{queue:?}"
    );
    let bodies: Vec<_> = std::fs::read_dir(s.path("queue/bodies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let stored = String::from_utf8_lossy(&read(&bodies[0])).into_owned();
    assert_eq!(
        stored.matches("filename=\"memo.pdf\"").count(),
        1,
        "{stored}"
    );
    // Each recipient keeps its own state: each number is tried (busy)
    // and waits for its retry.
    let auth = format!("XM-Token-Authorization: {token}");
    for (id, number) in ids
        .iter()
        .zip(["+15550000001", "+15550000002", "+15550000003"])
    {
        let mut last = String::new();
        let deferred = wait_until(30, || {
            let (_, body) = curl(&s, &format!("/restservice/status/{id}"), &["-H", &auth]);
            last = body;
            let st = success_info(&last);
            let fax = &st["faxes"][0];
            st["faxes"].as_array().map(Vec::len) == Some(1)
                && fax["transactionId"] == id.as_str()
                && fax["number"] == number
                && fax["state"] == "deferred"
                && fax["calls"] == 1
        });
        assert!(deferred, "{id}: {last}\n{}", s.log());
    }
    assert_eq!(queue_json(&s).len(), 1);
}

/// A raw connection to the admin listener.
fn raw(s: &Server) -> std::net::TcpStream {
    let c = std::net::TcpStream::connect(("127.0.0.1", s.admin_port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    c
}

/// Read until the server closes; what it sent and how long it took.
fn until_closed(c: &mut std::net::TcpStream) -> (String, std::time::Duration) {
    use std::io::Read;
    let t = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); got {:?}",
                t.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), t.elapsed())
}

#[test]
fn the_listener_cuts_slow_clients_and_refuses_connections_over_its_cap() {
    use std::io::Write;
    let work = tempfile::tempdir().unwrap();
    let s = start(
        &fax_config(work.path()),
        "header_timeout = \"2s\"\nrequest_timeout = \"3s\"\nmax_connections = 4",
    );
    let token = new_token(&s, &["scanner"]);

    // Half the headers, then nothing: cut after header_timeout.
    let mut c = raw(&s);
    c.write_all(b"POST /restservice/sendfax HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (_, took) = until_closed(&mut c);
    assert!(took.as_secs_f64() < 6.0, "cut after {took:?}");

    // The headers, then half the body: 408 after request_timeout, and
    // the connection closed.
    let mut c = raw(&s);
    let t = std::time::Instant::now();
    c.write_all(
        format!(
            "POST /restservice/sendfax HTTP/1.1\r\nHost: x\r\nXM-Token-Authorization: {token}\r\n\
             Accept: application/xml\r\n\
             Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 1000\r\n\r\n\
             --XX\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n<FaxJob>"
        )
        .as_bytes(),
    )
    .unwrap();
    let (answer, _) = until_closed(&mut c);
    let took = t.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    refused_xml((408, body.to_string()), 408, "REQUEST_TIMEOUT");
    assert!(
        took.as_secs_f64() >= 2.5 && took.as_secs_f64() < 8.0,
        "answered after {took:?}"
    );

    // max_connections = 4: four idle connections take every place; the
    // fifth is answered 503 and closed.
    let mut idle: Vec<_> = (0..4).map(|_| raw(&s)).collect();
    let mut fifth = raw(&s);
    let (answer, took) = until_closed(&mut fifth);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(took.as_secs_f64() < 2.0, "{took:?}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    refused((503, body.to_string()), 503, "TOO_MANY_CONNECTIONS");
    // A place freed, a good request works again.
    drop(idle.pop());
    let mut last = (0, String::new());
    let ok = wait_until(10, || {
        last = curl(&s, "/metrics", &[]);
        last.0 == 200
    });
    assert!(ok, "{last:?}");
    assert_contains(&last.1, "faxmta_queue_messages");
    // The idle ones are cut by header_timeout.
    for mut c in idle {
        let (_, took) = until_closed(&mut c);
        assert!(took.as_secs_f64() < 6.0, "cut after {took:?}");
    }
}

#[test]
fn broadcasts_are_pruned_with_the_fax_history() {
    use faxmta_queue::{BroadcastEntry, Store};
    let work = tempfile::tempdir().unwrap();
    let mut s = start(&fax_config(work.path()), "");
    let token = new_token(&s, &["scanner"]);
    let auth = format!("XM-Token-Authorization: {token}");
    // Two broadcasts whose message is gone: one made long before the fax
    // history's 30 days, one made now.
    let old = "0000010000001".to_string();
    let recent = format!("{:08X}00001", now());
    assert!(s.stop());
    {
        let store = Store::open(&s.path("queue")).unwrap();
        for id in [&old, &recent] {
            let entry = BroadcastEntry {
                transaction: format!("{id}-1"),
                recipient: "+15551234567@fax.localhost".into(),
            };
            store
                .record_broadcast(&Store::broadcast_id(id), &[entry])
                .unwrap();
        }
        store.sync_blocking().unwrap();
    }
    s.spawn();
    let status = |id: &str| curl(&s, &format!("/restservice/status/B{id}"), &["-H", &auth]);
    // Both are told (their fax is unknown now)…
    for id in [&old, &recent] {
        let (code, body) = status(id);
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            success_info(&body)["faxes"][0]["state"],
            "unknown",
            "{body}"
        );
    }
    // … until the fax history is pruned, when a fax ends: then the old
    // one is gone and the recent one stays.
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
    let (code, body) = post(&http(&s), &token, &meta, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}");
    let id = transaction_ids(&success_info(&body))[0].clone();
    let queue_id = id.rsplit_once('-').unwrap().0.to_string();
    wait_status(&s, &queue_id, "+15551234567@fax.localhost", "sent", 30);
    let mut last = (0, String::new());
    let pruned = wait_until(10, || {
        last = status(&old);
        last.0 == 404
    });
    assert!(pruned, "{last:?}\n{}", s.log());
    refused(last, 404, "NOT_FOUND");
    let (code, body) = status(&recent);
    assert_eq!(code, 200, "{body}");
    // The new broadcast (its fax is in the history) is told too.
    let (code, body) = status(&queue_id);
    assert_eq!(code, 200, "{body}");
    assert_eq!(success_info(&body)["faxes"][0]["state"], "sent", "{body}");
}
