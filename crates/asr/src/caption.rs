//! The caption stage: speech regions → language → transcript and English
//! translation → guards → cues, each track with a status a curator can trust.
//!
//! Status: `ok` (publishable after review), `draft` (produced but failed a
//! guard, with the reason), `needs-human` (outside what Whisper does well
//! enough; never published as ok).

use serde::Serialize;
use stemfeed_captions::script::{self, ScriptCounts};
use stemfeed_captions::segment::{self, Rules};
use stemfeed_captions::{Cue, Track, Word, bidi};
pub use stemfeed_captions::{LanguageChoice, Status};

use crate::error::AsrError;
use crate::model::{Model, Task, TranscribeOptions, Transcript};
use crate::{vad, words};

#[derive(Debug, Clone)]
pub struct CaptionOptions {
    /// Languages the profile expects; detection picks among these.
    pub allowed: Vec<String>,
    /// The submitter's language; overrides detection.
    pub hint: Option<String>,
    pub threads: usize,
    pub beam_size: usize,
    /// Vocabulary prompt (title, description, subject terms).
    pub prompt: Option<String>,
    pub rules: Rules,
    pub translate: bool,
    /// A different model file for some spoken languages (e.g. a larger one for Urdu).
    pub language_models: std::collections::BTreeMap<String, std::path::PathBuf>,
    pub gpu: bool,
    /// EXPERIMENTAL: transliterate Gurmukhi Punjabi output to Shahmukhi
    /// (the track stays a draft).
    pub transliterate_gurmukhi: bool,
    /// Per spoken language: the model used for it and its measured word
    /// error rate on real speech, where measured.
    pub measured_wer: std::collections::BTreeMap<String, MeasuredWer>,
    /// Above this measured rate a track is a draft.
    pub max_measured_wer: f64,
    /// Below this mean word confidence a track is a draft.
    pub min_mean_confidence: f32,
    /// The Silero VAD model (ggml) that finds speech; without it, WebRTC's
    /// VAD, which hears music as speech.
    pub speech_detector: Option<std::path::PathBuf>,
}

/// A model's word error rate on one language, and what measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredWer {
    pub model: String,
    pub wer: f64,
    /// "measured with `stemfeed eval asr`", or the curators' edits it comes from.
    pub basis: String,
}

/// Why a track that passed every guard still cannot be called `ok`: the
/// model is measured to get most words of this language wrong, or Whisper
/// itself was unsure of the words.
fn accuracy_doubt(language: &str, words: &[Word], opts: &CaptionOptions) -> Option<String> {
    if let Some(m) = opts.measured_wer.get(language)
        && m.wer > opts.max_measured_wer
    {
        return Some(format!(
            "model {} gets {:.0}% of words wrong on real {language} speech ({}); check every line",
            m.model,
            m.wer * 100.0,
            m.basis
        ));
    }
    if words.is_empty() {
        return None;
    }
    let mean = words.iter().map(|w| w.probability).sum::<f32>() / words.len() as f32;
    (mean < opts.min_mean_confidence)
        .then(|| format!("Whisper's mean word confidence is {mean:.2}; check every line"))
}

/// Detection margins below this are settled by decoding with each candidate.
const CLOSE_CALL: f32 = 0.25;
/// Start offsets (seconds into the speech) the language head is averaged over.
const DETECT_OFFSETS: [f64; 3] = [0.0, 1.5, 3.0];

#[derive(Debug, Clone, Serialize)]
pub struct CaptionTrack {
    pub language: String,
    pub kind: String,
    pub status: Status,
    pub reason: Option<String>,
    pub script: ScriptCounts,
    /// Decoding attempts made, for the operator ("forced ur", "forced ur + script prompt").
    pub attempts: Vec<String>,
    /// Guard actions: dropped segments and why.
    pub dropped: Vec<String>,
    pub track: Track,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaptionResult {
    /// `silero` or `webrtc`.
    pub speech_detector: &'static str,
    pub language: Option<LanguageChoice>,
    pub speech_seconds: f64,
    pub speech_regions: Vec<(f64, f64)>,
    pub tracks: Vec<CaptionTrack>,
}

/// Whisper's competence by language for stemfeed's purposes.
fn needs_human(language: &str) -> Option<String> {
    match language {
        "ps" => Some("Pashto: Whisper's published word error rate is above 90% for every model size (wrong script); a person must caption it".into()),
        "ur" | "en" | "pa" | "sd" | "hi" | "ar" | "fa" => None,
        other => Some(format!("{other}: outside the languages stemfeed checks; a person must review it")),
    }
}

/// A prompt in the target script steers Whisper's output script.
fn script_prompt(language: &str) -> Option<&'static str> {
    match language {
        "ur" => Some("یہ اردو زبان میں سائنس کی ایک ویڈیو ہے۔"),
        "sd" => Some("هي سنڌي ٻوليءَ ۾ سائنس جي هڪ وڊيو آهي."),
        "pa" => Some("ایہہ پنجابی وچ سائنس دی اک ویڈیو اے۔"),
        _ => None,
    }
}

