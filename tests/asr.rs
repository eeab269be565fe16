//! Whisper inference on models obtained with `stemfeed models install`:
//! generated speech in, spoken words out.

mod common;

use common::{ensure_default_models, espeak, ffprobe_duration, run, stemfeed, text};

fn transcribe_json(args: &[&str]) -> serde_json::Value {
    let out = run(stemfeed().arg("transcribe").args(args).arg("--json"));
    assert!(
        out.status.success(),
        "transcribe failed: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON transcript")
}

fn full_text(transcript: &serde_json::Value) -> String {
    transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[test]
fn base_model_transcribes_generated_english_speech() {
    ensure_default_models();
    let dir = tempfile::tempdir().unwrap();
    let wav = espeak(
        dir.path(),
        "physics.wav",
        "en",
        "Photosynthesis turns sunlight into chemical energy. \
         Newton's second law connects force, mass and acceleration.",
    );
    let duration = ffprobe_duration(&wav);
    let transcript = transcribe_json(&[wav.to_str().unwrap(), "--model", "base"]);
    assert_eq!(transcript["language"], "en", "detected language");
    let said = full_text(&transcript);
    for phrase in [
        "photosynthesis",
        "sunlight",
        "chemical energy",
        "second law",
        "acceleration",
    ] {
        assert!(said.contains(phrase), "{phrase:?} missing from {said:?}");
    }
    for segment in transcript["segments"].as_array().unwrap() {
        let (start, end) = (
            segment["start"].as_f64().unwrap(),
            segment["end"].as_f64().unwrap(),
        );
        assert!(
            0.0 <= start && start < end && end <= duration + 0.5,
            "segment {start}..{end} outside 0..{duration}"
        );
    }
}

#[test]
fn tiny_en_loads_and_transcribes() {
    ensure_default_models();
    let dir = tempfile::tempdir().unwrap();
    let wav = espeak(
        dir.path(),
        "maths.wav",
        "en",
        "The area of a circle is pi times the radius squared.",
    );
    let transcript = transcribe_json(&[wav.to_str().unwrap(), "--model", "tiny.en"]);
    assert_eq!(transcript["language"], "en");
    let said = full_text(&transcript);
    assert!(
        said.contains("circle") && said.contains("radius"),
        "{said:?}"
    );
}

#[test]
fn english_only_model_refuses_other_languages() {
    ensure_default_models();
    let dir = tempfile::tempdir().unwrap();
    let wav = espeak(dir.path(), "x.wav", "en", "Hello.");
    let out = run(stemfeed().arg("transcribe").arg(&wav).args([
        "--model",
        "tiny.en",
        "--language",
        "ur",
    ]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("English-only"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_file_without_audio_is_a_clear_error_and_is_left_untouched() {
    ensure_default_models();
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("notes.mp4");
    std::fs::write(&bogus, "this is a text file, not a video").unwrap();
    let before = std::fs::read(&bogus).unwrap();
    let out = run(stemfeed()
        .arg("transcribe")
        .arg(&bogus)
        .args(["--model", "base"]));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        // The duration is probed first (decoding is bounded by it), so the
        // probe is the stage that refuses it.
        stderr.contains("notes.mp4") && stderr.contains("probe: not a playable media file"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&bogus).unwrap(), before);
}
