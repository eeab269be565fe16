//! `stemfeed process` keeps its output layout: the manifest (times, sizes
//! and model probabilities masked) and the list of files match the golden
//! files made by the version before the typed contracts. Regenerate them
//! deliberately with `STEMFEED_BLESS=1` after an intended layout change
//! (and `STEMFEED_GOLDEN_EXE=<binary>` to make them with another build).

mod common;

use std::path::Path;

use serde_json::Value;

const GOLDEN_MANIFEST: &str = "tests/golden/process-manifest.json";
const GOLDEN_FILES: &str = "tests/golden/process-files.txt";

/// Values that differ between runs or machines: timings, byte counts,
/// Whisper's probabilities, the input's temporary path.
fn mask(v: &mut Value, in_stages: bool) {
    const VOLATILE: &[&str] = &[
        "bytes",
        "file_bytes",
        "mean_confidence",
        "min_cue_confidence",
        "probability",
        "runner_up",
        "decoding_scores",
        "file",
    ];
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if VOLATILE.contains(&k.as_str()) || (in_stages && k.ends_with("_s")) {
                    *child = Value::String("<masked>".into());
                } else {
                    mask(child, k == "stages");
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| mask(i, false)),
        _ => {}
    }
}

fn files(out: &Path) -> Vec<String> {
    let mut list = Vec::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                list.push(p.strip_prefix(out).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    list.sort();
    list
}

#[test]
fn process_output_layout_matches_the_golden_files() {
    common::ensure_default_models();
    let dir = tempfile::tempdir().unwrap();
    let wav = common::espeak(
        dir.path(),
        "speech.wav",
        "en",
        "Water boils at one hundred degrees Celsius at sea level.",
    );
    let input = common::video_with(dir.path(), "golden.mp4", &wav);
    let out = dir.path().join("out");
    // Blessing from a reference build: STEMFEED_GOLDEN_EXE names its binary.
    let mut cmd = match std::env::var_os("STEMFEED_GOLDEN_EXE") {
        Some(exe) => std::process::Command::new(exe),
        None => common::stemfeed(),
    };
    let run = common::run(cmd.arg("process").arg(&input).arg("--out").arg(&out).args([
        "--title",
        "Boiling point of water",
        "--grade",
        "7",
    ]));
    assert!(run.status.success());
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    mask(&mut manifest, false);
    let manifest = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
    let list = files(&out).join("\n") + "\n";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("STEMFEED_BLESS").is_some() {
        std::fs::create_dir_all(root.join("tests/golden")).unwrap();
        std::fs::write(root.join(GOLDEN_MANIFEST), &manifest).unwrap();
        std::fs::write(root.join(GOLDEN_FILES), &list).unwrap();
    }
    let golden = std::fs::read_to_string(root.join(GOLDEN_MANIFEST)).unwrap();
    assert_eq!(
        manifest, golden,
        "manifest.json differs from {GOLDEN_MANIFEST}"
    );
    let golden = std::fs::read_to_string(root.join(GOLDEN_FILES)).unwrap();
    assert_eq!(list, golden, "the output files differ from {GOLDEN_FILES}");
}
