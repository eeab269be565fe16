//! The caption model shared by every format.

use serde::{Deserialize, Serialize};

/// A recognised word with its timing and the model's confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// WebVTT cue settings; `None` means the setting was absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CueSettings {
    pub align: Option<String>,
    pub line: Option<String>,
    pub position: Option<String>,
    pub size: Option<String>,
    pub vertical: Option<String>,
    pub region: Option<String>,
}

impl CueSettings {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cue {
    pub id: Option<String>,
    /// Seconds.
    pub start: f64,
    pub end: f64,
    /// Lines separated by `\n`.
    pub text: String,
    #[serde(default, skip_serializing_if = "CueSettings::is_empty")]
    pub settings: CueSettings,
    /// Mean word probability, where the cue came from recognition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

impl Cue {
    pub fn new(start: f64, end: f64, text: impl Into<String>) -> Self {
        Self {
            id: None,
            start,
            end,
            text: text.into(),
            settings: CueSettings::default(),
            confidence: None,
            words: Vec::new(),
        }
    }

    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n')
    }
}

/// A caption track: one language, one kind (transcript or translation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub language: String,
    pub kind: String,
    pub cues: Vec<Cue>,
    /// WebVTT REGION definitions, kept verbatim so they round-trip.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}
