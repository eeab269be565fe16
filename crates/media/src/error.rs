use std::path::PathBuf;

/// Which side of a run a GStreamer error message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The input's bytes: demuxing or decoding failed, the format is
    /// unsupported, its timestamps or caps make no sense.
    Input,
    /// Writing the outputs failed (no space left, cannot open or write).
    Output,
    /// The machine or GStreamer itself: a missing plugin, a library or
    /// encoder failure, a read error from the disk.
    Environment,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer failed to initialise: {0}")]
    Init(String),
    #[error(
        "GStreamer element {0:?} is not installed; run scripts/setup.sh (Debian GStreamer plugin packages)"
    )]
    MissingElement(String),
    /// An element posted an error; `fault` says which side is to blame.
    #[error("{path}: {stage} failed in element {element}: {message} ({debug})")]
    Pipeline {
        path: PathBuf,
        stage: &'static str,
        element: String,
        message: String,
        debug: String,
        fault: Fault,
    },
    /// The input is at fault (unreadable, no usable stream, …).
    #[error("{path}: {stage}: {reason}")]
    Input {
        path: PathBuf,
        stage: &'static str,
        reason: String,
    },
    /// The decoded streams ran past the duration the container declares
    /// (plus a margin): the file lies about its length.
    #[error(
        "{path}: {stage}: the stream runs past its declared duration of {declared_s:.1} s \
         (decoded {decoded_s:.1} s); refusing a file that lies about its length"
    )]
    Overrun {
        path: PathBuf,
        stage: &'static str,
        declared_s: f64,
        decoded_s: f64,
    },
    /// The audio kept for speech recognition would pass its hard cap.
    #[error(
        "{path}: {stage}: the audio for speech recognition runs past its cap of {max_samples} \
         samples ({cap_s:.1} s); refusing a file that lies about its length"
    )]
    AudioCap {
        path: PathBuf,
        stage: &'static str,
        max_samples: usize,
        cap_s: f64,
    },
    /// Writing an output failed (the input is not at fault).
    #[error("{path}: {stage}: cannot write output: {source}")]
    Output {
        path: PathBuf,
        stage: &'static str,
        source: std::io::Error,
    },
    /// Building the pipeline itself failed (a bug or a broken installation).
    #[error("{stage}: building the pipeline failed: {reason}")]
    Build { stage: &'static str, reason: String },
    #[error("{path}: {stage} did not finish within {seconds} s")]
    Timeout {
        path: PathBuf,
        stage: &'static str,
        seconds: u64,
    },
    /// The decoded position stopped advancing while the pipeline played.
    #[error(
        "{path}: {stage}: no progress for {seconds} s (stuck at {position_s:.1} s of decoded media)"
    )]
    Stalled {
        path: PathBuf,
        stage: &'static str,
        seconds: u64,
        position_s: f64,
    },
}

impl MediaError {
    /// Whether the input's bytes are at fault: demux or decode errors,
    /// unsupported formats, files that lie about their length. Such an input
    /// fails the same way every time, so retrying cannot help. Missing
    /// plugins, output-side I/O (e.g. no space left), timeouts and stalls are
    /// not the input's fault.
    pub fn is_bad_input(&self) -> bool {
        match self {
            MediaError::Input { .. } | MediaError::Overrun { .. } | MediaError::AudioCap { .. } => {
                true
            }
            MediaError::Pipeline { fault, .. } => *fault == Fault::Input,
            MediaError::Init(_)
            | MediaError::MissingElement(_)
            | MediaError::Output { .. }
            | MediaError::Build { .. }
            | MediaError::Timeout { .. }
            | MediaError::Stalled { .. } => false,
        }
    }

    /// Whether the run was abandoned for taking too long: the deadline
    /// passed, or nothing advanced for the stall limit.
    pub fn is_stuck(&self) -> bool {
        matches!(
            self,
            MediaError::Timeout { .. } | MediaError::Stalled { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(fault: Fault) -> MediaError {
        MediaError::Pipeline {
            path: "in.mp4".into(),
            stage: "transcode",
            element: "filesink0".into(),
            message: "m".into(),
            debug: "d".into(),
            fault,
        }
    }

    #[test]
    fn only_the_inputs_own_faults_are_bad_input() {
        assert!(pipeline(Fault::Input).is_bad_input());
        assert!(!pipeline(Fault::Output).is_bad_input());
        assert!(!pipeline(Fault::Environment).is_bad_input());
        assert!(!MediaError::MissingElement("x264enc".into()).is_bad_input());
        let enospc = MediaError::Output {
            path: "out".into(),
            stage: "transcode",
            source: std::io::Error::from_raw_os_error(28),
        };
        assert!(!enospc.is_bad_input());
        let stalled = MediaError::Stalled {
            path: "in.mp4".into(),
            stage: "transcode",
            seconds: 20,
            position_s: 1.5,
        };
        assert!(!stalled.is_bad_input() && stalled.is_stuck());
        assert_eq!(
            stalled.to_string(),
            "in.mp4: transcode: no progress for 20 s (stuck at 1.5 s of decoded media)"
        );
    }
}
