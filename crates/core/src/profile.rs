//! Output profiles (`pipelines/*.toml`): *what* to produce for a video. The
//! media crate decides *how*. Unknown keys are errors, and every value is
//! checked on load so a bad profile fails before any job uses it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid profile {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub limits: Limits,
    pub video: VideoSettings,
    pub audio: AudioSettings,
    pub captions: CaptionSettings,
    /// Renditions, largest first. A rung taller than the source is skipped
    /// (never upscale); the smallest rung is always produced.
    pub rungs: Vec<Rung>,
    /// Exports for short-video platforms (`stemfeed export platform`).
    #[serde(default)]
    pub platform: PlatformSettings,
}

/// A platform export: one vertical MP4 with the captions burned in, inside
/// the platform's safe area (clear of its UI overlays).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformSettings {
    pub width: u32,
    pub height: u32,
    /// The safe area's margins as fractions of the frame's width (left,
    /// right) and height (bottom): the platforms' buttons sit on the right,
    /// the caption, author and music line at the bottom.
    pub safe_left: f64,
    pub safe_right: f64,
    pub safe_bottom: f64,
    /// Caption size in pixels, Latin script and Nastaliq (whose letters
    /// stack higher).
    pub font_px: u32,
    pub nastaliq_font_px: u32,
    pub max_lines: usize,
    /// x264 quantizer for the re-encoded picture (lower is better).
    pub quantizer: u32,
    /// Make the export of every approved caption track as soon as a video
    /// is approved (otherwise a curator starts one from the review page or
    /// `stemfeed export platform`).
    pub on_approval: bool,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        Self {
            width: 1080,
            height: 1920,
            safe_left: 0.06,
            safe_right: 0.16,
            safe_bottom: 0.22,
            font_px: 54,
            nastaliq_font_px: 50,
            max_lines: 2,
            quantizer: 20,
            on_approval: false,
        }
    }
}

/// What inputs are accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_duration_s: f64,
    pub min_duration_s: f64,
    /// Largest accepted width or height in pixels.
    pub max_dimension: u32,
    /// Smallest accepted width or height in pixels.
    pub min_dimension: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSettings {
    /// Keyframe interval in seconds; closed GOPs, aligned across rungs.
    pub gop_seconds: f64,
    /// x264 speed preset (ultrafast … veryslow).
    pub x264_preset: String,
    /// H.264 profile every phone plays: baseline, main or high.
    pub h264_profile: String,
    /// Output frame rate cap; sources above it are reduced.
    pub max_fps: u32,
    /// GStreamer videoscale method: bilinear2, 4-tap, lanczos, catrom, mitchell…
    pub scaler: String,
    /// Resampler for the chroma planes (videoscale's `chroma-resampler`:
    /// nearest, linear, cubic, sinc, lanczos). GStreamer scales 4:2:0
    /// chroma with this, not with `scaler`; its default (linear) trails
    /// ffmpeg's bicubic by 0.4-0.8 dB (benches/results/scaler.md).
    #[serde(default = "default_chroma_scaler")]
    pub chroma_scaler: String,
}

fn default_chroma_scaler() -> String {
    "cubic".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSettings {
    pub sample_rate: u32,
    pub channels: u32,
    /// Integrated loudness target (EBU R128), LUFS.
    pub loudness_target_lufs: f64,
    /// Ceiling for the true peak after normalisation, dBTP.
    pub true_peak_max_dbtp: f64,
}

/// What the caption stage produces and the rules its cues follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionSettings {
    /// Languages detection chooses among (ISO 639-1); a submitter's hint overrides.
    pub languages: Vec<String>,
    /// Also produce an English translation track for non-English speech.
    pub translate: bool,
    /// Whisper beam size; 1 is greedy decoding.
    pub beam_size: usize,
    pub max_line_graphemes: usize,
    pub max_lines: usize,
    pub min_cue_seconds: f64,
    pub max_cue_seconds: f64,
    /// Minimum gap between cues, in frames of the output video.
    pub min_gap_frames: u32,
    pub max_chars_per_second: f64,
    /// EXPERIMENTAL: when Whisper writes Punjabi in Gurmukhi, transliterate
    /// it to Shahmukhi (the track is always a draft).
    #[serde(default)]
    pub punjabi_gurmukhi_to_shahmukhi: bool,
    /// A track whose model's measured word error rate for its language
    /// (`models/accuracy.toml`) is above this is a draft, the rate in its
    /// reason.
    #[serde(default = "default_max_measured_wer")]
    pub max_measured_wer: f64,
    /// A track whose mean word confidence is below this is a draft.
    #[serde(default = "default_min_mean_confidence")]
    pub min_mean_confidence: f32,
    /// Once curators have approved this many transcript tracks of a
    /// language from a model, the share of Whisper's words they changed
    /// replaces the shipped `eval asr` rate as that model's measured rate.
    #[serde(default = "default_min_curator_tracks")]
    pub min_curator_tracks: usize,
}

fn default_min_curator_tracks() -> usize {
    20
}

fn default_max_measured_wer() -> f64 {
    0.5
}

