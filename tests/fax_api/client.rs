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

/// `POST /restservice/sendfax` (XMedius' path) with the token, a
/// metadata file and attachments, plus more curl arguments.
pub fn post(
    base: &str,
    token: &str,
    metadata: &Path,
    files: &[&Path],
    more: &[&str],
) -> (u16, String) {
    post_at(
        &format!("{base}/restservice/sendfax"),
        token,
        metadata,
        files,
        more,
    )
}

/// The same to the URL `url`.
pub fn post_at(
    url: &str,
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
    curl_at(url, &args)
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

/// Expect `status` and `code` in a JSON error reply, in XMedius' shape:
/// `{"success":"false","errorInfo":{"errorMsg":…,"errorCode":…}}` and
/// nothing else.
pub fn refused(reply: (u16, String), status: u16, code: &str) -> String {
    let (got, body) = reply;
    let v = json(&body);
    assert_eq!(
        (
            got,
            v["success"].as_str(),
            v["errorInfo"]["errorCode"].as_str()
        ),
        (status, Some("false"), Some(code)),
        "{body}"
    );
    let msg = v["errorInfo"]["errorMsg"].as_str().unwrap_or("");
    assert!(!msg.is_empty(), "{body}");
    let keys = |o: &Value| {
        let mut k: Vec<String> = o.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["errorInfo", "success"], "{body}");
    assert_eq!(keys(&v["errorInfo"]), ["errorCode", "errorMsg"], "{body}");
    body
}

/// Expect `status` and `code` in an XML error reply:
/// `<response><success>false</success><errorInfo><errorMsg>…</errorMsg>
/// <errorCode>…</errorCode></errorInfo></response>`.
pub fn refused_xml(reply: (u16, String), status: u16, code: &str) -> Element {
    let (got, body) = reply;
    assert_eq!(got, status, "{body}");
    assert!(body.starts_with("<?xml"), "{body}");
    let root = xml(&body);
    assert_eq!(root.name, "response", "{body}");
    assert_eq!(root.child("success").text, "false", "{body}");
    let info = root.child("errorInfo");
    assert_eq!(info.child("errorCode").text, code, "{body}");
    assert!(!info.child("errorMsg").text.is_empty(), "{body}");
    assert_eq!(root.names(), ["success", "errorInfo"], "{body}");
    assert_eq!(info.names(), ["errorMsg", "errorCode"], "{body}");
    root
}

/// An XML element: its name, attributes, text and child elements.
#[derive(Debug, Default, Clone)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The one child named `name`.
    pub fn child(&self, name: &str) -> &Element {
        let found = self.all(name);
        assert_eq!(
            found.len(),
            1,
            "<{}> has no single <{name}>: {self:?}",
            self.name
        );
        found[0]
    }

    /// The children named `name`.
    pub fn all(&self, name: &str) -> Vec<&Element> {
        self.children.iter().filter(|c| c.name == name).collect()
    }

    /// The names of the children, in order.
    pub fn names(&self) -> Vec<&str> {
        self.children.iter().map(|c| c.name.as_str()).collect()
    }

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> &str {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("<{}> has no {name}: {self:?}", self.name))
    }
}

/// Parse an XML document into its root element (text unescaped).
pub fn xml(body: &str) -> Element {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut stack: Vec<(Element, String)> = Vec::new();
    let open = |e: &quick_xml::events::BytesStart| Element {
        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.unwrap_or_else(|e| panic!("bad attribute ({e}): {body}"));
                (
                    String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                    a.unescape_value().unwrap().into_owned(),
                )
            })
            .collect(),
        ..Default::default()
    };
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => stack.push((open(&e), String::new())),
            Ok(Event::Empty(e)) => {
                let el = open(&e);
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(el),
                    None => return el,
                }
            }
            Ok(Event::Text(t)) => {
                if let Some((_, raw)) = stack.last_mut() {
                    raw.push_str(&t.decode().unwrap());
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some((_, raw)) = stack.last_mut() {
                    raw.push_str(&format!("&{};", r.decode().unwrap()));
                }
            }
            Ok(Event::End(_)) => {
                let (mut el, raw) = stack.pop().unwrap();
                el.text = quick_xml::escape::unescape(raw.trim())
                    .unwrap()
                    .into_owned();
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(el),
                    None => return el,
                }
            }
            Ok(Event::Eof) => panic!("no complete root element: {body}"),
            Ok(_) => {}
            Err(e) => panic!("not XML ({e}): {body}"),
        }
    }
}

/// `successInfo` of a JSON success reply, after checking `success`.
pub fn success_info(body: &str) -> Value {
    let v = json(body);
    assert_eq!(v["success"], "true", "{body}");
    assert!(v.get("errorInfo").is_none(), "{body}");
    v["successInfo"].clone()
}

/// The transaction ids of a JSON success reply
/// (`successInfo.transactionIds.transactionId`).
pub fn transaction_ids(info: &Value) -> Vec<String> {
    info["transactionIds"]["transactionId"]
        .as_array()
        .unwrap_or_else(|| panic!("no transactionIds.transactionId: {info}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}