const NO_SPEECH_DROP: f32 = 0.3;
const LOW_CONFIDENCE: f32 = 0.5;
/// Below this mean word probability a segment is dropped whatever else holds.
const VERY_LOW_CONFIDENCE: f32 = 0.25;
/// Whisper's stock hallucinations over music and silence (from its training
/// data's subtitle credits); dropped when the segment is not clearly speech.
const STOCK_PHRASES: &[&str] = &[
    "thank you",
    "thanks for watching",
    "thank you for watching",
    "please subscribe",
    "subscribe to my channel",
    "subtitles by",
    "transcribed by",
];
/// Single words Whisper emits over music and noise so often that, standing
/// alone as a whole segment, they are dropped whatever the no-speech
/// probability says ("you" is its best-known hallucination).
const STOCK_WORDS: &[&str] = &["you", "bye"];
const STOCK_NO_SPEECH: f32 = 0.1;
/// A stock phrase this long after the last words kept (or with none
/// before it) stands alone: over music, Whisper's sign-off, not speech.
const STOCK_ALONE_S: f64 = 3.0;
/// Whisper's names for sounds, written as a whole segment when it hears no
/// words ("Music.", "Applause"): its own verdict that the span is not speech.
const SOUND_LABELS: &[&str] = &[
    "music",
    "background music",
    "instrumental music",
    "upbeat music",
    "applause",
    "laughter",
    "laughs",
    "silence",
    "noise",
    "singing",
    "cheering",
];

fn is_sound_label(text: &str) -> bool {
    let t: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    SOUND_LABELS.contains(&t.as_str())
}

fn is_stock_phrase(text: &str) -> bool {
    let t: String = text
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ')
        .collect();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    STOCK_PHRASES
        .iter()
        .any(|p| t == *p || (t.starts_with(p) && t.len() < p.len() + 12))
}

fn is_stock_word(text: &str) -> bool {
    let t: String = text
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    STOCK_WORDS.contains(&t.as_str())
}
const MAX_REPEAT: usize = 3;
const MAX_COMPRESSION: f64 = 2.4;

/// Words from a transcript after the hallucination guards.
fn guarded_words(t: &Transcript, regions: &[(f64, f64)], dropped: &mut Vec<String>) -> Vec<Word> {
    let mut out = Vec::new();
    // End of the last segment kept, to tell a stock phrase that closes
    // speech from one standing alone over music.
    let mut last_kept: Option<f64> = None;
    for seg in &t.segments {
        let seg_words = words::tokens_to_words(&seg.tokens);
        let texts: Vec<&str> = seg_words.iter().map(|w| w.text.as_str()).collect();
        let mean_p =
            seg_words.iter().map(|w| w.probability).sum::<f32>() / seg_words.len().max(1) as f32;
        let label = format!("{:.1}-{:.1}s {:?}", seg.start, seg.end, seg.text.trim());
        if seg.no_speech_probability > NO_SPEECH_DROP && mean_p < LOW_CONFIDENCE {
            dropped.push(format!(
                "{label}: no-speech probability {:.2}, confidence {mean_p:.2}",
                seg.no_speech_probability
            ));
            continue;
        }
        if mean_p < VERY_LOW_CONFIDENCE {
            dropped.push(format!("{label}: confidence {mean_p:.2}"));
            continue;
        }
        if is_sound_label(&seg.text) {
            dropped.push(format!("{label}: a sound, not words"));
            continue;
        }
        if is_stock_word(&seg.text) {
            dropped.push(format!("{label}: lone stock word"));
            continue;
        }
        if is_stock_phrase(&seg.text) {
            let alone = last_kept.is_none_or(|end| seg.start - end > STOCK_ALONE_S);
            if seg.no_speech_probability > STOCK_NO_SPEECH || alone {
                dropped.push(format!(
                    "{label}: stock phrase with no-speech probability {:.2}{}",
                    seg.no_speech_probability,
                    if alone { ", not following speech" } else { "" }
                ));
                continue;
            }
        }
        let repeat = words::longest_repeat(&texts);
        if repeat > MAX_REPEAT {
            dropped.push(format!("{label}: phrase repeated {repeat} times"));
            continue;
        }
        let ratio = words::compression_ratio(&seg.text);
        if ratio > MAX_COMPRESSION {
            dropped.push(format!("{label}: compression ratio {ratio:.1}"));
            continue;
        }
        // Whether a segment is speech is judged on the segment, whose times
        // are reliable; its words' own times are not (Whisper stamps the
        // last words of a clip at the end of the audio, the first at 0 s),
        // so words of a segment that is speech are moved into speech, never
        // dropped for their stamps.
        if vad::snap_to_speech(regions, seg.start, seg.end.max(seg.start + 0.01)).is_none() {
            dropped.push(format!("{label}: outside speech"));
            continue;
        }
        for w in seg_words {
            if words::is_non_speech(&w.text) {
                continue;
            }
            let (start, end) = vad::clamp_to_speech(regions, w.start, w.end);
            out.push(Word { start, end, ..w });
        }
        last_kept = Some(seg.end);
    }
    out
}

