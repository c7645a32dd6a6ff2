//! [`Sts`] against tests/peers/dns.py and an HTTPS server with a test CA:
//! the fetch rules of RFC 8461 §3.3 and the cache rules of §5.

use super::testutil::{DnsPeer, HttpsServer, TestCa};
use super::*;

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n";

fn zone(txt: &[&str]) -> String {
    let mut z = String::from("$ORIGIN example.test.\n$TTL 0\nmta-sts IN A 127.0.0.1\n");
    for t in txt {
        z.push_str(&format!("_mta-sts IN TXT \"{t}\"\n"));
    }
    z
}

struct Fixture {
    dns: DnsPeer,
    web: HttpsServer,
    ca: TestCa,
    _dir: tempfile::TempDir,
    cache: PathBuf,
}

impl Fixture {
    async fn new(txt: &[&str]) -> Fixture {
        let dns = DnsPeer::start(&zone(txt));
        let ca = TestCa::new("sts test CA");
        let (cert, key) = ca.issue(&["mta-sts.example.test"]);
        let web = HttpsServer::start(&ca, cert, key).await;
        web.set(|s| s.body = POLICY.into());
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("sts.json");
        Fixture {
            dns,
            web,
            ca,
            _dir: dir,
            cache,
        }
    }

    fn sts(&self) -> Sts {
        Sts::new(
            self.dns.resolver(),
            self.ca.client_config(),
            self.web.addr.port(),
            Some(self.cache.clone()),
        )
        .with_timeout(Duration::from_secs(10))
    }
}

fn policy(l: Lookup) -> Arc<Policy> {
    match l {
        Lookup::Policy(p) => p,
        other => panic!("expected a policy, got {other:?}"),
    }
}

fn failed(l: Lookup) -> (String, ResultType) {
    match l {
        Lookup::Failed {
            reason,
            result_type,
        } => (reason, result_type),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn sts_fetches_once_and_caches_for_the_same_id() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    let sts = f.sts();
    let p = policy(sts.policy("Example.Test.").await);
    assert_eq!(p.id, "one");
    assert_eq!(p.mode, Mode::Enforce);
    assert!(p.matches("mx.example.test"));
    let served = f.web.get();
    assert_eq!(served.hits, 1);
    assert_eq!(served.requests[0].0, "GET");
    assert_eq!(served.requests[0].1, "/.well-known/mta-sts.txt");
    let again = policy(sts.policy("example.test").await);
    assert!(Arc::ptr_eq(&p, &again), "the cached policy");
    assert_eq!(f.web.get().hits, 1, "same id: no second fetch");
}

#[tokio::test]
async fn sts_lookups_at_the_same_time_share_one_fetch() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    let sts = f.sts();
    let d = "example.test";
    let (a, b, c, e) = tokio::join!(sts.policy(d), sts.policy(d), sts.policy(d), sts.policy(d));
    for l in [a, b, c, e] {
        assert_eq!(policy(l).id, "one");
    }
    assert_eq!(f.web.get().hits, 1);
    assert!(
        sts.gates.lock().expect("lock").is_empty(),
        "gates cleaned up"
    );
}

#[tokio::test]
async fn sts_new_id_fetches_the_new_policy() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    let sts = f.sts();
    assert_eq!(policy(sts.policy("example.test").await).mode, Mode::Enforce);
    f.web
        .set(|s| s.body = POLICY.replace("enforce", "testing").into_bytes());
    f.dns.set_zone(&zone(&["v=STSv1; id=two;"]));
    let p = policy(sts.policy("example.test").await);
    assert_eq!((p.id.as_str(), p.mode), ("two", Mode::Testing));
    assert_eq!(f.web.get().hits, 2);
}

#[tokio::test]
async fn sts_cached_policy_outlives_the_txt_record_until_max_age() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    let sts = f.sts();
    policy(sts.policy("example.test").await);
    f.dns.set_zone(&zone(&[]));
    assert_eq!(policy(sts.policy("example.test").await).id, "one");
    sts.advance(86400 - 10);
    assert_eq!(policy(sts.policy("example.test").await).id, "one");
    assert_eq!(sts.cached_domains(), vec!["example.test"]);
    sts.advance(10);
    assert!(matches!(sts.policy("example.test").await, Lookup::None));
    assert!(sts.cached_domains().is_empty());
    assert_eq!(f.web.get().hits, 1);
}

