//! A minimal W3C WebDriver client over HTTP (chromedriver), enough for the dashboard tests:
//! sessions, navigation, finding elements, typing, clicking, page source and screenshots.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Driver {
    process: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// `None` (skip) when chromedriver is missing and `CI` is unset; with `CI` it is a failure.
pub async fn start() -> Option<Driver> {
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    if !std::path::Path::new(&bin).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{bin} is missing: .ci/run installs chromium and chromium-driver");
        }
        eprintln!("skipping the browser test: {bin} is not installed (set CI to make this a failure)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let process =
        Command::new(bin).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let driver = Driver {
        process,
        url: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    for _ in 0..100 {
        if driver.http.get(format!("{}/status", driver.url)).send().await.is_ok() {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

pub struct Session<'a> {
    driver: &'a Driver,
    id: String,
    width: u32,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.expect("webdriver answers").json().await.expect("webdriver json");
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    /// A fresh headless Chromium with its own profile, `width` pixels wide.
    pub async fn session(&self, width: u32) -> Session<'_> {
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            format!("--window-size={width},900"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut options =
            json!({"binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()), "args": args});
        // Headless windows are at least 500 px wide: a phone's width is emulated instead.
        if width < 500 {
            options["mobileEmulation"] = json!({"deviceMetrics": {"width": width, "height": 844, "pixelRatio": 1.0}});
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}});
        let v = self.call(reqwest::Method::POST, "/session", Some(caps)).await;
        let session =
            Session { driver: self, id: v["sessionId"].as_str().unwrap().to_string(), width, _profile: profile };
        // Element lookups wait for the page a click led to.
        session.call(reqwest::Method::POST, "/timeouts", Some(json!({"implicit": 5000}))).await;
        session
    }
}

impl Session<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver.call(method, &format!("/session/{}{path}", self.id), body).await
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn element(&self, css: &str) -> String {
        let v =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_string()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({"text": text}))).await;
    }

    pub async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/click"), Some(json!({}))).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.element(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    /// Waits (up to 10 s) until the page shows `needle`; false if it never does.
    pub async fn shows(&self, needle: &str) -> bool {
        for _ in 0..100 {
            if self.source().await.contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Logs in through the login form.
    pub async fn log_in(&self, base: &str, email: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form[action='/login'] button[type=submit]").await;
    }

    /// Accepts the confirm() dialog a button opened.
    pub async fn accept_alert(&self) {
        self.call(reqwest::Method::POST, "/alert/accept", Some(json!({}))).await;
    }

    /// Runs `script` in the page (a function body; `arguments` holds `args`) and returns its
    /// value, awaiting a returned promise.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Saves a PNG of the page under the build's temporary folder (`screenshots/`).
    pub async fn screenshot(&self, name: &str) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Every page a test visits: axe-core finds no serious or critical violation, the page
    /// does not scroll sideways (tables scroll inside themselves), and a screenshot is saved.
    pub async fn audit(&self, axe: &str, name: &str) {
        self.execute(axe, json!([])).await;
        let found = self
            .execute(
                "return axe.run(document, {resultTypes: ['violations']}).then(function (r) {\
                   return r.violations.filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })\
                     .map(function (v) { return v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.map(function (n) { return n.target.join(' '); }).join(', '); });\
                 });",
                json!([]),
            )
            .await;
        assert_eq!(found, json!([]), "axe-core on {name} at {} px", self.width);
        let widths = self
            .execute("return [document.documentElement.scrollWidth, document.documentElement.clientWidth];", json!([]))
            .await;
        if widths[0].as_i64() > widths[1].as_i64() {
            // Name the elements that stick out, to say what to fix.
            let wide = self
                .execute(
                    "var w = document.documentElement.clientWidth; return Array.from(document.querySelectorAll('body *'))\
                       .filter(function (e) { return e.getBoundingClientRect().right > w + 1 && !e.closest('.sr-only'); })\
                       .slice(-5).map(function (e) { return e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right); });",
                    json!([]),
                )
                .await;
            panic!("{name} scrolls sideways at {} px: {widths}; widest: {wide}", self.width);
        }
        self.screenshot(&format!("{name}-{}", self.width)).await;
    }

    pub async fn close(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

/// Where screenshots go: `<target tmp>/screenshots`.
pub fn screenshots_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

/// axe-core's source, installed from the npm registry into the build's temporary folder once
/// (`None` when npm is missing and `CI` is unset; with `CI` that is a failure).
pub fn axe_source() -> Option<String> {
    const AXE: &str = "axe-core@4.14.1";
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("axe-core-4.14.1");
    let package = prefix.join("node_modules/axe-core");
    if !package.join("axe.min.js").exists() {
        std::fs::create_dir_all(&prefix).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg(AXE)
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            other if std::env::var_os("CI").is_none() => {
                eprintln!("skipping the browser test: npm could not install {AXE}: {other:?}");
                return None;
            }
            other => panic!("npm install {AXE} failed: {other:?}"),
        }
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(package.join("package.json")).unwrap()).unwrap();
    assert_eq!(manifest["version"], "4.14.1");
    Some(std::fs::read_to_string(package.join("axe.min.js")).unwrap())
}