fn cues_for(words: &[Word], language: &str, rules: &Rules) -> Vec<Cue> {
    let mut cues = segment::segment(words, rules);
    if bidi::is_rtl_language(language) {
        for c in &mut cues {
            c.text = bidi::mark_rtl_text(&c.text);
        }
    }
    for (i, c) in cues.iter_mut().enumerate() {
        c.id = Some((i + 1).to_string());
    }
    cues
}

pub fn caption(
    model: &Model,
    pcm: &[f32],
    opts: &CaptionOptions,
) -> Result<CaptionResult, AsrError> {
    // Silero tells speech from music; WebRTC's detector only from silence.
    let (regions, speech_detector) = match &opts.speech_detector {
        Some(path) => (
            crate::silero::SileroVad::load(path)?.speech_regions(pcm)?,
            "silero",
        ),
        None => (vad::speech_regions(pcm), "webrtc"),
    };
    let speech_seconds = vad::speech_seconds(&regions);
    if regions.is_empty() {
        return Ok(CaptionResult {
            speech_detector,
            language: None,
            speech_seconds,
            speech_regions: regions,
            tracks: Vec::new(),
        });
    }
    let gated = vad::gate(pcm, &regions);
    let language = choose_language(model, &gated, &regions, opts)?;
    let lang = language.language.clone();
    let per_language = match opts.language_models.get(&lang) {
        Some(path) => Some(Model::load(path, opts.gpu)?),
        None => None,
    };
    let model = per_language.as_ref().unwrap_or(model);
    let base = TranscribeOptions {
        language: Some(lang.clone()),
        task: Task::Transcribe,
        threads: opts.threads,
        beam_size: opts.beam_size,
        initial_prompt: opts.prompt.clone(),
    };

    let mut tracks = Vec::new();
    let mut attempts = vec![format!("forced {lang}")];
    let mut dropped = Vec::new();
    let mut transcript_words =
        guarded_words(&model.transcribe(&gated, &base)?, &regions, &mut dropped);
    let mut text = join(&transcript_words);
    let mut check = script::check(&lang, &text);
    if check.is_err()
        && let Some(prompt) = script_prompt(&lang)
    {
        attempts.push(format!("forced {lang} + {lang}-script prompt"));
        let steered = TranscribeOptions {
            initial_prompt: Some(match &opts.prompt {
                Some(p) => format!("{prompt} {p}"),
                None => prompt.to_owned(),
            }),
            ..base.clone()
        };
        let mut retry_dropped = Vec::new();
        let retry = guarded_words(
            &model.transcribe(&gated, &steered)?,
            &regions,
            &mut retry_dropped,
        );
        let retry_text = join(&retry);
        let retry_check = script::check(&lang, &retry_text);
        if retry_check.is_ok() || retry.len() > transcript_words.len() / 2 {
            (transcript_words, text, check, dropped) =
                (retry, retry_text, retry_check, retry_dropped);
        }
    }
    let mut transliterated = false;
    if lang == "pa" && opts.transliterate_gurmukhi {
        let counts = ScriptCounts::of(&text);
        if counts.gurmukhi > counts.arabic {
            for w in &mut transcript_words {
                w.text = stemfeed_captions::translit::gurmukhi_to_shahmukhi(&w.text);
            }
            text = join(&transcript_words);
            check = script::check(&lang, &text);
            transliterated = true;
        }
    }
    let (status, reason, counts) = match (needs_human(&lang), check) {
        (None, Ok(c)) if transliterated => (
            Status::Draft,
            Some("EXPERIMENTAL: Whisper wrote Gurmukhi; transliterated letter by letter to Shahmukhi, every line needs review".into()),
            c,
        ),
        (Some(why), c) => (
            Status::NeedsHuman,
            Some(why),
            c.unwrap_or_else(|_| ScriptCounts::of(&text)),
        ),
        // Speech was heard but nothing survived the guards: music, noise or
        // a language the model cannot write. An empty track is not "ok".
        (None, Ok(c)) if transcript_words.is_empty() => (
            Status::NeedsHuman,
            Some(format!(
                "{speech_seconds:.0} s of voice activity but no segment passed the guards; caption by hand or mark as no speech"
            )),
            c,
        ),
        (None, Ok(c)) => match accuracy_doubt(&lang, &transcript_words, opts) {
            Some(why) => (Status::Draft, Some(why), c),
            None => (Status::Ok, None, c),
        },
        (None, Err(why)) => {
            let hint = if lang == "pa" && ScriptCounts::of(&text).gurmukhi > 0 {
                " (Gurmukhi output: Shahmukhi transliteration is not available yet)"
            } else {
                ""
            };
            (
                Status::Draft,
                Some(format!("script guard: {why}{hint}")),
                ScriptCounts::of(&text),
            )
        }
    };
    tracks.push(CaptionTrack {
        language: lang.clone(),
        kind: "transcript".into(),
        status,
        reason,
        script: counts,
        attempts,
        dropped,
        track: Track {
            language: lang.clone(),
            kind: "transcript".into(),
            cues: cues_for(&transcript_words, &lang, &opts.rules),
            regions: Vec::new(),
        },
    });

    if opts.translate && lang != "en" && model.info().multilingual {
        let translate = TranscribeOptions {
            task: Task::Translate,
            initial_prompt: None,
            ..base
        };
        let mut dropped = Vec::new();
        let english = guarded_words(
            &model.transcribe(&gated, &translate)?,
            &regions,
            &mut dropped,
        );
        let text = join(&english);
        let (status, reason) = match (needs_human(&lang), script::check("en", &text)) {
            (Some(why), _) => (Status::NeedsHuman, Some(why)),
            (None, Ok(_)) => match accuracy_doubt(&lang, &english, opts) {
                Some(why) => (
                    Status::Draft,
                    Some(format!("translated from {lang}: {why}")),
                ),
                None => (Status::Ok, None),
            },
            (None, Err(why)) => (Status::Draft, Some(format!("script guard: {why}"))),
        };
        tracks.push(CaptionTrack {
            language: "en".into(),
            kind: "translation".into(),
            status,
            reason,
            script: ScriptCounts::of(&text),
            attempts: vec![format!("translate from {lang}")],
            dropped,
            track: Track {
                language: "en".into(),
                kind: "translation".into(),
                cues: cues_for(&english, "en", &opts.rules),
                regions: Vec::new(),
            },
        });
    }
    Ok(CaptionResult {
        speech_detector,
        language: Some(language),
        speech_seconds,
        speech_regions: regions,
        tracks,
    })
}

