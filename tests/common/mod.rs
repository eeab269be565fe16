//! Shared helpers for the end-to-end tests: they run the real `stemfeed`
//! binary, with models obtained through the product's own install command.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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
