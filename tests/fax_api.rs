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
#[path = "fax_api/errors.rs"]
mod errors;
#[path = "fax_api/listener.rs"]
mod listener;
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
    let stored = cli_ok(&s, &["queue", "show", &queue_id]);
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
