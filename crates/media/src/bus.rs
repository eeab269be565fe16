//! The one bus handler every pipeline runs through.
//!
//! It ends a run on EOS, on an element's error (classified by [`Fault`]), on
//! a failure a streaming thread recorded in the run's [`Monitor`] (a file
//! that runs past its declared duration, an audio cap), when the deadline
//! passes, and when nothing advances for the stall limit.

use std::time::Instant;

use gst::prelude::*;
use gstreamer as gst;

use crate::error::{Fault, MediaError};
use crate::limits::{Monitor, Watchdog};

/// Plays `pipeline` until EOS, an error, a failure recorded in `monitor`, the
/// watchdog's deadline, or a stall (no decoded or encoded progress for
/// `watchdog.stall`). Always leaves the pipeline in the Null state. `on_tick`
/// is called about every 100 ms (for progress reporting) with the pipeline's
/// position and duration if known.
pub(crate) fn run_to_eos(
    pipeline: &gst::Pipeline,
    monitor: &Monitor,
    watchdog: Watchdog,
    mut on_tick: impl FnMut(Option<gst::ClockTime>, Option<gst::ClockTime>),
) -> Result<(), MediaError> {
    let result = play(pipeline, monitor, watchdog, &mut on_tick);
    let _ = pipeline.set_state(gst::State::Null);
    // A failure a streaming thread recorded (a file running past its
    // declared duration, an audio cap) explains whatever the bus saw after
    // it: the error it caused upstream, or an EOS.
    match monitor.take_failure() {
        Some(failure) => Err(failure),
        None => result,
    }
}

fn play(
    pipeline: &gst::Pipeline,
    monitor: &Monitor,
    watchdog: Watchdog,
    on_tick: &mut dyn FnMut(Option<gst::ClockTime>, Option<gst::ClockTime>),
) -> Result<(), MediaError> {
    let (path, stage) = (monitor.path(), monitor.stage());
    let bus = pipeline.bus().expect("a pipeline always has a bus");
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason is on the bus as an error message; fall through to read it.
        tracing::debug!(stage, "state change to Playing failed");
    }
    let started = Instant::now();
    let deadline = started + watchdog.timeout;
    let mut mark = monitor.progress_mark();
    let mut last_progress = started;
    loop {
        if monitor.failed() {
            // The caller reports the recorded failure.
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(MediaError::Timeout {
                path: path.to_path_buf(),
                stage,
                seconds: watchdog.timeout.as_secs(),
            });
        }
        let current = monitor.progress_mark();
        if current != mark {
            mark = current;
            last_progress = now;
        } else if now.duration_since(last_progress) >= watchdog.stall {
            return Err(MediaError::Stalled {
                path: path.to_path_buf(),
                stage,
                seconds: watchdog.stall.as_secs(),
                position_s: monitor.decoded_s(),
            });
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            on_tick(pipeline.query_position(), pipeline.query_duration());
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(err) => {
                let error = err.error();
                return Err(MediaError::Pipeline {
                    path: path.to_path_buf(),
                    stage,
                    element: err
                        .src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_else(|| "<unknown>".into()),
                    message: error.to_string(),
                    debug: err.debug().map(|d| d.to_string()).unwrap_or_default(),
                    fault: fault_of(&error),
                });
            }
            _ => {}
        }
    }
}

