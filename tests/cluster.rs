//! Several faxmta nodes sharing one queue on PostgreSQL (`[queue] backend
//! = "postgres"`): three nodes on 127.0.0.2, .3 and .4 — each its own
//! process, directory, control socket and node name — and one private
//! PostgreSQL (tests/peers/postgres.sh). The destination is Postfix's
//! smtp-sink on 127.0.0.5, which dumps each transaction, so what arrived
//! is counted by subject.
//!
//! Shown here: mail sent round-robin to all three nodes arrives exactly
//! once; a node killed with kill -9 while it holds delivery leases loses
//! nothing (its leases expire and another node delivers; duplicates are
//! counted and printed); PostgreSQL restarted under load gives 4xx
//! answers, never loses an acknowledged message, and service resumes by
//! itself; ETRN and the queue commands on one node act on mail queued
//! through another.

mod common;
#[path = "cluster/nodes.rs"]
mod nodes;
mod peers;

use common::*;
use nodes::*;
use peers::*;

const NODES: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
const SINK: &str = "127.0.0.5";

#[test]
fn mail_sent_round_robin_to_three_nodes_arrives_exactly_once() {
    let pg = Postgres::start();
    let port = free_port_on(&[SINK]);
    let sink = Sink::start(SINK, port, &[]);
    let nodes = nodes(&pg, port);
    let subjects = numbered("rr", 60);
    let answers = send_round_robin(&nodes, "rcpt@dest.test", &subjects);
    assert!(
        answers.iter().all(|(_, code)| code == "250"),
        "every message is taken: {answers:?}"
    );
    assert!(
        wait_until(60, || arrivals(&sink, &subjects).values().all(|n| *n >= 1)),
        "not all arrived: {:?}",
        arrivals(&sink, &subjects)
    );
    assert!(wait_until(20, || queued(&pg) == 0), "the queue empties");
    let counts = arrivals(&sink, &subjects);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "each exactly once: {twice:?}");
    // Every node took a share of the mail (the round robin) and logged
    // deliveries; the queue ids in the log are those of the database.
    for node in &nodes {
        assert!(node.log().contains("status=sent"), "{}", node.log());
    }
}

#[test]
fn a_node_killed_while_delivering_loses_nothing() {
    let pg = Postgres::start();
    let port = free_port_on(&[SINK]);
    // Each transaction waits 2 s before its DATA: deliveries hold leases.
    let sink = Sink::start(SINK, port, &["-w", "2"]);
    let mut nodes = nodes(&pg, port);
    let subjects = numbered("kill", 45);
    let answers = send_round_robin(&nodes, "rcpt@dest.test", &subjects);
    assert!(answers.iter().all(|(_, code)| code == "250"), "{answers:?}");
    // Node 1 holds delivery leases: kill it there and then.
    assert!(
        wait_until(30, || {
            pg
            .psql("SELECT count(*) FROM queue_message WHERE lease_node = 'n1' AND lease_until > now()")
            .trim()
            != "0"
        }),
        "node 1 never leased a message"
    );
    nodes[0].kill9();
    // Its leases expire (3 s) and the other nodes deliver everything.
    assert!(
        wait_until(90, || arrivals(&sink, &subjects).values().all(|n| *n >= 1)),
        "lost after the kill: {:?}",
        arrivals(&sink, &subjects)
            .iter()
            .filter(|(_, n)| **n == 0)
            .collect::<Vec<_>>()
    );
    assert!(wait_until(30, || queued(&pg) == 0), "the queue empties");
    let counts = arrivals(&sink, &subjects);
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 of a node: {} acknowledged, 0 lost, {duplicates} duplicate(s)",
        subjects.len()
    );
    // A duplicate is a message node 1 had handed over when it died: at
    // most one per lease it held.
    assert!(duplicates <= subjects.len(), "{counts:?}");
}

