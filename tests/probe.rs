//! `stemfeed probe`: typed media info for every kind of phone upload, and a
//! clear, bounded refusal for bad ones that leaves the file untouched.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ffmpeg_make, ffmpeg_rotate, file_digest, run, stemfeed, text};
use serde_json::Value;

const V: &str = "testsrc2=size=1080x1920:rate=30:duration=2";
const A: &str = "sine=frequency=440:sample_rate=48000:duration=2";

fn probe_ok(path: &Path) -> Value {
    let out = run(stemfeed().arg("probe").arg(path));
    assert!(
        out.status.success(),
        "probe of {} failed: {}",
        path.display(),
        text(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["media"].clone()
}

fn probe_rejects(path: &Path, expect: &str) {
    let before = file_digest(path);
    let started = Instant::now();
    let out = run(stemfeed().arg("probe").arg(path));
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "refusal must be bounded in time"
    );
    assert!(!out.status.success(), "{} must be refused", path.display());
    let stderr = text(&out.stderr);
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(name), "error names the file: {stderr}");
    assert!(stderr.contains(expect), "error says {expect:?}: {stderr}");
    assert_eq!(file_digest(path), before, "input left untouched");
}

#[test]
fn probes_common_containers_and_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let h264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"];
    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        ("h264.mp4", h264.to_vec(), "H.264", "MPEG-4 AAC"),
        ("clip.mov", h264.to_vec(), "H.264", "MPEG-4 AAC"),
        (
            "vp9.webm",
            vec![
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-c:a",
                "libopus",
            ],
            "VP9",
            "Opus",
        ),
        (
            "hevc.mkv",
            vec![
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error",
                "-c:a",
                "aac",
            ],
            "H.265",
            "MPEG-4 AAC",
        ),
    ];
    for (name, args, vcodec, acodec) in cases {
        let path = ffmpeg_make(d, name, &[V, A], &args);
        let media = probe_ok(&path);
        let video = &media["video"];
        assert!(
            video["codec"].as_str().unwrap().contains(vcodec),
            "{name}: {video}"
        );
        assert_eq!(
            (video["width"].as_u64(), video["height"].as_u64()),
            (Some(1080), Some(1920)),
            "{name}"
        );
        assert!(
            media["audio"]["codec"].as_str().unwrap().contains(acodec),
            "{name}: {}",
            media["audio"]
        );
        let duration = media["duration_s"].as_f64().unwrap();
        assert!((duration - 2.0).abs() < 0.1, "{name}: duration {duration}");
        assert!(
            (video["fps"].as_f64().unwrap() - 30.0).abs() < 0.01,
            "{name}"
        );
    }
}

#[test]
fn probes_rotation_channels_rates_and_odd_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let coded = ffmpeg_make(
        d,
        "coded.mp4",
        &["testsrc2=size=1920x1080:rate=30:duration=1", A],
        &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    );
    let rotated = ffmpeg_rotate(d, &coded, "rotated.mp4", 90);
    let media = probe_ok(&rotated);
    // A phone held upright: coded landscape, displayed portrait.
    let rotation = media["video"]["rotation"].as_u64().unwrap();
    assert!(rotation == 90 || rotation == 270, "{media}");

    let surround = ffmpeg_make(
        d,
        "surround.mp4",
        &[V, "sine=frequency=300:sample_rate=44100:duration=2"],
        &[
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "6",
        ],
    );
    let media = probe_ok(&surround);
    assert_eq!(media["audio"]["channels"].as_u64(), Some(6));
    assert_eq!(media["audio"]["sample_rate"].as_u64(), Some(44_100));

    let odd = ffmpeg_make(
        d,
        "odd.mkv",
        &["testsrc2=size=1080x1920:rate=30:duration=1"],
        &[
            "-vf",
            "scale=1079:1919",
            "-c:v",
            "ffv1",
            "-pix_fmt",
            "yuv444p",
        ],
    );
    let media = probe_ok(&odd);
    assert_eq!(
        (
            media["video"]["width"].as_u64(),
            media["video"]["height"].as_u64()
        ),
        (Some(1079), Some(1919))
    );
    assert!(media["audio"].is_null(), "no audio stream");

    let short = ffmpeg_make(
        d,
        "short.mp4",
        &["testsrc2=size=720x1280:rate=30:duration=1"],
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    assert!((probe_ok(&short)["duration_s"].as_f64().unwrap() - 1.0).abs() < 0.1);
}

#[test]
fn refuses_bad_inputs_clearly_and_leaves_them_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let empty = d.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    probe_rejects(&empty, "empty file");

    let text_file = d.join("homework.mp4");
    std::fs::write(
        &text_file,
        "Chapter 3: Newton's laws. Read pages 10-14.\n".repeat(50),
    )
    .unwrap();
    probe_rejects(&text_file, "probe");

    // Without faststart the moov box is at the end: cutting the file loses it.
    let full = ffmpeg_make(
        d,
        "full.mp4",
        &[V, A],
        &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    );
    let bytes = std::fs::read(&full).unwrap();
    let truncated = d.join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    probe_rejects(&truncated, "probe");

    let audio_only = ffmpeg_make(d, "lecture.m4a", &[A], &["-c:a", "aac"]);
    probe_rejects(&audio_only, "no video stream");

    let long = ffmpeg_make(
        d,
        "long.mp4",
        &["testsrc2=size=64x64:rate=1:duration=181"],
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    probe_rejects(&long, "longer than");

    let huge = ffmpeg_make(
        d,
        "huge.mkv",
        &["color=size=5000x64:rate=1:duration=1"],
        &["-c:v", "ffv1"],
    );
    probe_rejects(&huge, "dimensions 5000x64");
}
