//! Reload without restart (`faxmta reload` and SIGHUP), with the real
//! binary: a domain's kind, a listener's allow list and a new listener, a
//! fax rule and the TLS certificate change on a running server; a
//! session open across the reload finishes on its old settings; a
//! configuration with an error is refused with its file:line and the
//! running one stays; queued mail is untouched; SIGHUP no longer ends
//! the server.

mod common;
use common::*;
use std::process::Command;

/// Apply `(from, to)` text replacements to the running server's
/// configuration file (each `from` must occur).
fn edit(server: &Server, edits: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(server.config()).unwrap();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "{from} not in the configuration:\n{text}"
        );
        text = text.replace(from, to);
    }
    std::fs::write(server.config(), text).unwrap();
}

/// `faxmta reload`, which must succeed; its output.
fn reload(server: &Server) -> String {
    let out = server.cli(&["reload"]);
    assert!(
        out.status.success(),
        "faxmta reload failed:\n{}\n{}",
        output_text(&out),
        server.log()
    );
    output_text(&out)
}

/// How many reloads took effect so far, by the server's log.
fn reloads(server: &Server) -> usize {
    let done = format!("reloaded {}:", server.config().display());
    server.log().lines().filter(|l| l.contains(&done)).count()
}

/// SIGHUP, and wait for the reload it starts to take effect.
fn sighup(server: &mut Server) {
    let before = reloads(server);
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        wait_until(20, || reloads(server) > before),
        "no reload after SIGHUP:\n{}",
        server.log()
    );
    assert!(
        server.running(),
        "SIGHUP ended the server:\n{}",
        server.log()
    );
}

/// One message to `rcpt` on a new MX connection; its queue id.
fn mail(server: &Server, rcpt: &str, subject: &str) -> String {
    send(
        server,
        "sender@client.test",
        rcpt,
        &format!("Subject: {subject}\r\n\r\nbody\r\n"),
    )
}

const SHOP_LOCAL: &str = "name = \"shop.test\"\nkind = \"local\"";
const SHOP_RELAY: &str = "name = \"shop.test\"\nkind = \"relay\"\nhosts = [\"127.0.0.1:9\"]";

#[test]
fn a_domains_kind_changes_by_sighup_and_queued_mail_stays() {
    let mut server = Server::start_with("", "");
    // The directory is known once the server exists: write the domain in
    // and reload (a reload that adds a domain, too).
    let dir = server.dir.path().display().to_string();
    let shop_local = format!("{SHOP_LOCAL}\ndeliver = \"maildir:{dir}/mail/{{domain}}/{{user}}\"");
    let mut text = std::fs::read_to_string(server.config()).unwrap();
    text.push_str(&format!("[[domain]]\n{shop_local}\n"));
    std::fs::write(server.config(), text).unwrap();
    sighup(&mut server);

    // Local: delivered to the Maildir.
    mail(&server, "carol@shop.test", "while local");
    assert_eq!(server.wait_maildir("shop.test", "carol", 1, 20).len(), 1);
    // A message that waits in the queue across the reload: on hold.
    std::fs::write(server.path("mail/shop.test/dave"), "not a Maildir").unwrap();
    let held = mail(&server, "dave@shop.test", "held across the reload");
    wait_status(&server, &held, "dave@shop.test", "deferred", 20);
    cli_ok(&server, &["queue", "hold", &held]);
    let before = find_queued(&server, &held).expect("held message queued");

    // Relay to a host where nothing listens: deferred there.
    // (deliver is for local domains only: the whole entry changes.)
    edit(&server, &[(shop_local.as_str(), SHOP_RELAY)]);
    sighup(&mut server);
    let id = mail(&server, "carol@shop.test", "while relayed");
    let line = wait_status(&server, &id, "carol@shop.test", "deferred", 20);
    assert_contains(&line, "127.0.0.1");
    assert_eq!(
        subject_counts(&server, "shop.test", "carol").get("while relayed"),
        None
    );
    // The queue is untouched: the held message is there as it was.
    let after = find_queued(&server, &held).expect("held message still queued");
    assert_eq!(before, after);
    assert!(server.stop(), "{}", server.log());
}

