//! A minimal W3C WebDriver client over HTTP for Debian's chromedriver +
//! headless Chromium: enough to log in, click, type, read and screenshot.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::services::free_port;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
    /// The fontconfig file of [`Browser::start_without_system_nastaliq`].
    _fonts: Option<tempfile::TempDir>,
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    try_call(method, url, body).unwrap_or_else(|e| panic!("{e}"))
}

fn try_call(method: &str, url: &str, body: Option<Value>) -> Result<Value, String> {
    let agent = super::server::agent();
    let mut resp = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, Some(b)) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(b.to_string().as_bytes()),
        (_, None) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(&b"{}"[..]),
    }
    .map_err(|e| format!("webdriver {method} {url}: {e}"))?;
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if v["value"]["error"].is_null() {
        Ok(v["value"].clone())
    } else {
        Err(format!("webdriver {method} {url}: {text}"))
    }
}

impl Browser {
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// A browser on a machine without a Nastaliq font, as curators' and
    /// schools' machines often are: fontconfig hides the system's Noto
    /// Nastaliq Urdu from Chromium, so Urdu can only render in it through a
    /// web font the page brings.
    pub fn start_without_system_nastaliq() -> Self {
        let fonts = tempfile::tempdir().unwrap();
        let conf = fonts.path().join("fonts.conf");
        std::fs::write(
            &conf,
            "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n<fontconfig>\n\
             <include ignore_missing=\"yes\">/etc/fonts/fonts.conf</include>\n\
             <selectfont><rejectfont><glob>*NotoNastaliq*</glob></rejectfont></selectfont>\n</fontconfig>\n",
        )
        .unwrap();
        let mut b = Self::start_with_env(&[("FONTCONFIG_FILE", conf.display().to_string())]);
        b._fonts = Some(fonts);
        b
    }

    /// A browser whose processes get `env` (as chromedriver passes its
    /// environment on to Chromium).
    fn start_with_env(env: &[(&str, String)]) -> Self {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} missing: run scripts/setup.sh (Debian packages chromium, chromium-driver)"
            );
        }
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-quic", "--no-first-run", "--window-size=1280,1600",
                         "--autoplay-policy=no-user-gesture-required",
                         format!("--user-data-dir={}", profile.path().display())],
            }
        }}});
        let v = call("POST", &format!("{base}/session"), Some(caps));
        let session = v["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_owned();
        Self {
            driver,
            base,
            session,
            _profile: profile,
            _fonts: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    pub fn goto(&self, url: &str) {
        call("POST", &self.url("/url"), Some(json!({"url": url})));
    }

    pub fn current_url(&self) -> String {
        call("GET", &self.url("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let resp = super::server::agent()
                .post(&self.url("/element"))
                .header("content-type", "application/json")
                .send(
                    json!({"using": "css selector", "value": css})
                        .to_string()
                        .as_bytes(),
                )
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap();
            let v: Value = serde_json::from_str(&resp).unwrap();
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no element {css} on {}: {resp}",
                self.current_url()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn click(&self, css: &str) {
        let id = self.find(css);
        call("POST", &self.url(&format!("/element/{id}/click")), None);
    }

    pub fn type_into(&self, css: &str, text: &str, clear: bool) {
        let id = self.find(css);
        if clear {
            call("POST", &self.url(&format!("/element/{id}/clear")), None);
        }
        call(
            "POST",
            &self.url(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        );
    }

    /// Reads from the element, finding it again if the page changed under us.
    fn read(&self, css: &str, what: &str) -> String {
        let start = Instant::now();
        loop {
            let id = self.find(css);
            match try_call("GET", &self.url(&format!("/element/{id}/{what}")), None) {
                Ok(v) => return v.as_str().unwrap_or_default().to_owned(),
                Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("{e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    pub fn value(&self, css: &str) -> String {
        self.read(css, "property/value")
    }

    pub fn text(&self, css: &str) -> String {
        self.read(css, "text")
    }

    /// Runs JavaScript in the page and returns its result.
    pub fn script(&self, js: &str) -> Value {
        call(
            "POST",
            &self.url("/execute/sync"),
            Some(json!({"script": js, "args": []})),
        )
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        call(
            "POST",
            &self.url("/goog/cdp/execute"),
            Some(json!({"cmd": cmd, "params": params})),
        )
    }

    /// The fonts Chromium really drew `css`'s text with: (family, whether
    /// it is a web font the page loaded).
    pub fn rendered_fonts(&self, css: &str) -> Vec<(String, bool)> {
        self.cdp("DOM.enable", json!({}));
        self.cdp("CSS.enable", json!({}));
        let root = self.cdp("DOM.getDocument", json!({"depth": 0}))["root"]["nodeId"].clone();
        let node = self.cdp(
            "DOM.querySelector",
            json!({"nodeId": root, "selector": css}),
        )["nodeId"]
            .clone();
        let fonts = self.cdp("CSS.getPlatformFontsForNode", json!({"nodeId": node}));
        fonts["fonts"]
            .as_array()
            .unwrap_or_else(|| panic!("no fonts for {css}: {fonts}"))
            .iter()
            .map(|f| {
                (
                    f["familyName"].as_str().unwrap_or_default().to_owned(),
                    f["isCustomFont"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }

    /// Runs the vendored axe-core (tests/vendor/axe-core) on the page and
    /// returns its serious and critical violations, one line each (rule,
    /// impact, help, the first elements).
    pub fn accessibility_violations(&self) -> Vec<String> {
        let axe = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/vendor/axe-core/axe.min.js"),
        )
        .expect("the vendored axe-core");
        let js = format!(
            "{axe}\nconst done = arguments[arguments.length - 1];\n\
             axe.run(document, {{ resultTypes: ['violations'] }}).then(r => done(r.violations\n\
               .filter(v => v.impact === 'serious' || v.impact === 'critical')\n\
               .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' +\n\
                 v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))));"
        );
        let found = call(
            "POST",
            &self.url("/execute/async"),
            Some(json!({"script": js, "args": []})),
        );
        found
            .as_array()
            .unwrap_or_else(|| panic!("axe-core did not run: {found}"))
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn screenshot(&self, path: &std::path::Path) {
        let b64 = call("GET", &self.url("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = super::server::agent()
            .delete(&format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
