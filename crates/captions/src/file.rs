//! The caption track as stored beside the renditions
//! (`captions/<lang>.<kind>.json`): the cues with their word timings plus
//! what the recogniser and its guards decided. Written by the caption stage,
//! read by tagging and by the review UI; defined once here.

use serde::{Deserialize, Serialize};

use crate::Cue;
use crate::script::ScriptCounts;

/// Whether a recognised track may be published after review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Passed every guard: publishable after review.
    Ok,
    /// Produced, but failed a guard (script, repetition, …).
    Draft,
    /// Whisper cannot be trusted here: a person must caption it.
    NeedsHuman,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Draft => "draft",
            Status::NeedsHuman => "needs-human",
        }
    }
}

/// How the spoken language was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageChoice {
    pub language: String,
    /// "hint", "detected", "detected+decoding" (a close call settled by
    /// decoding), or "model" (English-only model).
    pub source: String,
    pub probability: Option<f32>,
    pub runner_up: Option<(String, f32)>,
    /// For close calls: mean token probability of a trial decode per candidate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decoding_scores: Vec<(String, f32)>,
}

/// `captions/<lang>.<kind>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionFile {
    pub language: String,
    /// "transcript" or "translation".
    pub kind: String,
    pub status: Status,
    pub reason: Option<String>,
    pub script: ScriptCounts,
    /// Decoding attempts made ("forced ur", "forced ur + script prompt").
    pub attempts: Vec<String>,
    /// Guard actions: dropped segments and why.
    pub dropped: Vec<String>,
    pub detected_language: Option<LanguageChoice>,
    pub cues: Vec<Cue>,
}

impl CaptionFile {
    pub fn is_translation(&self) -> bool {
        self.kind == "translation"
    }
}
