//! Helpers of tests/cluster.rs: node configurations, sending round-robin,
//! counting arrivals at the sink, a stand-in fax engine for the line
//! test, AUTH and API probes, and test certificates.

use crate::common::*;
use crate::peers::*;
use crate::{NODES, SINK};
use std::collections::BTreeMap;

/// The `[queue]` lines of node `name` on `pg`.
pub fn queue_lines(pg: &Postgres, name: &str) -> String {
    format!(
        "backend = \"postgres\"\nurl = \"{}\"\nnode = \"{name}\"\nlease_time = \"3s\"\npool_size = 8\n",
        pg.url
    )
}

/// Three nodes on `pg`; `dest.test` is relayed to the sink on `port`, and
/// `customer.test` waits for ETRN (released to the same sink).
pub fn nodes(pg: &Postgres, port: u16) -> Vec<Server> {
    let extra = format!(
        "[relay]\nallow = [\"127.0.0.0/8\"]\n\
         [[domain]]\nname = \"dest.test\"\nkind = \"relay\"\nhosts = [\"{SINK}:{port}\"]\n\
         [[domain]]\nname = \"customer.test\"\nkind = \"etrn\"\nrelease_from = [\"127.0.0.0/8\"]\n\
         hosts = [\"{SINK}:{port}\"]\n"
    );
    NODES
        .iter()
        .enumerate()
        .map(|(i, ip)| Server::start_node(ip, &queue_lines(pg, &format!("n{}", i + 1)), &extra))
        .collect()
}

/// Send one message per subject, the i-th to node i mod 3; each line of
/// the answer is `SUBJECT CODE` (250, or the 4xx/5xx it got, or `conn`
/// when no connection could be made). Never fails.
pub fn send_round_robin(
    nodes: &[Server],
    rcpt: &str,
    subjects: &[String],
) -> Vec<(String, String)> {
    let targets: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}:{}", n.ip, n.mx_port))
        .collect();
    let out = python(
        r#"
import smtplib, sys
targets = sys.argv[1].split(',')
rcpt = sys.argv[2]
for i, subject in enumerate(sys.argv[3:]):
    host, port = targets[i % len(targets)].split(':')
    body = 'From: <sender@outside.test>\r\nSubject: %s\r\n\r\nShared queue.\r\n' % subject
    try:
        s = smtplib.SMTP(host, int(port), timeout=30)
        s.ehlo('client.test')
        s.sendmail('sender@outside.test', [rcpt], body.encode())
        print(subject, 250, flush=True)
        s.quit()
    except smtplib.SMTPResponseException as e:
        print(subject, e.smtp_code, flush=True)
    except smtplib.SMTPRecipientsRefused as e:
        print(subject, list(e.recipients.values())[0][0], flush=True)
    except (OSError, smtplib.SMTPException) as e:
        print(subject, 'conn', flush=True)
"#,
        &[&[targets.join(","), rcpt.to_string()], subjects]
            .concat()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(s, c)| (s.to_string(), c.to_string()))
        .collect()
}

/// How many times each subject arrived at the sink.
pub fn arrivals(sink: &Sink, subjects: &[String]) -> BTreeMap<String, usize> {
    let dumps = sink.dumps();
    subjects
        .iter()
        .map(|s| {
            let needle = format!("Subject: {s}\r\n");
            let alt = format!("Subject: {s}\n");
            let n = dumps
                .iter()
                .filter(|d| d.contains(&needle) || d.contains(&alt))
                .count();
            (s.clone(), n)
        })
        .collect()
}

pub fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}-end")).collect()
}

/// Messages left in the shared queue.
pub fn queued(pg: &Postgres) -> usize {
    pg.psql("SELECT count(*) FROM queue_message")
        .trim()
        .parse()
        .unwrap()
}

/// One message per node after a restart of the database, each sent again
/// until it is taken (the first attempts may meet dead connections).
pub fn subjects_after(nodes: &[Server]) -> Vec<String> {
    let after = numbered("after", nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let one = [after[i].clone()];
        assert!(
            wait_until(30, || send_round_robin(
                std::slice::from_ref(node),
                "rcpt@dest.test",
                &one
            )
            .iter()
            .all(|(_, c)| c == "250")),
            "node {} takes mail again:\n{}",
            i + 1,
            node.log()
        );
    }
    after
}

/// `faxmta queue …` on a node, with its output.
pub fn queue_cmd(node: &Server, args: &[&str]) -> String {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    cli_ok(node, &all)
}

/// A fax engine for the line test: each call lasts 200 ms; the calls of
/// every "node" are counted together.
pub struct TimedCalls {
    pub busy: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub peak: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl faxmta_fax::engine::FaxEngine for TimedCalls {
    fn name(&self) -> &'static str {
        "timed"
    }
    fn lines(&self) -> usize {
        8
    }
    fn lines_busy(&self) -> usize {
        0
    }
    async fn send(&self, _: faxmta_fax::engine::SendRequest) -> faxmta_fax::engine::SendResult {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.busy.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        // The call's length on the line (a stand-in engine, no waiting
        // for a condition).
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.busy.fetch_sub(1, SeqCst);
        faxmta_fax::engine::SendResult::Sent {
            pages: 1,
            duration: std::time::Duration::from_millis(200),
            remote_csid: String::new(),
            bit_rate: 14400,
        }
    }
    async fn receive(&self) -> Option<faxmta_fax::engine::ReceivedFax> {
        None
    }
    async fn acknowledge(&self, _: &faxmta_fax::engine::ReceivedFax) {}
}

/// AUTH PLAIN after STARTTLS on `node`'s submission port: the reply code.
pub fn auth_code(node: &Server, user: &str, password: &str) -> String {
    python(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
s.starttls(context=ctx)
try:
    print(s.login(sys.argv[3], sys.argv[4])[0])
except smtplib.SMTPAuthenticationError as e:
    print(e.smtp_code)
"#,
        &[&node.ip, &node.sub_port.to_string(), user, password],
    )
    .trim()
    .to_string()
}

/// A fax API request with `token` on `node`: the answer.
pub fn api_answer(node: &Server, token: &str) -> String {
    python(
        r#"
import sys, urllib.request, urllib.error
req = urllib.request.Request('http://127.0.0.1:%s/restservice/sendfax' % sys.argv[1], data=b'', method='POST')
req.add_header('XM-Token-Authorization', sys.argv[2])
try:
    print(urllib.request.urlopen(req).read().decode())
except urllib.error.HTTPError as e:
    print(e.read().decode())
"#,
        &[&node.admin_port.to_string(), token],
    )
}

/// A certificate authority and a server certificate for 127.0.0.1 signed
/// by it (openssl, EC keys), in `dir`: `ca.pem`, `server.crt`,
/// `server.key`; and `other-ca.pem`, an authority that signed nothing.
pub fn certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed by scripts/test");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            output_text(&out)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", "/CN=faxmta test CA"];
        args.extend_from_slice(&ec);
        args.extend_from_slice(&["-keyout", &key, "-out", &pem]);
        run(&args);
    }
    let mut args = vec![
        "req",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    args.extend_from_slice(&ec);
    run(&args);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}
