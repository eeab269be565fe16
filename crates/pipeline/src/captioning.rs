//! The caption stage: runs the ASR crate's caption policy with the
//! profile's settings and writes `captions/<lang>.<kind>.{vtt,srt,json}`
//! plus an HLS subtitle playlist per track.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use stemfeed_asr::caption::{CaptionOptions, caption};
use stemfeed_captions::segment::Rules;
use stemfeed_captions::{CaptionFile, srt, webvtt};
use stemfeed_core::Profile;
use stemfeed_tagging::Tagger;

use crate::contract::{
    CaptionsSummary, StageSettings, SubtitleTrack, TrackEntry, TrackFiles, write_atomic,
};
use crate::error::{Fault, io_fault};

#[derive(Debug, Default)]
pub struct Hints {
    pub language: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug)]
pub struct Captions {
    pub summary: CaptionsSummary,
    pub subtitles: Vec<SubtitleTrack>,
    /// Seconds spent loading Whisper models (kept apart to show what a
    /// per-job load costs).
    pub model_load_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptionError {
    #[error("{0}")]
    Models(String),
    #[error("loading the model: {0}")]
    Load(stemfeed_asr::AsrError),
    #[error("{0}")]
    Asr(stemfeed_asr::AsrError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CaptionError {
    pub fn fault(&self) -> Fault {
        match self {
            CaptionError::Write { source, .. } => io_fault(source),
            _ => Fault::Transient,
        }
    }
}

/// The installed name of the Silero VAD model.
const SPEECH_DETECTOR: &str = "silero-vad";

/// Whisper's prompt holds about 224 tokens; stay well inside it.
const PROMPT_CHARS: usize = 400;

/// Title, description and the taxonomy's terms for the topics they point to.
fn prompt(tagger: &Tagger, hints: &Hints) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    parts.extend(hints.title.iter().cloned());
    parts.extend(hints.description.iter().cloned());
    let terms = tagger.vocabulary(
        hints.title.as_deref().unwrap_or_default(),
        hints.description.as_deref().unwrap_or_default(),
        hints.language.as_deref(),
    );
    if !terms.is_empty() {
        parts.push(format!("{}.", terms.join(", ")));
    }
    let text = parts.join(" ");
    let text: String = text.chars().take(PROMPT_CHARS).collect();
    (!text.trim().is_empty()).then_some(text)
}

fn display_name(language: &str, kind: &str) -> String {
    let name = match language {
        "ur" => "اردو",
        "en" => "English",
        "pa" => "پنجابی",
        "sd" => "سنڌي",
        "ps" => "پښتو",
        other => other,
    };
    if kind == "translation" {
        format!("{name} (translation)")
    } else {
        name.to_owned()
    }
}

/// Resolves `asr.models` (language → model name) to installed files.
pub fn language_models(settings: &StageSettings) -> Result<BTreeMap<String, PathBuf>, String> {
    let store = stemfeed_models::ModelStore::new(&settings.models_dir);
    settings
        .asr
        .models
        .iter()
        .map(|(lang, name)| {
            let m = store.get(name).map_err(|e| e.to_string())?.ok_or_else(|| {
                format!("asr.models.{lang} = {name:?} is not installed; run `stemfeed models install {name}` or `stemfeed models fetch {name}`")
            })?;
            Ok((lang.clone(), m.file))
        })
        .collect()
}

/// The caption policy's options for a profile, the stage settings and a
/// video's hints: what the caption stage runs with, and what `stemfeed eval
/// asr` measures.
pub fn options(
    profile: &Profile,
    settings: &StageSettings,
    tagger: &Tagger,
    hints: &Hints,
    fps: u32,
) -> Result<CaptionOptions, CaptionError> {
    let c = &profile.captions;
    let rules = Rules {
        max_line_graphemes: c.max_line_graphemes,
        max_lines: c.max_lines,
        min_duration: c.min_cue_seconds,
        max_duration: c.max_cue_seconds,
        min_gap: f64::from(c.min_gap_frames) / f64::from(fps.max(1)),
        max_cps: c.max_chars_per_second,
        ..Rules::default()
    };
    Ok(CaptionOptions {
        allowed: c.languages.clone(),
        hint: hints.language.clone(),
        threads: settings.asr.threads,
        beam_size: c.beam_size,
        prompt: prompt(tagger, hints),
        rules,
        translate: c.translate,
        language_models: language_models(settings).map_err(CaptionError::Models)?,
        gpu: settings.asr.gpu,
        transliterate_gurmukhi: c.punjabi_gurmukhi_to_shahmukhi,
        measured_wer: c
            .languages
            .iter()
            .filter_map(|lang| {
                let model = settings.asr.models.get(lang).unwrap_or(&settings.asr.model);
                Some((
                    lang.clone(),
                    measured_wer(settings, c.min_curator_tracks, model, lang)?,
                ))
            })
            .collect(),
        max_measured_wer: c.max_measured_wer,
        min_mean_confidence: c.min_mean_confidence,
        speech_detector: speech_detector(settings),
    })
}

/// The best word error rate known for `model` on `language`: what curators
/// changed in its approved transcripts once there are `min_tracks` of them
/// (production speech, judged by people), else the shipped `eval asr`
/// figure for real read speech.
fn measured_wer(
    settings: &StageSettings,
    min_tracks: usize,
    model: &str,
    language: &str,
) -> Option<stemfeed_asr::caption::MeasuredWer> {
    let curators = settings.curator_accuracy.iter().find(|a| {
        a.language == language && a.model == model && a.tracks >= min_tracks.max(1) && a.words > 0
    });
    if let Some(a) = curators {
        return Some(stemfeed_asr::caption::MeasuredWer {
            model: model.to_owned(),
            wer: a.words_changed as f64 / a.words as f64,
            basis: format!(
                "curators changed that share of its words in {} approved {language} transcripts",
                a.tracks
            ),
        });
    }
    Some(stemfeed_asr::caption::MeasuredWer {
        model: model.to_owned(),
        wer: stemfeed_core::accuracy::measured_wer(model, language)?,
        basis: "measured with `stemfeed eval asr`".to_owned(),
    })
}

/// The installed Silero VAD model, if any (`stemfeed models install
/// default` installs it); without it the stage falls back to WebRTC's VAD
/// and says so in the log.
fn speech_detector(settings: &StageSettings) -> Option<PathBuf> {
    let store = stemfeed_models::ModelStore::new(&settings.models_dir);
    match store.get(SPEECH_DETECTOR) {
        Ok(Some(m)) if m.kind == stemfeed_models::store::ModelKind::Vad => Some(m.file),
        other => {
            tracing::warn!(
                "speech detector {SPEECH_DETECTOR} not installed ({other:?}); using WebRTC's VAD, which hears music as speech: run `stemfeed models install default`"
            );
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    model_file: &Path,
    pcm: &[f32],
    profile: &Profile,
    settings: &StageSettings,
    tagger: &Tagger,
    fps: u32,
    hints: &Hints,
    out: &Path,
    duration_s: f64,
) -> Result<Captions, CaptionError> {
    let opts = options(profile, settings, tagger, hints, fps)?;
    let t = Instant::now();
    let model =
        stemfeed_asr::Model::load(model_file, settings.asr.gpu).map_err(CaptionError::Load)?;
    let model_load_s = t.elapsed().as_secs_f64();
    tracing::info!(seconds = model_load_s, model = %model_file.display(), "model loaded");
    let result = caption(&model, pcm, &opts).map_err(CaptionError::Asr)?;

    let dir = out.join("captions");
    let write = |path: &Path, bytes: &[u8]| {
        write_atomic(path, bytes).map_err(|source| CaptionError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    std::fs::create_dir_all(&dir).map_err(|source| CaptionError::Write {
        path: dir.clone(),
        source,
    })?;
    let mut tracks = Vec::new();
    let mut subtitles = Vec::new();
    for t in &result.tracks {
        let stem = format!("{}.{}", t.language, t.kind);
        let vtt = dir.join(format!("{stem}.vtt"));
        write(&vtt, webvtt::write(&t.track).as_bytes())?;
        write(
            &dir.join(format!("{stem}.srt")),
            srt::write(&t.track).as_bytes(),
        )?;
        let file = CaptionFile {
            language: t.language.clone(),
            kind: t.kind.clone(),
            status: t.status,
            reason: t.reason.clone(),
            script: t.script.clone(),
            attempts: t.attempts.clone(),
            dropped: t.dropped.clone(),
            detected_language: result.language.clone(),
            cues: t.track.cues.clone(),
        };
        let json = serde_json::to_value(&file).expect("caption files are plain data");
        write(
            &dir.join(format!("{stem}.json")),
            &serde_json::to_vec_pretty(&json).expect("a JSON value serialises"),
        )?;
        let playlist =
            stemfeed_media::transcode::write_subtitle_playlist(out, &stem, &vtt, duration_s)
                .map_err(|source| CaptionError::Write {
                    path: out.join("hls/subs"),
                    source,
                })?;
        subtitles.push(SubtitleTrack {
            language: t.language.clone(),
            name: display_name(&t.language, &t.kind),
            playlist,
        });
        let confidences: Vec<f32> = t.track.cues.iter().filter_map(|c| c.confidence).collect();
        tracks.push(TrackEntry {
            language: t.language.clone(),
            kind: t.kind.clone(),
            status: t.status,
            reason: t.reason.clone(),
            cues: t.track.cues.len(),
            mean_confidence: (!confidences.is_empty())
                .then(|| confidences.iter().sum::<f32>() / confidences.len() as f32),
            min_cue_confidence: confidences.iter().copied().reduce(f32::min),
            files: TrackFiles {
                vtt: format!("captions/{stem}.vtt"),
                srt: format!("captions/{stem}.srt"),
                json: format!("captions/{stem}.json"),
            },
        });
    }
    Ok(Captions {
        summary: CaptionsSummary {
            model: settings.asr.model.clone(),
            language: result.language.clone(),
            speech_seconds: result.speech_seconds,
            note: result
                .tracks
                .is_empty()
                .then(|| "no speech detected: no captions".to_owned()),
            tracks,
            rules: Some(Box::new(opts.rules.clone())),
        },
        subtitles,
        model_load_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::CuratorAccuracy;

    fn settings(tracks: usize) -> StageSettings {
        StageSettings {
            models_dir: PathBuf::from("/nonexistent"),
            asr: Default::default(),
            tagging: Default::default(),
            curator_accuracy: vec![CuratorAccuracy {
                language: "ur".into(),
                model: "base".into(),
                tracks,
                words: 1000,
                words_changed: 310,
            }],
        }
    }

    #[test]
    fn curators_edits_replace_the_shipped_rate_once_enough_tracks_are_approved() {
        let shipped = stemfeed_core::accuracy::measured_wer("base", "ur").unwrap();
        // Too few approved tracks: the shipped `eval asr` figure.
        let m = measured_wer(&settings(5), 20, "base", "ur").unwrap();
        assert_eq!(m.wer, shipped);
        assert!(m.basis.contains("eval asr"), "{}", m.basis);
        // Enough: what curators changed.
        let m = measured_wer(&settings(20), 20, "base", "ur").unwrap();
        assert!((m.wer - 0.31).abs() < 1e-9);
        assert!(
            m.basis.contains("20 approved ur transcripts"),
            "{}",
            m.basis
        );
        // Another model's edits say nothing about this one.
        let m = measured_wer(&settings(50), 20, "small", "ur");
        assert!(m.is_none_or(|m| !m.basis.contains("curators")));
        // A language measured by neither: unknown.
        assert!(measured_wer(&settings(50), 20, "base", "xx").is_none());
    }
}
