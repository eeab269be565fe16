//! Captions burned into the picture, for short-video platforms that take one
//! file and show no sidecar captions.
//!
//! One pass: the rendition's H.264 is decoded, GStreamer's `textoverlay`
//! (Pango: Arabic-script shaping, Nastaliq via the font, bidi for embedded
//! English and numbers) draws each cue from an `appsrc` of timed text, and
//! x264 encodes the result; the AAC audio is copied untouched, so duration
//! and sound are the rendition's. Captions sit centred in the platform's
//! safe area (clear of the bottom and right-side UI), boxed so they read on
//! any background.

use std::path::Path;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

use crate::bus::run_to_eos;
use crate::error::MediaError;
use crate::limits::{DecodeLimit, Monitor, Watchdog};
use crate::make;

const STAGE: &str = "burn-in";

/// Cues re-cut for a narrow vertical frame: words wrapped into lines of at
/// most `max_line` characters (`count` measures one), at most `max_lines`
/// lines to a caption; a cue that needs more is split into several shown
/// one after the other, each for its share of the cue's time by length.
pub fn wrap(
    cues: &[TimedText],
    max_line: usize,
    max_lines: usize,
    count: impl Fn(&str) -> usize,
) -> Vec<TimedText> {
    let (max_line, max_lines) = (max_line.max(1), max_lines.max(1));
    // Greedy lines of at most `max_line`.
    let lines_of = |words: &[&str]| {
        let mut lines: Vec<String> = Vec::new();
        for word in words {
            match lines.last_mut() {
                Some(line) if count(line) + 1 + count(word) <= max_line => {
                    line.push(' ');
                    line.push_str(word);
                }
                _ => lines.push((*word).to_owned()),
            }
        }
        lines
    };
    let mut out = Vec::new();
    for cue in cues {
        let words: Vec<&str> = cue.text.split_whitespace().collect();
        let lines = lines_of(&words);
        if lines.is_empty() || cue.end.partial_cmp(&cue.start) != Some(std::cmp::Ordering::Greater)
        {
            continue;
        }
        // As many captions as the greedy lines need, their words shared out
        // evenly by length (no lone last word), unless that needs more lines.
        let k = lines.len().div_ceil(max_lines);
        let total_len: usize = words.iter().map(|w| count(w) + 1).sum();
        let mut shares: Vec<Vec<&str>> = vec![Vec::new(); k];
        let mut seen = 0;
        for w in &words {
            let i = (seen * k / total_len.max(1)).min(k - 1);
            shares[i].push(w);
            seen += count(w) + 1;
        }
        let balanced: Vec<Vec<String>> = shares.iter().map(|s| lines_of(s)).collect();
        let chunks: Vec<String> = if balanced
            .iter()
            .all(|l| !l.is_empty() && l.len() <= max_lines)
        {
            balanced.iter().map(|l| l.join("\n")).collect()
        } else {
            lines.chunks(max_lines).map(|c| c.join("\n")).collect()
        };
        let total: usize = chunks.iter().map(|c| count(c).max(1)).sum();
        let mut start = cue.start;
        for (i, text) in chunks.iter().enumerate() {
            let end = if i + 1 == chunks.len() {
                cue.end
            } else {
                start + (cue.end - cue.start) * count(text).max(1) as f64 / total as f64
            };
            out.push(TimedText {
                start,
                end,
                text: text.clone(),
            });
            start = end;
        }
    }
    out
}

/// One caption to draw: seconds, and its lines.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimedText {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// Where and how captions are drawn, in pixels of the output frame.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Style {
    /// Pango font family ("Noto Nastaliq Urdu", "Noto Sans").
    pub font: String,
    /// Font size in pixels.
    pub size_px: u32,
    /// The safe area's margins: nothing is drawn outside them.
    pub left: u32,
    pub right: u32,
    pub bottom: u32,
    /// x264's quality (CRF) for the re-encoded picture.
    pub crf: u32,
}

