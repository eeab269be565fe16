//! Decoding any audio or video file's first audio stream to interleaved f32
//! at a chosen rate and channel count: 16 kHz mono for Whisper, the output
//! format for loudness measurement. Video streams are demuxed but never
//! decoded, so an audio pass over a video costs little.
//!
//! Samples are handed on as they arrive ([`stream`]); what is kept is capped
//! ([`decode`]), and decoding stops once the file runs past its declared
//! duration plus a margin ([`DecodeLimit`]).

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

use crate::bus::run_to_eos;
use crate::error::MediaError;
use crate::limits::{DecodeLimit, Monitor, Watchdog};

pub const ASR_RATE: i32 = 16_000;
const STAGE: &str = "audio decode";

/// Decodes `path` to 16 kHz mono f32 samples (Whisper's input), keeping at
/// most `max_samples` (see [`crate::limits::asr_sample_cap`]).
pub fn decode_to_asr_pcm(
    path: &Path,
    limit: DecodeLimit,
    max_samples: usize,
    watchdog: Watchdog,
) -> Result<Vec<f32>, MediaError> {
    decode(path, ASR_RATE, 1, limit, max_samples, watchdog)
}

/// Decodes the first audio stream of `path` to interleaved f32 at `rate` Hz
/// with `channels` channels (down- or up-mixed by audioconvert). Fails naming
/// the file when it has no audio stream or cannot be decoded, when its
/// streams run past `limit.max_s`, or when the audio would exceed
/// `max_samples` interleaved samples; never takes longer than the watchdog
/// allows.
pub fn decode(
    path: &Path,
    rate: i32,
    channels: i32,
    limit: DecodeLimit,
    max_samples: usize,
    watchdog: Watchdog,
) -> Result<Vec<f32>, MediaError> {
    let (samples, collect) = capped_collector(path, STAGE, rate, channels, max_samples);
    stream(path, STAGE, rate, channels, limit, watchdog, collect)?;
    Ok(std::mem::take(
        &mut *samples.lock().unwrap_or_else(|p| p.into_inner()),
    ))
}

/// Decodes the first audio stream of `path` as [`decode`] does, handing each
/// buffer of interleaved f32 to `consume` as it arrives instead of keeping
/// it. An error from `consume` stops the run and is returned.
pub(crate) fn stream(
    path: &Path,
    stage: &'static str,
    rate: i32,
    channels: i32,
    limit: DecodeLimit,
    watchdog: Watchdog,
    consume: impl FnMut(&[f32]) -> Result<(), MediaError> + Send + 'static,
) -> Result<(), MediaError> {
    crate::init()?;
    if !path.is_file() {
        return Err(MediaError::Input {
            path: path.to_path_buf(),
            stage,
            reason: "file not found".into(),
        });
    }
    let monitor = Monitor::new(path, stage, limit);
    let pipeline = gst::Pipeline::with_name("audio-decode");
    let src = crate::make("filesrc")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let decode = crate::make("decodebin")?;
    let convert = crate::make("audioconvert")?;
    let resample = crate::make("audioresample")?;
    let sink = f32_sink(rate, channels, Arc::clone(&monitor), consume);
    pipeline
        .add_many([&src, &decode, &convert, &resample, sink.upcast_ref()])
        .expect("fresh elements add to a fresh pipeline");
    src.link(&decode).expect("filesrc links to decodebin");
    gst::Element::link_many([&convert, &resample, sink.upcast_ref()])
        .expect("static audio chain links");

    // Stop at compressed video: it is exposed still encoded and discarded
    // instead of being decoded for nothing. MPEG video only as an
    // elementary stream: an MPEG program stream (.mpg, .vob) is typefound
    // as `video/mpeg, systemstream=true`, and a bare `video/mpeg` would
    // expose the whole container, undemuxed, as one "video" pad.
    decode.set_property(
        "caps",
        gst::Caps::from_str(
            "audio/x-raw; video/x-h264; video/x-h265; video/x-vp8; video/x-vp9; video/x-av1; \
             video/mpeg, systemstream=(boolean)false; video/x-divx; video/x-xvid; \
             video/x-wmv; video/x-theora; image/jpeg",
        )
        .expect("static caps parse"),
    );

    // Link the first audio pad decodebin exposes. Every other pad (video,
    // subtitles, a second audio track) goes to a fakesink so that an unlinked
    // pad never stalls or fails the demuxer. Every pad is watched: no stream
    // may run past the declared duration, and the audio must carry data.
    let convert_weak = convert.downgrade();
    let pipeline_weak = pipeline.downgrade();
    // Recorded when linked: decodebin removes its pads on the way to Null, so
    // the link itself is gone by the time the result is examined.
    let audio_linked = Arc::new(AtomicBool::new(false));
    let linked_flag = Arc::clone(&audio_linked);
    let watch = Arc::clone(&monitor);
    decode.connect_pad_added(move |_, pad| {
        let (Some(convert), Some(pipeline)) = (convert_weak.upgrade(), pipeline_weak.upgrade())
        else {
            return;
        };
        watch.watch_decoded(pad);
        let is_audio = crate::pad_media_type(pad).starts_with("audio/");
        let sink_pad = convert
            .static_pad("sink")
            .expect("audioconvert has a sink pad");
        if is_audio && !sink_pad.is_linked() {
            watch.require_data(pad, "audio");
            if pad.link(&sink_pad).is_ok() {
                linked_flag.store(true, Ordering::SeqCst);
            }
        } else {
            crate::discard_pad(&pipeline, pad);
        }
    });
    // Once decodebin has exposed every stream without an audio one, the
    // appsink can never receive data nor EOS: fail now instead of stalling.
    let linked_flag = Arc::clone(&audio_linked);
    let watch = Arc::clone(&monitor);
    decode.connect_no_more_pads(move |decode| {
        if !linked_flag.load(Ordering::SeqCst) {
            watch.fail(no_audio(watch.path(), watch.stage()));
            crate::limits::post_wake(decode);
        }
    });

    run_to_eos(&pipeline, &monitor, watchdog, |_, _| {})?;
    if !audio_linked.load(Ordering::SeqCst) {
        return Err(no_audio(path, stage));
    }
    Ok(())
}

