//! The accuracy gate on real speech: `stemfeed eval asr` over the
//! development set in `tests/asr-dev` (human recordings with their
//! sources' transcripts, in English, Urdu and Punjabi, plus music and
//! speech over music), against faster-whisper's rates with the same base
//! weights, measured by `benches/asr-dev.sh` and recorded in
//! `tests/asr-dev/peer.json`.
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
    let out = run(stemfeed().args(["eval", "asr"]).arg(&dev).arg("--json"));
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
}