#[tokio::test]
async fn sts_failed_fetch_keeps_the_cached_policy() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    let sts = f.sts();
    policy(sts.policy("example.test").await);
    f.web.set(|s| s.status = 500);
    f.dns.set_zone(&zone(&["v=STSv1; id=two;"]));
    assert_eq!(policy(sts.policy("example.test").await).id, "one");
    // An invalid new policy does not replace it either.
    let sts = f.sts().with_retry_after_failure(Duration::ZERO);
    f.web.set(|s| {
        s.status = 200;
        s.body = b"version: STSv1\nmode: bogus\n".to_vec();
    });
    assert_eq!(policy(sts.policy("example.test").await).id, "one");
    assert_eq!(f.web.get().hits, 3);
}

#[tokio::test]
async fn sts_same_id_is_refetched_after_half_max_age() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    let sts = f.sts();
    policy(sts.policy("example.test").await);
    sts.advance(43200 - 5);
    policy(sts.policy("example.test").await);
    assert_eq!(f.web.get().hits, 1);
    sts.advance(5);
    f.web
        .set(|s| s.body = POLICY.replace("86400", "100000").into_bytes());
    assert_eq!(policy(sts.policy("example.test").await).max_age, 100000);
    assert_eq!(f.web.get().hits, 2);
}

#[tokio::test]
async fn sts_cache_file_survives_a_restart() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    policy(f.sts().policy("example.test").await);
    // After a restart an attacker strips the TXT record and the policy
    // host: the policy stays in force.
    f.dns.set_zone(&zone(&[]));
    f.web.set(|s| s.status = 404);
    let p = policy(f.sts().policy("example.test").await);
    assert_eq!((p.id.as_str(), p.mode), ("one", Mode::Enforce));
    assert_eq!(f.web.get().hits, 1);
}

#[tokio::test]
async fn sts_read_only_reads_the_cache_file_and_never_writes_it() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    policy(f.sts().policy("example.test").await);
    let written = std::fs::read(&f.cache).expect("cache file");
    // With the policy host gone, a read-only instance (`faxmta route`)
    // has the policy from the file.
    f.web.set(|s| s.status = 404);
    let p = policy(f.sts().read_only().policy("example.test").await);
    assert_eq!(p.id, "one");
    // A policy it fetches is not written to the file.
    f.web.set(|s| s.status = 200);
    f.dns.set_zone(&zone(&["v=STSv1; id=two;"]));
    let p = policy(f.sts().read_only().policy("example.test").await);
    assert_eq!(p.id, "two");
    assert_eq!(std::fs::read(&f.cache).expect("cache file"), written);
}

#[tokio::test]
async fn sts_no_or_unusable_txt_record_is_no_policy() {
    for txt in [
        &[][..],
        &["v=spf1 -all"][..],
        &["v=STSv1; id=one;", "v=STSv1; id=two;"][..],
        &["v=STSv1; id=has-a-dash;"][..],
        &["v=STSv1;"][..],
        &["id=one; v=STSv1;"][..],
    ] {
        let f = Fixture::new(txt).await;
        let l = f.sts().policy("example.test").await;
        assert!(matches!(l, Lookup::None), "{txt:?}: {l:?}");
        assert_eq!(f.web.get().hits, 0, "{txt:?}");
    }
    // An unrelated TXT record beside the STS one is ignored.
    let f = Fixture::new(&["hello", "v=STSv1 ; id=A1b2;"]).await;
    assert_eq!(policy(f.sts().policy("example.test").await).id, "A1b2");
}

#[tokio::test]
async fn sts_fetch_failures_have_their_tlsrpt_result_type() {
    type Setup = fn(&mut super::testutil::Served);
    let cases: [(Setup, ResultType, &str); 6] = [
        (|s| s.status = 404, ResultType::StsPolicyFetchError, "404"),
        (
            |s| {
                s.status = 301;
                s.location = Some("https://mta-sts.example.test/other.txt".into());
            },
            ResultType::StsPolicyFetchError,
            "301",
        ),
        (
            |s| s.content_type = Some("text/html".into()),
            ResultType::StsPolicyInvalid,
            "text/html",
        ),
        (
            |s| s.content_type = None,
            ResultType::StsPolicyInvalid,
            "not text/plain",
        ),
        (
            |s| s.body = b"<html>policy</html>".to_vec(),
            ResultType::StsPolicyInvalid,
            "key",
        ),
        (
            |s| s.body = vec![b'#'; MAX_POLICY_SIZE + 1],
            ResultType::StsPolicyFetchError,
            "larger than",
        ),
    ];
    for (setup, want, text) in cases {
        let f = Fixture::new(&["v=STSv1; id=one;"]).await;
        f.web.set(setup);
        let (reason, got) = failed(f.sts().policy("example.test").await);
        assert_eq!(got, want, "{reason}");
        assert!(reason.contains(text), "{reason} (expected {text})");
        assert_eq!(f.web.get().hits, 1, "no redirect followed: {reason}");
    }
    // A parameter on text/plain is fine.
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    f.web
        .set(|s| s.content_type = Some("Text/Plain; charset=utf-8".into()));
    policy(f.sts().policy("example.test").await);
}

