//! Helpers of tests/fax_api.rs: servers with the API settings, tokens,
//! curl requests and their answers, control files.

use crate::common::*;
use serde_json::Value;
use std::path::Path;

/// A fax domain with the simulated engine; alice is the one fax user.
pub fn fax_config(work: &Path) -> String {
    let w = work.display();
    format!(
        r#"
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
lines = 2
retries = 1
retry_interval = "1s"
success_report = true
spool = "{w}/spool"
[fax.simulated]
received = "{w}/remote"
busy = ["+15550000001", "15550000001", "5550000001"]
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
[[fax.user]]
address = "alice@example.test"
name = "Alice Example"
"#
    )
}

/// Start a server, then restart it with the API settings in `[admin]`
/// (the harness writes that table itself).
pub fn start(extra: &str, admin: &str) -> Server {
    let mut s = Server::start_with("", extra);
    let tokens = s.path("tokens");
    restart_with(
        &mut s,
        &[(
            "[tls]\n",
            &format!("tokens_file = \"{}\"\n{admin}\n[tls]\n", tokens.display()),
        )],
    );
    s
}

/// The base URL of the admin listener.
pub fn http(s: &Server) -> String {
    format!("http://127.0.0.1:{}", s.admin_port)
}

/// `faxmta token add NAME …`: the token it prints.
pub fn new_token(s: &Server, args: &[&str]) -> String {
    let mut all = vec!["token", "add"];
    all.extend_from_slice(args);
    let token = cli_ok(s, &all).trim().to_string();
    assert!(token.starts_with("fxt_") && token.len() == 68, "{token}");
    token
}

/// Run curl on the admin listener; the HTTP status and the body.
pub fn curl(s: &Server, path: &str, args: &[&str]) -> (u16, String) {
    curl_at(&format!("{}{path}", http(s)), args)
}

/// Run curl on `url`; the HTTP status and the body.
pub fn curl_at(url: &str, args: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed by scripts/test");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "curl failed: {}", output_text(&out));
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `POST /fax/send` with the token, a metadata file and attachments
/// (`name` → file), plus more curl arguments.
pub fn post(
    base: &str,
    token: &str,
    metadata: &Path,
    files: &[&Path],
    more: &[&str],
) -> (u16, String) {
    let header = format!("XM-Token-Authorization: {token}");
    let meta = format!("metadata=@{};type=application/xml", metadata.display());
    let mut args: Vec<String> = vec!["-H".into(), header, "-F".into(), meta];
    for f in files {
        args.extend(["-F".into(), format!("attachments=@{}", f.display())]);
    }
    args.extend(more.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl_at(&format!("{base}/fax/send"), &args)
}

pub fn job(sender: &str, recipients: &[&str], attachments: &[&str]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<FaxJob>\n");
    if !sender.is_empty() {
        xml.push_str(&format!(
            "  <Sender email=\"{sender}\" name=\"Alice Example\"/>\n"
        ));
    }
    xml.push_str("  <Recipients>\n");
    for r in recipients {
        xml.push_str(&format!(
            "    <Recipient number=\"{r}\" name=\"Bob\" company=\"Acme &amp; Co\"/>\n"
        ));
    }
    xml.push_str("  </Recipients>\n  <Cover subject=\"Quarterly figures\"/>\n  <Attachments>\n");
    for a in attachments {
        xml.push_str(&format!("    <Attachment name=\"{a}\"/>\n"));
    }
    xml.push_str("  </Attachments>\n  <Options notify=\"always\"/>\n</FaxJob>\n");
    xml
}

pub fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The value of attribute `name` in the first element of `xml` that has
/// it, after `from`.
pub fn attr<'a>(xml: &'a str, from: &str, name: &str) -> &'a str {
    let start = xml
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in {xml}"));
    let rest = &xml[start..];
    let key = format!(" {name}=\"");
    let at = rest
        .find(&key)
        .unwrap_or_else(|| panic!("{name} not in {rest}"))
        + key.len();
    let end = rest[at..].find('"').unwrap() + at;
    &rest[at..end]
}

/// Expect `status` and `code` in a JSON error reply.
pub fn refused(reply: (u16, String), status: u16, code: &str) -> String {
    let (got, body) = reply;
    let v = json(&body);
    assert_eq!(
        (got, v["errorCode"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    assert!(!v["errorMsg"].as_str().unwrap_or("").is_empty(), "{body}");
    body
}