/// Converts interleaved f32 at `rate` × `channels` (the decoded audio a
/// loudness pass kept) to 16 kHz mono for Whisper, through the same
/// audioconvert → audioresample chain the decoders use, keeping at most
/// `max_samples`. `path` names the upload in errors.
pub fn to_asr_pcm(
    path: &Path,
    samples: Vec<f32>,
    rate: u32,
    channels: u32,
    max_samples: usize,
    watchdog: Watchdog,
) -> Result<Vec<f32>, MediaError> {
    const STAGE: &str = "ASR audio";
    let (collected, collect) = capped_collector(path, STAGE, ASR_RATE, 1, max_samples);
    let chain = [crate::make("audioconvert")?, crate::make("audioresample")?];
    through(
        path,
        STAGE,
        (Arc::new(samples), rate, channels),
        &chain,
        (ASR_RATE, 1),
        watchdog,
        collect,
    )?;
    Ok(std::mem::take(
        &mut *collected.lock().unwrap_or_else(|p| p.into_inner()),
    ))
}

/// Pushes interleaved f32 `samples` at `rate` × `channels` through `chain`
/// (fresh elements, linked in order) and hands what comes out, as
/// interleaved f32 at `out_rate` × `out_channels`, to `consume`. `path`
/// names the upload in errors; the run is bounded by the input's duration
/// and the watchdog.
pub(crate) fn through(
    path: &Path,
    stage: &'static str,
    (samples, rate, channels): (Arc<Vec<f32>>, u32, u32),
    chain: &[gst::Element],
    (out_rate, out_channels): (i32, i32),
    watchdog: Watchdog,
    consume: impl FnMut(&[f32]) -> Result<(), MediaError> + Send + 'static,
) -> Result<(), MediaError> {
    crate::init()?;
    let (rate_hz, channel_count) = (rate.max(1), channels.max(1));
    let frames = samples.len() / channel_count as usize;
    let seconds = frames as f64 / f64::from(rate_hz);
    let monitor = Monitor::new(path, stage, DecodeLimit::for_declared(seconds));
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("rate", rate_hz as i32)
        .field("channels", channel_count as i32)
        .field("layout", "interleaved")
        .build();
    let src = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .build();
    let pipeline = gst::Pipeline::with_name("audio-samples");
    let sink = f32_sink(out_rate, out_channels, Arc::clone(&monitor), consume);
    let mut elements: Vec<&gst::Element> = vec![src.upcast_ref()];
    elements.extend(chain);
    elements.push(sink.upcast_ref());
    pipeline
        .add_many(elements.iter().copied())
        .expect("fresh elements add to a fresh pipeline");
    gst::Element::link_many(elements.iter().copied()).map_err(|e| MediaError::Build {
        stage,
        reason: format!("cannot link the audio chain: {e}"),
    })?;
    // Fed a second at a time as the chain asks, so the samples are not
    // copied twice over.
    let chunk = (rate_hz * channel_count) as usize;
    let mut next = 0usize;
    src.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |src, _| {
                if next >= samples.len() {
                    let _ = src.end_of_stream();
                    return;
                }
                let end = (next + chunk).min(samples.len());
                let bytes: Vec<u8> = samples[next..end]
                    .iter()
                    .flat_map(|s| s.to_le_bytes())
                    .collect();
                let first_frame = (next / channel_count as usize) as u64;
                let frame_count = ((end - next) / channel_count as usize) as u64;
                let mut buffer = gst::Buffer::from_mut_slice(bytes);
                {
                    let b = buffer.get_mut().expect("a new buffer is writable");
                    b.set_pts(gst::ClockTime::from_nseconds(
                        first_frame * 1_000_000_000 / u64::from(rate_hz),
                    ));
                    b.set_duration(gst::ClockTime::from_nseconds(
                        frame_count * 1_000_000_000 / u64::from(rate_hz),
                    ));
                }
                next = end;
                let _ = src.push_buffer(buffer);
            })
            .build(),
    );
    run_to_eos(&pipeline, &monitor, watchdog, |_, _| {})
}

