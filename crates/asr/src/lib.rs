//! Speech recognition for stemfeed with whisper.cpp through whisper-rs.
//!
//! This is the only crate that links whisper.cpp. It takes 16 kHz mono f32
//! samples (the media crate produces them) and returns typed transcripts;
//! reading audio files, caption formats and policy (which language, which
//! guards) live elsewhere.

pub mod caption;
mod error;
mod model;
pub mod silero;
pub mod vad;
pub mod words;

pub use error::AsrError;
pub use model::{
    DEFAULT_BEAM, LanguageGuess, Model, ModelInfo, Segment, Task, TranscribeOptions, Transcript,
};

/// Sample rate whisper.cpp expects.
pub const SAMPLE_RATE: u32 = 16_000;
