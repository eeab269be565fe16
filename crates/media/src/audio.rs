//! Decoding any audio or video file's first audio stream to interleaved f32
//! at a chosen rate and channel count: 16 kHz mono for Whisper, the output
//! format for loudness measurement. Video streams are demuxed but never
//! decoded, so an audio pass over a video costs little.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

use crate::bus::run_to_eos;
use crate::error::MediaError;

pub const ASR_RATE: i32 = 16_000;
const STAGE: &str = "audio decode";

/// Decodes `path` to 16 kHz mono f32 samples (Whisper's input).
pub fn decode_to_asr_pcm(path: &Path, timeout: Duration) -> Result<Vec<f32>, MediaError> {
    decode(path, ASR_RATE, 1, timeout)
}

/// Decodes the first audio stream of `path` to interleaved f32 at `rate` Hz
/// with `channels` channels (down- or up-mixed by audioconvert). Fails naming
/// the file when it has no audio stream or cannot be decoded; never takes
/// longer than `timeout`.
pub fn decode(
    path: &Path,
    rate: i32,
    channels: i32,
    timeout: Duration,
) -> Result<Vec<f32>, MediaError> {
    crate::init()?;
    if !path.is_file() {
        return Err(MediaError::Input {
            path: path.to_path_buf(),
            stage: STAGE,
            reason: "file not found".into(),
        });
    }
    let pipeline = gst::Pipeline::with_name("asr-audio");
    let src = crate::make("filesrc")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let decode = crate::make("decodebin")?;
    let convert = crate::make("audioconvert")?;
    let resample = crate::make("audioresample")?;
    let (sink, samples) = f32_sink(rate, channels);
    pipeline
        .add_many([&src, &decode, &convert, &resample, sink.upcast_ref()])
        .expect("fresh elements add to a fresh pipeline");
    src.link(&decode).expect("filesrc links to decodebin");
    gst::Element::link_many([&convert, &resample, sink.upcast_ref()])
        .expect("static audio chain links");

    // Stop at compressed video: it is exposed still encoded and discarded
    // instead of being decoded for nothing.
    decode.set_property(
        "caps",
        gst::Caps::from_str(
            "audio/x-raw; video/x-h264; video/x-h265; video/x-vp8; video/x-vp9; video/x-av1; \
             video/mpeg; video/x-divx; video/x-xvid; video/x-wmv; video/x-theora; image/jpeg",
        )
        .expect("static caps parse"),
    );

    // Link the first audio pad decodebin exposes. Every other pad (video,
    // subtitles, a second audio track) goes to a fakesink so that an unlinked
    // pad never stalls or fails the demuxer.
    let convert_weak = convert.downgrade();
    let pipeline_weak = pipeline.downgrade();
    // Recorded when linked: decodebin removes its pads on the way to Null, so
    // the link itself is gone by the time the result is examined.
    let audio_linked = Arc::new(AtomicBool::new(false));
    let linked_flag = Arc::clone(&audio_linked);
    decode.connect_pad_added(move |_, pad| {
        let (Some(convert), Some(pipeline)) = (convert_weak.upgrade(), pipeline_weak.upgrade())
        else {
            return;
        };
        let is_audio = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("audio/")))
            .unwrap_or(false);
        let sink_pad = convert
            .static_pad("sink")
            .expect("audioconvert has a sink pad");
        if is_audio && !sink_pad.is_linked() {
            if pad.link(&sink_pad).is_ok() {
                linked_flag.store(true, Ordering::SeqCst);
            }
        } else {
            crate::discard_pad(&pipeline, pad);
        }
    });

    let result = run_to_eos(&pipeline, path, STAGE, timeout, |_, _| {});
    let audio_linked = audio_linked.load(Ordering::SeqCst);
    match result {
        Err(e) => Err(e),
        Ok(()) if !audio_linked => Err(no_audio(path)),
        Ok(()) => Ok(std::mem::take(
            &mut *samples.lock().expect("appsink thread ended"),
        )),
    }
}

fn no_audio(path: &Path) -> MediaError {
    MediaError::Input {
        path: path.to_path_buf(),
        stage: STAGE,
        reason: "no decodable audio stream".into(),
    }
}

/// An appsink that collects interleaved f32 samples at `rate` × `channels`,
/// and the buffer it fills (read it after the pipeline has finished).
pub(crate) fn f32_sink(rate: i32, channels: i32) -> (gst_app::AppSink, Arc<Mutex<Vec<f32>>>) {
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("rate", rate)
        .field("channels", channels)
        .field("layout", "interleaved")
        .build();
    let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
    let samples = Arc::new(Mutex::new(Vec::<f32>::new()));
    let collected = Arc::clone(&samples);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let mut out = collected.lock().map_err(|_| gst::FlowError::Error)?;
                out.extend(
                    map.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    (sink, samples)
}