#[test]
fn a_listeners_allow_list_changes_and_listeners_come_and_go() {
    let extra_port = free_port();
    let new_port = free_port();
    let extra = format!(
        "[[listener]]\naddr = \"127.0.0.1:{extra_port}\"\nrole = \"mx\"\nallow = [\"127.0.0.2/32\"]\n"
    );
    // Listeners are one array: the extra one goes before [smtp].
    let mut server = Server::start_with("", "");
    let mut text = std::fs::read_to_string(server.config()).unwrap();
    text = text.replacen("[smtp]\n", &format!("{extra}[smtp]\n"), 1);
    std::fs::write(server.config(), text).unwrap();
    reload(&server);
    let greeting = |port: u16| {
        python(
            r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
print(s.recv(512).decode().strip())
"#,
            &[&port.to_string()],
        )
    };
    let refused = greeting(extra_port);
    assert!(refused.starts_with("554 5.7.1"), "{refused}");

    // Everyone may connect now; and a listener is added.
    edit(
        &server,
        &[(
            "allow = [\"127.0.0.2/32\"]\n",
            &format!("allow = [\"127.0.0.1/32\"]\n[[listener]]\naddr = \"127.0.0.1:{new_port}\"\nrole = \"mx\"\n"),
        )],
    );
    reload(&server);
    assert!(greeting(extra_port).starts_with("220 "), "{}", server.log());
    assert!(greeting(new_port).starts_with("220 "), "{}", server.log());

    // Removed again: it no longer accepts.
    edit(
        &server,
        &[(
            &format!("[[listener]]\naddr = \"127.0.0.1:{new_port}\"\nrole = \"mx\"\n"),
            "",
        )],
    );
    reload(&server);
    assert!(
        wait_until(10, || std::net::TcpStream::connect(("127.0.0.1", new_port))
            .is_err()),
        "the removed listener still accepts"
    );
    assert!(greeting(extra_port).starts_with("220 "));
    assert!(server.stop(), "{}", server.log());
}

#[test]
fn a_session_open_across_a_reload_finishes_on_its_settings() {
    let mut server = Server::start_with("max_message_size = \"100000\"\n", "");
    let mut old = server.connect();
    let ehlo = old.cmd("EHLO old.test");
    assert_contains(&ehlo, "SIZE 100000");
    edit(
        &server,
        &[(
            "max_message_size = \"100000\"\n",
            "max_message_size = \"2000\"\n",
        )],
    );
    sighup(&mut server);
    // A new session sees the new limit...
    let mut new = server.connect();
    assert_contains(&new.cmd("EHLO new.test"), "SIZE 2000");
    assert!(new
        .cmd("MAIL FROM:<a@client.test> SIZE=5000")
        .starts_with("552"));
    new.cmd("QUIT");
    // ...the old one still has its own, and its 5000-octet message goes.
    let big = format!(
        "Subject: big\r\n\r\n{}",
        format!("{}\r\n", "x".repeat(70)).repeat(80)
    );
    assert!(old.cmd("MAIL FROM:<a@client.test>").starts_with("250"));
    assert!(old.cmd("RCPT TO:<alice@example.test>").starts_with("250"));
    assert!(old.cmd("DATA").starts_with("354"));
    old.send(big.as_bytes());
    old.send(b".\r\n");
    let id = queued_id(&old.reply());
    old.cmd("QUIT");
    wait_status(&server, &id, "alice@example.test", "sent", 20);
    assert!(server.stop(), "{}", server.log());
}

const FAX: &str = r#"
[[domain]]
name = "fax.test"
kind = "fax"
[fax]
# The client is not trusted: the directory and the rules decide.
senders = "any"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
outside_line = "9"
[[fax.rule]]
name = "premium-rate"
match = ["+1900"]
action = "deny"
[[fax.user]]
address = "alice@example.test"
"#;

#[test]
fn a_fax_rule_added_by_reload_refuses_at_rcpt() {
    let server = Server::start_with("", FAX);
    let rcpt = |to: &str| {
        python(
            r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.ehlo('client.test')
s.mail('alice@example.test')
code, msg = s.rcpt(sys.argv[2])
print(code, msg.decode())
s.rset()
s.quit()
"#,
            &[&server.mx_port.to_string(), to],
        )
    };
    assert!(
        rcpt("+15551234567@fax.test").starts_with("250"),
        "{}",
        server.log()
    );
    edit(
        &server,
        &[(
            "match = [\"+1900\"]",
            "match = [\"+1900\"]\naction = \"deny\"\n[[fax.rule]]\nname = \"no-area-555\"\nmatch = [\"+1555\"]",
        )],
    );
    reload(&server);
    let refused = rcpt("+15551234567@fax.test");
    assert!(refused.starts_with("5"), "{refused}");
    assert_contains(&refused, "no-area-555");
}

