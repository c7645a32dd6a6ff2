//! /metrics after outbound deliveries, parsed with Python's
//! prometheus_client.

use crate::common::*;
use crate::peers::*;
use crate::support::*;
use serde_json::Value;

/// `GET /metrics`, parsed by prometheus_client's parser of the text
/// format: `types` maps each family to its type, `samples` lists every
/// sample as `{name, labels, value}`.
pub fn scrape(server: &Server) -> Value {
    let text = server.http_get("/metrics");
    let file = server.path("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let json = python(
        r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {'types': {}, 'samples': []}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    out['types'][family.name] = family.type
    for s in family.samples:
        out['samples'].append({'name': s.name, 'labels': s.labels, 'value': s.value})
print(json.dumps(out))
"#,
        &[file.to_str().unwrap()],
    );
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// The samples named `name` whose labels include `labels`.
pub fn samples<'a>(m: &'a Value, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Value> {
    m["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .collect()
}

/// The one sample named `name` with exactly `labels`, if any.
pub fn sample(m: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = samples(m, name, labels);
    let exact: Vec<&&Value> = found
        .iter()
        .filter(|s| s["labels"].as_object().unwrap().len() == labels.len())
        .collect();
    assert!(exact.len() <= 1, "{name} {labels:?} twice in {m}");
    exact.first().map(|s| s["value"].as_f64().unwrap())
}

/// The sum of the samples named `name` whose labels include `labels`.
pub fn total(m: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(m, name, labels)
        .iter()
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

#[test]
fn metrics_count_what_happened() {
    // One message delivered here, one relayed over STARTTLS to Postfix.
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "metrics.test. MX 10 mx.metrics.test.",
        "mx.metrics.test. A 127.0.0.2",
    ]));
    let pf = Postfix::start("127.0.0.2", port, "metrics.test", &["carol"], "");
    let s = faxmta(&dns, Some(port), "");

    let before = scrape(&s);
    assert_eq!(total(&before, "faxmta_messages_received_total", &[]), 0.0);
    assert_eq!(total(&before, "faxmta_deliveries_total", &[]), 0.0);

    let local = send(&s, ALICE, "bob@example.test", &message("metrics-local"));
    let remote = send(&s, ALICE, "carol@metrics.test", &message("metrics-remote"));
    wait_status(&s, &local, "bob@example.test", "sent", 10);
    wait_status(&s, &remote, "carol@metrics.test", "sent", 15);
    assert_eq!(pf.wait_maildir("carol", 1, 15).len(), 1, "{}", pf.log());
    assert_eq!(s.wait_maildir("example.test", "bob", 1, 10).len(), 1);
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    assert_contains(&s.log(), "TLS connection established to mx.metrics.test");

    // Sessions and deliveries end a little after their log lines: poll.
    let settled = |m: &Value| {
        sample(m, "faxmta_smtp_sessions_active", &[]) == Some(0.0)
            && total(m, "faxmta_deliveries_active", &[]) == 0.0
            && total(m, "faxmta_deliveries_total", &[]) == 2.0
    };
    let mut m = scrape(&s);
    assert!(
        wait_until(10, || {
            m = scrape(&s);
            settled(&m)
        }),
        "{m}"
    );

    let types = &m["types"];
    for (family, kind) in [
        ("faxmta_messages_received", "counter"),
        ("faxmta_deliveries", "counter"),
        ("faxmta_delivery_delay_seconds", "histogram"),
        ("faxmta_smtp_sessions_active", "gauge"),
        ("faxmta_deliveries_active", "gauge"),
        ("faxmta_tls", "counter"),
        ("faxmta_queue_messages", "gauge"),
    ] {
        assert_eq!(types[family], kind, "{family}: {types}");
    }

    // Both arrived on the MX listener; the reports we make are not counted
    // (and none was made).
    let received = "faxmta_messages_received_total";
    assert_eq!(sample(&m, received, &[("source", "mx")]), Some(2.0), "{m}");
    assert_eq!(total(&m, received, &[]), 2.0, "{m}");

    let deliveries = "faxmta_deliveries_total";
    for transport in ["local", "smtp"] {
        let sent = [("transport", transport), ("status", "sent")];
        assert_eq!(sample(&m, deliveries, &sent), Some(1.0), "{m}");
        let t = [("transport", transport)];
        assert_eq!(total(&m, deliveries, &t), 1.0, "only sent: {m}");
        let count = "faxmta_delivery_delay_seconds_count";
        assert_eq!(sample(&m, count, &t), Some(1.0), "{m}");
        let inf = [("transport", transport), ("le", "+Inf")];
        let buckets = "faxmta_delivery_delay_seconds_bucket";
        assert_eq!(sample(&m, buckets, &inf), Some(1.0), "{m}");
        let sum = sample(&m, "faxmta_delivery_delay_seconds_sum", &t).unwrap();
        assert!((0.0..60.0).contains(&sum), "{m}");
    }

    // The relayed message went over TLS (Postfix offers STARTTLS).
    let tls = samples(&m, "faxmta_tls_total", &[("direction", "out")]);
    assert_eq!(tls.len(), 1, "{m}");
    let version = tls[0]["labels"]["version"].as_str().unwrap();
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "{m}");
    assert_eq!(tls[0]["value"], 1.0, "{m}");

    // The queue gauges: every state, all empty now.
    for state in ["due", "deferred", "held"] {
        let n = sample(&m, "faxmta_queue_messages", &[("state", state)]);
        assert_eq!(n, Some(0.0), "{state}: {m}");
    }
}
