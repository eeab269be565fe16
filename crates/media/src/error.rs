use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer failed to initialise: {0}")]
    Init(String),
    #[error(
        "GStreamer element {0:?} is not installed; run scripts/setup.sh (Debian GStreamer plugin packages)"
    )]
    MissingElement(String),
    #[error("{path}: {stage} failed in element {element}: {message} ({debug})")]
    Pipeline {
        path: PathBuf,
        stage: &'static str,
        element: String,
        message: String,
        debug: String,
    },
    #[error("{path}: {stage}: {reason}")]
    Input {
        path: PathBuf,
        stage: &'static str,
        reason: String,
    },
    #[error("{path}: {stage} did not finish within {seconds} s")]
    Timeout {
        path: PathBuf,
        stage: &'static str,
        seconds: u64,
    },
}
