//! The one bus handler every pipeline runs through.

use std::path::Path;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;

use crate::error::MediaError;

/// Plays `pipeline` until EOS, an error, or `timeout`. Always leaves the
/// pipeline in the Null state. `on_tick` is called about every 100 ms (for
/// progress reporting) with the pipeline's position and duration if known.
pub(crate) fn run_to_eos(
    pipeline: &gst::Pipeline,
    path: &Path,
    stage: &'static str,
    timeout: Duration,
    mut on_tick: impl FnMut(Option<gst::ClockTime>, Option<gst::ClockTime>),
) -> Result<(), MediaError> {
    let result = play(pipeline, path, stage, timeout, &mut on_tick);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn play(
    pipeline: &gst::Pipeline,
    path: &Path,
    stage: &'static str,
    timeout: Duration,
    on_tick: &mut dyn FnMut(Option<gst::ClockTime>, Option<gst::ClockTime>),
) -> Result<(), MediaError> {
    let bus = pipeline.bus().expect("a pipeline always has a bus");
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason is on the bus as an error message; fall through to read it.
        tracing::debug!(stage, "state change to Playing failed");
    }
    let deadline = Instant::now() + timeout;
    loop {
        if Instant::now() >= deadline {
            return Err(MediaError::Timeout {
                path: path.to_path_buf(),
                stage,
                seconds: timeout.as_secs(),
            });
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            on_tick(pipeline.query_position(), pipeline.query_duration());
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(err) => {
                return Err(MediaError::Pipeline {
                    path: path.to_path_buf(),
                    stage,
                    element: err
                        .src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_else(|| "<unknown>".into()),
                    message: err.error().to_string(),
                    debug: err.debug().map(|d| d.to_string()).unwrap_or_default(),
                });
            }
            _ => {}
        }
    }
}
