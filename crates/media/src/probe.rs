//! Probing an input with GStreamer's Discoverer into a typed [`MediaInfo`].

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use pbutils::prelude::*;
use stemfeed_core::media_info::{AudioStream, MediaInfo, VideoStream};

use crate::error::MediaError;

const STAGE: &str = "probe";

fn input_err(path: &Path, reason: impl Into<String>) -> MediaError {
    MediaError::Input {
        path: path.to_path_buf(),
        stage: STAGE,
        reason: reason.into(),
    }
}

/// Probes `path`, giving up after `timeout`. The file is only read.
pub fn probe(path: &Path, timeout: Duration) -> Result<MediaInfo, MediaError> {
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
    Ok(MediaInfo {
        container,
        duration_s: info.duration().map_or(0.0, |d| d.nseconds() as f64 / 1e9),
        file_bytes: meta.len(),
        video,
        audio,
        video_streams: videos.len(),
        audio_streams: audios.len(),
    })
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