/// Which side a GStreamer error came from, by its domain and code.
pub(crate) fn fault_of(error: &gst::glib::Error) -> Fault {
    if let Some(code) = error.kind::<gst::ResourceError>() {
        return match code {
            gst::ResourceError::NoSpaceLeft
            | gst::ResourceError::Write
            | gst::ResourceError::OpenWrite
            | gst::ResourceError::OpenReadWrite
            | gst::ResourceError::Close
            | gst::ResourceError::Sync => Fault::Output,
            // The input vanished or cannot be opened.
            gst::ResourceError::NotFound | gst::ResourceError::OpenRead => Fault::Input,
            _ => Fault::Environment,
        };
    }
    if let Some(code) = error.kind::<gst::StreamError>() {
        return match code {
            // Our own encoders failing is not the input's fault.
            gst::StreamError::Encode => Fault::Environment,
            // Demux, decode, unknown or unsupported formats, codecs nobody
            // decodes, encrypted streams, timestamps a muxer refuses, and
            // the "internal data stream error" a demuxer posts when its
            // data cannot flow.
            _ => Fault::Input,
        };
    }
    if let Some(code) = error.kind::<gst::CoreError>() {
        return match code {
            // Caps from the input no converter handles.
            gst::CoreError::Negotiation => Fault::Input,
            _ => Fault::Environment,
        };
    }
    Fault::Environment
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::limits::DecodeLimit;

    fn watched(src: &gst::Element) -> (gst::Pipeline, std::sync::Arc<Monitor>) {
        crate::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let sink = crate::make("fakesink").unwrap();
        pipeline.add_many([src, &sink]).unwrap();
        src.link(&sink).unwrap();
        let monitor = Monitor::new(
            Path::new("stuck.mkv"),
            "transcode",
            DecodeLimit::for_declared(60.0),
        );
        monitor.watch_decoded(&src.static_pad("src").unwrap());
        (pipeline, monitor)
    }

    #[test]
    fn a_run_that_never_advances_fails_as_stalled_long_before_its_deadline() {
        crate::init().unwrap();
        // An appsrc nobody feeds: the pipeline waits for data forever, at 0% CPU.
        let (pipeline, monitor) = watched(&crate::make("appsrc").unwrap());
        let watchdog = Watchdog::new(Duration::from_secs(120)).with_stall(Duration::from_secs(1));
        let started = Instant::now();
        let err = run_to_eos(&pipeline, &monitor, watchdog, |_, _| {}).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
        assert!(
            matches!(err, MediaError::Stalled { seconds: 1, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "stuck.mkv: transcode: no progress for 1 s (stuck at 0.0 s of decoded media)"
        );
        assert!(err.is_stuck() && !err.is_bad_input());
    }

    #[test]
    fn a_slow_run_that_keeps_advancing_is_not_a_stall() {
        crate::init().unwrap();
        // A live source paces 2.5 s of audio in 100 ms buffers: the run
        // outlasts the stall limit but advances all the time.
        let src = gst::ElementFactory::make("audiotestsrc")
            .property("is-live", true)
            .property("samplesperbuffer", 4_410)
            .property("num-buffers", 25)
            .build()
            .unwrap();
        let (pipeline, monitor) = watched(&src);
        let watchdog = Watchdog::new(Duration::from_secs(60)).with_stall(Duration::from_secs(1));
        run_to_eos(&pipeline, &monitor, watchdog, |_, _| {}).unwrap();
        assert!(monitor.decoded_s() > 2.0, "{}", monitor.decoded_s());
    }

    #[test]
    fn errors_are_blamed_on_the_side_they_came_from() {
        let e = |err: gst::glib::Error| fault_of(&err);
        use gst::glib::Error;
        assert_eq!(
            e(Error::new(gst::ResourceError::NoSpaceLeft, "full")),
            Fault::Output
        );
        assert_eq!(
            e(Error::new(gst::ResourceError::OpenWrite, "no")),
            Fault::Output
        );
        assert_eq!(e(Error::new(gst::StreamError::Demux, "bad")), Fault::Input);
        assert_eq!(
            e(Error::new(gst::StreamError::TypeNotFound, "?")),
            Fault::Input
        );
        assert_eq!(
            e(Error::new(gst::StreamError::Encode, "x264")),
            Fault::Environment
        );
        assert_eq!(
            e(Error::new(gst::CoreError::MissingPlugin, "none")),
            Fault::Environment
        );
    }
}
