//! A real `stemfeed serve` on loopback (embedded mode, its own data
//! directory), accounts made with the admin commands, and a small HTTP
//! client for the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::services::free_port;

#[derive(Debug)]
pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub admin_password: String,
}

impl Server {
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_stemfeed"))
            .env_remove("STEMFEED_CONFIG")
            .env("STEMFEED_DATA_DIR", dir.path().join("data"))
            .env("STEMFEED_LOG", "info")
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting stemfeed serve");
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let mut server = Self {
            child,
            dir,
            url,
            admin_password: String::new(),
        };
        loop {
            if let Ok(pw) = std::fs::read_to_string(server.data().join("admin-password.txt"))
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                server.admin_password = pw.split_whitespace().nth(1).unwrap().to_owned();
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "server did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    fn admin_cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stemfeed"));
        c.env_remove("STEMFEED_CONFIG")
            .env("STEMFEED_DATA_DIR", self.data());
        c
    }

    /// An API token for `role`, made with `stemfeed tokens add`.
    pub fn token(&self, name: &str, role: &str) -> String {
        let out = self
            .admin_cmd()
            .args(["tokens", "add", name, "--role", role])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A person, made with `stemfeed users add`.
    pub fn user(&self, name: &str, role: &str, password: &str) {
        let out = self
            .admin_cmd()
            .args(["users", "add", name, "--role", role])
            .env("STEMFEED_PASSWORD", password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `stemfeed submit` against this server.
    pub fn submit(&self, token: &str, file: &Path, extra: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_stemfeed"))
            .args(["submit"])
            .arg(file)
            .args(["--server", &self.url, "--token", token])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Waits until the video's job reaches `state`.
    pub fn wait_for_state(
        &self,
        token: &str,
        video: &str,
        state: &str,
        timeout: Duration,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let (code, body) = get(&format!("{}/api/videos/{video}", self.url), Some(token));
            if code == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                if v["state"] == state {
                    return v;
                }
                assert!(
                    !matches!(v["state"].as_str(), Some("failed" | "dead")),
                    "job ended {v}"
                );
            }
            assert!(
                start.elapsed() < timeout,
                "video {video} never reached {state}: {body}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Server {
    /// A curator's decision on a whole video (`decision=approve`, or
    /// `decision=reject&reason=...`), posted with an API token; the status.
    pub fn decide(&self, curator: &str, video: &str, form: &str) -> u16 {
        self.post_form(curator, &format!("/review/{video}/decision"), form)
    }

    /// A form POST to `path` with an API token (no session, so no CSRF
    /// token); the status.
    pub fn post_form(&self, token: &str, path: &str, form: &str) -> u16 {
        agent()
            .post(&format!("{}{path}", self.url))
            .header("authorization", &format!("Bearer {token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send(form.as_bytes())
            .unwrap()
            .status()
            .as_u16()
    }

    /// One short spoken English clip, submitted, processed and approved
    /// after a curator looked at it: the video id. Needs the default models.
    pub fn approved_video(
        &self,
        submitter: &str,
        curator: &str,
        dir: &Path,
        speech: &str,
    ) -> String {
        let wav = super::espeak(dir, "approved.wav", "en", speech);
        let clip = super::video_with(dir, "approved.mp4", &wav);
        let out = self.submit(submitter, &clip, &["--title", speech, "--language", "en"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let submitted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let video = submitted["video"].as_str().unwrap().to_owned();
        self.wait_for_state(submitter, &video, "in-review", Duration::from_secs(300));
        let (code, _) = get(&format!("{}/review/{video}", self.url), Some(curator));
        assert_eq!(code, 200);
        let code = self.decide(curator, &video, "decision=approve");
        assert!(code < 400, "approving {video}: {code}");
        video
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none()
            && start.elapsed() < Duration::from_secs(15)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// (status, body) of a GET, with an optional bearer token.
pub fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call().unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}
