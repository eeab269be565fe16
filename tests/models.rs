//! `stemfeed models` and `stemfeed doctor` as an operator uses them.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{ensure_default_models, run, stemfeed, text};

#[test]
fn list_shows_the_installed_multilingual_base_model() {
    ensure_default_models();
    let out = run(stemfeed().args(["models", "list"]));
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let base = stdout
        .lines()
        .find(|l| l.starts_with("base "))
        .expect("base listed");
    assert!(base.contains("multilingual"), "{base}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("tiny.en ") && l.contains("English only"))
    );

    let out = run(stemfeed().args(["models", "list", "--json"]));
    let models: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let base = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "base")
        .unwrap();
    assert_eq!(base["multilingual"], true);
    assert_eq!(
        base["bytes"], 147_951_465,
        "same size as the official ggml-base.bin"
    );
    assert_eq!(base["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn install_is_idempotent() {
    ensure_default_models();
    let out = run(stemfeed().args(["models", "install", "default"]));
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("base: already installed"), "{stderr}");
    assert!(stderr.contains("tiny.en: already installed"), "{stderr}");
}

#[test]
fn doctor_is_ready_after_setup() {
    ensure_default_models();
    let data = tempfile::tempdir().unwrap();
    let out = run(stemfeed()
        .arg("doctor")
        .env("STEMFEED_DATA_DIR", data.path()));
    assert!(out.status.success(), "doctor must exit 0 once set up");
    assert!(text(&out.stdout).contains("ready"));
}

#[test]
fn doctor_names_what_is_missing_and_the_fix() {
    let models = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = run(stemfeed()
        .arg("doctor")
        .env("STEMFEED_MODELS_DIR", models.path())
        .env("STEMFEED_DATA_DIR", data.path()));
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("base is not installed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: stemfeed models install default"),
        "{stdout}"
    );
}

#[test]
fn fetch_offline_fails_fast_with_the_offline_alternative() {
    let models = tempfile::tempdir().unwrap();
    // A port nothing listens on stands in for an unreachable model host.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let out = run(stemfeed()
        .args(["models", "fetch", "tiny"])
        .env("STEMFEED_MODELS_DIR", models.path())
        .env("STEMFEED_GGML_BASE_URL", format!("http://{closed}")));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "offline fetch must fail fast"
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ggml-tiny.bin") && stderr.contains("models install default"),
        "{stderr}"
    );
}

#[test]
fn fetch_rejects_a_download_with_the_wrong_checksum() {
    let models = tempfile::tempdir().unwrap();
    // A real HTTP server on loopback serving the wrong bytes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let n = conn.read(&mut request).unwrap();
        let body = b"this is not a whisper model";
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        conn.write_all(body).unwrap();
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    let out = run(stemfeed()
        .args(["models", "fetch", "tiny"])
        .env("STEMFEED_MODELS_DIR", models.path())
        .env("STEMFEED_GGML_BASE_URL", format!("http://{addr}/models")));
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /models/ggml-tiny.bin "),
        "{request}"
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("checksum mismatch"),
        "{}",
        text(&out.stderr)
    );
    let listed = run(stemfeed()
        .args(["models", "list"])
        .env("STEMFEED_MODELS_DIR", models.path()));
    assert!(
        text(&listed.stdout).contains("no models installed"),
        "a bad download is never installed"
    );
}

#[test]
fn fetch_of_an_unknown_model_lists_the_known_ones() {
    let models = tempfile::tempdir().unwrap();
    let out = run(stemfeed()
        .args(["models", "fetch", "gigantic"])
        .env("STEMFEED_MODELS_DIR", models.path()));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("gigantic") && stderr.contains("large-v3-turbo"),
        "{stderr}"
    );
}

#[test]
fn import_cli_reports_a_missing_vocabulary() {
    let models = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("model.bin"), b"x").unwrap();
    let out = run(stemfeed()
        .args(["models", "import"])
        .arg(src.path())
        .args(["--name", "custom"])
        .env("STEMFEED_MODELS_DIR", models.path()));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("vocabulary.txt"),
        "{}",
        text(&out.stderr)
    );
}