/// A self-signed certificate for `name` in `dir`: (cert path, key path).
fn certificate(dir: &std::path::Path, name: &str) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    (cert.display().to_string(), key.display().to_string())
}

/// The common name of the certificate the MX listener shows after
/// STARTTLS.
fn presented_name(server: &Server) -> String {
    python(
        r#"
import smtplib, ssl, sys, subprocess
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
pem = ssl.DER_cert_to_PEM_cert(s.sock.getpeercert(binary_form=True))
s.quit()
out = subprocess.run(['openssl', 'x509', '-noout', '-subject', '-nameopt', 'multiline'],
                     input=pem.encode(), capture_output=True, check=True).stdout.decode()
print([l.split('=', 1)[1].strip() for l in out.splitlines() if 'commonName' in l][0])
"#,
        &[&server.mx_port.to_string()],
    )
    .trim()
    .to_string()
}

#[test]
fn a_new_certificate_is_shown_after_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (cert1, key1) = certificate(dir.path(), "one.test");
    let (cert2, key2) = certificate(dir.path(), "two.test");
    let mut server = Server::start();
    // The [tls] table of the base names a generated pair: point it at ours.
    let tls = |cert: &str, key: &str| format!("[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n");
    let text = std::fs::read_to_string(server.config()).unwrap();
    let generated = text
        .lines()
        .find(|l| l.starts_with("generated_dir"))
        .unwrap()
        .to_string();
    edit(
        &server,
        &[(&format!("[tls]\n{generated}\n"), &tls(&cert1, &key1))],
    );
    sighup(&mut server);
    assert_eq!(presented_name(&server), "one.test");
    edit(&server, &[(&tls(&cert1, &key1), &tls(&cert2, &key2))]);
    reload(&server);
    assert_eq!(presented_name(&server), "two.test");
    // The same file name with new contents (a renewed certificate) is
    // read again too.
    let (cert3, key3) = certificate(dir.path(), "three.test");
    std::fs::copy(&cert3, &cert2).unwrap();
    std::fs::copy(&key3, &key2).unwrap();
    sighup(&mut server);
    assert_eq!(presented_name(&server), "three.test");
    assert!(server.stop(), "{}", server.log());
}

#[test]
fn a_broken_configuration_is_refused_and_the_running_one_stays() {
    let mut server = Server::start();
    let good = std::fs::read_to_string(server.config()).unwrap();
    // An error on a known line: a domain kind that does not exist.
    let broken = good.replacen("kind = \"local\"", "kind = \"nonsense\"", 1);
    let line = broken.lines().position(|l| l.contains("nonsense")).unwrap() + 1;
    std::fs::write(server.config(), &broken).unwrap();
    let out = server.cli(&["reload"]);
    assert!(!out.status.success());
    let text = output_text(&out);
    assert_contains(&text, &format!("faxmta.toml:{line}"));
    assert_contains(&text, "refused");
    // SIGHUP with the same file: logged, refused, the server goes on.
    let refusals = || server.log().matches("reload refused").count();
    let before = refusals();
    Command::new("kill")
        .arg("-HUP")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(wait_until(20, || refusals() > before), "{}", server.log());
    assert!(server.running());
    // Still the old configuration: example.test is local.
    mail(&server, "alice@example.test", "after the refused reload");
    assert_eq!(server.wait_maildir("example.test", "alice", 1, 20).len(), 1);
    assert_eq!(
        subject_counts(&server, "example.test", "alice").get("after the refused reload"),
        Some(&1)
    );
    assert!(server.stop(), "{}", server.log());
}

#[test]
fn reload_without_a_server_fails() {
    let mut server = Server::start();
    assert!(server.stop());
    let out = server.cli(&["reload"]);
    assert!(!out.status.success());
    assert_contains(&output_text(&out), "nothing to reload");
}
