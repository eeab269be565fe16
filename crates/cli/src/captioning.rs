//! The caption stage of `stemfeed process`: runs the ASR crate's caption
//! pipeline with the profile's settings and writes
//! `captions/<lang>.<kind>.{vtt,srt,json}` plus an HLS subtitle playlist per
//! track.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};
use stemfeed_asr::caption::{CaptionOptions, caption};
use stemfeed_captions::segment::Rules;
use stemfeed_captions::{srt, webvtt};
use stemfeed_core::{Config, Profile};
use stemfeed_media::transcode::SubtitleTrack;
use stemfeed_tagging::Tagger;

#[derive(Debug, Default)]
pub struct Hints {
    pub language: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug)]
pub struct Captions {
    pub manifest: Value,
    pub subtitles: Vec<SubtitleTrack>,
}

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
pub fn language_models(
    config: &Config,
) -> anyhow::Result<std::collections::BTreeMap<String, std::path::PathBuf>> {
    let store = stemfeed_models::ModelStore::new(&config.models_dir);
    config
        .asr
        .models
        .iter()
        .map(|(lang, name)| {
            let m = store.get(name)?.with_context(|| {
                format!("asr.models.{lang} = {name:?} is not installed; run `stemfeed models install {name}` or `stemfeed models fetch {name}`")
            })?;
            Ok((lang.clone(), m.file))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    model_file: &Path,
    pcm: &[f32],
    profile: &Profile,
    config: &Config,
    tagger: &Tagger,
    fps: u32,
    hints: &Hints,
    out: &Path,
    duration_s: f64,
) -> anyhow::Result<Captions> {
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
    let opts = CaptionOptions {
        allowed: c.languages.clone(),
        hint: hints.language.clone(),
        threads: config.asr.threads,
        beam_size: c.beam_size,
        prompt: prompt(tagger, hints),
        rules,
        translate: c.translate,
        language_models: language_models(config)?,
        gpu: config.asr.gpu,
        transliterate_gurmukhi: c.punjabi_gurmukhi_to_shahmukhi,
    };
    let model = stemfeed_asr::Model::load(model_file, config.asr.gpu)
        .context("captions: loading the model")?;
    let result = caption(&model, pcm, &opts).context("captions")?;

    let dir = out.join("captions");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tracks = Vec::new();
    let mut subtitles = Vec::new();
    for t in &result.tracks {
        let stem = format!("{}.{}", t.language, t.kind);
        let vtt = dir.join(format!("{stem}.vtt"));
        let srt_path = dir.join(format!("{stem}.srt"));
        let json_path = dir.join(format!("{stem}.json"));
        std::fs::write(&vtt, webvtt::write(&t.track))
            .with_context(|| format!("writing {}", vtt.display()))?;
        std::fs::write(&srt_path, srt::write(&t.track))
            .with_context(|| format!("writing {}", srt_path.display()))?;
        let detail = json!({
            "language": t.language,
            "kind": t.kind,
            "status": t.status,
            "reason": t.reason,
            "script": t.script,
            "attempts": t.attempts,
            "dropped": t.dropped,
            "detected_language": result.language,
            "cues": t.track.cues,
        });
        std::fs::write(&json_path, serde_json::to_vec_pretty(&detail)?)
            .with_context(|| format!("writing {}", json_path.display()))?;
        let playlist =
            stemfeed_media::transcode::write_subtitle_playlist(out, &stem, &vtt, duration_s)
                .context("writing the subtitle playlist")?;
        subtitles.push(SubtitleTrack {
            language: t.language.clone(),
            name: display_name(&t.language, &t.kind),
            playlist,
        });
        let confidences: Vec<f32> = t.track.cues.iter().filter_map(|c| c.confidence).collect();
        tracks.push(json!({
            "language": t.language,
            "kind": t.kind,
            "status": t.status,
            "reason": t.reason,
            "cues": t.track.cues.len(),
            "mean_confidence": (!confidences.is_empty()).then(|| confidences.iter().sum::<f32>() / confidences.len() as f32),
            "min_cue_confidence": confidences.iter().cloned().reduce(f32::min),
            "files": {
                "vtt": format!("captions/{stem}.vtt"),
                "srt": format!("captions/{stem}.srt"),
                "json": format!("captions/{stem}.json"),
            },
        }));
    }
    let manifest = json!({
        "model": config.asr.model,
        "language": result.language,
        "speech_seconds": result.speech_seconds,
        "note": result.tracks.is_empty().then_some("no speech detected: no captions"),
        "tracks": tracks,
    });
    Ok(Captions {
        manifest,
        subtitles,
    })
}
