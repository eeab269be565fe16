#![allow(dead_code)]
//! Real servers on loopback for the scale-out tests, started per test and
//! stopped when the guard drops: PostgreSQL (Debian's, in a temporary data
//! directory) and an S3-protocol server (moto, installed by scripts/test.sh
//! into a virtual environment). A missing server fails the test with the
//! command that installs it; nothing is skipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < timeout,
            "{what} did not listen on port {port} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn pg_bindir() -> PathBuf {
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output()
        && o.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("PostgreSQL server not installed: run scripts/setup.sh (Debian package postgresql)")
}

/// A throwaway PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    root: bool,
    opts: String,
}

impl Postgres {
    pub fn start() -> Self {
        let bin = pg_bindir();
        let dir = tempfile::Builder::new()
            .prefix("stemfeed-pg")
            .tempdir()
            .unwrap();
        let root = is_root();
        let data = dir.path().join("data");
        if root {
            // PostgreSQL refuses to run as root; Debian's package made this user.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the PostgreSQL test directory failed");
        }
        let port = free_port();
        let mut pg = Self {
            dir,
            bin,
            port,
            root,
            opts: String::new(),
        };
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "stemfeed",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            pg.dir.path().display()
        );
        pg.opts = opts;
        pg.pg_ctl("start");
        pg
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let mut args = vec![
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &self.opts,
            "-w",
            "-t",
            "60",
        ];
        if action == "restart" {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        self.run("pg_ctl", &args);
        wait_for_port(self.port, "PostgreSQL", Duration::from_secs(30));
    }

    /// `pg_ctl restart`: every client connection is cut.
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("running a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A fresh database on this server.
    pub fn database(&self, name: &str) -> String {
        let url = format!("postgres://stemfeed@127.0.0.1:{}/postgres", self.port);
        let mut c = postgres::Client::connect(&url, postgres::NoTls)
            .expect("connecting to the test PostgreSQL");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("creating a test database");
        format!("postgres://stemfeed@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The moto S3 server.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    pub port: u16,
    /// With a recording, the server's state survives a restart.
    recording: Option<PathBuf>,
}

pub const S3_KEY: &str = "stemfeed-test";
pub const S3_SECRET: &str = "stemfeed-test-secret";

fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("STEMFEED_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let p = home.join(".cache/stemfeed/test-venv/bin/moto_server");
    assert!(
        p.exists(),
        "{} not found: run scripts/test.sh (it installs moto[server] for the S3 tests)",
        p.display()
    );
    p
}

impl S3Server {
    pub fn start() -> Self {
        let port = free_port();
        Self {
            child: Self::spawn(port, None),
            port,
            recording: None,
        }
    }

    /// A server whose state survives [`S3Server::restart`]: moto keeps
    /// objects in memory, so every request is recorded to `recording` (moto's
    /// own recorder) and replayed into the new process, as a disk-backed
    /// S3 server would come back with its data.
    pub fn start_durable(recording: &Path) -> Self {
        let port = free_port();
        Self {
            child: Self::spawn(port, Some(recording)),
            port,
            recording: Some(recording.to_path_buf()),
        }
    }

    fn spawn(port: u16, recording: Option<&Path>) -> Child {
        let mut cmd = Command::new(moto_server());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(r) = recording {
            cmd.env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", r)
                .stderr(std::fs::File::create(r.with_extension("log")).unwrap());
        }
        let child = cmd.spawn().expect("starting moto_server");
        wait_for_port(port, "moto_server", Duration::from_secs(60));
        child
    }

    /// SIGKILL: every connection drops mid-request.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port with the recorded state.
    pub fn restart(&mut self) {
        let recording = self.recording.clone().expect("a durable server");
        // The kill may have cut the last entry short: keep whole ones.
        let text = std::fs::read_to_string(&recording).unwrap_or_default();
        let whole: String = text
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&recording, whole).unwrap();
        self.child = Self::spawn(self.port, Some(&recording));
        // Replaying is itself not recorded; new requests append again.
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        // moto replays against the host this request names.
        s.write_all(
            format!(
                "POST /moto-api/recorder/replay-recording HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                self.port
            )
            .as_bytes(),
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 2") || answer.starts_with("HTTP/1.0 2"),
            "replaying the S3 recording failed: {answer}\n{}",
            std::fs::read_to_string(recording.with_extension("log")).unwrap_or_default()
        );
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for a `stemfeed` process that talks to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", S3_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(dead_code)]
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