fn no_audio(path: &Path, stage: &'static str) -> MediaError {
    MediaError::Input {
        path: path.to_path_buf(),
        stage,
        reason: "no decodable audio stream".into(),
    }
}

/// Samples a collector filled; read them once the pipeline has finished.
pub(crate) type Collected = Arc<Mutex<Vec<f32>>>;

/// A buffer that keeps at most `max_samples` interleaved samples, and the
/// consumer that fills it: one sample more is refused as bad input.
pub(crate) fn capped_collector(
    path: &Path,
    stage: &'static str,
    rate: i32,
    channels: i32,
    max_samples: usize,
) -> (
    Collected,
    impl FnMut(&[f32]) -> Result<(), MediaError> + Send + 'static,
) {
    let samples: Collected = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&samples);
    let path = path.to_path_buf();
    let per_second = f64::from(rate.max(1)) * f64::from(channels.max(1));
    let consume = move |chunk: &[f32]| {
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = out.len() + chunk.len();
        if wanted > max_samples {
            return Err(MediaError::AudioCap {
                path: path.clone(),
                stage,
                max_samples,
                cap_s: max_samples as f64 / per_second,
            });
        }
        if wanted > out.capacity() {
            // Grow geometrically, but never past the cap.
            let target = wanted.max(out.capacity() * 2).min(max_samples);
            let extra = target - out.len();
            out.reserve_exact(extra);
        }
        out.extend_from_slice(chunk);
        Ok(())
    };
    (samples, consume)
}

/// An appsink that takes interleaved f32 at `rate` × `channels` and hands
/// each buffer to `consume` as it arrives. Each buffer's end (the samples
/// counted so far, or its timestamp when later) is decoded media time
/// checked against the run's limit before `consume` sees it.
pub(crate) fn f32_sink(
    rate: i32,
    channels: i32,
    monitor: Arc<Monitor>,
    mut consume: impl FnMut(&[f32]) -> Result<(), MediaError> + Send + 'static,
) -> gst_app::AppSink {
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("rate", rate)
        .field("channels", channels)
        .field("layout", "interleaved")
        .build();
    let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
    let channel_count = channels.max(1) as u64;
    let rate_hz = rate.max(1) as u64;
    let mut frames: u64 = 0;
    let mut scratch: Vec<f32> = Vec::new();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if monitor.failed() {
                    return Err(gst::FlowError::Error);
                }
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                scratch.clear();
                scratch.extend(
                    map.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
                drop(map);
                frames += scratch.len() as u64 / channel_count;
                let counted_ns = frames.saturating_mul(1_000_000_000) / rate_hz;
                let end = crate::limits::sample_end(&sample)
                    .unwrap_or(0)
                    .max(counted_ns);
                if !monitor.decoded(end) {
                    crate::limits::post_wake(sink.upcast_ref());
                    return Err(gst::FlowError::Error);
                }
                if let Err(e) = consume(&scratch) {
                    monitor.fail(e);
                    crate::limits::post_wake(sink.upcast_ref());
                    return Err(gst::FlowError::Error);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    sink
}
