//! Silero VAD through whisper.cpp: which parts of 16 kHz audio hold speech.
//!
//! Silero is a neural detector trained to tell speech from music and noise,
//! unlike the WebRTC GMM detector in [`crate::vad`], which hears music as
//! speech. The model is the ggml file `stemfeed models install default`
//! converts from the `silero-vad` wheel (model name `silero-vad`).
//!
//! whisper.cpp scores every 512-sample (32 ms) frame with the model, then
//! turns the probabilities into regions with Silero's own hysteresis: speech
//! starts above `threshold`, ends after `min_silence_ms` below
//! `threshold - 0.15`, regions shorter than `min_speech_ms` are dropped and
//! the rest are padded by `speech_pad_ms` on each side (less where two
//! regions would overlap).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use whisper_rs::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};

use crate::error::AsrError;

/// Samples per scored frame at 16 kHz.
pub const FRAME_SAMPLES: usize = 512;

/// How probabilities become regions. The defaults suit caption timing: short
/// pauses stay inside one region, a quarter-second blip is not speech, and
/// the padding keeps word onsets and tails that score below the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SileroOptions {
    /// Frames scoring above this are speech (Silero's and faster-whisper's 0.5).
    pub threshold: f32,
    /// Regions shorter than this are dropped.
    pub min_speech_ms: u32,
    /// Silence shorter than this does not end a region.
    pub min_silence_ms: u32,
    /// Added before and after each region.
    pub speech_pad_ms: u32,
    /// Longer regions are split, at a pause where there is one.
    pub max_speech_s: Option<f32>,
}

impl Default for SileroOptions {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_speech_ms: 250,
            min_silence_ms: 300,
            speech_pad_ms: 200,
            max_speech_s: None,
        }
    }
}

/// A loaded Silero VAD model. Scoring carries LSTM state across frames, so
/// one call runs at a time; load one per worker thread for parallelism.
#[derive(Debug)]
pub struct SileroVad {
    ctx: Mutex<WhisperVadContext>,
    path: PathBuf,
    options: SileroOptions,
}

impl SileroVad {
    /// Loads the ggml file written by `stemfeed models install` (CPU only:
    /// whisper.cpp 1.8 runs its VAD on the CPU regardless).
    pub fn load(path: &Path) -> Result<Self, AsrError> {
        let fail = |reason: String| AsrError::Load {
            path: path.to_path_buf(),
            reason,
        };
        check_header(path).map_err(fail)?;
        let utf8 = path
            .to_str()
            .filter(|p| !p.contains('\0'))
            .ok_or_else(|| fail("path is not valid UTF-8 without NUL bytes".into()))?;
        let mut params = WhisperVadContextParams::new();
        // One 32 ms frame is a few small matrix products: more threads only
        // add synchronisation per frame (4 threads on a busy 2-core machine
        // were several times slower than 1).
        params.set_n_threads(1);
        params.set_use_gpu(false);
        let ctx = WhisperVadContext::new(utf8, params).map_err(|e| {
            fail(format!(
                "whisper.cpp rejected the VAD model ({e}); reinstall it with `stemfeed models install silero-vad`"
            ))
        })?;
        Ok(Self {
            ctx: Mutex::new(ctx),
            path: path.to_path_buf(),
            options: SileroOptions::default(),
        })
    }

    /// The same model with other region options.
    pub fn with_options(mut self, options: SileroOptions) -> Self {
        self.options = options;
        self
    }

    pub fn options(&self) -> &SileroOptions {
        &self.options
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Speech regions of 16 kHz mono samples as (start, end) seconds, in
    /// order and not overlapping. Silence or music gives an empty list.
    pub fn speech_regions(&self, pcm: &[f32]) -> Result<Vec<(f64, f64)>, AsrError> {
        if pcm.is_empty() {
            return Ok(Vec::new());
        }
        let o = &self.options;
        let mut params = WhisperVadParams::new();
        params.set_threshold(o.threshold);
        params.set_min_speech_duration(ms(o.min_speech_ms));
        params.set_min_silence_duration(ms(o.min_silence_ms));
        params.set_speech_pad(ms(o.speech_pad_ms));
        params.set_max_speech_duration(o.max_speech_s.unwrap_or(f32::MAX));
        let mut ctx = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        let segments =
            ctx.segments_from_samples(params, pcm)
                .map_err(|source| AsrError::Inference {
                    stage: "silero vad",
                    source,
                })?;
        let duration = pcm.len() as f64 / f64::from(crate::SAMPLE_RATE);
        // whisper.cpp reports centiseconds.
        Ok(segments
            .map(|s| {
                let start = (f64::from(s.start) / 100.0).clamp(0.0, duration);
                let end = (f64::from(s.end) / 100.0).clamp(start, duration);
                (start, end)
            })
            .filter(|(start, end)| end > start)
            .collect())
    }

    /// The speech probability of each 512-sample frame (the last one
    /// zero-padded), for callers that want their own decision rule.
    pub fn frame_probabilities(&self, pcm: &[f32]) -> Result<Vec<f32>, AsrError> {
        if pcm.is_empty() {
            return Ok(Vec::new());
        }
        let mut ctx = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        ctx.detect_speech(pcm)
            .map_err(|source| AsrError::Inference {
                stage: "silero vad",
                source,
            })?;
        Ok(ctx.probabilities().to_vec())
    }
}

fn ms(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// whisper.cpp's VAD loader trusts the length fields of its header, so a
/// Whisper model passed by mistake must be refused here, not there.
fn check_header(path: &Path) -> Result<(), String> {
    let mut head = [0u8; 18];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| e.to_string())?;
    if &head[..4] != b"lmgg" {
        return Err("not a ggml file (bad magic)".into());
    }
    if i32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) != 10
        || &head[8..18] != b"silero-16k"
    {
        return Err("not a Silero VAD model (a Whisper model?); the VAD model is `silero-vad` from `stemfeed models install default`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whisper_models_and_missing_files_are_refused_before_whisper_cpp_sees_them() {
        let dir = std::env::temp_dir().join(format!("stemfeed-silero-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let whisper = dir.join("whisper.bin");
        let mut bytes = b"lmgg".to_vec();
        bytes.extend_from_slice(&[0u8; 64]);
        std::fs::write(&whisper, bytes).unwrap();
        let err = SileroVad::load(&whisper).unwrap_err().to_string();
        assert!(err.contains("not a Silero VAD model"), "{err}");
        let err = SileroVad::load(&dir.join("missing.bin"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.bin"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_options_are_the_documented_ones() {
        let o = SileroOptions::default();
        assert_eq!(o.threshold, 0.5);
        assert_eq!(
            (o.min_speech_ms, o.min_silence_ms, o.speech_pad_ms),
            (250, 300, 200)
        );
    }
}
