//! Probing an input with GStreamer's Discoverer into a typed [`MediaInfo`].

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use pbutils::prelude::*;
use stemfeed_core::media_info::{AudioStream, MediaInfo, VideoStream};

use crate::bus::run_to_eos;
use crate::error::MediaError;
use crate::limits::{DEFAULT_STALL, DecodeLimit, Monitor, Watchdog};

const STAGE: &str = "probe";

fn input_err(path: &Path, reason: impl Into<String>) -> MediaError {
    MediaError::Input {
        path: path.to_path_buf(),
        stage: STAGE,
        reason: reason.into(),
    }
}

/// Probes `path`, giving up after `timeout`. The file is only read.
///
/// The duration is the Discoverer's when it has one. When it has none (or
/// zero) the streams' timestamps are scanned instead ([`scan_duration`]):
/// some demuxers cannot estimate a duration for some files (tsdemux, for
/// an MPEG-TS shorter than its 64 KiB scan window, has no PCR group left to
/// convert the file's size into time). A file whose timestamps give no
/// duration either is refused as bad input, saying so.
pub fn probe(path: &Path, timeout: Duration) -> Result<MediaInfo, MediaError> {
    let started = std::time::Instant::now();
    crate::init()?;
    let meta = std::fs::metadata(path).map_err(|e| input_err(path, format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(input_err(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Err(input_err(path, "empty file (0 bytes)"));
    }
    let absolute = std::path::absolute(path).map_err(|e| input_err(path, e.to_string()))?;
    let uri =
        gst::glib::filename_to_uri(&absolute, None).map_err(|e| input_err(path, e.to_string()))?;
    let discoverer =
        pbutils::Discoverer::new(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
            .map_err(|e| MediaError::Init(e.to_string()))?;
    let info = discoverer.discover_uri(&uri).map_err(|e| {
        let message = e.to_string();
        if message.to_lowercase().contains("timed out") {
            MediaError::Timeout {
                path: path.to_path_buf(),
                stage: STAGE,
                seconds: timeout.as_secs(),
            }
        } else {
            input_err(path, format!("not a playable media file: {message}"))
        }
    })?;
    match info.result() {
        pbutils::DiscovererResult::Ok => {}
        pbutils::DiscovererResult::Timeout => {
            return Err(MediaError::Timeout {
                path: path.to_path_buf(),
                stage: STAGE,
                seconds: timeout.as_secs(),
            });
        }
        pbutils::DiscovererResult::MissingPlugins => {
            return Err(input_err(
                path,
                "no installed GStreamer plugin decodes this format",
            ));
        }
        other => return Err(input_err(path, format!("discovery failed: {other:?}"))),
    }

    let container = info
        .stream_info()
        .filter(|s| s.is::<pbutils::DiscovererContainerInfo>())
        .and_then(|s| s.caps())
        .map(|caps| pbutils::pb_utils_get_codec_description(&caps).to_string());
    let codec = |s: &pbutils::DiscovererStreamInfo| {
        s.caps()
            .map(|caps| pbutils::pb_utils_get_codec_description(&caps).to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let videos: Vec<_> = info
        .video_streams()
        .into_iter()
        .filter(|v| !v.is_image())
        .collect();
    let video = videos.first().map(|v| {
        let rate = v.framerate();
        let variable = rate.numer() == 0;
        VideoStream {
            codec: codec(v.upcast_ref()),
            width: v.width(),
            height: v.height(),
            rotation: rotation(v.upcast_ref()),
            fps: (!variable && rate.denom() > 0)
                .then(|| f64::from(rate.numer()) / f64::from(rate.denom())),
            variable_frame_rate: variable,
            bitrate: Some(v.bitrate()).filter(|b| *b > 0),
        }
    });
    let audios = info.audio_streams();
    let audio = audios.first().map(|a| AudioStream {
        codec: codec(a.upcast_ref()),
        channels: a.channels(),
        sample_rate: a.sample_rate(),
        bitrate: Some(a.bitrate()).filter(|b| *b > 0),
    });
    let declared_s = info
        .duration()
        .map(|d| d.nseconds() as f64 / 1e9)
        .filter(|s| *s > 0.0);
    let duration_s = match declared_s {
        Some(s) => s,
        // Nothing to measure (an image, or no stream at all): validation
        // refuses it for what it is, not for its length.
        None if videos.is_empty() && audios.is_empty() => 0.0,
        None => {
            let left = timeout.saturating_sub(started.elapsed());
            match scan_duration(path, left) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return Err(input_err(
                        path,
                        "unknown duration: the container declares none and the streams \
                         carry no timestamps to measure it by",
                    ));
                }
                Err(MediaError::Timeout { .. } | MediaError::Stalled { .. }) => {
                    return Err(MediaError::Timeout {
                        path: path.to_path_buf(),
                        stage: STAGE,
                        seconds: timeout.as_secs(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    };
    Ok(MediaInfo {
        container,
        duration_s,
        file_bytes: meta.len(),
        video,
        audio,
        video_streams: videos.len(),
        audio_streams: audios.len(),
    })
}

/// Measures `path`'s duration from its streams' own timestamps: every
/// stream is demuxed and parsed (never decoded) to the end, and the
/// duration is the span from the earliest buffer start to the latest
/// buffer end over all streams, in stream time. `Ok(None)` when no buffer
/// carried a timestamp. Used by [`probe`] when the container declares no
/// duration; gives up after `timeout` (or a stall of half of it).
pub fn scan_duration(path: &Path, timeout: Duration) -> Result<Option<f64>, MediaError> {
    crate::init()?;
    let unbounded = DecodeLimit {
        declared_s: 0.0,
        max_s: f64::INFINITY,
    };
    let monitor = Monitor::new(path, STAGE, unbounded);
    let pipeline = gst::Pipeline::with_name("probe-duration");
    let src = crate::make("filesrc")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let parse = crate::make("parsebin")?;
    pipeline
        .add_many([&src, &parse])
        .expect("fresh elements add to a fresh pipeline");
    src.link(&parse).expect("filesrc links to parsebin");

    // (earliest start, latest end) in stream time, ns, over every stream.
    let span: Arc<Mutex<Option<(u64, u64)>>> = Arc::new(Mutex::new(None));
    let pipeline_weak = pipeline.downgrade();
    let watch = Arc::clone(&monitor);
    let seen = Arc::clone(&span);
    parse.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        watch.watch_decoded(pad);
        let seen = Arc::clone(&seen);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some((start, end)) = info.buffer().and_then(|b| stream_span(pad, b)) {
                let mut span = seen.lock().unwrap_or_else(|p| p.into_inner());
                *span = Some(match *span {
                    Some((s, e)) => (s.min(start), e.max(end)),
                    None => (start, end),
                });
            }
            gst::PadProbeReturn::Ok
        });
        crate::discard_pad(&pipeline, pad);
    });

    let watchdog = Watchdog::new(timeout).with_stall((timeout / 2).min(DEFAULT_STALL));
    run_to_eos(&pipeline, &monitor, watchdog, |_, _| {})?;
    let span = *span.lock().unwrap_or_else(|p| p.into_inner());
    Ok(span
        .map(|(start, end)| end.saturating_sub(start) as f64 / 1e9)
        .filter(|s| *s > 0.0))
}

/// A buffer's start and end in its pad's stream time (PTS, else DTS), ns.
/// What lies before the segment's start (audio priming an edit list cuts)
/// is not presented, so it is not counted.
fn stream_span(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<(u64, u64)> {
    let start = buffer.pts().or_else(|| buffer.dts())?;
    let end = start + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
    let segment = pad
        .sticky_event::<gst::event::Segment>(0)
        .and_then(|ev| ev.segment().downcast_ref::<gst::ClockTime>().cloned());
    let Some(segment) = segment else {
        return Some((start.nseconds(), end.nseconds()));
    };
    let first = segment.start().unwrap_or(gst::ClockTime::ZERO);
    let to_stream = |t: gst::ClockTime| segment.to_stream_time(t.max(first)).map(|t| t.nseconds());
    Some((to_stream(start)?, to_stream(end)?))
}

/// The clockwise rotation from the stream's `image-orientation` tag.
fn rotation(stream: &pbutils::DiscovererStreamInfo) -> u32 {
    let Some(tags) = stream.tags() else { return 0 };
    let Some(value) = tags.get::<gst::tags::ImageOrientation>() else {
        return 0;
    };
    match value.get() {
        "rotate-90" | "flip-rotate-90" => 90,
        "rotate-180" | "flip-rotate-180" => 180,
        "rotate-270" | "flip-rotate-270" => 270,
        _ => 0,
    }
}
