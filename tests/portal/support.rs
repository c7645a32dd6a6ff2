//! Helpers of tests/portal.rs: a server with portal users, logging in
//! through the browser, screenshots, requests with a session cookie
//! (curl), and a page on another host that posts to the portal.

use crate::common::*;
use crate::peers::Browser;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The session cookie's name.
pub const SESSION: &str = "__Host-faxmta-session";
pub const ALICE_PW: &str = "alice-Secret-1";
pub const BOB_PW: &str = "bob-Secret-2";
pub const BOSS_PW: &str = "boss-Secret-3";

/// A server and the directory of its users file and audit log.
pub struct Site {
    pub server: Server,
    pub work: tempfile::TempDir,
}

impl std::ops::Deref for Site {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl std::ops::DerefMut for Site {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}

impl Site {
    /// A file in the work directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }
}

/// faxmta with users alice and bob (fax users), boss (administrator),
/// `[auth] max_failures = 3`, the audit log in the work directory, and
/// `extra` TOML at the end.
pub fn portal_server(extra: &str) -> Site {
    portal_server_in(tempfile::tempdir().unwrap(), extra)
}

/// [`portal_server`] with `work` as the work directory (`extra` may name
/// places in it).
pub fn portal_server_in(work: tempfile::TempDir, extra: &str) -> Site {
    let w = work.path().display();
    let server = Server::start_with(
        "",
        &format!(
            "[auth]\nusers_file = \"{w}/users\"\nmax_failures = 3\n\
             [portal]\nadmins = [\"boss@example.test\"]\naudit_log = \"{w}/audit.log\"\n{extra}\n"
        ),
    );
    add_user(&server, "alice@example.test", ALICE_PW, &[]);
    add_user(&server, "bob@example.test", BOB_PW, &[]);
    add_user(&server, "boss@example.test", BOSS_PW, &[]);
    Site { server, work }
}

/// `http://127.0.0.1:PORT{path}` on the admin listener.
pub fn url(s: &Server, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", s.admin_port)
}

/// Fill in the login form shown and send it.
pub fn log_in(b: &Browser, user: &str, password: &str) {
    b.fill("#user", user);
    b.fill("#password", password);
    b.click("main form button[type=submit]");
}

/// Wait until every picture of the page has loaded (and has pixels).
pub fn wait_pictures(b: &Browser) {
    let loaded = || {
        b.script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
            == serde_json::json!(true)
    };
    assert!(
        wait_until(20, loaded),
        "pictures did not load: {}",
        b.source()
    );
}

/// Save a screenshot named `name` (see the module doc of tests/portal.rs).
pub fn shot(b: &Browser, name: &str) {
    let dir = match std::env::var("FAXMTA_SCREENSHOTS") {
        Ok(d) if !d.is_empty() => Path::new(env!("CARGO_MANIFEST_DIR")).join(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/portal-screenshots"),
    };
    b.screenshot(&dir.join(format!("{name}.png")));
}

/// The portal's session cookie in the browser.
pub fn session_cookie(b: &Browser) -> Option<fantoccini::cookies::Cookie<'static>> {
    b.cookies().into_iter().find(|c| c.name() == SESSION)
}

/// curl with the session cookie: the HTTP status and the body
/// (redirects not followed).
fn curl_session(s: &Server, path: &str, session: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .arg("-H")
        .arg(format!("Cookie: {SESSION}={session}"))
        .args(args)
        .arg(url(s, path))
        .output()
        .expect("curl is installed by scripts/test");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// GET `path` with the session cookie: the status and the body's bytes.
pub fn get_bytes_with_session(s: &Server, path: &str, session: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "%{http_code}"])
        .arg("-H")
        .arg(format!("Cookie: {SESSION}={session}"))
        .arg(url(s, path))
        .output()
        .expect("curl is installed by scripts/test");
    let body = out.stdout;
    let split = body.len().saturating_sub(3);
    let code = String::from_utf8_lossy(&body[split..]).parse().unwrap_or(0);
    (code, body[..split].to_vec())
}

/// GET with the session cookie.
pub fn get_with_session(s: &Server, path: &str, session: &str) -> (u16, String) {
    curl_session(s, path, session, &[])
}

/// POST a form (`body` URL-encoded) with the session cookie and, if
/// given, an `Origin` header.
pub fn post_with_session(
    s: &Server,
    path: &str,
    session: &str,
    body: &str,
    origin: Option<&str>,
) -> (u16, String) {
    let origin = origin.map(|o| format!("Origin: {o}"));
    let mut args = vec!["--data", body];
    if let Some(o) = &origin {
        args.extend(["-H", o.as_str()]);
    }
    curl_session(s, path, session, &args)
}

/// A web site on another host (127.0.0.2) serving one page.
pub struct EvilSite {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl EvilSite {
    pub fn start(html: &str) -> EvilSite {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.html"),
            format!("<!doctype html><html><body>{html}</body></html>"),
        )
        .unwrap();
        let port = free_port_on(&["127.0.0.2"]);
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.2",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_until(10, || std::net::TcpStream::connect(("127.0.0.2", port))
                .is_ok()),
            "the other site did not start"
        );
        EvilSite {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.2:{}/index.html", self.port)
    }
}

impl Drop for EvilSite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A login made with curl (a cookie jar): for requests a browser would
/// not make, e.g. asking for another user's fax by its address.
pub struct CurlSession {
    _jar: tempfile::NamedTempFile,
    pub session: String,
    /// The session's CSRF token (from a form of the portal).
    pub csrf: String,
}

fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    html.split(&needle)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

impl CurlSession {
    /// Log in as `user`.
    pub fn login(s: &Server, user: &str, password: &str) -> CurlSession {
        let jar = tempfile::NamedTempFile::new().unwrap();
        let j = jar.path().to_str().unwrap().to_string();
        let run = |args: &[&str], path: &str| {
            let out = Command::new("curl")
                .args(["-sS", "-b", &j, "-c", &j])
                .args(args)
                .arg(url(s, path))
                .output()
                .expect("curl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let form = run(&[], "/portal/login");
        let token = hidden(&form, "token");
        run(
            &[
                "--data-urlencode",
                &format!("user={user}"),
                "--data-urlencode",
                &format!("password={password}"),
                "--data-urlencode",
                &format!("token={token}"),
            ],
            "/portal/login",
        );
        let home = run(&[], "/portal/");
        let csrf = hidden(&home, "csrf");
        assert!(!csrf.is_empty(), "{user} could not log in:\n{home}");
        let cookies = std::fs::read_to_string(jar.path()).unwrap();
        let session = cookies
            .lines()
            .find(|l| l.contains(SESSION))
            .and_then(|l| l.split('\t').next_back())
            .unwrap_or_default()
            .to_string();
        CurlSession {
            _jar: jar,
            session,
            csrf,
        }
    }

    /// GET `path`: the status and the body.
    pub fn get(&self, s: &Server, path: &str) -> (u16, String) {
        let (status, body) = get_bytes_with_session(s, path, &self.session);
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// POST a form (`fields` URL-encoded, the CSRF token added).
    pub fn post(&self, s: &Server, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut body = format!("csrf={}", self.csrf);
        for (k, v) in fields {
            body.push_str(&format!("&{k}={}", encode(v)));
        }
        post_with_session(s, path, &self.session, &body, None)
    }
}

/// Percent-encoding of a form value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
