//! One decode, every rendition: the transcoding pipeline.
//!
//! ```text
//! filesrc ─ decodebin ─┬─ video: videoflip(auto) ─ videoconvert ─ videorate ─ tee ─┬─ [rung] queue ─ videoscale ─ I420 caps ─ x264enc ─ h264parse ─ mp4mux(fragmented) ─ filesink
//!                      │                                                            ┊
//!                      └─ audio: audioconvert ─ audioresample ─ F32 caps ─ volume(+limiter) ─ tee ─┬─ [rung] queue ─ audioconvert ─ caps ─ avenc_aac ─ aacparse ─ mp4mux
//! ```
//! The source is decoded once; the orientation tag is applied by `videoflip`
//! so every output is upright; GOPs are closed and fixed-length (no scene-cut
//! keyframes) so segments align across rungs.
//!
//! Every decodebin pad is watched: once any stream runs past the declared
//! duration plus a margin ([`DecodeLimit`]) the run stops and the file is
//! refused; a stall (nothing decoded or encoded for the watchdog's stall
//! limit) ends the run early. (The ASR audio comes from the loudness pass,
//! before this pipeline runs, so captions can start beside it.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use serde::Serialize;
use stemfeed_core::media_info::MediaInfo;
use stemfeed_core::profile::Profile;

use crate::bus::run_to_eos;
use crate::error::MediaError;
use crate::ladder::{PlannedRung, plan};
use crate::limits::{DecodeLimit, Monitor, Watchdog};
use crate::loudness::{GainEnvelope, Loudness};
use crate::make;

const STAGE: &str = "transcode";

/// One finished rendition.
#[derive(Debug, Clone, Serialize)]
pub struct Rendition {
    pub name: String,
    pub mp4: PathBuf,
    pub hls_playlist: PathBuf,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub audio_kbps: Option<u32>,
    pub fps: u32,
    /// RFC 6381 codec string for the HLS master playlist.
    pub codecs: String,
}

#[derive(Debug)]
pub struct TranscodeOutput {
    pub renditions: Vec<Rendition>,
    pub poster: Option<crate::stills::Still>,
    pub thumbnails: Vec<crate::stills::Still>,
}

fn add_chain(pipeline: &gst::Pipeline, chain: &[&gst::Element]) -> Result<(), MediaError> {
    // Chains may start at an element already in the pipeline (a tee).
    for element in chain.iter().filter(|e| e.parent().is_none()) {
        pipeline
            .add(*element)
            .expect("fresh elements add to the pipeline");
    }
    gst::Element::link_many(chain.iter().copied()).map_err(|e| MediaError::Build {
        stage: STAGE,
        reason: format!("internal pipeline link failed: {e}"),
    })
}

/// The frame rate every rung is encoded at.
pub fn output_fps(info: &MediaInfo, profile: &Profile) -> u32 {
    let source = info.video.as_ref().and_then(|v| v.fps).unwrap_or(30.0);
    (source.round() as u32).clamp(1, profile.video.max_fps)
}

/// x264's level for the rung: enough for its size at its frame rate.
fn h264_codec_string(profile: &str, width: u32, height: u32, fps: u32) -> String {
    let profile_idc = match profile {
        "baseline" => "42e0",
        "high" => "6400",
        _ => "4d40",
    };
    let mbps = u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16)) * u64::from(fps);
    let level = match mbps {
        0..=40_500 => 0x1e,        // 3.0
        40_501..=108_000 => 0x1f,  // 3.1
        108_001..=245_760 => 0x28, // 4.0
        _ => 0x2a,                 // 4.2
    };
    format!("avc1.{profile_idc}{level:02x}")
}

/// The audio gain applied to every rendition: a constant, and where the
/// loudness pass planned one, the limiter's curve on top of it.
#[derive(Debug, Clone, Default)]
pub struct Gain {
    pub db: f64,
    pub limiter: Option<Arc<GainEnvelope>>,
}

impl From<f64> for Gain {
    fn from(db: f64) -> Self {
        Self { db, limiter: None }
    }
}

impl From<&Loudness> for Gain {
    fn from(l: &Loudness) -> Self {
        Self {
            db: l.applied_gain_db,
            limiter: l.limiter.clone(),
        }
    }
}

