//! The HTTP API of `stemfeed serve` for real: every route checks its role,
//! oversize and non-video uploads are refused without storing anything,
//! client-chosen names cannot reach the filesystem, and an interrupted
//! upload resumes to the identical file.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::server::{Server, agent, get};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// (status, headers as lowercase name → value)
fn create(
    server: &Server,
    token: Option<&str>,
    length: u64,
    filename: &str,
) -> (u16, Option<String>) {
    let mut req = agent()
        .post(&format!("{}/api/uploads", server.url))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", &length.to_string())
        .header(
            "upload-metadata",
            &format!("filename {},title {}", b64(filename), b64("a test")),
        );
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    let resp = req.send_empty().unwrap();
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (resp.status().as_u16(), loc)
}

fn patch(
    server: &Server,
    token: &str,
    location: &str,
    offset: u64,
    bytes: &[u8],
) -> (u16, Option<String>) {
    let resp = agent()
        .patch(&format!("{}{location}", server.url))
        .header("authorization", &format!("Bearer {token}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", &offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .send(bytes)
        .unwrap();
    let video = resp
        .headers()
        .get("stemfeed-video")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (resp.status().as_u16(), video)
}

fn stored_uploads(server: &Server) -> usize {
    std::fs::read_dir(server.data().join("objects/uploads")).map_or(0, |d| d.count())
}

fn video(dir: &Path, name: &str, size: &str, seconds: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!(
            "nullsrc=s={size}:d={seconds},geq=random(1)*255:128:128"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn every_route_checks_its_role() {
    let server = Server::start(&["--no-worker"]);
    let submitter = server.token("uploader", "submitter");
    let curator = server.token("reviewer", "curator");
    let fake = "v00000000000000000000";
    let bearer = |t: &str| format!("Bearer {t}");

    // Uploading needs a submitter.
    assert_eq!(create(&server, None, 10, "a.mp4").0, 401);
    assert_eq!(create(&server, Some(&curator), 10, "a.mp4").0, 403);
    assert_eq!(create(&server, Some("not-a-token"), 10, "a.mp4").0, 401);
    let (code, loc) = create(&server, Some(&submitter), 10, "a.mp4");
    assert_eq!(code, 201);
    let loc = loc.unwrap();
    // Someone else's upload is invisible, even to another submitter.
    let other = server.token("uploader2", "submitter");
    let head = |t: Option<&str>| {
        let mut r = agent()
            .head(&format!("{}{loc}", server.url))
            .header("tus-resumable", "1.0.0");
        if let Some(t) = t {
            r = r.header("authorization", &bearer(t));
        }
        r.call().unwrap().status().as_u16()
    };
    assert_eq!(head(None), 401);
    assert_eq!(head(Some(&other)), 404);
    assert_eq!(head(Some(&curator)), 403);
    assert_eq!(head(Some(&submitter)), 200);
    assert_eq!(patch(&server, &curator, &loc, 0, b"x").0, 403);

    // Status needs a submitter or curator.
    assert_eq!(
        get(&format!("{}/api/videos/{fake}", server.url), None).0,
        401
    );

    // Review pages: browsers without a session go to the login page; a
    // submitter is refused.
    for path in ["/review".to_owned(), format!("/review/{fake}")] {
        let resp = agent()
            .get(&format!("{}{path}", server.url))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 303, "{path}");
        assert_eq!(resp.headers().get("location").unwrap(), "/login");
        assert_eq!(
            get(&format!("{}{path}", server.url), Some(&submitter)).0,
            403,
            "{path}"
        );
    }
    for path in [
        format!("/review/{fake}/decision"),
        format!("/review/{fake}/tags"),
        format!("/review/{fake}/captions/en.transcript"),
        format!("/review/{fake}/captions/en.transcript/decision"),
        format!("/review/{fake}/priority"),
        format!("/review/{fake}/export"),
        "/review/bulk-approve".to_owned(),
        "/review/glossary/ur".to_owned(),
    ] {
        let post = |t: Option<&str>| {
            let mut r = agent()
                .post(&format!("{}{path}", server.url))
                .header("content-type", "application/x-www-form-urlencoded");
            if let Some(t) = t {
                r = r.header("authorization", &bearer(t));
            }
            r.send(&b"decision=approve"[..]).unwrap().status().as_u16()
        };
        assert_eq!(post(None), 303, "{path} without login");
        assert_eq!(post(Some(&submitter)), 403, "{path} as submitter");
    }
    // A session form without its CSRF token is refused.
    let pw = "a-long-curator-password";
    server.user("cur", "curator", pw);
    // Login without an Origin (not a browser form on this site) is refused.
    let bare = agent()
        .post(&format!("{}/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("name=cur&password={pw}").as_bytes())
        .unwrap();
    assert_eq!(bare.status().as_u16(), 403, "login without an Origin");
    for origin in ["null", "https://evil.example"] {
        let forged = agent()
            .post(&format!("{}/login", server.url))
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(format!("name=cur&password={pw}").as_bytes())
            .unwrap();
        assert_eq!(forged.status().as_u16(), 403, "login from Origin {origin}");
    }
    let login = agent()
        .post(&format!("{}/login", server.url))
        .header("origin", &server.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("name=cur&password={pw}").as_bytes())
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("stemfeed_session="));
    let resp = agent()
        .post(&format!("{}/review/{fake}/decision", server.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .send(&b"decision=approve"[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403, "CSRF-less form accepted");
    let wrong = agent()
        .post(&format!("{}/login", server.url))
        .header("origin", &server.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .send(&b"name=cur&password=wrong-password"[..])
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    // The feed is public.
    let (code, body) = get(&format!("{}/feed.json", server.url), None);
    assert_eq!(code, 200);
    assert!(body.contains("https://jsonfeed.org/version/1.1"));
}

#[test]
fn bad_uploads_are_refused_and_store_nothing() {
    let server = Server::start(&["--no-worker", "--max-upload-mib", "2"]);
    let token = server.token("uploader", "submitter");
    // Over the cap: refused before any byte is sent.
    let (code, loc) = create(&server, Some(&token), 3 * 1024 * 1024, "big.mp4");
    assert_eq!(code, 413);
    assert!(loc.is_none());
    // More bytes than declared: refused.
    let (_, loc) = create(&server, Some(&token), 10, "short.mp4");
    assert_eq!(patch(&server, &token, &loc.unwrap(), 0, &[0u8; 64]).0, 413);
    // Not a video: refused when complete.
    let text = b"this is a text file, not a video at all";
    let (_, loc) = create(&server, Some(&token), text.len() as u64, "notes.mp4");
    assert_eq!(patch(&server, &token, &loc.unwrap(), 0, text).0, 415);
    // A wrong offset is a conflict, not corruption.
    let (_, loc) = create(&server, Some(&token), 10, "x.mp4");
    assert_eq!(patch(&server, &token, &loc.unwrap(), 5, b"12345").0, 409);
    assert_eq!(stored_uploads(&server), 0, "a refused upload was stored");
    let partial = std::fs::read_dir(server.data().join("partial-uploads"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.metadata().unwrap().len() > 10)
        .count();
    assert_eq!(partial, 0, "oversize bytes were kept");
}

#[test]
fn names_from_clients_never_become_paths() {
    let server = Server::start(&["--no-worker"]);
    let token = server.token("uploader", "submitter");
    let dir = tempfile::tempdir().unwrap();
    let file = video(dir.path(), "v.mp4", "64x64", "1");
    let bytes = std::fs::read(&file).unwrap();
    let (code, loc) = create(
        &server,
        Some(&token),
        bytes.len() as u64,
        "../../../../tmp/evil\n.mp4",
    );
    assert_eq!(code, 201);
    let (code, video) = patch(&server, &token, &loc.unwrap(), 0, &bytes);
    assert_eq!(code, 204);
    let video = video.unwrap();
    let (_, status) = get(&format!("{}/api/videos/{video}", server.url), Some(&token));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["file"], "evil.mp4", "{status}");
    assert_eq!(
        (status["state"].as_str(), status["phase"].as_str()),
        (Some("queued"), Some("transcode")),
        "{status}"
    );
    assert!(!Path::new("/tmp/evil\n.mp4").exists());
    // Stored under its content hash, nowhere else.
    assert!(
        server
            .data()
            .join(format!("objects/uploads/{video}/source"))
            .is_file()
    );
    for path in [
        format!("/media/{video}/..%2F..%2F..%2Fcatalog.db"),
        format!("/media/{video}/../../catalog.db"),
        "/media/..%2Fcatalog.db/x".to_owned(),
        "/api/uploads/..%2F..%2Fcatalog.db".to_owned(),
        format!("/captions/{video}/..%2F..%2Fcatalog.db"),
    ] {
        let (code, body) = get(&format!("{}{path}", server.url), Some(&token));
        assert!(
            matches!(code, 403 | 404 | 405 | 409),
            "{path}: {code} {body}"
        );
        assert!(!body.contains("SQLite format"), "{path} leaked the catalog");
    }
}

#[test]
fn an_interrupted_upload_resumes_to_the_identical_file() {
    let server = Server::start(&["--no-worker"]);
    let token = server.token("uploader", "submitter");
    let dir = tempfile::tempdir().unwrap();
    let file = video(dir.path(), "noise.mp4", "320x320", "2");
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(
        size > 2 * 1024 * 1024,
        "test video too small to need chunks: {size}"
    );
    // First attempt stops after one 1 MiB chunk.
    let first = server.submit(&token, &file, &["--chunk-mib", "1", "--stop-after", "1"]);
    assert_eq!(
        first.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    let url = stderr
        .split("--resume ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(stored_uploads(&server), 0);
    // The second picks up at the server's offset.
    let second = server.submit(&token, &file, &["--chunk-mib", "1", "--resume", &url]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let video = out["video"].as_str().unwrap();
    let stored = std::fs::read(
        server
            .data()
            .join(format!("objects/uploads/{video}/source")),
    )
    .unwrap();
    assert!(
        stored == std::fs::read(&file).unwrap(),
        "resumed upload differs from the original"
    );
    // The same content again is the same video, not a second job.
    let again = server.submit(&token, &file, &[]);
    assert!(again.status.success());
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["video"], video);
    let jobs = Command::new(env!("CARGO_BIN_EXE_stemfeed"))
        .env_remove("STEMFEED_CONFIG")
        .env("STEMFEED_DATA_DIR", server.data())
        .args(["jobs", "list"])
        .output()
        .unwrap();
    let jobs: serde_json::Value = serde_json::from_slice(&jobs.stdout).unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
}

/// Curators' forms refuse what they cannot act on, with the reason, and
/// change nothing: glossary entries past the limits, a priority outside
/// high/normal/low, bulk approval with nothing chosen or of a video that
/// is not processed, exports of a video that does not exist.
#[test]
fn curator_forms_refuse_bad_input() {
    let server = Server::start(&["--no-worker"]);
    let curator = server.token("reviewer", "curator");
    let fake = "v00000000000000000000";
    let post = |path: &str, form: &str| -> (u16, String) {
        let resp = agent()
            .post(&format!("{}{path}", server.url))
            .header("authorization", &format!("Bearer {curator}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send(form.as_bytes())
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.into_body().read_to_string().unwrap_or_default())
    };
    let long = "a".repeat(81);
    let many: Vec<String> = (0..21).map(|i| format!("v{i}")).collect();
    for (form, why) in [
        (format!("term={long}&variants=x"), "1 to 80 characters"),
        ("term=&variants=x".to_owned(), "1 to 80 characters"),
        ("term=a%0Ab&variants=x".to_owned(), "1 to 80 characters"),
        (
            format!("term=force&variants={}", many.join("%2C")),
            "1 to 20 spellings",
        ),
        ("term=force&variants=".to_owned(), "1 to 20 spellings"),
        (format!("term=force&variants={long}"), "1 to 20 spellings"),
    ] {
        let (code, body) = post("/review/glossary/en", &form);
        assert_eq!(code, 400, "{form}: {body}");
        assert!(body.contains(why), "{form}: {body}");
    }
    assert_eq!(post("/review/glossary/xx-evil", "term=a&variants=b").0, 404);
    let (code, body) = get(&format!("{}/review", server.url), Some(&curator));
    assert_eq!(code, 200);
    assert!(!body.contains(&long), "a refused glossary entry was stored");

    for form in ["priority=2", "priority=-2", "priority=high", "priority="] {
        let (code, body) = post(&format!("/review/{fake}/priority"), form);
        assert_eq!(code, 400, "{form}: {body}");
        assert!(body.contains("priority must be"), "{form}: {body}");
    }
    assert_eq!(
        post(&format!("/review/{fake}/priority"), "priority=1").0,
        404
    );
    assert_eq!(post("/review/..%2Fetc/priority", "priority=1").0, 404);

    let (code, body) = post("/review/bulk-approve", "");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("no video was selected"), "{body}");
    let (code, body) = post("/review/bulk-approve", &format!("video_{fake}=on"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(fake), "each refused video is named: {body}");

    let (code, body) = post(&format!("/review/{fake}/export"), "language=ur");
    assert_eq!(code, 404, "{body}");
    assert_eq!(
        post(&format!("/review/{fake}/export"), "language=..").0,
        404
    );
}
