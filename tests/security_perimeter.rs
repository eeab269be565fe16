//! The perimeter of a real `stemfeed serve` on loopback: body limits that
//! refuse before reading, security headers on every answer (refusals
//! included), feed URLs from `[server] public_url` whatever `Host` says, and
//! 500s and 404s that reveal nothing internal.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::server::Server;

/// The listening port of `server`.
fn port(server: &Server) -> u16 {
    server.url.rsplit(':').next().unwrap().parse().unwrap()
}

/// The `stemfeed serve` process listening on `port`, found by its command line.
fn serve_pid(port: u16) -> u32 {
    let listen = format!("127.0.0.1:{port}");
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&&b"serve"[..]) && args.contains(&listen.as_bytes()) {
            return pid;
        }
    }
    panic!("no stemfeed serve on {listen}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[derive(Debug)]
struct Answer {
    status: u16,
    /// Lowercase header lines, `name: value`.
    headers: Vec<String>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.headers
            .iter()
            .find_map(|h| h.strip_prefix(&prefix))
            .map(str::trim)
    }
}

/// One request over a fresh connection; `body_len` bytes of body are
/// offered (in 64 KiB writes) only as long as the server keeps reading.
fn raw(port: u16, head: &str, body_len: usize) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent < body_len {
        let n = chunk.len().min(body_len - sent);
        if s.write_all(&chunk[..n]).is_err() {
            break; // the server stopped reading: what we want
        }
        sent += n;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no answer to {head:?}"));
    Answer {
        status,
        headers: lines.map(|l| l.to_ascii_lowercase()).collect(),
        body: body.to_owned(),
    }
}

fn get(port: u16, path: &str, host: &str) -> Answer {
    raw(
        port,
        &format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
        0,
    )
}

fn assert_security_headers(a: &Answer, what: &str) {
    let csp = a.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{what}: CSP {csp:?} in {a:?}"
    );
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(a.header("x-frame-options"), Some("deny"), "{what}");
    assert_eq!(a.header("referrer-policy"), Some("same-origin"), "{what}");
    assert!(a.header("x-request-id").is_some(), "{what}: no request id");
}

const HUNDRED_MIB: usize = 100 * 1024 * 1024;

#[test]
fn a_huge_login_body_is_refused_without_being_read() {
    let server = Server::start(&["--no-worker"]);
    let port = port(&server);
    let pid = serve_pid(port);
    // Warm up (first requests allocate pools and buffers).
    for _ in 0..3 {
        assert_eq!(get(port, "/login", "x").status, 200);
    }
    let before = rss_kib(pid);
    // Declared length: refused before a byte of it is read.
    let a = raw(
        port,
        &format!(
            "POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
             content-length: {HUNDRED_MIB}\r\nconnection: close\r\n\r\n"
        ),
        HUNDRED_MIB,
    );
    assert_eq!(a.status, 413, "{a:?}");
    assert_security_headers(&a, "413 by length");
    // Chunked, length unknown: cut off at the form limit.
    let mut head =
        "POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            .to_owned();
    // One chunk header announcing the whole 100 MiB, then its bytes.
    head.push_str(&format!("{HUNDRED_MIB:x}\r\n"));
    let a = raw(port, &head, HUNDRED_MIB);
    assert_eq!(a.status, 413, "{a:?}");
    let after = rss_kib(pid);
    assert!(
        after < before + 8 * 1024,
        "server memory grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn every_answer_carries_the_security_headers_and_404s_say_nothing() {
    let server = Server::start(&["--no-worker"]);
    let port = port(&server);
    let fake = "v00000000000000000000";
    for (path, status) in [
        ("/login", 200),
        ("/feed.json", 200),
        ("/static/review.js", 200),
        ("/no/such/route", 404),
        (&format!("/media/{fake}/runs/r1/video.mp4") as &str, 404),
        (&format!("/captions/{fake}/en.transcript.vtt"), 404),
        ("/media/not-an-id/x", 404),
        ("/review", 303),
    ] {
        let a = get(port, path, "x");
        assert_eq!(a.status, status, "{path}: {a:?}");
        assert_security_headers(&a, path);
        assert!(
            !a.body.contains("videos/") && !a.body.contains("runs/") && !a.body.contains(fake),
            "{path} echoed an internal key: {}",
            a.body
        );
    }
    // Headers over the limit: 431, still with the headers.
    let big = "a".repeat(32 * 1024);
    let a = raw(
        port,
        &format!("GET /login HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\nconnection: close\r\n\r\n"),
        0,
    );
    assert_eq!(a.status, 431, "{a:?}");
    assert_security_headers(&a, "431");
    // The UI needs no inline script or style (the CSP forbids them).
    let page = get(port, "/login", "x").body;
    assert!(!page.contains("<script>") && !page.contains("<style") && !page.contains(" style="));
    assert!(!page.contains(" onclick=") && !page.contains(" onsubmit="));
}

#[test]
fn feed_urls_come_from_public_url_not_host() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stemfeed.toml");
    std::fs::write(
        &config,
        "[server]\npublic_url = \"https://feed.example.org\"\n",
    )
    .unwrap();
    let server = Server::start(&["--no-worker", "--config", config.to_str().unwrap()]);
    let port = port(&server);
    let a = get(port, "/feed.json", "evil.example");
    assert_eq!(a.status, 200, "{a:?}");
    assert_security_headers(&a, "feed");
    let feed: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(feed["feed_url"], "https://feed.example.org/feed.json");
    assert_eq!(feed["home_page_url"], "https://feed.example.org");
    assert!(!a.body.contains("evil.example"), "{}", a.body);
}