fn default_min_mean_confidence() -> f32 {
    0.5
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Length of the shorter side: 1080 means 1080×1920 portrait or 1920×1080 landscape.
    pub short_side: u32,
    pub video_kbps: u32,
    pub audio_kbps: u32,
}

const X264_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
];

impl Profile {
    pub fn from_file(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ProfileError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        let profile: Self = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        profile.check()?;
        Ok(profile)
    }

    /// The built-in short-form profile (`pipelines/short-form.toml`).
    /// The built-in profile's TOML text (a base for custom profiles).
    pub fn short_form_toml() -> &'static str {
        include_str!("../../../pipelines/short-form.toml")
    }

    pub fn short_form() -> Self {
        Self::from_toml(Self::short_form_toml())
            .expect("pipelines/short-form.toml is valid (checked by tests)")
    }

    fn check(&self) -> Result<(), String> {
        let l = &self.limits;
        if !(l.min_duration_s >= 0.0 && l.max_duration_s > l.min_duration_s) {
            return Err("limits: need 0 <= min_duration_s < max_duration_s".into());
        }
        if l.min_dimension < 2 || l.max_dimension <= l.min_dimension {
            return Err("limits: need 2 <= min_dimension < max_dimension".into());
        }
        if !(0.5..=10.0).contains(&self.video.gop_seconds) {
            return Err("video.gop_seconds must be between 0.5 and 10".into());
        }
        if !X264_PRESETS.contains(&self.video.x264_preset.as_str()) {
            return Err(format!(
                "video.x264_preset {:?} is not one of {X264_PRESETS:?}",
                self.video.x264_preset
            ));
        }
        if !["baseline", "main", "high"].contains(&self.video.h264_profile.as_str()) {
            return Err("video.h264_profile must be baseline, main or high".into());
        }
        if ![
            "bilinear",
            "bilinear2",
            "4-tap",
            "lanczos",
            "sinc",
            "hermite",
            "spline",
            "catrom",
            "mitchell",
        ]
        .contains(&self.video.scaler.as_str())
        {
            return Err(format!(
                "video.scaler {:?} is not a videoscale method",
                self.video.scaler
            ));
        }
        if !["nearest", "linear", "cubic", "sinc", "lanczos"]
            .contains(&self.video.chroma_scaler.as_str())
        {
            return Err(format!(
                "video.chroma_scaler {:?} is not a chroma resampler method",
                self.video.chroma_scaler
            ));
        }
        if !(1..=120).contains(&self.video.max_fps) {
            return Err("video.max_fps must be 1..=120".into());
        }
        if ![44_100, 48_000].contains(&self.audio.sample_rate)
            || !(1..=2).contains(&self.audio.channels)
        {
            return Err(
                "audio: AAC-LC output needs sample_rate 44100 or 48000 and 1 or 2 channels".into(),
            );
        }
        if self.audio.true_peak_max_dbtp > 0.0 || self.audio.loudness_target_lufs >= 0.0 {
            return Err("audio: loudness target and true-peak ceiling must be negative".into());
        }
        let c = &self.captions;
        if c.languages.is_empty()
            || c.languages
                .iter()
                .any(|l| l.len() != 2 || !l.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return Err("captions.languages must be a non-empty list of ISO 639-1 codes".into());
        }
        if !(1..=10).contains(&c.beam_size) || c.max_lines == 0 || c.max_line_graphemes < 10 {
            return Err(
                "captions: beam_size 1..=10, max_lines >= 1, max_line_graphemes >= 10".into(),
            );
        }
        if !(c.min_cue_seconds > 0.0
            && c.max_cue_seconds > c.min_cue_seconds
            && c.max_chars_per_second > 0.0)
        {
            return Err(
                "captions: need 0 < min_cue_seconds < max_cue_seconds and max_chars_per_second > 0"
                    .into(),
            );
        }
        if self.rungs.is_empty() {
            return Err("at least one rung is required".into());
        }
        for pair in self.rungs.windows(2) {
            if pair[1].short_side >= pair[0].short_side {
                return Err("rungs must be listed largest first, without repeats".into());
            }
        }
        for r in &self.rungs {
            if r.short_side < 64 || r.short_side % 2 != 0 || r.video_kbps < 50 || r.audio_kbps < 16
            {
                return Err(format!(
                    "rung {}: short_side must be even and >= 64, video_kbps >= 50, audio_kbps >= 16",
                    r.short_side
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../pipelines")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn shipped_profiles_are_valid() {
        for name in ["short-form.toml", "data-saver.toml"] {
            Profile::from_toml(&shipped(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(
            Profile::short_form().rungs.first().map(|r| r.short_side),
            Some(1080)
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = shipped("short-form.toml").replace("[video]", "[video]\ncrf_typo = 3");
        assert!(Profile::from_toml(&text).unwrap_err().contains("crf_typo"));
    }

    #[test]
    fn rungs_must_descend() {
        let mut p = Profile::short_form();
        p.rungs.reverse();
        assert!(p.check().unwrap_err().contains("largest first"));
    }
}
