//! Silero VAD converted from the real `silero-vad` wheel, loaded by
//! whisper.cpp and run on silence, a real speech clip and a real music clip
//! from `tests/asr-dev`. The model is installed the way operators install it
//! (pip, pinned checksums, Rust conversion) into this target's scratch
//! directory; pip's cache makes reruns cheap.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use stemfeed_asr::silero::SileroVad;
use stemfeed_models::{Manifest, ModelStore, install};

fn model() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let store = ModelStore::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("models"));
        let manifest = Manifest::parse(stemfeed_models::manifest::BUILTIN).unwrap();
        let outcomes = install::install(&store, &manifest, "silero-vad", &mut |l| eprintln!("{l}"))
            .expect("silero-vad installs from its wheel");
        outcomes[0].model().file.clone()
    })
}

/// Decodes a clip of the workspace's ASR dev set to 16 kHz mono f32 with sox.
fn clip(name: &str) -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/asr-dev")
        .join(name);
    let out = Command::new("sox")
        .arg(&path)
        .args([
            "-t",
            "f32",
            "-r",
            "16000",
            "-c",
            "1",
            "-e",
            "floating-point",
            "-",
        ])
        .output()
        .expect("sox is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "sox {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn covered(regions: &[(f64, f64)]) -> f64 {
    regions.iter().fold(0.0, |sum, (s, e)| sum + e - s)
}

#[test]
fn digital_silence_has_no_speech() {
    let vad = SileroVad::load(model()).unwrap();
    let silence = vec![0.0f32; 32_000];
    assert_eq!(vad.speech_regions(&silence).unwrap(), []);
    let probs = vad.frame_probabilities(&silence).unwrap();
    assert_eq!(probs.len(), 32_000 / 512 + 1);
    assert!(probs.iter().all(|&p| p < 0.1), "{probs:?}");
    assert_eq!(vad.speech_regions(&[]).unwrap(), []);
}

#[test]
fn read_speech_is_covered() {
    let vad = SileroVad::load(model()).unwrap();
    let pcm = clip("en_librivox_ss_0870.flac");
    let duration = pcm.len() as f64 / 16_000.0;
    let regions = vad.speech_regions(&pcm).unwrap();
    eprintln!("speech {duration:.2} s: {regions:?}");
    assert!(!regions.is_empty());
    assert!(
        regions.windows(2).all(|w| w[0].1 <= w[1].0) && regions.iter().all(|(s, e)| s < e),
        "{regions:?}"
    );
    // An audiobook sentence: speech from near the start to near the end,
    // most of the clip covered.
    assert!(regions[0].0 < 1.0, "{regions:?}");
    assert!(regions.last().unwrap().1 > duration - 1.0, "{regions:?}");
    assert!(covered(&regions) > 0.7 * duration, "{regions:?}");
}

#[test]
fn music_is_mostly_not_speech() {
    let vad = SileroVad::load(model()).unwrap();
    for name in [
        "music_brahms_hungarian_dance5.flac",
        "music_sugar_plum_fairy.flac",
        "music_trumpet_loop.flac",
        "music_vibe_ace.flac",
    ] {
        let pcm = clip(name);
        let duration = pcm.len() as f64 / 16_000.0;
        let regions = vad.speech_regions(&pcm).unwrap();
        let share = covered(&regions) / duration;
        eprintln!(
            "{name} {duration:.2} s: {:.0}% speech {regions:?}",
            share * 100.0
        );
        assert!(share < 0.25, "{name}: {regions:?}");
    }
}