/// Draws `cues` over the video of `input` (an MP4 with H.264 and AAC),
/// scaled to `width`×`height` (bordered if its shape differs), into `output`
/// (MP4, fast start).
#[allow(clippy::too_many_arguments)]
pub fn burn(
    input: &Path,
    output: &Path,
    width: u32,
    height: u32,
    cues: &[TimedText],
    style: &Style,
    limit: DecodeLimit,
    watchdog: Watchdog,
) -> Result<(), MediaError> {
    crate::init()?;
    let monitor = Monitor::new(input, STAGE, limit);
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", input);
    let demux = make("qtdemux")?;
    let vqueue = make("queue")?;
    let vparse = make("h264parse")?;
    let vdec = make("avdec_h264")?;
    let convert_in = make("videoconvert")?;
    let scale = make("videoscale")?;
    let size = make("capsfilter")?;
    let overlay = make("textoverlay")?;
    let convert_out = make("videoconvert")?;
    let enc = make("x264enc")?;
    let enc_parse = make("h264parse")?;
    let mux = make("mp4mux")?;
    let sink = make("filesink")?;
    let aqueue = make("queue")?;
    let aparse = make("aacparse")?;
    let text = make("appsrc")?;

    // Centred between the safe area's left and right margins, the bottom
    // margin under the last line. The caller wraps the lines to the safe
    // area's width ([`wrap`]); the overlay never wraps on its own (it would
    // wrap at the whole frame's width).
    scale.set_property("add-borders", true);
    size.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("width", width as i32)
            .field("height", height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    overlay.set_property("font-desc", format!("{} {}px", style.font, style.size_px));
    overlay.set_property_from_str("valignment", "bottom");
    overlay.set_property_from_str("halignment", "center");
    overlay.set_property_from_str("line-alignment", "center");
    overlay.set_property_from_str("wrap-mode", "none");
    overlay.set_property("ypad", style.bottom as i32);
    overlay.set_property("deltax", (style.left as i32 - style.right as i32) / 2);
    overlay.set_property("shaded-background", true);
    overlay.set_property("shading-value", 200u32);
    overlay.set_property("draw-outline", true);
    overlay.set_property("draw-shadow", false);
    overlay.set_property("auto-resize", false);
    overlay.set_property("wait-text", false);
    enc.set_property_from_str("speed-preset", "medium");
    enc.set_property("bframes", 0u32);
    enc.set_property("key-int-max", 60u32);
    enc.set_property_from_str("pass", "quant");
    enc.set_property("quantizer", style.crf);
    mux.set_property("faststart", true);
    // Its temporary file beside the output, not in the system's temporary
    // directory (which a confined process cannot write).
    let mut moov = output.as_os_str().to_owned();
    moov.push(".moov-tmp");
    let moov = std::path::PathBuf::from(moov);
    // mp4mux does not report a temporary file it cannot open: it stalls
    // until the watchdog. Try it first, so that fails at once and says why.
    std::fs::File::create(&moov)
        .and_then(|_| std::fs::remove_file(&moov))
        .map_err(|e| MediaError::Input {
            path: input.to_path_buf(),
            stage: STAGE,
            reason: format!(
                "the muxer's temporary file {} cannot be written: {e}",
                moov.display()
            ),
        })?;
    mux.set_property("faststart-file", moov);
    // x264 holds back a second or more of frames (look-ahead) while the
    // muxer waits for them; the demuxer must meanwhile be able to queue
    // that much audio, or it blocks and the video never arrives.
    for q in [&aqueue, &vqueue] {
        q.set_property("max-size-buffers", 0u32);
        q.set_property("max-size-bytes", 64u32 * 1024 * 1024);
        q.set_property("max-size-time", 30_000_000_000u64);
    }
    sink.set_property("location", output);

    let text_src = text
        .clone()
        .dynamic_cast::<gst_app::AppSrc>()
        .expect("appsrc");
    text_src.set_caps(Some(
        &gst::Caps::builder("text/x-raw")
            .field("format", "pango-markup")
            .build(),
    ));
    text_src.set_format(gst::Format::Time);
    text_src.set_property("is-live", false);

    pipeline
        .add_many([
            &src,
            &demux,
            &vqueue,
            &vparse,
            &vdec,
            &convert_in,
            &scale,
            &size,
            &overlay,
            &convert_out,
            &enc,
            &enc_parse,
            &mux,
            &sink,
            &aqueue,
            &aparse,
            &text,
        ])
        .map_err(|e| internal(input, e))?;
    src.link(&demux).map_err(|e| internal(input, e))?;
    gst::Element::link_many([&vqueue, &vparse, &vdec, &convert_in, &scale, &size])
        .map_err(|e| internal(input, e))?;
    size.link_pads(Some("src"), &overlay, Some("video_sink"))
        .map_err(|e| internal(input, e))?;
    text.link_pads(Some("src"), &overlay, Some("text_sink"))
        .map_err(|e| internal(input, e))?;
    gst::Element::link_many([&overlay, &convert_out, &enc, &enc_parse, &mux])
        .map_err(|e| internal(input, e))?;
    mux.link(&sink).map_err(|e| internal(input, e))?;
    aqueue.link(&aparse).map_err(|e| internal(input, e))?;
    aparse.link(&mux).map_err(|e| internal(input, e))?;
    monitor.watch_decoded(&vdec.static_pad("src").expect("decoder src pad"));
    monitor.watch_encoded(&enc.static_pad("src").expect("encoder src pad"));

    // The demuxer's first video and audio streams; anything else is dropped.
    let linked = Arc::new(Mutex::new((false, false)));
    let (vq, aq) = (vqueue.downgrade(), aqueue.downgrade());
    let pipeline_weak = pipeline.downgrade();
    demux.connect_pad_added(move |_, pad| {
        let kind = crate::pad_media_type(pad);
        let mut seen = linked.lock().unwrap_or_else(|p| p.into_inner());
        let target = if kind.starts_with("video/") && !seen.0 {
            seen.0 = true;
            vq.upgrade()
        } else if kind.starts_with("audio/") && !seen.1 {
            seen.1 = true;
            aq.upgrade()
        } else {
            None
        };
        match target.and_then(|q| q.static_pad("sink")) {
            Some(sink) => {
                let _ = pad.link(&sink);
            }
            None => {
                if let Some(p) = pipeline_weak.upgrade() {
                    crate::discard_pad(&p, pad);
                }
            }
        }
    });

    // Every cue as a timed buffer, then end of stream: the overlay draws
    // each while its time is on screen and nothing between.
    for cue in cues {
        if cue.end.partial_cmp(&cue.start) != Some(std::cmp::Ordering::Greater)
            || cue.text.trim().is_empty()
        {
            continue;
        }
        let markup = gst::glib::markup_escape_text(cue.text.trim());
        let mut buffer = gst::Buffer::from_mut_slice(markup.as_str().as_bytes().to_vec());
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(
                (cue.start.max(0.0) * 1e9) as u64,
            ));
            b.set_duration(gst::ClockTime::from_nseconds(
                ((cue.end - cue.start) * 1e9) as u64,
            ));
        }
        text_src
            .push_buffer(buffer)
            .map_err(|e| internal(input, format!("queueing a caption: {e:?}")))?;
    }
    text_src
        .end_of_stream()
        .map_err(|e| internal(input, format!("ending the captions: {e:?}")))?;

    run_to_eos(&pipeline, &monitor, watchdog, |_, _| {})
}