/// Multiplies the audio leaving `volume` by the limiter's curve, counting
/// frames from the first as the loudness pass did.
fn apply_limiter(volume: &gst::Element, limiter: Arc<GainEnvelope>, channels: usize) {
    let pad = volume.static_pad("src").expect("volume has a src pad");
    let next_frame = std::sync::atomic::AtomicU64::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
            let buffer = buffer.make_mut();
            if let Ok(mut map) = buffer.map_writable() {
                let mut samples: Vec<f32> = map
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let frames = (samples.len() / channels.max(1)) as u64;
                limiter.apply(
                    next_frame.fetch_add(frames, Ordering::Relaxed),
                    &mut samples,
                    channels,
                );
                for (out, s) in map.chunks_exact_mut(4).zip(&samples) {
                    out.copy_from_slice(&s.to_le_bytes());
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Transcodes `input` into every rung of `profile` under `out_dir`
/// (`renditions/<name>.mp4`, `hls/<name>/index.m3u8`). `gain` is applied to
/// the audio of every rendition (loudness normalisation, see [`Gain`]).
///
/// Decoding stops, refusing the file as bad input, when any stream runs past
/// `limit` (usually [`DecodeLimit::for_declared`] of `info.duration_s`).
/// `watchdog` bounds the run's time and stalls. (The ASR audio comes from
/// the loudness pass, [`crate::loudness::measure`], before any encoding.)
#[allow(clippy::too_many_arguments)]
pub fn transcode(
    input: &Path,
    info: &MediaInfo,
    profile: &Profile,
    out_dir: &Path,
    gain: impl Into<Gain>,
    limit: DecodeLimit,
    watchdog: Watchdog,
    progress: &mut dyn FnMut(f64),
) -> Result<TranscodeOutput, MediaError> {
    crate::init()?;
    let video_info = info.video.as_ref().ok_or_else(|| MediaError::Input {
        path: input.to_path_buf(),
        stage: STAGE,
        reason: "no video stream".into(),
    })?;
    let (dw, dh) = video_info.display_size();
    let rungs = plan(profile, dw, dh);
    let fps = output_fps(info, profile);
    let has_audio = info.audio.is_some();
    let renditions_dir = out_dir.join("renditions");
    std::fs::create_dir_all(&renditions_dir).map_err(|source| MediaError::Output {
        path: renditions_dir.clone(),
        stage: STAGE,
        source,
    })?;
    let monitor = Monitor::new(input, STAGE, limit);

    let pipeline = gst::Pipeline::with_name("transcode");
    let src = make("filesrc")?;
    src.set_property("location", input.to_string_lossy().as_ref());
    let decode = make("decodebin")?;
    pipeline.add_many([&src, &decode]).expect("fresh elements");
    src.link(&decode).expect("filesrc links to decodebin");

    // Video trunk.
    let flip = make("videoflip")?;
    flip.set_property_from_str("video-direction", "auto");
    let vconvert = make("videoconvert")?;
    let vrate = make("videorate")?;
    let rate_caps = make("capsfilter")?;
    rate_caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("framerate", gst::Fraction::new(fps as i32, 1))
            .build(),
    );
    let vtee = make("tee")?;
    add_chain(&pipeline, &[&flip, &vconvert, &vrate, &rate_caps, &vtee])?;

    // Audio trunk.
    let atee = if has_audio {
        let aconvert = make("audioconvert")?;
        let aresample = make("audioresample")?;
        let gain = gain.into();
        // Interleaved f32 at the output rate: the samples the loudness pass
        // metered, so the limiter's curve lines up frame for frame.
        let f32_caps = make("capsfilter")?;
        f32_caps.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("format", "F32LE")
                .field("layout", "interleaved")
                .field("rate", profile.audio.sample_rate as i32)
                .field("channels", profile.audio.channels as i32)
                .build(),
        );
        let volume = make("volume")?;
        volume.set_property("volume", 10f64.powf(gain.db / 20.0));
        if let Some(limiter) = gain.limiter {
            apply_limiter(&volume, limiter, profile.audio.channels as usize);
        }
        let tee = make("tee")?;
        add_chain(
            &pipeline,
            &[&aconvert, &aresample, &f32_caps, &volume, &tee],
        )?;
        Some((aconvert, tee))
    } else {
        None
    };

    let mut renditions = Vec::new();
    // Cascaded scaling: a rung is scaled from the smallest rung already made
    // that is at least twice its size, else from the source. videoscale
    // keeps its quality up to 2:1 but loses it beyond (chroma most), and a
    // smaller input costs less (benches/results/scaler.md).
    let mut scaled: Vec<(u32, gst::Element)> = Vec::new();
    for rung in &rungs {
        let short = rung.width.min(rung.height);
        let from = scaled
            .iter()
            .filter(|(side, _)| *side >= 2 * short)
            .min_by_key(|(side, _)| *side)
            .map_or(&vtee, |(_, tee)| tee)
            .clone();
        let (rendition, raw) = add_rung(
            &pipeline,
            &from,
            atee.as_ref().map(|(_, t)| t),
            rung,
            profile,
            fps,
            out_dir,
        )?;
        renditions.push(rendition);
        scaled.push((short, raw));
    }

    // Encoders work through their lookahead after decoding has ended: their
    // output is progress too, for the stall watchdog.
    for element in pipeline.iterate_elements().into_iter().flatten() {
        let factory = element.factory().map(|f| f.name().to_string());
        if matches!(factory.as_deref(), Some("x264enc" | "avenc_aac"))
            && let Some(pad) = element.static_pad("src")
        {
            monitor.watch_encoded(&pad);
        }
    }

    // Stills branch: 1 frame per second, RGBx (no row padding), to the picker.
    // videorate sits before the queue so that, while the encoders fill their
    // lookahead during preroll, the queue holds one frame a second instead of
    // filling up and stalling the tee.
    let picker = Arc::new(Mutex::new(crate::stills::FramePicker::new(info.duration_s)));
    {
        let short = dw.min(dh);
        let target = crate::stills::SAMPLE_SHORT_SIDE.min(short);
        let (sw, sh) = crate::ladder::scaled(dw, dh, target);
        let queue = make("queue")?;
        let rate = make("videorate")?;
        let scale = make("videoscale")?;
        let convert = make("videoconvert")?;
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGBx")
            .field("width", sw as i32)
            .field("height", sh as i32)
            .field(
                "framerate",
                gst::Fraction::new(crate::stills::SAMPLE_FPS, 1),
            )
            .build();
        let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
        let picker = Arc::clone(&picker);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let time_s = buffer.pts().map_or(0.0, |t| t.nseconds() as f64 / 1e9);
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let rgb = map
                        .chunks_exact(4)
                        .flat_map(|px| [px[0], px[1], px[2]])
                        .collect();
                    let frame = crate::stills::Frame {
                        time_s,
                        width: sw,
                        height: sh,
                        rgb,
                    };
                    picker
                        .lock()
                        .map_err(|_| gst::FlowError::Error)?
                        .offer(frame);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        add_chain(
            &pipeline,
            &[&vtee, &rate, &queue, &scale, &convert, sink.upcast_ref()],
        )?;
    }

    // decodebin's pads: first video → flip, first audio → audio trunk, rest
    // discarded. Every one is watched against the decode limit; the linked
    // ones must carry data.
    let watch = Arc::clone(&monitor);
    let flip_weak = flip.downgrade();
    let audio_weak = atee.as_ref().map(|(c, _)| c.downgrade());
    let pipeline_weak = pipeline.downgrade();
    let video_linked = Arc::new(AtomicBool::new(false));
    let audio_linked = Arc::new(AtomicBool::new(false));
    let (linked_video, linked_audio) = (Arc::clone(&video_linked), Arc::clone(&audio_linked));
    decode.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        watch.watch_decoded(pad);
        let kind = crate::pad_media_type(pad);
        let (target, what, flag) = if kind.starts_with("video/") {
            (flip_weak.upgrade(), "video", &linked_video)
        } else if kind.starts_with("audio/") {
            (
                audio_weak.as_ref().and_then(|w| w.upgrade()),
                "audio",
                &linked_audio,
            )
        } else {
            (None, "", &linked_video)
        };
        if let Some(sink_pad) = target
            .and_then(|t| t.static_pad("sink"))
            .filter(|p| !p.is_linked())
        {
            watch.require_data(pad, what);
            if pad.link(&sink_pad).is_ok() {
                flag.store(true, Ordering::SeqCst);
            }
            return;
        }
        crate::discard_pad(&pipeline, pad);
    });
    // Once decodebin has exposed every stream, a trunk left without its
    // stream would keep its sinks (and the muxers) waiting forever: fail now.
    let watch = Arc::clone(&monitor);
    let (linked_video, linked_audio) = (Arc::clone(&video_linked), Arc::clone(&audio_linked));
    decode.connect_no_more_pads(move |decode| {
        let missing = if !linked_video.load(Ordering::SeqCst) {
            Some("no decodable video stream")
        } else if has_audio && !linked_audio.load(Ordering::SeqCst) {
            Some("the audio stream the probe found could not be decoded")
        } else {
            None
        };
        if let Some(reason) = missing {
            watch.fail(MediaError::Input {
                path: watch.path().to_path_buf(),
                stage: watch.stage(),
                reason: reason.into(),
            });
            crate::limits::post_wake(decode);
        }
    });

    let duration = info.duration_s.max(0.001);
    run_to_eos(&pipeline, &monitor, watchdog, |pos, _| {
        if let Some(pos) = pos {
            progress((pos.nseconds() as f64 / 1e9 / duration).min(1.0));
        }
    })?;
    if !video_linked.load(Ordering::SeqCst) {
        return Err(MediaError::Input {
            path: input.to_path_buf(),
            stage: STAGE,
            reason: "no decodable video stream".into(),
        });
    }
    // Each rung's HLS playlist addresses its one fragmented MP4 by byte range.
    for r in &renditions {
        let uri = format!("../../renditions/{}.mp4", r.name);
        crate::cmaf::write_playlist(&r.mp4, &uri, info.duration_s, &r.hls_playlist).map_err(
            |reason| MediaError::Build {
                stage: STAGE,
                reason: format!("HLS playlist for {}: {reason}", r.mp4.display()),
            },
        )?;
    }
    progress(1.0);
    let (poster, thumbnails) =
        crate::stills::write(&picker.lock().unwrap_or_else(|p| p.into_inner()), out_dir).map_err(
            |source| MediaError::Output {
                path: out_dir.to_path_buf(),
                stage: "poster",
                source,
            },
        )?;
    Ok(TranscodeOutput {
        renditions,
        poster,
        thumbnails,
    })
}

