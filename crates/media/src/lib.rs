//! GStreamer pipelines for stemfeed. This is the only crate that links
//! GStreamer; others see typed inputs and outputs (paths, samples, reports).
//!
//! Pipelines are built element by element from code (never from launch
//! strings), and every pipeline runs through the one bus handler in
//! [`bus`], which turns EOS into success and an error message into a
//! [`MediaError`] naming the element, the message and GStreamer's debug text.

pub mod audio;
mod bus;
pub mod elements;
mod error;
pub mod ladder;
pub mod loudness;
pub mod probe;
pub mod stills;
pub mod transcode;

pub use error::MediaError;

/// Initialises GStreamer once per process; cheap to call repeatedly.
pub fn init() -> Result<(), MediaError> {
    gstreamer::init().map_err(|e| MediaError::Init(e.to_string()))
}

/// GStreamer's runtime version, e.g. "GStreamer 1.22.0".
pub fn gstreamer_version() -> String {
    gstreamer::version_string().to_string()
}