#[test]
fn postgres_restarted_under_load_answers_4xx_and_service_resumes() {
    let pg = Postgres::start();
    let port = free_port_on(&[SINK]);
    let sink = Sink::start(SINK, port, &[]);
    let nodes = nodes(&pg, port);
    let subjects = numbered("pg", 150);
    let (answers, restarted) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| send_round_robin(&nodes, "rcpt@dest.test", &subjects));
        // Restart once mail is flowing.
        assert!(wait_until(30, || !sink.dumps().is_empty()));
        pg.restart();
        (sender.join().unwrap(), true)
    });
    assert!(restarted);
    // Every acknowledged message arrives.
    let acknowledged: Vec<String> = answers
        .iter()
        .filter(|(_, code)| code == "250")
        .map(|(s, _)| s.clone())
        .collect();
    let refused: Vec<&(String, String)> = answers.iter().filter(|(_, c)| c != "250").collect();
    eprintln!(
        "PostgreSQL restarted under load: {} acknowledged, {} refused {:?}",
        acknowledged.len(),
        refused.len(),
        refused
    );
    // Refusals while the database was away are temporary (4xx), or the
    // connection itself failed; never a 5xx.
    assert!(
        refused
            .iter()
            .all(|(_, c)| c.starts_with('4') || c == "conn"),
        "{refused:?}"
    );
    assert!(
        wait_until(60, || arrivals(&sink, &acknowledged)
            .values()
            .all(|n| *n >= 1)),
        "acknowledged and lost: {:?}",
        arrivals(&sink, &acknowledged)
            .iter()
            .filter(|(_, n)| **n == 0)
            .collect::<Vec<_>>()
    );
    // Service resumed by itself: every node takes and delivers new mail.
    let after = subjects_after(&nodes);
    assert!(
        wait_until(30, || arrivals(&sink, &after).values().all(|n| *n >= 1)),
        "{:?}",
        arrivals(&sink, &after)
    );
}

#[test]
fn etrn_and_queue_commands_on_one_node_act_on_mail_queued_through_another() {
    let pg = Postgres::start();
    let port = free_port_on(&[SINK]);
    let sink = Sink::start(SINK, port, &[]);
    let nodes = nodes(&pg, port);
    let held = numbered("etrn", 3);
    let answers = send_round_robin(&nodes[..1], "user@customer.test", &held);
    assert!(answers.iter().all(|(_, c)| c == "250"), "{answers:?}");
    // Node 3 lists what node 1 took.
    let list = queue_json(&nodes[2]);
    let ids: Vec<String> = list
        .iter()
        .filter(|m| m["recipients"][0]["address"] == "user@customer.test")
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 3, "{list:?}");
    // Node 2 deletes one, node 3 holds another.
    assert_contains(&queue_cmd(&nodes[1], &["delete", &ids[0]]), "1 message(s)");
    assert_contains(&queue_cmd(&nodes[2], &["hold", &ids[1]]), "1 message(s)");
    // ETRN on node 2 releases the third (queued on node 1), not the held.
    let etrn = python(
        r#"
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
s.ehlo('customer.test')
print(s.docmd('ETRN', 'customer.test'))
s.quit()
"#,
        &[&nodes[1].ip, &nodes[1].mx_port.to_string()],
    );
    assert!(etrn.contains("(25"), "{etrn}");
    assert!(
        wait_until(30, || arrivals(&sink, &held)[&held[2]] == 1),
        "the ETRN on node 2 released mail queued on node 1: {:?}",
        arrivals(&sink, &held)
    );
    // Node 1 releases the held one; it still waits for ETRN, which
    // `queue flush --domain` on node 3 gives it.
    assert_contains(&queue_cmd(&nodes[0], &["release", &ids[1]]), "1 message(s)");
    assert!(holds_for(std::time::Duration::from_secs(2), || arrivals(
        &sink, &held
    )[&held[1]]
        == 0));
    queue_cmd(&nodes[2], &["flush", "--domain", "customer.test"]);
    assert!(
        wait_until(30, || arrivals(&sink, &held)[&held[1]] == 1),
        "{:?}",
        arrivals(&sink, &held)
    );
    assert_eq!(
        arrivals(&sink, &held)[&held[0]],
        0,
        "the deleted one never went"
    );
    assert!(wait_until(20, || queued(&pg) == 0));
}

