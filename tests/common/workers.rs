//! Running `stemfeed worker` processes in tests: a tiny clip every stage
//! runs on, job submission, worker processes with their logs, waiting.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `seconds` of `size` test pattern (numbered by `seed`, so every clip has
/// other bytes) with a tone: small, but every stage runs on it.
pub fn tone_clip(dir: &Path, name: &str, seed: u32, size: &str, seconds: f64) -> PathBuf {
    super::ffmpeg_make(
        dir,
        name,
        &[
            &format!(
                "testsrc2=size={size}:rate=15:duration={seconds},drawtext=text={seed}:fontcolor=white"
            ),
            &format!("sine=frequency={}:duration={seconds}", 300 + seed),
        ],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ],
    )
}

/// No extra environment.
pub const NO_ENV: &[(&str, &str)] = &[];

/// `stemfeed jobs submit FILE` under `config`; the new job's id.
pub fn submit_job<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    config: &Path,
    file: &Path,
    env: &[(K, V)],
) -> i64 {
    let mut cmd = super::stemfeed();
    cmd.arg("--config")
        .arg(config)
        .args(["jobs", "submit"])
        .arg(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = super::run(&mut cmd);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["job"].as_i64().expect("a new job")
}

/// `stemfeed worker --id ID [--drain]` logging at info to `<log_dir>/<id>.log`.
pub fn spawn_worker<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    config: &Path,
    id: &str,
    env: &[(K, V)],
    log_dir: &Path,
    drain: bool,
) -> Child {
    let mut cmd = super::stemfeed();
    cmd.arg("--config").arg(config).args(["worker", "--id", id]);
    if drain {
        cmd.arg("--drain");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("STEMFEED_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log_dir.join(format!("{id}.log"))).unwrap())
        .spawn()
        .expect("starting stemfeed worker")
}

/// The last lines of every worker log in `dir`, for failure messages.
pub fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            out.push_str(&format!(
                "--- {}\n{}\n",
                e.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
    }
    out
}

/// Waits for `child` to exit; kills it and fails the test after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("worker did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then waits (a worker must stop within a minute).
pub fn stop(mut child: Child) -> ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    wait_exit(&mut child, Duration::from_secs(60))
}

/// Polls `done` until it holds; past `timeout` fails with the workers' logs
/// from `log_dir`.
pub fn wait_until(what: &str, timeout: Duration, log_dir: &Path, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            logs(log_dir)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The built-in profile with one 240p rung, so many jobs fit in a test.
pub fn small_profile(dir: &Path) -> PathBuf {
    let text = stemfeed_core::Profile::short_form_toml();
    let head = text
        .split("[[rungs]]")
        .next()
        .unwrap()
        .replace("name = \"short-form\"", "name = \"test-small\"");
    let path = dir.join("small.toml");
    std::fs::write(
        &path,
        format!("{head}[[rungs]]\nshort_side = 240\nvideo_kbps = 200\naudio_kbps = 48\n"),
    )
    .unwrap();
    path
}

/// `GET path` on a loopback port, the whole response (one per connection).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}
