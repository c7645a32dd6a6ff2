//! A real browser for the portal tests: Debian's chromium, headless,
//! driven over WebDriver by a private chromedriver (on a free loopback
//! port, in its own process group, stopped with its browser when the
//! handle is dropped). The calls are synchronous (the tests are plain
//! `#[test]`s); each waits for a condition with a deadline, never for a
//! fixed time.

use fantoccini::cookies::Cookie;
use fantoccini::{Client, ClientBuilder, Locator};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a browser window is shaped.
#[derive(Debug, Clone, Copy)]
pub enum Screen {
    /// A desktop window, 1280 pixels wide.
    Desktop,
    /// A phone (390 × 844 CSS pixels, as an iPhone 12–14).
    Phone,
}

/// A headless chromium and its chromedriver.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver and a browser session.
    pub fn start(screen: Screen) -> Browser {
        Browser::start_with(screen, true)
    }

    /// A browser with JavaScript turned off (the pages must work
    /// without it).
    pub fn without_javascript(screen: Screen) -> Browser {
        Browser::start_with(screen, false)
    }

    fn start_with(screen: Screen, javascript: bool) -> Browser {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::common::free_port();
        let log = std::fs::File::create(dir.path().join("chromedriver.log")).unwrap();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd
            .spawn()
            .expect("chromedriver (package chromium-driver, installed by scripts/test)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let profile = dir.path().join("profile");
        let mut args = vec![
            "--headless=new".to_string(),
            // Tests run as root in CI: chromium's sandbox refuses root.
            "--no-sandbox".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-gpu".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut options = serde_json::json!({ "binary": "/usr/bin/chromium" });
        match screen {
            Screen::Desktop => args.push("--window-size=1280,900".into()),
            Screen::Phone => {
                args.push("--window-size=420,900".into());
                options["mobileEmulation"] = serde_json::json!({
                    "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0 }
                });
            }
        }
        options["args"] = serde_json::json!(args);
        if !javascript {
            options["prefs"] = serde_json::json!({
                "profile.managed_default_content_settings.javascript": 2
            });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let client = runtime.block_on(async {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
        });
        let client = match client {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot start a browser session: {e}\n{}",
                std::fs::read_to_string(dir.path().join("chromedriver.log")).unwrap_or_default()
            ),
        };
        Browser {
            client: Some(client),
            driver,
            runtime,
            _dir: dir,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }

    /// Open `url` (the load is complete when this returns).
    pub fn goto(&self, url: &str) {
        self.run(self.client().goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The address of the page shown.
    pub fn url(&self) -> String {
        self.run(self.client().current_url())
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// The page's HTML.
    pub fn source(&self) -> String {
        self.run(self.client().source()).unwrap_or_default()
    }

    /// The visible text of the page's body.
    pub fn text(&self) -> String {
        self.text_of("body").unwrap_or_default()
    }

    /// The visible text of the first element matching `css`.
    pub fn text_of(&self, css: &str) -> Option<String> {
        self.run(async {
            let e = self.client().find(Locator::Css(css)).await.ok()?;
            e.text().await.ok()
        })
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        self.run(self.client().find_all(Locator::Css(css)))
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// An attribute of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.run(async {
            let e = self.client().find(Locator::Css(css)).await.ok()?;
            e.attr(name).await.ok().flatten()
        })
    }

    /// Type `value` into the field matching `css` (cleared first).
    pub fn fill(&self, css: &str, value: &str) {
        self.run(async {
            let e = self
                .client()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no field {css}: {e}"));
            e.clear()
                .await
                .unwrap_or_else(|e| panic!("clear {css}: {e}"));
            e.send_keys(value)
                .await
                .unwrap_or_else(|e| panic!("type into {css}: {e}"));
        })
    }

    /// Choose `path` in the file input matching `css`.
    pub fn attach(&self, css: &str, path: &Path) {
        self.run(async {
            let e = self
                .client()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no file input {css}: {e}"));
            e.send_keys(&path.display().to_string())
                .await
                .unwrap_or_else(|e| panic!("attach to {css}: {e}"));
        })
    }

    /// Click the element matching `css` and wait for the page it leads
    /// to (every click in the portal's tests follows a link or submits a
    /// form): the old document is marked before the click, and the call
    /// returns once a document without the mark has loaded (or after
    /// 10 s if none comes). A click that lands on something else while
    /// the page still moves (pictures loading) is tried again.
    pub fn click(&self, css: &str) {
        let _ = self.run(
            self.client()
                .execute("window.__faxmtaOld = true; return true", vec![]),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let clicked = self.run(async {
                let e = self
                    .client()
                    .find(Locator::Css(css))
                    .await
                    .unwrap_or_else(|e| panic!("nothing to click at {css}: {e}"));
                e.click().await
            });
            match clicked {
                Ok(_) => break,
                Err(e) if e.to_string().contains("intercepted") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
        let loaded = "return window.__faxmtaOld !== true && document.readyState === 'complete'";
        while Instant::now() < deadline {
            let done = self.run(self.client().execute(loaded, vec![]));
            if done.ok() == Some(serde_json::Value::Bool(true)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait up to `secs` for the page's text to contain `needle`; the
    /// text last seen either way.
    pub fn wait_text(&self, needle: &str, secs: u64) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return Ok(text);
            }
            if Instant::now() > deadline {
                return Err(text);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The browser's cookies for the page shown.
    pub fn cookies(&self) -> Vec<Cookie<'static>> {
        self.run(self.client().get_all_cookies())
            .unwrap_or_default()
    }

    /// Set a cookie for the page shown.
    pub fn set_cookie(&self, name: &str, value: &str) {
        let mut cookie = Cookie::new(name.to_string(), value.to_string());
        cookie.set_path("/");
        cookie.set_secure(true);
        let url = self.url();
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
        let host = rest.split([':', '/']).next().unwrap_or("").to_string();
        cookie.set_domain(host);
        self.run(self.client().add_cookie(cookie))
            .unwrap_or_else(|e| panic!("set cookie {name}: {e}"));
    }

    /// Run a script in the page; its JSON result.
    pub fn script(&self, js: &str) -> serde_json::Value {
        self.run(self.client().execute(js, vec![]))
            .unwrap_or_else(|e| panic!("script: {e}"))
    }

    /// Save a screenshot of the window as PNG.
    pub fn screenshot(&self, path: &Path) {
        let png = self
            .run(self.client().screenshot())
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        // SAFETY: kill(2) on the process group we created (its leader is
        // our child, not yet reaped).
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
