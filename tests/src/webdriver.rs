//! A real browser: Debian's Chromium driven over W3C WebDriver (chromedriver), headless,
//! with a fresh profile. Just the calls the tests need.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{TempDir, eventually, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// W3C's element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Chromium {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: TempDir,
}

impl Chromium {
    pub async fn start() -> Chromium {
        assert!(
            std::path::Path::new(CHROMEDRIVER).is_file(),
            "{CHROMEDRIVER} is missing: apt-get install chromium chromium-driver (just deps does)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("chromedriver ready", Duration::from_secs(20), || async {
            let r = http.get(format!("{base}/status")).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await;
        let profile = TempDir::new("chromium");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        Chromium { driver, base, session, http, _profile: profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.expect("webdriver call").json().await.expect("webdriver json");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The visible text of the page (empty while there is no body).
    pub async fn page_text(&self) -> String {
        let Some(body) = self.find("body").await else { return String::new() };
        self.call(reqwest::Method::GET, &format!("/element/{body}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Save a PNG screenshot of the page.
    pub async fn screenshot(&self, path: &str) {
        use base64::Engine;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_default();
        std::fs::write(path, png).expect("write screenshot");
    }

    /// The page's HTML source, for failure messages.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
            .await;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    /// Wait for `css` to appear (pages load after redirects).
    pub async fn wait_for(&self, css: &str) -> String {
        eventually(&format!("element {css}"), Duration::from_secs(15), || self.find(css)).await
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({"text": text}))).await;
    }

    pub async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
    }

    /// Wait until the current URL starts with `prefix` (a navigation finished).
    pub async fn wait_for_url(&self, prefix: &str) -> String {
        eventually(&format!("URL starting with {prefix}"), Duration::from_secs(15), || async {
            let url = self.url().await;
            url.starts_with(prefix).then_some(url)
        })
        .await
    }

    /// Wait until the page text contains `needle`; returns the text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        eventually(&format!("page text containing {needle:?}"), Duration::from_secs(15), || async {
            let text = self.page_text().await;
            text.contains(needle).then_some(text)
        })
        .await
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // Ending the WebDriver session makes chromedriver quit the browser; killing only the
        // driver would orphan Chromium. Plain blocking HTTP: Drop cannot await.
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://").to_owned();
        if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut response = Vec::new();
                let _ = stream.read_to_end(&mut response);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
