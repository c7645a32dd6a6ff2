//! TLS reports (RFC 8460) with the real binary: faxmta delivers to one
//! domain over a session without a policy and fails to another domain
//! whose policy needs TLS that its MX does not offer; both domains publish
//! `_smtp._tls` with a `mailto:` rua (tests/peers/dns.py), and the reports
//! arrive at Postfix's smtp-sink as RFC 8460 mails whose gzipped JSON
//! mail-auth parses back: the right domain, policy type, counts and
//! failure type. Nothing leaves 127.0.0.0/8.

mod common;
mod peers;

use common::*;
use mail_auth::report::tlsrpt::{PolicyType, ResultType, TlsReport};
use peers::{shared_port, zone, Ca, Dns, HttpsHost, Sink};

/// The message of a smtp-sink dump (its X- lines dropped).
fn message_of(dump: &str) -> Vec<u8> {
    let text = dump.replace("\r\n", "\n");
    let body: Vec<&str> = text
        .lines()
        .skip_while(|l| {
            ["X-Client-", "X-Helo-Args", "X-Mail-Args", "X-Rcpt-Args"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    format!("{}\r\n", body.join("\r\n")).into_bytes()
}

/// The first report for `domain` that smtp-sink received, waited for.
fn report_for(sink: &Sink, domain: &str, server: &Server) -> TlsReport {
    let needle = format!("TLS-Report-Domain: {domain}");
    let mut found = None;
    wait_until(30, || {
        found = sink
            .dumps()
            .into_iter()
            .find(|d| d.contains(&needle) && d.ends_with("\n\n"));
        found.is_some()
    });
    let dump = found.unwrap_or_else(|| panic!("no TLS report for {domain}:\n{}", server.log()));
    assert_contains(&dump, "Content-Type: multipart/report");
    assert_contains(&dump, "report-type=\"tlsrpt\"");
    assert_contains(&dump, "application/tlsrpt+gzip");
    TlsReport::parse_rfc5322(&message_of(&dump), 1 << 20)
        .unwrap_or_else(|e| panic!("not an RFC 8460 report ({e:?}):\n{dump}"))
}

#[test]
fn reports_of_good_and_failed_sessions_arrive_as_rfc_8460_mail() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "good.test. MX 10 mx.sink.test.",
        "bad.test. MX 10 mx.sink.test.",
        "reports.test. MX 10 mx.sink.test.",
        "mx.sink.test. A 127.0.0.2",
        "_smtp._tls.good.test. TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.test\"",
        "_smtp._tls.bad.test. TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.test\"",
    ]));
    // smtp-sink offers no STARTTLS: bad.test, which needs TLS, fails.
    let sink = Sink::start("127.0.0.2", port, &[]);
    let server = peers::faxmta(
        &dns,
        Some(port),
        "[outbound.tls_policy]\n\"bad.test\" = \"required\"\n\
         [tls_report]\ninterval = \"2s\"\norganization = \"Example Sender\"\n\
         contact = \"tls-admin@example.test\"\n",
    );
    send(
        &server,
        "alice@example.test",
        "one@good.test",
        "Subject: good\r\n\r\nhello\r\n",
    );
    send(
        &server,
        "alice@example.test",
        "two@bad.test",
        "Subject: bad\r\n\r\nhello\r\n",
    );

    let good = report_for(&sink, "good.test", &server);
    assert_eq!(good.organization_name.as_deref(), Some("Example Sender"));
    assert_eq!(good.contact_info.as_deref(), Some("tls-admin@example.test"));
    assert_eq!(good.policies.len(), 1, "{good:?}");
    let p = &good.policies[0];
    assert_eq!(p.policy.policy_domain, "good.test");
    assert_eq!(p.policy.policy_type, PolicyType::NoPolicyFound);
    assert_eq!(p.summary.total_success, 1, "{good:?}");
    assert_eq!(p.summary.total_failure, 0, "{good:?}");

    let bad = report_for(&sink, "bad.test", &server);
    let p = &bad.policies[0];
    assert_eq!(p.policy.policy_domain, "bad.test");
    assert_eq!(p.summary.total_success, 0, "{bad:?}");
    assert!(p.summary.total_failure >= 1, "{bad:?}");
    let detail = p
        .failure_details
        .iter()
        .find(|d| d.result_type == ResultType::StartTlsNotSupported)
        .unwrap_or_else(|| panic!("no starttls-not-supported in {bad:?}"));
    assert_eq!(
        detail.receiving_mx_hostname.as_deref(),
        Some("mx.sink.test")
    );
    assert!(detail.failed_session_count >= 1);
    // The report goes out as mail from the server, through its queue (the
    // line is written once the queue has it; wait, the sink may be faster).
    let queued = "TLS report for good.test queued to tlsrpt@reports.test";
    wait_until(10, || server.log().contains(queued));
    assert_contains(&server.log(), queued);
}

#[test]
fn a_report_for_an_https_rua_is_posted_gzipped() {
    // RFC 8460 §5.4: an `https:` rua gets a POST of the gzipped JSON, over
    // TLS verified against our test CA (`[outbound] ca_file`).
    let port = shared_port(&["127.0.0.2"]);
    let ca = Ca::new();
    let host = HttpsHost::start("127.0.0.3", &ca.issue("reports.test"), "");
    let dns = Dns::start(&zone(&[
        "posted.test. MX 10 mx.sink.test.",
        "mx.sink.test. A 127.0.0.2",
        "reports.test. A 127.0.0.3",
        &format!(
            "_smtp._tls.posted.test. TXT \"v=TLSRPTv1; rua=https://reports.test:{}/tlsrpt\"",
            host.port
        ),
    ]));
    let sink = Sink::start("127.0.0.2", port, &[]);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let server = peers::faxmta(
        &dns,
        Some(port),
        &format!(
            "ca_file = \"{}\"\n[tls_report]\ninterval = \"2s\"\n",
            ca_file.display()
        ),
    );
    send(
        &server,
        "alice@example.test",
        "one@posted.test",
        "Subject: posted\r\n\r\nhello\r\n",
    );
    sink.wait_dumps(1, 15);

    let mut posts = Vec::new();
    wait_until(30, || {
        posts = host.posts();
        !posts.is_empty()
    });
    let (head, body) = posts
        .first()
        .unwrap_or_else(|| panic!("nothing posted:\n{}", server.log()));
    assert_contains(head, "POST /tlsrpt");
    assert_contains(head, "Content-Type: application/tlsrpt+gzip");
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut json).unwrap();
    let report = TlsReport::parse_json(&json).unwrap();
    let p = &report.policies[0];
    assert_eq!(p.policy.policy_domain, "posted.test");
    assert_eq!(p.summary.total_success, 1, "{report:?}");
    // The server logs the POST once the reply is in, which may be just
    // after the test host has recorded the request.
    let logged = "TLS report for posted.test posted to https://reports.test:";
    wait_until(10, || server.log().contains(logged));
    assert_contains(&server.log(), logged);
}