/// Adds one rung fed from `from` (the source's tee or a larger rung's
/// scaled frames); returns it and the tee of its own scaled frames.
fn add_rung(
    pipeline: &gst::Pipeline,
    from: &gst::Element,
    atee: Option<&gst::Element>,
    rung: &PlannedRung,
    profile: &Profile,
    fps: u32,
    out_dir: &Path,
) -> Result<(Rendition, gst::Element), MediaError> {
    let mp4_path = out_dir
        .join("renditions")
        .join(format!("{}.mp4", rung.name));
    let hls_dir = out_dir.join("hls").join(&rung.name);
    std::fs::create_dir_all(&hls_dir).map_err(|source| MediaError::Output {
        path: hls_dir.clone(),
        stage: STAGE,
        source,
    })?;
    let gop = (profile.video.gop_seconds * f64::from(fps))
        .round()
        .max(1.0) as u32;

    let queue = make("queue")?;
    let scale = make("videoscale")?;
    // The profile's method (catrom by default: sharper than bilinear2 at
    // 2:1 and below, benches/results/scaler.md).
    scale.set_property_from_str("method", &profile.video.scaler);
    scale.set_property_from_str("chroma-resampler", &profile.video.chroma_scaler);
    // Even dimensions can differ from the exact aspect by a fraction of a
    // pixel (1080x1920 → 480x854); stretch by that fraction rather than
    // letting videoscale pad black borders that shift the whole picture.
    scale.set_property("add-borders", false);
    let raw_caps = make("capsfilter")?;
    raw_caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", rung.width as i32)
            .field("height", rung.height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    let enc = make("x264enc")?;
    enc.set_property("bitrate", rung.video_kbps);
    enc.set_property_from_str("speed-preset", &profile.video.x264_preset);
    enc.set_property("key-int-max", gop);
    // No B-frames: mp4mux's fragmented output has no edit list, so the
    // reordering delay of B-frames would start the video two frames after
    // the audio (an A/V offset players do not correct). Measured on the
    // bench clip at 480p/1000 kbit/s: 29.77 dB without, 29.76 dB with.
    enc.set_property("bframes", 0u32);
    enc.set_property(
        "option-string",
        format!(
            "keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:vbv-maxrate={}:vbv-bufsize={}",
            rung.video_kbps * 3 / 2,
            rung.video_kbps * 2
        ),
    );
    let h264_caps = make("capsfilter")?;
    h264_caps.set_property(
        "caps",
        gst::Caps::builder("video/x-h264")
            .field("profile", profile.video.h264_profile.as_str())
            .build(),
    );
    let raw_tee = make("tee")?;
    let enc_queue = make("queue")?;
    add_chain(
        pipeline,
        &[
            from, &queue, &scale, &raw_caps, &raw_tee, &enc_queue, &enc, &h264_caps,
        ],
    )?;

    // Fragmented MP4, one fragment per GOP: it plays progressively as it
    // is, and the HLS playlist addresses the same bytes (see [`crate::cmaf`]).
    let mux = make("mp4mux")?;
    mux.set_property(
        "fragment-duration",
        (profile.video.gop_seconds * 1000.0).round() as u32,
    );
    let sink = make("filesink")?;
    sink.set_property("location", mp4_path.to_string_lossy().as_ref());
    pipeline.add_many([&mux, &sink]).expect("fresh elements");
    mux.link(&sink).expect("mp4mux links to filesink");

    let link_branch = |from: &gst::Element,
                       parser: &str,
                       target: &gst::Element,
                       pad: &str|
     -> Result<(), MediaError> {
        let q = make("queue")?;
        let parse = make(parser)?;
        add_chain(pipeline, &[from, &q, &parse])?;
        let src = parse.static_pad("src").expect("parsers have a src pad");
        let sink = target
            .request_pad_simple(pad)
            .ok_or_else(|| MediaError::MissingElement(format!("{pad} pad")))?;
        src.link(&sink).map_err(|e| MediaError::Build {
            stage: STAGE,
            reason: format!("cannot link to {pad}: {e:?}"),
        })?;
        Ok(())
    };
    link_branch(&h264_caps, "h264parse", &mux, "video_%u")?;

    let mut audio_kbps = None;
    if let Some(atee) = atee {
        let queue = make("queue")?;
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let caps = make("capsfilter")?;
        caps.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", profile.audio.sample_rate as i32)
                .field("channels", profile.audio.channels as i32)
                .build(),
        );
        let aac = make("avenc_aac")?;
        aac.set_property(
            "bitrate",
            i32::try_from(rung.audio_kbps * 1000).unwrap_or(i32::MAX),
        );
        add_chain(pipeline, &[atee, &queue, &convert, &resample, &caps, &aac])?;
        link_branch(&aac, "aacparse", &mux, "audio_%u")?;
        audio_kbps = Some(rung.audio_kbps);
    }

    let video_codec = h264_codec_string(&profile.video.h264_profile, rung.width, rung.height, fps);
    let rendition = Rendition {
        name: rung.name.clone(),
        mp4: mp4_path,
        hls_playlist: hls_dir.join("index.m3u8"),
        width: rung.width,
        height: rung.height,
        video_kbps: rung.video_kbps,
        audio_kbps,
        fps,
        codecs: if audio_kbps.is_some() {
            format!("{video_codec},mp4a.40.2")
        } else {
            video_codec
        },
    };
    Ok((rendition, raw_tee))
}

/// Writes `hls/subs/<id>.m3u8`: one WebVTT segment spanning the video.
pub fn write_subtitle_playlist(
    out_dir: &Path,
    id: &str,
    vtt: &Path,
    duration_s: f64,
) -> std::io::Result<String> {
    let dir = out_dir.join("hls").join("subs");
    std::fs::create_dir_all(&dir)?;
    let vtt_rel = vtt
        .strip_prefix(out_dir)
        .unwrap_or(vtt)
        .to_string_lossy()
        .replace('\\', "/");
    let text = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:{duration_s:.3},\n../../{vtt_rel}\n#EXT-X-ENDLIST\n",
        duration_s.ceil().max(1.0) as u64
    );
    std::fs::write(dir.join(format!("{id}.m3u8")), text)?;
    Ok(format!("subs/{id}.m3u8"))
}