fn join(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn choose_language(
    model: &Model,
    pcm: &[f32],
    regions: &[(f64, f64)],
    opts: &CaptionOptions,
) -> Result<LanguageChoice, AsrError> {
    if let Some(hint) = &opts.hint {
        return Ok(LanguageChoice {
            language: hint.clone(),
            source: "hint".into(),
            probability: None,
            runner_up: None,
            decoding_scores: Vec::new(),
        });
    }
    if !model.info().multilingual {
        return Ok(LanguageChoice {
            language: "en".into(),
            source: "model".into(),
            probability: None,
            runner_up: None,
            decoding_scores: Vec::new(),
        });
    }
    // Detect on the first 30 s of speech, not on leading silence or music,
    // averaging the language head over a few start offsets: one 30 s window
    // of short or unusual speech gives a noisy answer.
    let start = (regions[0].0 * 16_000.0) as usize;
    let window = &pcm[start..pcm.len().min(start + 30 * 16_000)];
    let allowed: Vec<&str> = opts.allowed.iter().map(String::as_str).collect();
    let speech_in_window = window.len() as f64 / 16_000.0;
    let mut sums: std::collections::BTreeMap<String, f32> = std::collections::BTreeMap::new();
    let offsets: Vec<f64> = DETECT_OFFSETS
        .iter()
        .copied()
        .filter(|o| *o == 0.0 || speech_in_window - o >= 3.0)
        .collect();
    for offset in &offsets {
        let from = (offset * 16_000.0) as usize;
        for g in model.detect_language(&window[from..], &allowed, opts.threads)? {
            *sums.entry(g.language).or_default() += g.probability / offsets.len() as f32;
        }
    }
    let mut guesses: Vec<crate::model::LanguageGuess> = sums
        .into_iter()
        .map(|(language, probability)| crate::model::LanguageGuess {
            language,
            probability,
        })
        .collect();
    guesses.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    let total: f32 = guesses
        .iter()
        .map(|g| g.probability)
        .sum::<f32>()
        .max(f32::EPSILON);
    let best = guesses.first().ok_or(AsrError::NoAudio)?;
    // Whisper's language head is unsure on short, accented or synthetic
    // speech. When the top candidates are close, decode the window with each
    // and score the decode: mean token probability, weighted by how much of
    // the speech it accounts for (a wrong-language decode tends to skip most
    // of it, confidently) and by whether it is in the language's script.
    let window_speech: f64 = regions
        .iter()
        .map(|(s, e)| (e.min(window.len() as f64 / 16_000.0 + regions[0].0) - s).max(0.0))
        .sum::<f64>()
        .max(0.5);
    // English is left out of decoding comparisons: Whisper decoding other
    // speech "as English" tends to translate it fluently and confidently.
    let contenders: Vec<&crate::model::LanguageGuess> = guesses
        .iter()
        .take(3)
        .filter(|g| g.language != "en" && (best.probability - g.probability) / total < CLOSE_CALL)
        .collect();
    let mut decoding_scores = Vec::new();
    let mut chosen = best.language.clone();
    if contenders.len() > 1 && best.language != "en" {
        for g in &contenders {
            let trial = TranscribeOptions {
                language: Some(g.language.clone()),
                threads: opts.threads,
                ..TranscribeOptions::default()
            };
            let t = model.transcribe(window, &trial)?;
            let probs: Vec<f32> = t
                .segments
                .iter()
                .flat_map(|s| s.tokens.iter().map(|t| t.probability))
                .collect();
            let confidence = probs.iter().sum::<f32>() / probs.len().max(1) as f32;
            let coverage = 1.0 - (-(probs.len() as f64 / window_speech) / 2.0).exp();
            let script_ok = script::check(&g.language, &t.text()).is_ok();
            let score = confidence * coverage as f32 * if script_ok { 1.0 } else { 0.5 };
            decoding_scores.push((g.language.clone(), score));
        }
        if let Some((lang, _)) = decoding_scores.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            chosen = lang.clone();
        }
    }
    let prob = |lang: &str| {
        guesses
            .iter()
            .find(|g| g.language == lang)
            .map_or(0.0, |g| g.probability / total)
    };
    let runner_up = guesses
        .iter()
        .find(|g| g.language != chosen)
        .map(|g| (g.language.clone(), g.probability / total));
    Ok(LanguageChoice {
        probability: Some(prob(&chosen)),
        language: chosen,
        source: if decoding_scores.is_empty() {
            "detected"
        } else {
            "detected+decoding"
        }
        .into(),
        // Probabilities are renormalised over the allow-list, as the choice was made among those.
        runner_up,
        decoding_scores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sound_labels_are_whole_segments_only() {
        assert!(is_sound_label(" Music."));
        assert!(is_sound_label("[Background Music]"));
        assert!(is_sound_label("(applause)"));
        assert!(!is_sound_label(
            "Music theory explains why this chord sounds sad."
        ));
        assert!(!is_sound_label("the noise of the engine"));
    }

    #[test]
    fn stock_phrases_and_words() {
        assert!(is_stock_phrase(" Thank you for watching!"));
        assert!(!is_stock_phrase(
            "Thank you, Newton, for the laws of motion."
        ));
        assert!(is_stock_word(" you"));
        assert!(!is_stock_word("young"));
    }
}