#[test]
fn two_nodes_never_dial_more_calls_than_the_sites_lines() {
    use faxmta_fax::engine::{shared::SharedLines, FaxEngine, SendRequest};
    use std::sync::Arc;
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let site_lines = 3;
    let engines: Vec<Arc<SharedLines>> = ["a", "b"]
        .iter()
        .map(|node| {
            let mut settings =
                faxmta_queue::PgSettings::new(&pg.url, &dir.path().join(format!("spool-{node}")));
            settings.node = node.to_string();
            let store = faxmta_queue::Store::open_postgres(&settings).unwrap();
            let inner: Arc<dyn FaxEngine> = Arc::new(TimedCalls {
                busy: busy.clone(),
                peak: peak.clone(),
            });
            Arc::new(SharedLines::new(
                inner,
                store.line_pool().expect("PostgreSQL shares the lines"),
                site_lines,
                std::time::Duration::from_secs(30),
            ))
        })
        .collect();
    let results = rt.block_on(async {
        let calls: Vec<_> = (0..12)
            .map(|i| {
                let engine = engines[i % 2].clone();
                tokio::spawn(async move {
                    engine
                        .send(SendRequest {
                            job_id: format!("job{i}"),
                            dial: "5551234".into(),
                            number: "5551234".into(),
                            document: "unused.tif".into(),
                            first_page: 1,
                            pages: 1,
                            tsi: String::new(),
                            header: None,
                            subaddress: None,
                            extension: None,
                            progress: None,
                        })
                        .await
                })
            })
            .collect();
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.unwrap());
        }
        out
    });
    assert!(results
        .iter()
        .all(|r| matches!(r, faxmta_fax::engine::SendResult::Sent { .. })));
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        peak <= site_lines,
        "{peak} calls at once on {site_lines} lines"
    );
    assert!(peak >= 2, "the lines were used at once: {peak}");
    // Every line was given back.
    assert!(wait_until(10, || pg
        .psql("SELECT count(*) FROM fax_line")
        .trim()
        == "0"));
}

#[test]
fn faxes_sent_through_any_node_are_in_every_nodes_fax_history() {
    let pg = Postgres::start();
    let work = tempfile::tempdir().unwrap();
    let nodes: Vec<Server> = NODES
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let w = work.path().join(format!("n{}", i + 1));
            let w = w.display();
            let extra = format!(
                "[relay]\nallow = [\"127.0.0.0/8\"]\n\
                 [[domain]]\nname = \"fax.localhost\"\nkind = \"fax\"\n\
                 [fax]\nlines = 2\nretries = 1\nspool = \"{w}/spool\"\n\
                 [fax.simulated]\nreceived = \"{w}/remote\"\ninbound = \"{w}/inbound\"\n\
                 [[fax.user]]\naddress = \"alice@example.test\"\n"
            );
            Server::start_node(ip, &queue_lines(&pg, &format!("n{}", i + 1)), &extra)
        })
        .collect();
    // One fax through each node, each to its own number.
    let numbers = ["+15550001001", "+15550001002", "+15550001003"];
    for (node, number) in nodes.iter().zip(numbers) {
        let out = python(
            r#"
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
body = 'From: <alice@example.test>\r\nSubject: fax\r\n\r\nOne page for %s.\r\n' % sys.argv[3]
s.sendmail('alice@example.test', [sys.argv[3] + '@fax.localhost'], body.encode())
print('ok')
"#,
            &[&node.ip, &node.mx_port.to_string(), number],
        );
        assert_contains(&out, "ok");
    }
    // Node 3's `fax status` knows all three, whichever node dialled.
    assert!(
        wait_until(60, || {
            let status = cli_ok(&nodes[2], &["fax", "status"]);
            numbers
                .iter()
                .all(|n| status.lines().any(|l| l.contains(n) && l.contains("sent")))
        }),
        "{}",
        cli_ok(&nodes[2], &["fax", "status"])
    );
    // The site's lines are all given back.
    assert!(wait_until(10, || pg
        .psql("SELECT count(*) FROM fax_line")
        .trim()
        == "0"));
    // Each fax left a usage row and its document in the database (so
    // every node's portal shows them), whichever node dialled.
    let usage = pg.psql("SELECT usr, direction FROM fax_usage ORDER BY at");
    assert_eq!(
        usage
            .lines()
            .filter(|l| l.contains("alice@example.test|sent"))
            .count(),
        3,
        "{usage}"
    );
    let documents = pg.psql(
        "SELECT count(*) FROM fax_document \
         WHERE key LIKE 'sent/%@fax.localhost' AND substr(data, 1, 2) IN ('\\x4949'::bytea, '\\x4d4d'::bytea)",
    );
    assert_eq!(documents.trim(), "3");
}

