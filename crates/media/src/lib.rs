//! GStreamer pipelines for stemfeed. This is the only crate that links
//! GStreamer; others see typed inputs and outputs (paths, samples, reports).
//!
//! Pipelines are built element by element from code (never from launch
//! strings), and every pipeline runs through the one bus handler in
//! [`bus`], which turns EOS into success and an error message into a
//! [`MediaError`] naming the element, the message and GStreamer's debug text.
//!
//! Every decode is bounded ([`limits`]): it stops once the file runs past its
//! declared duration plus a margin, the audio kept for speech recognition has
//! a hard cap, and a run that stops making progress is abandoned long before
//! its deadline. [`MediaError::is_bad_input`] tells the input's faults from
//! the machine's.

pub mod audio;
pub mod burnin;
mod bus;
pub mod cmaf;
pub mod elements;
mod error;
pub mod ladder;
pub mod limits;
pub mod loudness;
pub mod probe;
pub mod stills;
pub mod transcode;
pub mod waveform;

pub use error::{Fault, MediaError};
pub use limits::{DecodeLimit, Watchdog};

/// Initialises GStreamer once per process; cheap to call repeatedly.
pub fn init() -> Result<(), MediaError> {
    gstreamer::init().map_err(|e| MediaError::Init(e.to_string()))
}

/// Creates an element, naming the missing plugin when its factory is absent.
pub(crate) fn make(factory: &str) -> Result<gstreamer::Element, MediaError> {
    gstreamer::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement(factory.to_owned()))
}

/// Sends a decodebin pad nobody wants into a fakesink, so an unlinked pad
/// never stalls or fails the demuxer. The fakesink neither syncs nor holds
/// the pipeline's preroll: a sparse stream (subtitles) with no data yet
/// must not keep the streams that matter waiting.
pub(crate) fn discard_pad(pipeline: &gstreamer::Pipeline, pad: &gstreamer::Pad) {
    use gstreamer::prelude::*;
    if let Ok(discard) = gstreamer::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
    {
        let _ = pipeline.add(&discard);
        let _ = discard.sync_state_with_parent();
        if let Some(sink) = discard.static_pad("sink") {
            let _ = pad.link(&sink);
        }
    }
}

/// The media type a decodebin (or parsebin) pad carries, e.g. "audio/x-raw".
///
/// The negotiated caps when there are any; otherwise the caps the pad can
/// produce. A stream that ends before its first buffer (a truncated file
/// whose index promises samples that are not there) is exposed with caps
/// that were never negotiated, such as `audio/x-raw, format=F32LE`
/// without a rate: it is still audio, and must be linked as audio so that
/// its EOS reaches the sink instead of leaving that sink waiting forever.
pub(crate) fn pad_media_type(pad: &gstreamer::Pad) -> String {
    use gstreamer::prelude::*;
    pad.current_caps()
        .or_else(|| Some(pad.query_caps(None)))
        .and_then(|caps| caps.structure(0).map(|s| s.name().to_string()))
        .unwrap_or_default()
}

/// GStreamer's runtime version, e.g. "GStreamer 1.22.0".
pub fn gstreamer_version() -> String {
    gstreamer::version_string().to_string()
}