#[tokio::test]
async fn sts_certificate_must_be_for_the_policy_host() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    // The right name from a CA we do not trust.
    let other_ca = TestCa::new("other CA");
    let (cert, key) = other_ca.issue(&["mta-sts.example.test"]);
    let untrusted = HttpsServer::start(&other_ca, cert, key).await;
    // A trusted CA, the wrong name.
    let (cert, key) = f.ca.issue(&["mx.example.test"]);
    let wrong_name = HttpsServer::start(&f.ca, cert, key).await;
    for server in [&untrusted, &wrong_name] {
        server.set(|s| s.body = POLICY.into());
        let sts = Sts::new(
            f.dns.resolver(),
            f.ca.client_config(),
            server.addr.port(),
            None,
        );
        let (reason, t) = failed(sts.policy("example.test").await);
        assert_eq!(t, ResultType::StsWebpkiInvalid, "{reason}");
        assert_eq!(server.get().hits, 0);
    }
}

#[tokio::test]
async fn sts_failed_fetch_is_not_retried_for_the_same_id_at_once() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    f.web.set(|s| s.status = 503);
    let sts = f.sts();
    failed(sts.policy("example.test").await);
    f.web.set(|s| s.status = 200);
    let (reason, _) = failed(sts.policy("example.test").await);
    assert!(reason.contains("503"), "{reason}");
    assert_eq!(f.web.get().hits, 1);
    // A new id is fetched at once; so is the old one after the pause.
    f.dns.set_zone(&zone(&["v=STSv1; id=two;"]));
    assert_eq!(policy(sts.policy("example.test").await).id, "two");
    assert_eq!(f.web.get().hits, 2);
    let sts = f.sts();
    f.web.set(|s| s.status = 503);
    f.dns.set_zone(&zone(&["v=STSv1; id=three;"]));
    assert_eq!(policy(sts.policy("example.test").await).id, "two");
    f.web.set(|s| s.status = 200);
    sts.advance(RETRY_AFTER_FAILURE.as_secs());
    assert_eq!(policy(sts.policy("example.test").await).id, "three");
}

#[tokio::test]
async fn sts_fetch_has_a_deadline() {
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    // Takes the connection, never speaks TLS.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sts = Sts::new(
        f.dns.resolver(),
        f.ca.client_config(),
        silent.local_addr().expect("addr").port(),
        None,
    )
    .with_timeout(Duration::from_millis(500));
    let (reason, t) = failed(sts.policy("example.test").await);
    assert_eq!(t, ResultType::StsPolicyFetchError);
    assert!(reason.contains("within"), "{reason}");
}

/// tests/peers/https_policy.py (the integration tests' policy host) serves
/// a policy this client takes, and a refused Content-Type it does not.
#[tokio::test]
async fn sts_fetches_from_the_https_policy_peer() {
    use std::io::{BufRead, BufReader};
    let f = Fixture::new(&["v=STSv1; id=one;"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = f.ca.issue_pem(&["mta-sts.example.test"]);
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let (cert, key, body) = (file("c.pem", &cert), file("k.pem", &key), file("p", POLICY));
    for (ctype, ok) in [
        ("text/plain; charset=utf-8", true),
        ("application/octet-stream", false),
    ] {
        let mut child = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/peers/https_policy.py"
            ))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--policy")
            .arg(&body)
            .args(["--content-type", ctype])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("https_policy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let port: u16 = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("https_policy.py said {line:?}"));
        let sts = Sts::new(f.dns.resolver(), f.ca.client_config(), port, None);
        let l = sts.policy("example.test").await;
        drop(child.stdin.take());
        let _ = child.wait();
        if ok {
            assert_eq!(policy(l).mx, vec!["mx.example.test"]);
        } else {
            assert_eq!(failed(l).1, ResultType::StsPolicyInvalid);
        }
    }
}

/// The lead spawns lookups on tokio: the future must be Send, `Sts` shared.
#[allow(dead_code)]
fn lookup_future_is_send_and_sts_is_sync(
    s: &Sts,
) -> impl std::future::Future<Output = Lookup> + Send + '_ {
    fn sync<T: Send + Sync>(_: &T) {}
    sync(s);
    s.policy("example.test")
}
