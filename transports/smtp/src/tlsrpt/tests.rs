//! [`Recorder`] aggregation and persistence, the report's JSON and mail
//! round trips through mail-auth's parsers, the `_smtp._tls` lookup and
//! the HTTPS POST against test peers.

use super::*;
use crate::sts::testutil::{DnsPeer, HttpsServer, TestCa};
use mail_auth::report::tlsrpt::PolicyType;

/// 2026-12-06T00:00:00Z
const DAY1: u64 = 1_796_515_200;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn sts_policy() -> Arc<sts::Policy> {
    Arc::new(
        sts::Policy::parse(
            "one",
            "version: STSv1\r\nmode: enforce\r\nmx: *.mail.a.example\r\nmax_age: 86400\r\n",
        )
        .expect("policy"),
    )
}

fn session(domain: &str, policy: PolicyKind, failure: Option<(ResultType, &str)>) -> SessionResult {
    SessionResult {
        policy_domain: domain.into(),
        policy,
        mx_host: "mx1.mail.a.example".into(),
        receiving_ip: Some("127.0.0.2".parse().expect("ip")),
        failure: failure.map(|(t, s)| (t, s.to_string())),
    }
}

const TYPES: [ResultType; 11] = [
    ResultType::StartTlsNotSupported,
    ResultType::CertificateHostMismatch,
    ResultType::CertificateExpired,
    ResultType::CertificateNotTrusted,
    ResultType::ValidationFailure,
    ResultType::TlsaInvalid,
    ResultType::DnssecInvalid,
    ResultType::DaneRequired,
    ResultType::StsPolicyFetchError,
    ResultType::StsPolicyInvalid,
    ResultType::StsWebpkiInvalid,
];

fn recorder() -> (tempfile::TempDir, Recorder) {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = Recorder::open(dir.path().join("tlsrpt.json")).expect("open");
    (dir, r)
}

#[test]
fn tlsrpt_aggregates_per_policy_with_failure_details() {
    let (_dir, rec) = recorder();
    let sts = || PolicyKind::Sts {
        policy: sts_policy(),
    };
    rec.record_at(session("A.Example.", sts(), None), at(DAY1 + 60));
    rec.record_at(session("a.example", sts(), None), at(DAY1 + 7200));
    for t in TYPES {
        rec.record_at(
            session("a.example", sts(), Some((t, "first"))),
            at(DAY1 + 3 * 3600),
        );
    }
    // The same failure again, later in the day: one detail, count 2.
    rec.record_at(
        session(
            "a.example",
            sts(),
            Some((ResultType::CertificateExpired, "second")),
        ),
        at(DAY1 + 23 * 3600),
    );
    let reports = rec.take_reports("Example Org", "postmaster@example.org", at(DAY1 + 86400));
    assert_eq!(reports.len(), 1);
    let (domain, report) = &reports[0];
    assert_eq!(domain, "a.example");
    assert_eq!(report.organization_name.as_deref(), Some("Example Org"));
    assert_eq!(
        report.contact_info.as_deref(),
        Some("postmaster@example.org")
    );
    assert_eq!(
        report.date_range.start_datetime.to_rfc3339(),
        "2026-12-06T00:00:00Z"
    );
    assert_eq!(
        report.date_range.end_datetime.to_rfc3339(),
        "2026-12-06T23:59:59Z"
    );
    assert_eq!(report.policies.len(), 1);
    let p = &report.policies[0];
    assert_eq!(p.policy.policy_type, PolicyType::Sts);
    assert_eq!(p.policy.policy_domain, "a.example");
    assert_eq!(
        p.policy.policy_string,
        vec![
            "version: STSv1",
            "mode: enforce",
            "mx: *.mail.a.example",
            "max_age: 86400"
        ]
    );
    assert_eq!(p.policy.mx_host, vec!["*.mail.a.example"]);
    assert_eq!(p.summary.total_success, 2);
    assert_eq!(p.summary.total_failure, TYPES.len() as u32 + 1);
    assert_eq!(p.failure_details.len(), TYPES.len());
    for t in TYPES {
        let d = p
            .failure_details
            .iter()
            .find(|d| d.result_type == t)
            .unwrap_or_else(|| panic!("{t:?} missing"));
        let want = if t == ResultType::CertificateExpired {
            2
        } else {
            1
        };
        assert_eq!(d.failed_session_count, want, "{t:?}");
        assert_eq!(
            d.receiving_mx_hostname.as_deref(),
            Some("mx1.mail.a.example")
        );
        assert_eq!(d.receiving_ip, Some("127.0.0.2".parse().expect("ip")));
        assert_eq!(d.additional_information.as_deref(), Some("first"));
    }
    assert!(
        rec.take_reports("o", "c", at(DAY1 + 2 * 86400)).is_empty(),
        "taken results are gone"
    );
}

