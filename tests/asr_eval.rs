//! The accuracy gate on real speech: `stemfeed eval asr` over the
//! development set in `tests/asr-dev` (human recordings with their
//! sources' transcripts, in English, Urdu and Punjabi, plus music and
//! speech over music), against faster-whisper's rates with the same base
//! weights, measured by `benches/asr-dev.sh` and recorded in
//! `tests/asr-dev/peer.json`.
//!
//! A few clips' cues are golden files (`tests/golden/asr-dev`): a change to
//! decoding or segmentation shows up as a reviewed diff
//! (`STEMFEED_BLESS=1` rewrites them).
//!
//! Per language the word error rate may not exceed the peer's by more than
//! `SLACK` (the margin covers run-to-run variation of sampled fallback
//! decodes on 2 cores; the measured figures are in benches/results), and
//! music without speech must produce no cue at all.

mod common;

use std::path::Path;

use common::{ensure_default_models, run, stemfeed, text};

/// Allowed excess over the peer's error rate, in absolute terms.
const SLACK: f64 = 0.02;

#[test]
fn real_speech_is_captioned_at_least_as_accurately_as_faster_whisper() {
    ensure_default_models();
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/asr-dev");
    let peer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dev.join("peer.json")).unwrap()).unwrap();
    let cues_dir = tempfile::tempdir().unwrap();
    let out = run(stemfeed()
        .args(["eval", "asr"])
        .arg(&dev)
        .arg("--json")
        .arg("--cues-out")
        .arg(cues_dir.path()));
    assert!(
        out.status.success(),
        "eval asr failed: {}",
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut failures = Vec::new();
    for (language, ours) in report["languages"].as_object().unwrap() {
        if language == "music" {
            let cues = ours["cues"].as_u64().unwrap();
            if cues > 0 {
                failures.push(format!("music: {cues} cues over clips without speech"));
            }
            continue;
        }
        let theirs = &peer["languages"][language];
        for rate in ["wer", "cer"] {
            let (a, b) = (ours[rate].as_f64().unwrap(), theirs[rate].as_f64().unwrap());
            eprintln!(
                "{language} {rate}: stemfeed {:.1}%, faster-whisper {:.1}%",
                a * 100.0,
                b * 100.0
            );
            if a > b + SLACK {
                failures.push(format!(
                    "{language}: {rate} {:.1}% above faster-whisper's {:.1}%",
                    a * 100.0,
                    b * 100.0
                ));
            }
        }
    }
    // Every clip of the set was scored, speech in the script its language
    // is written in.
    assert_eq!(
        report["clips"].as_array().unwrap().len(),
        std::fs::read_to_string(dev.join("refs.tsv"))
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .count()
    );
    assert!(
        failures.is_empty(),
        "{failures:#?}\n{}",
        serde_json::to_string_pretty(&report["languages"]).unwrap()
    );
    golden_cues(cues_dir.path());
}

/// Clips whose cues are kept as golden files, so a change to decoding,
/// guards or segmentation shows up as a reviewed diff: real speech in each
/// language, and speech over music.
const GOLDEN_CLIPS: &[&str] = &[
    "en_librivox_ss_0870.flac",
    "ur_cv_26572625.flac",
    "pa_cv_21917724.flac",
    "mix_en_librivox_ss_0870_vibe_ace.flac",
];
const GOLDEN_DIR: &str = "tests/golden/asr-dev";

/// (start, end, text) of each cue of a WebVTT file.
fn cues(vtt: &str) -> Vec<(f64, f64, String)> {
    let secs = |t: &str| -> f64 {
        t.trim()
            .split(':')
            .fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap())
    };
    let mut out = Vec::new();
    let mut lines = vtt.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some((a, b)) = line.split_once(" --> ") {
            let b = b.split_whitespace().next().unwrap();
            let mut text = Vec::new();
            while let Some(l) = lines.next_if(|l| !l.trim().is_empty()) {
                text.push(l.to_owned());
            }
            out.push((secs(a), secs(b), text.join("\n")));
        }
    }
    out
}

/// Text must match exactly; times within 0.15 s (whisper.cpp's token times
/// can move by a frame or two between CPUs). `STEMFEED_BLESS=1` rewrites
/// the golden files.
fn golden_cues(made: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN_DIR);
    for clip in GOLDEN_CLIPS {
        let name = format!("{clip}.vtt");
        let got = std::fs::read_to_string(made.join(&name))
            .unwrap_or_else(|e| panic!("{name}: no transcript track written: {e}"));
        if std::env::var_os("STEMFEED_BLESS").is_some() {
            std::fs::create_dir_all(&root).unwrap();
            std::fs::write(root.join(&name), &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(root.join(&name)).unwrap();
        let (g, w) = (cues(&got), cues(&want));
        assert_eq!(
            g.len(),
            w.len(),
            "{name}: cue count\n--- got\n{got}\n--- golden\n{want}"
        );
        for (a, b) in g.iter().zip(&w) {
            assert_eq!(
                a.2, b.2,
                "{name}: cue text\n--- got\n{got}\n--- golden\n{want}"
            );
            assert!(
                (a.0 - b.0).abs() <= 0.15 && (a.1 - b.1).abs() <= 0.15,
                "{name}: cue times {:?} vs golden {:?}",
                (a.0, a.1),
                (b.0, b.1)
            );
        }
    }
}