#[test]
fn an_internal_error_answers_only_a_request_id() {
    let server = Server::start(&["--no-worker"]);
    let port = port(&server);
    let token = server.token("uploader", "submitter");
    // The partial-uploads directory is not a directory (a misconfigured
    // volume): creating an upload fails inside the server.
    let partial = server.data().join("partial-uploads");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::write(&partial, b"not a directory").unwrap();
    let a = raw(
        port,
        &format!(
            "POST /api/uploads HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
             tus-resumable: 1.0.0\r\nupload-length: 100\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ),
        0,
    );
    assert_eq!(a.status, 500, "{a:?}");
    assert_security_headers(&a, "500");
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["error"], "internal error", "{body}");
    let id = body["request_id"].as_str().unwrap();
    assert_eq!(a.header("x-request-id"), Some(id));
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    for secret in ["os error", "partial-uploads", "/", "SELECT", "sqlite"] {
        assert!(
            !a.body.contains(secret),
            "500 body leaks {secret:?}: {}",
            a.body
        );
    }
    // The details are in the log, under the same id.
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains(id) && l.contains("internal error")),
        "request id {id} not in the log:\n{log}"
    );
}

#[test]
fn behind_https_the_session_cookie_is_secure_and_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stemfeed.toml");
    std::fs::write(
        &config,
        "[server]\npublic_url = \"https://feed.example.org\"\n",
    )
    .unwrap();
    let server = Server::start(&["--no-worker", "--config", config.to_str().unwrap()]);
    let port = port(&server);
    let pw = "a-long-curator-password";
    server.user("cur", "curator", pw);
    let body = format!("name=cur&password={pw}");
    let login = |origin: Option<&str>| {
        let origin = origin.map_or(String::new(), |o| format!("origin: {o}\r\n"));
        raw(
            port,
            &format!(
                "POST /login HTTP/1.1\r\nhost: feed.example.org\r\n{origin}content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
            0,
        )
    };
    // No Origin, an opaque one, another site: refused before any password check.
    for origin in [None, Some("null"), Some("https://evil.example")] {
        assert_eq!(login(origin).status, 403, "login from {origin:?}");
    }
    let ok = login(Some("https://feed.example.org"));
    assert_eq!(ok.status, 303, "{ok:?}");
    let cookie = ok.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("__host-stemfeed_session="), "{cookie}");
    for attribute in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(
            cookie.split(';').any(|a| a.trim() == attribute),
            "{attribute} missing: {cookie}"
        );
    }
    assert!(!cookie.contains("domain="), "{cookie}");
    assert!(
        ok.header("strict-transport-security").is_some(),
        "an https public URL pins browsers to it: {ok:?}"
    );
}

/// `serve` with `[server] tls_cert` and `tls_key` speaks HTTPS itself
/// (HTTP/2 and HTTP/1.1 by ALPN), refuses plain HTTP on that port, and a
/// key that does not parse stops the start with its path named.
#[test]
fn serve_speaks_https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl (Debian package openssl)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = dir.path().join("stemfeed.toml");
    let write_config = |key: &std::path::Path| {
        std::fs::write(
            &config,
            format!(
                "[server]\npublic_url = \"https://127.0.0.1\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
    };
    write_config(&key);
    let server = Server::start(&["--no-worker", "--config", config.to_str().unwrap()]);
    let https = server.url.replace("http://", "https://");
    let curl = |args: &[&str]| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&cert)
            .args(args)
            .output()
            .expect("running curl")
    };
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = curl(&[
            flag,
            "-D",
            "-",
            "-w",
            "\nversion=%{http_version}",
            &format!("{https}/healthz"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("\nok") && text.ends_with(&format!("version={version}")),
            "{text}"
        );
        assert!(
            text.contains("strict-transport-security: max-age="),
            "{text}"
        );
    }
    // Plain HTTP on the TLS port gets no answer; the server stays up.
    let plain = curl(&[&format!("{}/healthz", server.url)]);
    assert!(
        !plain.status.success() || plain.stdout.is_empty(),
        "{plain:?}"
    );
    assert!(curl(&[&format!("{https}/healthz")]).status.success());
    drop(server);

    // A key file that is not a key: the start fails, naming it.
    let bad = dir.path().join("not-a-key.pem");
    std::fs::write(&bad, "not a key\n").unwrap();
    write_config(&bad);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stemfeed"))
        .env_remove("STEMFEED_CONFIG")
        .env("STEMFEED_DATA_DIR", dir.path().join("data"))
        .args([
            "serve",
            "--no-worker",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("tls_key") && err.contains("not-a-key.pem"),
        "{err}"
    );
}