#[test]
fn tlsrpt_one_report_per_policy_domain_and_policy() {
    let (_dir, rec) = recorder();
    let tlsa = PolicyKind::Tlsa {
        records: vec!["3 1 1 ed6cf49c".into()],
    };
    rec.record_at(session("a.example", tlsa.clone(), None), at(DAY1 + 10));
    rec.record_at(
        session("a.example", tlsa, Some((ResultType::ValidationFailure, ""))),
        at(DAY1 + 20),
    );
    rec.record_at(
        session("b.example", PolicyKind::NoPolicy, None),
        at(DAY1 + 30),
    );
    rec.record_at(
        session(
            "a.example",
            PolicyKind::Sts {
                policy: sts_policy(),
            },
            None,
        ),
        at(DAY1 + 40),
    );
    let reports = rec.take_reports("o", "c", at(DAY1 + 86400));
    let domains: Vec<&str> = reports.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(domains, vec!["a.example", "b.example"]);
    assert_ne!(reports[0].1.report_id, reports[1].1.report_id);
    let a = &reports[0].1;
    assert_eq!(a.policies.len(), 2);
    let tlsa = a
        .policies
        .iter()
        .find(|p| p.policy.policy_type == PolicyType::Tlsa)
        .expect("tlsa policy");
    assert_eq!(tlsa.policy.policy_string, vec!["3 1 1 ed6cf49c"]);
    assert_eq!(
        (tlsa.summary.total_success, tlsa.summary.total_failure),
        (1, 1)
    );
    assert_eq!(tlsa.failure_details[0].additional_information, None);
    let b = &reports[1].1;
    assert_eq!(b.policies[0].policy.policy_type, PolicyType::NoPolicyFound);
    assert_eq!(b.policies[0].summary.total_success, 1);
}

#[test]
fn tlsrpt_later_results_stay_for_the_next_report() {
    let (_dir, rec) = recorder();
    let ok = || session("a.example", PolicyKind::NoPolicy, None);
    rec.record_at(ok(), at(DAY1 + 10 * 3600));
    rec.record_at(ok(), at(DAY1 + 12 * 3600 + 600));
    rec.record_at(ok(), at(DAY1 + 86400 + 60));
    // Mid-day: the hours that ended by 12:30.
    let r = rec.take_reports("o", "c", at(DAY1 + 12 * 3600 + 1800));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1.policies[0].summary.total_success, 1);
    assert_eq!(
        r[0].1.date_range.end_datetime.to_rfc3339(),
        "2026-12-06T11:59:59Z"
    );
    // The rest of that day, then the next day.
    let r = rec.take_reports("o", "c", at(DAY1 + 86400 + 1800));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1.policies[0].summary.total_success, 1);
    assert_eq!(
        r[0].1.date_range.start_datetime.to_rfc3339(),
        "2026-12-06T12:00:00Z"
    );
    assert_eq!(
        r[0].1.date_range.end_datetime.to_rfc3339(),
        "2026-12-06T23:59:59Z"
    );
    let r = rec.take_reports("o", "c", at(DAY1 + 2 * 86400));
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].1.date_range.start_datetime.to_rfc3339(),
        "2026-12-07T00:00:00Z"
    );
}

#[test]
fn tlsrpt_counts_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tlsrpt.json");
    let rec = Recorder::open(path.clone()).expect("open");
    rec.record_at(
        session("a.example", PolicyKind::NoPolicy, None),
        at(DAY1 + 5),
    );
    drop(rec); // written when dropped
    let rec = Recorder::open(path.clone()).expect("reopen");
    rec.record_at(
        session(
            "a.example",
            PolicyKind::NoPolicy,
            Some((ResultType::StartTlsNotSupported, "x")),
        ),
        at(DAY1 + 6),
    );
    rec.flush().expect("flush");
    // Another instance sees what was flushed, while the first lives on.
    let other = Recorder::open(path).expect("reopen");
    let r = other.take_reports("o", "c", at(DAY1 + 86400));
    let s = &r[0].1.policies[0].summary;
    assert_eq!((s.total_success, s.total_failure), (1, 1));
}

#[tokio::test]
async fn tlsrpt_counts_are_written_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tlsrpt.json");
    let rec = Recorder::open(path.clone()).expect("open");
    rec.record_at(
        session("a.example", PolicyKind::NoPolicy, None),
        at(DAY1 + 5),
    );
    // No flush, no drop: the recorder's task writes it.
    let deadline = Instant::now() + SAVE_INTERVAL * 4;
    loop {
        let written = std::fs::read(&path).unwrap_or_default();
        if String::from_utf8_lossy(&written).contains("a.example") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not written within {:?}",
            SAVE_INTERVAL * 4
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let other = Recorder::open(path).expect("reopen");
    let r = other.take_reports("o", "c", at(DAY1 + 86400));
    assert_eq!(r[0].1.policies[0].summary.total_success, 1);
    drop(rec);
}