fn internal(path: &Path, e: impl std::fmt::Display) -> MediaError {
    MediaError::Input {
        path: path.to_path_buf(),
        stage: STAGE,
        reason: format!("building the pipeline: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cue(start: f64, end: f64, text: &str) -> TimedText {
        TimedText {
            start,
            end,
            text: text.to_owned(),
        }
    }

    #[test]
    fn a_muxer_file_that_cannot_be_written_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.mp4");
        // A directory where the muxer's temporary file would go.
        std::fs::create_dir(dir.path().join("out.mp4.moov-tmp")).unwrap();
        let err = burn(
            &dir.path().join("in.mp4"),
            &output,
            320,
            568,
            &[cue(0.0, 1.0, "hello")],
            &Style {
                font: "Noto Sans".into(),
                size_px: 20,
                left: 10,
                right: 10,
                bottom: 10,
                crf: 30,
            },
            DecodeLimit::for_declared(1.0),
            Watchdog::new(std::time::Duration::from_secs(60)),
        )
        .expect_err("the muxer cannot write its file");
        assert!(
            err.to_string()
                .contains("out.mp4.moov-tmp cannot be written"),
            "{err}"
        );
    }

    #[test]
    fn long_cues_become_two_line_captions_in_sequence() {
        let chars = |s: &str| s.chars().count();
        let cues = [cue(
            1.0,
            5.0,
            "one two three four five six seven eight nine ten",
        )];
        let out = wrap(&cues, 10, 2, chars);
        assert_eq!(
            out.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
            ["one two\nthree four", "five six\nseven", "eight nine\nten"]
        );
        assert!(out.iter().all(|c| c.text.lines().all(|l| chars(l) <= 10)));
        // Back to back, from the cue's start to its end, by length.
        assert_eq!((out[0].start, out[2].end), (1.0, 5.0));
        assert_eq!(out[0].end, out[1].start);
        assert!(out[0].end - out[0].start > out[1].end - out[1].start);
    }

    #[test]
    fn a_sentence_one_word_too_long_is_shared_out_evenly() {
        let chars = |s: &str| s.chars().count();
        // Greedy lines of 28 would show "ground." alone after the rest.
        let cues = [cue(
            0.0,
            4.0,
            "The force makes it accelerate toward the ground.",
        )];
        let out = wrap(&cues, 28, 2, chars);
        assert_eq!(
            out.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
            ["The force makes it\naccelerate", "toward the ground."]
        );
    }

    #[test]
    fn short_cues_keep_their_time_and_empty_ones_go() {
        let out = wrap(
            &[
                cue(0.0, 2.0, "  short  "),
                cue(2.0, 3.0, " "),
                cue(4.0, 3.0, "backwards"),
            ],
            42,
            2,
            |s: &str| s.chars().count(),
        );
        assert_eq!(out, [cue(0.0, 2.0, "short")]);
    }
}
