use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("cannot load Whisper model {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("whisper inference failed ({stage}): {source}")]
    Inference {
        stage: &'static str,
        source: whisper_rs::WhisperError,
    },
    #[error("no audio samples to transcribe")]
    NoAudio,
    #[error("unknown Whisper language code {0:?}")]
    UnknownLanguage(String),
    #[error("model {path} is English-only and cannot {what}")]
    EnglishOnly { path: PathBuf, what: String },
}