fn sample_report() -> TlsReport {
    let (_dir, rec) = recorder();
    rec.record_at(
        session(
            "a.example",
            PolicyKind::Sts {
                policy: sts_policy(),
            },
            Some((ResultType::CertificateNotTrusted, "unknown issuer")),
        ),
        at(DAY1 + 5),
    );
    rec.take_reports("Example Org", "postmaster@example.org", at(DAY1 + 86400))
        .pop()
        .expect("a report")
        .1
}

#[test]
fn tlsrpt_report_round_trips_through_json_and_mail() {
    let report = sample_report();
    let json = report.to_json();
    assert!(json.contains("\"policy-type\":\"sts\""), "{json}");
    assert!(
        json.contains("\"result-type\":\"certificate-not-trusted\""),
        "{json}"
    );
    assert_eq!(
        TlsReport::parse_json(json.as_bytes()).expect("parse_json"),
        report
    );
    let mail = report_mail(
        &report,
        "a.example",
        "mx.example.org",
        "noreply@example.org",
        &["tlsrpt@a.example".to_string()],
    )
    .expect("mail");
    let text = String::from_utf8_lossy(&mail);
    for h in [
        "TLS-Report-Domain: a.example",
        "TLS-Report-Submitter: mx.example.org",
        "multipart/report",
        "report-type=\"tlsrpt\"",
        "application/tlsrpt+gzip",
        "tlsrpt@a.example",
    ] {
        assert!(text.contains(h), "{h} missing in\n{text}");
    }
    assert_eq!(
        TlsReport::parse_rfc5322(&mail, 1 << 20).expect("parse_rfc5322"),
        report
    );
}

fn zone(extra: &str) -> String {
    format!("$ORIGIN a.example.\n$TTL 0\nreport IN A 127.0.0.1\n{extra}")
}

#[tokio::test]
async fn tlsrpt_report_addresses_from_the_txt_record() {
    let dns = DnsPeer::start(&zone(
        "_smtp._tls IN TXT \"v=TLSRPTv1; rua=mailto:tls@a.example,https://report.a.example/r\"\n\
         _smtp._tls IN TXT \"v=spf1 -all\"\n",
    ));
    let r = dns.resolver();
    assert_eq!(
        report_addresses(&r, "a.example").await.expect("lookup"),
        vec![
            ReportUri::Mail("tls@a.example".into()),
            ReportUri::Http("https://report.a.example/r".into())
        ]
    );
    dns.set_zone(&zone(
        "_smtp._tls IN TXT \"v=TLSRPTv1; rua=mailto:one@a.example\"\n\
         _smtp._tls IN TXT \"v=TLSRPTv1; rua=mailto:two@a.example\"\n",
    ));
    assert!(report_addresses(&r, "a.example")
        .await
        .expect("lookup")
        .is_empty());
    dns.set_zone(&zone(""));
    assert!(report_addresses(&r, "a.example")
        .await
        .expect("lookup")
        .is_empty());
    dns.set_zone(&zone("_smtp._tls.a.example. SERVFAIL\n"));
    assert!(report_addresses(&r, "a.example").await.is_err());
}

#[tokio::test]
async fn tlsrpt_report_is_posted_gzipped() {
    let dns = DnsPeer::start(&zone(""));
    let ca = TestCa::new("tlsrpt test CA");
    let (cert, key) = ca.issue(&["report.a.example"]);
    let web = HttpsServer::start(&ca, cert, key).await;
    let report = sample_report();
    let url = format!("https://report.a.example:{}/tlsrpt?x=1", web.addr.port());
    post_report(&url, &report, ca.client_config(), &dns.resolver())
        .await
        .expect("posted");
    let served = web.get();
    assert_eq!(served.requests.len(), 1);
    let (method, path, ct, body) = &served.requests[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/tlsrpt"));
    assert_eq!(ct.as_deref(), Some("application/tlsrpt+gzip"));
    let mut json = Vec::new();
    std::io::Read::read_to_end(
        &mut mail_auth::flate2::read::GzDecoder::new(body.as_slice()),
        &mut json,
    )
    .expect("gzip");
    assert_eq!(TlsReport::parse_json(&json).expect("json"), report);

    web.set(|s| s.status = 500);
    let e = post_report(&url, &report, ca.client_config(), &dns.resolver())
        .await
        .expect_err("500 is a failure");
    assert!(e.contains("500"), "{e}");
    let e = post_report(
        "http://report.a.example/",
        &report,
        ca.client_config(),
        &dns.resolver(),
    )
    .await
    .expect_err("not https");
    assert!(e.contains("not https"), "{e}");
}

/// Shared by every delivery: Send + Sync; the POST runs on tokio.
#[allow(dead_code)]
fn recorder_is_sync_and_post_is_send<'a>(
    r: &'a Recorder,
    report: &'a TlsReport,
    resolver: &'a TokioResolver,
) -> impl std::future::Future<Output = Result<(), String>> + Send + 'a {
    fn sync<T: Send + Sync>(_: &T) {}
    sync(r);
    post_report(
        "https://x.example/",
        report,
        TestCa::new("x").client_config(),
        resolver,
    )
}
