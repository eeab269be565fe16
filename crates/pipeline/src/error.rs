//! Stage errors, classified by what caused them rather than where they were
//! raised: the job layer retries, charges or refuses from [`Fault`] alone.

use serde::{Deserialize, Serialize};

/// The stages of one video, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Probe,
    Transcode,
    Captions,
    Tagging,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Probe => "probe",
            Stage::Transcode => "transcode",
            Stage::Captions => "captions",
            Stage::Tagging => "tagging",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whose fault a failure is, which decides what happens to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The upload's bytes: refused, never retried.
    BadInput,
    /// Might work on another attempt (a model missing on this box, an
    /// internal error); charged an attempt.
    Transient,
    /// This machine or a service: disk full, store or catalog down. Not
    /// charged an attempt.
    Infrastructure,
    /// The stage's process died (signal) or overran its limit: retried
    /// once, then refused as bad input.
    Crash,
}

impl Fault {
    /// Worth running again.
    pub fn is_transient(self) -> bool {
        !matches!(self, Fault::BadInput)
    }
}

/// A stage failed: the file, the stage, the reason and whose fault it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{file}: {stage}: {message}")]
pub struct StageError {
    /// The upload's display name.
    pub file: String,
    pub stage: Stage,
    pub fault: Fault,
    pub message: String,
}

impl StageError {
    pub fn new(file: &str, stage: Stage, fault: Fault, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            stage,
            fault,
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.fault.is_transient()
    }
}

/// The fault of an I/O error on this machine's side: a full disk or quota
/// is the infrastructure's; anything else may pass on another attempt.
pub fn io_fault(e: &std::io::Error) -> Fault {
    match e.raw_os_error() {
        Some(code)
            if code == nix::errno::Errno::ENOSPC as i32
                || code == nix::errno::Errno::EDQUOT as i32 =>
        {
            Fault::Infrastructure
        }
        _ => Fault::Transient,
    }
}
