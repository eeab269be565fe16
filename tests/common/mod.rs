//! Shared helpers for the end-to-end tests: they run the real `stemfeed`
//! binary, with models obtained through the product's own install command.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod hostile;
pub mod server;
pub mod services;
pub mod webdriver;
pub mod workers;

pub fn stemfeed() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stemfeed"));
    cmd.env_remove("STEMFEED_CONFIG");
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("stemfeed runs");
    eprintln!(
        "$ {cmd:?}\n--- stdout\n{}--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Installs the default models (idempotent, locked across processes) once per
/// test binary, into the models directory the environment configures.
pub fn ensure_default_models() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let out = run(stemfeed().args(["models", "install", "default"]));
        assert!(out.status.success(), "models install default failed");
    });
}

/// Speaks `text` with espeak-ng into a WAV file.
pub fn espeak(dir: &Path, name: &str, voice: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng is installed (scripts/setup.sh)");
    assert!(status.success());
    path
}

/// Duration of a media file according to ffprobe, in seconds.
pub fn ffprobe_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed (scripts/setup.sh)");
    text(&out.stdout)
        .trim()
        .parse()
        .expect("ffprobe prints a duration")
}

/// Generates a test video with ffmpeg's lavfi sources (a test-time tool only;
/// the product never runs ffmpeg). `video` and `audio` are lavfi source
/// descriptions; `args` are extra output options (codecs, metadata).
pub fn ffmpeg_make(dir: &Path, name: &str, inputs: &[&str], args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"]);
    for input in inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    let out = cmd
        .args(args)
        .arg(&path)
        .output()
        .expect("ffmpeg is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "ffmpeg failed for {name}: {}",
        text(&out.stderr)
    );
    path
}

/// sha256 of a file, to prove inputs are left untouched.
pub fn file_digest(path: &Path) -> Vec<u8> {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    out.stdout
}

/// Copies `src` to `name` with a display-rotation tag (ffmpeg 5.1 writes the
/// MP4 display matrix only when stream-copying).
pub fn ffmpeg_rotate(dir: &Path, src: &Path, name: &str, degrees: u32) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(src)
        .args([
            "-c",
            "copy",
            "-metadata:s:v:0",
            &format!("rotate={degrees}"),
        ])
        .arg(&path)
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    path
}

/// A vertical video whose audio is `wav` (ffmpeg as a test-time muxer).
pub fn video_with(dir: &Path, name: &str, wav: &Path) -> PathBuf {
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
            "testsrc2=size=360x640:rate=30",
            "-i",
        ])
        .arg(wav)
        .args([
            "-shortest",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    path
}

/// Resolves `reference` (as an HLS playlist names it) against the URL or
/// path of the playlist, as a player does (RFC 3986 dot segments).
pub fn resolve(base: &str, reference: &str) -> String {
    let (origin, path) = match base.find("://").map(|i| i + 3) {
        Some(i) => {
            let slash = base[i..].find('/').map_or(base.len(), |j| i + j);
            (&base[..slash], &base[slash..])
        }
        None => ("", base),
    };
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop(); // the playlist's own name
    for segment in reference.split('/') {
        match segment {
            ".." => {
                parts.pop();
            }
            "." => {}
            s => parts.push(s),
        }
    }
    format!("{origin}{}", parts.join("/"))
}

/// An HLS media playlist's segments: (URI, byte range as `length@offset`).
pub fn hls_segments(playlist: &str) -> Vec<(String, Option<String>)> {
    let mut range = None;
    let mut out = Vec::new();
    for line in playlist.lines() {
        if let Some(r) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            range = Some(r.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((line.to_owned(), range.take()));
        }
    }
    out
}