#[test]
fn users_and_tokens_in_the_database_are_the_same_on_every_node() {
    let pg = Postgres::start();
    let nodes: Vec<Server> = NODES[..2]
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            Server::start_node(
                ip,
                &queue_lines(&pg, &format!("n{}", i + 1)),
                "[accounts]\nbackend = \"database\"\n",
            )
        })
        .collect();
    // A user added through node 1 logs in on node 2.
    let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_faxmta"));
    add.args(["user", "add", "bob@example.test", "--config"])
        .arg(nodes[0].config());
    let out = user_cli(&mut add, "s3cret\n");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_contains(&cli_ok(&nodes[1], &["user", "list"]), "bob@example.test");
    assert_eq!(auth_code(&nodes[1], "bob@example.test", "s3cret"), "235");
    assert_eq!(auth_code(&nodes[1], "bob@example.test", "wrong"), "535");
    // A token made on node 2 is good on node 1; deleted there, on neither.
    let token = cli_ok(&nodes[1], &["token", "add", "scanner"])
        .trim()
        .to_string();
    assert!(token.starts_with("fxt_"), "{token}");
    let bad = api_answer(&nodes[0], "fxt_0000");
    assert_contains(&bad, "the token is not valid");
    let good = api_answer(&nodes[0], &token);
    assert!(!good.contains("the token is not valid"), "{good}");
    cli_ok(&nodes[0], &["token", "del", "scanner"]);
    assert_contains(&api_answer(&nodes[1], &token), "the token is not valid");
    // Deleted on node 2, bob is gone on node 1 too.
    cli_ok(&nodes[1], &["user", "del", "bob@example.test"]);
    assert_eq!(auth_code(&nodes[0], "bob@example.test", "s3cret"), "535");
}

#[test]
fn queue_migrate_creates_the_schema_once_and_a_node_refuses_a_newer_one() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faxmta.toml");
    std::fs::write(
        &config,
        format!(
            "[queue]\npath = \"{}/queue\"\n{}[dns]\nnameservers = [\"127.0.0.1:9\"]\n",
            dir.path().display(),
            queue_lines(&pg, "n1")
        ),
    )
    .unwrap();
    let migrate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_faxmta"))
            .args(["queue", "migrate", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let first = migrate();
    assert!(first.status.success(), "{}", output_text(&first));
    assert_contains(&output_text(&first), "applied now");
    let again = migrate();
    assert!(again.status.success(), "{}", output_text(&again));
    assert_contains(&output_text(&again), "present");
    assert!(!output_text(&again).contains("applied now"));
    assert_eq!(pg.psql("SELECT count(*) FROM faxmta_schema").trim(), "2");
    // A schema from a newer faxmta: refused, and said so.
    pg.psql("INSERT INTO faxmta_schema (version, name) VALUES (99, 'from the future')");
    let refused = migrate();
    assert!(!refused.status.success());
    assert_contains(&output_text(&refused), "made by a newer faxmta");
}

#[test]
fn with_a_ca_the_nodes_talk_to_the_database_over_verified_tls() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let pg = Postgres::start_tls(certs.path());
    let c = certs.path().display();
    let lines = |ca: &str| {
        format!(
            "backend = \"postgres\"\nurl = \"{}?sslmode=require\"\nnode = \"n1\"\ntls_ca = \"{c}/{ca}\"\n",
            pg.url
        )
    };
    let node = Server::start_node(NODES[0], &lines("ca.pem"), "");
    let subjects = numbered("tls", 2);
    let answers = send_round_robin(std::slice::from_ref(&node), "bob@example.test", &subjects);
    assert!(answers.iter().all(|(_, c)| c == "250"), "{answers:?}");
    node.wait_mail_with("example.test", "bob", &[&subjects[1]], 20);
    // Every connection of faxmta's is encrypted.
    let plain = pg.psql(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name LIKE 'faxmta%' AND NOT s.ssl",
    );
    let tls = pg.psql(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name LIKE 'faxmta%' AND s.ssl",
    );
    assert_eq!(plain.trim(), "0");
    assert_ne!(tls.trim(), "0");
    // A certificate from an authority the node does not trust: no start.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faxmta.toml");
    std::fs::write(
        &config,
        format!(
            "[queue]\npath = \"{}/q\"\n{}",
            dir.path().display(),
            lines("other-ca.pem")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faxmta"))
        .args(["queue", "summary", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_contains(&output_text(&out).to_lowercase(), "certificate");
}
