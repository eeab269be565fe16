//! Loading a ggml model and running inference on it.

use std::path::{Path, PathBuf};
use std::sync::Once;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::error::AsrError;

/// A loaded model. Cheap to share: each transcription creates its own state,
/// so one `Model` serves many threads.
pub struct Model {
    ctx: WhisperContext,
    path: PathBuf,
    info: ModelInfo,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

/// What the loaded model is, as whisper.cpp reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelInfo {
    pub size_class: String,
    pub multilingual: bool,
    pub n_vocab: i32,
    pub n_mels: i32,
    pub n_audio_layer: i32,
    pub n_text_layer: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Transcribe,
    /// Whisper's translate task: speech in any language → English text.
    Translate,
}

/// Temperature added per fallback decode.
const TEMPERATURE_STEP: f32 = 0.2;

/// Beam width by default: that of OpenAI's reference decoder and
/// faster-whisper.
pub const DEFAULT_BEAM: usize = 5;

#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// ISO 639-1 code; `None` lets the model detect.
    pub language: Option<String>,
    pub task: Task,
    pub threads: usize,
    /// 1 = greedy decoding.
    pub beam_size: usize,
    pub initial_prompt: Option<String>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: None,
            task: Task::Transcribe,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            beam_size: DEFAULT_BEAM,
            initial_prompt: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Segment {
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub no_speech_probability: f32,
    /// Text tokens with their own timing and probability (special tokens removed).
    #[serde(skip)]
    pub tokens: Vec<crate::words::Token>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transcript {
    pub language: String,
    pub task: Task,
    pub segments: Vec<Segment>,
}

impl Transcript {
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.trim())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A language detection result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LanguageGuess {
    pub language: String,
    pub probability: f32,
}

static LOGGING: Once = Once::new();

impl Model {
    /// Loads a ggml model. `gpu` is honoured only in builds with a GPU backend.
    pub fn load(path: &Path, gpu: bool) -> Result<Self, AsrError> {
        // whisper.cpp logs to stderr by default; route it through tracing.
        LOGGING.call_once(whisper_rs::install_logging_hooks);
        let load_err = |reason: String| AsrError::Load {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(load_err(
                "file not found; run `stemfeed models install default`".into(),
            ));
        }
        let utf8 = path
            .to_str()
            .ok_or_else(|| load_err("path is not UTF-8".into()))?;
        let mut params = WhisperContextParameters::default();
        params.use_gpu(gpu);
        let ctx = WhisperContext::new_with_params(utf8, params).map_err(|e| {
            load_err(format!(
                "whisper.cpp rejected it ({e}); the file is not a valid ggml Whisper model"
            ))
        })?;
        let info = ModelInfo {
            size_class: ctx
                .model_type_readable_str_lossy()
                .map(|s| s.into_owned())
                .unwrap_or_default(),
            multilingual: ctx.is_multilingual(),
            n_vocab: ctx.model_n_vocab(),
            n_mels: ctx.model_n_mels(),
            n_audio_layer: ctx.model_n_audio_layer(),
            n_text_layer: ctx.model_n_text_layer(),
        };
        Ok(Self {
            ctx,
            path: path.to_path_buf(),
            info,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Language probabilities over the first 30 s, restricted to `allowed`
    /// (all languages when empty), most likely first.
    pub fn detect_language(
        &self,
        pcm: &[f32],
        allowed: &[&str],
        threads: usize,
    ) -> Result<Vec<LanguageGuess>, AsrError> {
        if !self.info.multilingual {
            return Err(AsrError::EnglishOnly {
                path: self.path.clone(),
                what: "detect languages".into(),
            });
        }
        if pcm.is_empty() {
            return Err(AsrError::NoAudio);
        }
        let inference = |stage| move |source| AsrError::Inference { stage, source };
        let mut state = self.ctx.create_state().map_err(inference("create state"))?;
        state
            .pcm_to_mel(pcm, threads.max(1))
            .map_err(inference("mel spectrogram"))?;
        let (_, probs) = state
            .lang_detect(0, threads.max(1))
            .map_err(inference("language detection"))?;
        let mut guesses: Vec<LanguageGuess> = probs
            .iter()
            .enumerate()
            .filter_map(|(id, p)| {
                let code = whisper_rs::get_lang_str(id as i32)?;
                (allowed.is_empty() || allowed.contains(&code)).then(|| LanguageGuess {
                    language: code.to_owned(),
                    probability: *p,
                })
            })
            .collect();
        guesses.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        Ok(guesses)
    }

    /// Runs Whisper over the whole of `pcm` (16 kHz mono f32).
    pub fn transcribe(
        &self,
        pcm: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, AsrError> {
        if pcm.is_empty() {
            return Err(AsrError::NoAudio);
        }
        if let Some(lang) = opts.language.as_deref()
            && whisper_rs::get_lang_id(lang).is_none()
        {
            return Err(AsrError::UnknownLanguage(lang.to_owned()));
        }
        if !self.info.multilingual
            && (opts.task == Task::Translate || opts.language.as_deref().is_some_and(|l| l != "en"))
        {
            return Err(AsrError::EnglishOnly {
                path: self.path.clone(),
                what: "transcribe or translate other languages".into(),
            });
        }
        let strategy = if opts.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: opts.beam_size as i32,
                patience: -1.0,
            }
        } else {
            // best_of applies to the fallback temperatures only (0 is deterministic).
            SamplingStrategy::Greedy { best_of: 5 }
        };
        let mut params = FullParams::new(strategy);
        // Temperature fallback as OpenAI's reference and faster-whisper do:
        // decode at 0, and again at 0.2, 0.4, … 1.0 (sampling, best of 5)
        // while the result repeats itself (token entropy below 2.4, whisper.cpp's
        // counterpart of the compression-ratio test) or is unlikely (mean log
        // probability below -1) without being silence (no-speech probability
        // below 0.6). Stated here rather than left to the library's defaults.
        params.set_temperature(0.0);
        params.set_temperature_inc(TEMPERATURE_STEP);
        params.set_entropy_thold(2.4);
        params.set_logprob_thold(-1.0);
        params.set_no_speech_thold(0.6);
        params.set_n_threads(opts.threads.max(1) as i32);
        params.set_translate(opts.task == Task::Translate);
        params.set_language(Some(opts.language.as_deref().unwrap_or("auto")));
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        // Per-token timing for word-level cues; no conditioning on earlier
        // text, so one hallucination cannot seed the next window's.
        params.set_token_timestamps(true);
        params.set_no_context(true);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        if let Some(prompt) = &opts.initial_prompt {
            params.set_initial_prompt(prompt);
        }
        let inference = |stage| move |source| AsrError::Inference { stage, source };
        let mut state = self.ctx.create_state().map_err(inference("create state"))?;
        state.full(params, pcm).map_err(inference("full"))?;
        // English-only models have no language tokens; their "detected" id is meaningless.
        let language = if self.info.multilingual {
            whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("en")
        } else {
            "en"
        }
        .to_owned();
        let eot = self.ctx.token_eot();
        let segments = state
            .as_iter()
            .map(|seg| {
                let tokens = (0..seg.n_tokens())
                    .filter_map(|j| seg.get_token(j))
                    .filter(|t| t.token_id() < eot)
                    .map(|t| {
                        let data = t.token_data();
                        crate::words::Token {
                            bytes: t.to_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
                            start: data.t0 as f64 / 100.0,
                            end: data.t1 as f64 / 100.0,
                            probability: data.p,
                        }
                    })
                    .collect();
                Segment {
                    // whisper.cpp timestamps are in centiseconds.
                    start: seg.start_timestamp() as f64 / 100.0,
                    end: seg.end_timestamp() as f64 / 100.0,
                    text: seg
                        .to_str_lossy()
                        .map(|s| s.into_owned())
                        .unwrap_or_default(),
                    no_speech_probability: seg.no_speech_probability(),
                    tokens,
                }
            })
            .collect();
        Ok(Transcript {
            language,
            task: opts.task,
            segments: repair_times(segments, pcm.len() as f64 / f64::from(crate::SAMPLE_RATE)),
        })
    }
}

/// Beam search sometimes ends a window on a timestamp pair that gives its
/// last segment no length (7.0 → 7.0). Such a segment ends where its last
/// token does, else where the next segment starts, else where the audio
/// does; no segment ends after the audio.
fn repair_times(mut segments: Vec<Segment>, audio_s: f64) -> Vec<Segment> {
    let starts: Vec<f64> = segments.iter().map(|s| s.start).collect();
    for (i, seg) in segments.iter_mut().enumerate() {
        seg.start = seg.start.clamp(0.0, audio_s);
        if seg.end <= seg.start {
            let token_end = seg.tokens.iter().map(|t| t.end).fold(f64::MIN, f64::max);
            let next = starts.get(i + 1).copied().unwrap_or(audio_s);
            seg.end = if token_end > seg.start {
                token_end
            } else if next > seg.start {
                next
            } else {
                audio_s
            };
        }
        seg.end = seg.end.min(audio_s);
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: f64, end: f64, token_end: f64) -> Segment {
        Segment {
            start,
            end,
            text: String::new(),
            no_speech_probability: 0.0,
            tokens: vec![crate::words::Token {
                bytes: Vec::new(),
                start,
                end: token_end,
                probability: 1.0,
            }],
        }
    }

    #[test]
    fn segments_without_length_end_where_their_words_or_the_audio_do() {
        let fixed = repair_times(
            vec![seg(0.0, 7.0, 6.9), seg(7.0, 7.0, 7.8), seg(8.0, 8.0, 8.0)],
            8.1,
        );
        let times: Vec<(f64, f64)> = fixed.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(times, [(0.0, 7.0), (7.0, 7.8), (8.0, 8.1)]);
    }
}
