//! `stemfeed process`: every rendition verified with ffprobe, HLS playlists
//! resolved against the files on disk, the manifest as the index.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ffmpeg_make, ffmpeg_rotate, file_digest, run, stemfeed, text, video_with};
use serde_json::Value;

fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// True when the `moov` box comes before `mdat` (playback starts before the
/// whole file has downloaded).
fn faststart(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    let (mut pos, mut order) = (0usize, Vec::new());
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        order.push(String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned());
        if size < 8 {
            break;
        }
        pos += size;
    }
    let at = |b: &str| order.iter().position(|x| x == b);
    matches!((at("moov"), at("mdat")), (Some(m), Some(d)) if m < d)
}

/// Integrated loudness (LUFS) and true peak (dBTP) as ffmpeg's EBU R128 meter reads them.
fn ebur128(path: &Path) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = text(&out.stderr);
    let summary = &log[log.rfind("Summary:").expect("ebur128 summary")..];
    let value = |key: &str| -> f64 {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (value("I:"), value("Peak:"))
}

/// Every rendition at the profile's −14 ± 1 LUFS with its true peak under
/// −1 dBTP, as ffmpeg's EBU R128 meter reads it.
fn assert_on_loudness_target(out: &Path, manifest: &Value, what: &str) {
    for r in manifest["renditions"].as_array().unwrap() {
        let (lufs, peak) = ebur128(&out.join(r["path"].as_str().unwrap()));
        let context = format!("{what} {}: {}", r["name"], manifest["loudness"]);
        assert!((lufs + 14.0).abs() <= 1.0, "{context}: {lufs} LUFS");
        assert!(peak <= -1.0, "{context}: true peak {peak} dBTP");
    }
}

/// Mean luma (0-255) of an image, as ffmpeg decodes it.
fn mean_luma(path: &Path) -> u8 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-vf",
            "scale=1:1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .unwrap();
    out.stdout[0]
}

/// The poster is a 9:16 JPEG of a real frame; thumbnails exist.
fn check_stills(out: &Path, manifest: &Value) {
    let poster = &manifest["poster"];
    let path = out.join(poster["path"].as_str().unwrap());
    let probe = ffprobe(&path);
    let s = &probe["streams"][0];
    assert_eq!(s["codec_name"], "mjpeg");
    let (w, h) = (s["width"].as_f64().unwrap(), s["height"].as_f64().unwrap());
    assert!(
        (w / h - 9.0 / 16.0).abs() < 0.01,
        "poster {w}x{h} is not 9:16"
    );
    assert!(mean_luma(&path) > 40, "poster must not be a black frame");
    let thumbs = manifest["thumbnails"].as_array().unwrap();
    assert_eq!(thumbs.len(), 4);
    for t in thumbs {
        assert!(out.join(t["path"].as_str().unwrap()).is_file());
    }
}

fn process(input: &Path, out: &Path) -> Value {
    process_with(input, out, "short-form")
}

/// [`process`] with one of the shipped profiles in `pipelines/`.
fn process_with(input: &Path, out: &Path, profile: &str) -> Value {
    let before = file_digest(input);
    // Captions have their own tests (tests/captions.rs); these check the media.
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("pipelines/{profile}.toml"));
    let result = run(stemfeed()
        .arg("process")
        .arg(input)
        .arg("--out")
        .arg(out)
        .arg("--profile")
        .arg(profile)
        .arg("--no-captions"));
    assert!(
        result.status.success(),
        "process failed: {}",
        text(&result.stderr)
    );
    assert_eq!(file_digest(input), before, "the upload is never modified");
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

fn check_renditions(out: &Path, manifest: &Value, source_s: f64, portrait: bool, audio: bool) {
    let renditions = manifest["renditions"].as_array().unwrap();
    assert!(!renditions.is_empty());
    let mut segment_times = Vec::new();
    for r in renditions {
        let path = out.join(r["path"].as_str().unwrap());
        let probe = ffprobe(&path);
        let streams = probe["streams"].as_array().unwrap();
        let v = streams
            .iter()
            .find(|s| s["codec_type"] == "video")
            .expect("video stream");
        assert_eq!(v["codec_name"], "h264");
        assert_eq!(v["profile"], "Main");
        assert_eq!(v["pix_fmt"], "yuv420p");
        let (w, h) = (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap());
        assert_eq!(
            (w, h),
            (r["width"].as_u64().unwrap(), r["height"].as_u64().unwrap())
        );
        assert!(w % 2 == 0 && h % 2 == 0);
        assert_eq!(h > w, portrait, "{}: {w}x{h} orientation", path.display());
        let start = |s: &Value| s["start_time"].as_str().unwrap().parse::<f64>().unwrap();
        assert!(
            start(v).abs() < 0.001,
            "{}: video starts at {}",
            path.display(),
            start(v)
        );
        let a = streams.iter().find(|s| s["codec_type"] == "audio");
        assert_eq!(a.is_some(), audio);
        if let Some(a) = a {
            // Picture and sound start together (no B-frame delay without an edit list).
            assert!(
                start(a).abs() < 0.03,
                "{}: audio starts at {}",
                path.display(),
                start(a)
            );
        }
        if let Some(a) = a {
            assert_eq!(a["codec_name"], "aac");
            assert_eq!(a["profile"], "LC");
        }
        assert!(faststart(&path), "{} is not faststart", path.display());
        let duration: f64 = probe["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (duration - source_s).abs() <= 0.1,
            "{}: {duration} s vs source {source_s} s",
            path.display()
        );

        // One stored copy: the rung's HLS playlist addresses this very file
        // by byte ranges, each segment a run of whole fragments.
        let playlist_path = out.join(r["hls_playlist"].as_str().unwrap());
        let playlist = std::fs::read_to_string(&playlist_path).unwrap();
        assert!(
            playlist.starts_with("#EXTM3U") && playlist.contains("#EXT-X-ENDLIST"),
            "{playlist}"
        );
        let playlist_rel = r["hls_playlist"].as_str().unwrap();
        let map = playlist
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .expect("an init section");
        assert_eq!(
            common::resolve(playlist_rel, map.split('"').next().unwrap()),
            r["path"].as_str().unwrap()
        );
        let bytes = std::fs::read(&path).unwrap();
        let segments = common::hls_segments(&playlist);
        assert!(!segments.is_empty());
        let mut next = None;
        for (uri, range) in &segments {
            assert_eq!(
                common::resolve(playlist_rel, uri),
                r["path"].as_str().unwrap()
            );
            let (len, at) = range
                .as_deref()
                .expect("a byte range")
                .split_once('@')
                .unwrap();
            let (len, at): (usize, usize) = (len.parse().unwrap(), at.parse().unwrap());
            assert!(at + len <= bytes.len());
            assert_eq!(
                &bytes[at + 4..at + 8],
                b"moof",
                "segment at {at} opens a fragment"
            );
            assert!(next.is_none_or(|n| n == at), "segments are contiguous");
            next = Some(at + len);
        }
        // Players read it as HLS: ffprobe through the playlist.
        let hls = ffprobe(&playlist_path);
        let hls_s: f64 = hls["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!(
            (hls_s - source_s).abs() <= 0.15,
            "HLS {hls_s} s vs source {source_s} s"
        );
        let durations: Vec<&str> = playlist
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .collect();
        segment_times.push(durations.join(" "));
    }
    // Segments of every rung start at the same keyframe times.
    assert!(
        segment_times.windows(2).all(|w| w[0] == w[1]),
        "{segment_times:?}"
    );
    let master =
        std::fs::read_to_string(out.join(manifest["hls"]["master"].as_str().unwrap())).unwrap();
    for r in renditions {
        assert!(
            master.contains(&format!("RESOLUTION={}x{}", r["width"], r["height"])),
            "{master}"
        );
    }
    assert!(
        master.contains("BANDWIDTH=") && master.contains("CODECS=\"avc1."),
        "{master}"
    );
}

#[test]
fn portrait_upload_becomes_a_four_rung_ladder_with_hls() {
    let dir = tempfile::tempdir().unwrap();
    let input = ffmpeg_make(
        dir.path(),
        "demo.mp4",
        &[
            "testsrc2=size=1080x1920:rate=30:duration=3",
            "sine=frequency=440:sample_rate=44100:duration=3,volume=-15dB",
        ],
        &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    );
    let out = dir.path().join("out");
    let manifest = process(&input, &out);
    let names: Vec<_> = manifest["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, ["1080p", "720p", "480p", "360p"]);
    check_renditions(&out, &manifest, 3.0, true, true);
    check_stills(&out, &manifest);
    assert_eq!(
        (
            manifest["poster"]["width"].as_u64(),
            manifest["poster"]["height"].as_u64()
        ),
        (Some(720), Some(1280))
    );
    // A quiet recording is normalised to the profile's -14 LUFS in every rendition.
    let loudness = &manifest["loudness"];
    assert!(
        loudness["measured_lufs"].as_f64().unwrap() < -25.0,
        "{loudness}"
    );
    assert!(
        loudness["applied_gain_db"].as_f64().unwrap() > 10.0,
        "{loudness}"
    );
    assert_on_loudness_target(&out, &manifest, "quiet recording");
    let asr_s = manifest["asr_audio"]["seconds"].as_f64().unwrap();
    assert!(
        (asr_s - 3.0).abs() < 0.1,
        "16 kHz audio for ASR from the same decode: {asr_s}"
    );
    // The caption editor's waveform, 50 peaks a second of that audio.
    let waveform: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join(manifest["asr_audio"]["waveform"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(waveform["peaks_per_second"], 50);
    let peaks = waveform["peaks"].as_array().unwrap();
    assert!(
        (peaks.len() as f64 - asr_s * 50.0).abs() <= 1.0,
        "{} peaks",
        peaks.len()
    );
    assert!(
        peaks.iter().any(|p| p.as_u64().unwrap() > 0),
        "the tone shows"
    );
    assert!(manifest["stages"]["transcode_s"].as_f64().unwrap() > 0.0);
}

/// Real recorded speech whose peaks sit 17–21 dB above its loudness (a
/// single gain capped by the ceiling would leave it 3–7 LU short): the
/// look-ahead limiter brings every rendition to −14 ± 1 LUFS with the true
/// peak under −1 dBTP, as ffmpeg's EBU R128 meter reads the output, in the
/// default profile and in the data-saver's 32 and 48 kbit/s mono AAC, which
/// adds up to 3 dB to the peaks it is given.
#[test]
fn real_speech_with_peaks_reaches_the_loudness_target_under_the_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let speech = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/asr-dev");
    for (clip, profile) in [
        ("en_cmu_cards_005.flac", "short-form"),
        ("ur_cv_26572625.flac", "short-form"),
        ("ur_cv_26572625.flac", "data-saver"),
        ("pa_cv_21717904.flac", "data-saver"),
    ] {
        let input = dir.path().join(format!("{clip}.mp4"));
        if !input.exists() {
            video_with(dir.path(), &format!("{clip}.mp4"), &speech.join(clip));
        }
        let out = dir.path().join(format!("{clip}.{profile}"));
        let manifest = process_with(&input, &out, profile);
        let loudness = &manifest["loudness"];
        let measured = loudness["measured_lufs"].as_f64().unwrap();
        let input_peak = loudness["measured_true_peak_dbtp"].as_f64().unwrap();
        assert!(
            input_peak + (-14.0 - measured) > -1.0,
            "{clip}: one gain to the target would pass the ceiling, else this tests nothing: {loudness}"
        );
        assert!(
            loudness["limiter_max_reduction_db"].as_f64().unwrap() > 0.5,
            "{clip}: {loudness}"
        );
        // The manifest's encoded peak is what the renditions measure.
        assert!(
            loudness["encoded_true_peak_dbtp"].as_f64().unwrap() <= -1.0,
            "{clip} {profile}: {loudness}"
        );
        assert_on_loudness_target(&out, &manifest, &format!("{clip} {profile}"));
    }
}

/// Where the target cannot be reached without limiting speech past what
/// the limiter allows (studio speech peaking 20.6 dB over its loudness, in
/// mono), the ceiling still holds after AAC encoding, the manifest says why
/// the gain gave way, and its expected loudness is what the output measures.
#[test]
fn speech_too_peaky_for_the_target_keeps_the_ceiling_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/asr-dev/en_cmu_cards_005.flac");
    let input = video_with(dir.path(), "peaky.mp4", &clip);
    let out = dir.path().join("out");
    let manifest = process_with(&input, &out, "data-saver");
    let loudness = &manifest["loudness"];
    assert!(
        loudness["limited_by"].as_str().is_some(),
        "the gain gave way, and the manifest says why: {loudness}"
    );
    let expected = loudness["expected_lufs"].as_f64().unwrap();
    for r in manifest["renditions"].as_array().unwrap() {
        let (lufs, peak) = ebur128(&out.join(r["path"].as_str().unwrap()));
        assert!(
            peak <= -1.0,
            "{}: true peak {peak} dBTP: {loudness}",
            r["name"]
        );
        assert!(
            (lufs - expected).abs() <= 0.7,
            "{}: {lufs} LUFS: {loudness}",
            r["name"]
        );
        assert!(lufs > -17.0, "{}: {lufs} LUFS: {loudness}", r["name"]);
    }
}

#[test]
fn rotated_phone_video_comes_out_upright() {
    let dir = tempfile::tempdir().unwrap();
    let coded = ffmpeg_make(
        dir.path(),
        "coded.mp4",
        &[
            "testsrc2=size=1280x720:rate=30:duration=2",
            "sine=frequency=300:sample_rate=48000:duration=2",
        ],
        &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    );
    let rotated = ffmpeg_rotate(dir.path(), &coded, "phone.mp4", 90);
    let out = dir.path().join("out");
    let manifest = process(&rotated, &out);
    check_renditions(&out, &manifest, 2.0, true, true);
    assert_eq!(manifest["renditions"][0]["name"], "720p", "never upscaled");
}

#[test]
fn landscape_without_audio_stays_landscape_and_notes_no_captions() {
    let dir = tempfile::tempdir().unwrap();
    let input = ffmpeg_make(
        dir.path(),
        "robot.mkv",
        &["testsrc2=size=854x480:rate=25:duration=4,fade=in:st=0:d=1.5"],
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let out = dir.path().join("out");
    let manifest = process(&input, &out);
    check_renditions(&out, &manifest, 4.0, false, false);
    // The video opens on black: the poster is taken from later, cropped to 9:16.
    check_stills(&out, &manifest);
    assert!(manifest["poster"]["time_s"].as_f64().unwrap() >= 1.5);
    let notes = manifest["validation"]["notes"].to_string();
    assert!(notes.contains("no captions"), "{notes}");
}

#[test]
fn refused_input_writes_no_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let input = ffmpeg_make(
        dir.path(),
        "talk.m4a",
        &["sine=frequency=440:duration=2"],
        &["-c:a", "aac"],
    );
    let out = dir.path().join("out");
    let result = run(stemfeed().arg("process").arg(&input).arg("--out").arg(&out));
    assert!(!result.status.success());
    let stderr = text(&result.stderr);
    assert!(
        stderr.contains("talk.m4a") && stderr.contains("validate") && stderr.contains("no video"),
        "{stderr}"
    );
    assert!(!out.join("manifest.json").exists());
}

/// (file, lavfi inputs, ffmpeg output options, duration, portrait, has audio)
type Case<'a> = (&'a str, Vec<&'a str>, Vec<&'a str>, f64, bool, bool);

#[test]
fn every_common_phone_format_transcodes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let portrait = "testsrc2=size=720x1280:rate=30:duration=2";
    let tone = "sine=frequency=500:sample_rate=48000:duration=2";
    let h264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"];
    let cases: Vec<Case> = vec![
        (
            "clip.mov",
            vec![portrait, tone],
            [&h264[..], &["-c:a", "aac"]].concat(),
            2.0,
            true,
            true,
        ),
        (
            "vp9.webm",
            vec![portrait, tone],
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
            2.0,
            true,
            true,
        ),
        (
            "hevc.mkv",
            vec![portrait, tone],
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
            2.0,
            true,
            true,
        ),
        (
            "surround.mp4",
            vec![portrait, "sine=frequency=300:sample_rate=44100:duration=2"],
            [&h264[..], &["-c:a", "aac", "-ac", "6"]].concat(),
            2.0,
            true,
            true,
        ),
        (
            "odd.mkv",
            vec!["testsrc2=size=1080x1920:rate=30:duration=2", tone],
            vec![
                "-vf",
                "scale=1079:1919",
                "-c:v",
                "ffv1",
                "-pix_fmt",
                "yuv444p",
                "-c:a",
                "flac",
            ],
            2.0,
            true,
            true,
        ),
        (
            "landscape.mp4",
            vec!["testsrc2=size=1920x1080:rate=30:duration=2", tone],
            [&h264[..], &["-c:a", "aac"]].concat(),
            2.0,
            false,
            true,
        ),
        (
            "vfr.mkv",
            vec![
                "testsrc2=size=720x1280:rate=30:duration=1[a];testsrc2=size=720x1280:rate=12:duration=1[b];[a][b]concat=n=2:v=1:a=0",
            ],
            [&h264[..], &["-fps_mode", "vfr"]].concat(),
            2.0,
            true,
            false,
        ),
        (
            "silent.mp4",
            vec![portrait, "anullsrc=r=48000:cl=stereo:d=2"],
            [&h264[..], &["-c:a", "aac", "-t", "2"]].concat(),
            2.0,
            true,
            true,
        ),
        (
            "one-second.mp4",
            vec![
                "testsrc2=size=720x1280:rate=30:duration=1",
                "sine=duration=1",
            ],
            [&h264[..], &["-c:a", "aac"]].concat(),
            1.0,
            true,
            true,
        ),
    ];
    for (name, inputs, args, duration, portrait, audio) in cases {
        let input = ffmpeg_make(d, name, &inputs, &args);
        let out = d.join(format!("{name}.out"));
        let manifest = process(&input, &out);
        check_renditions(&out, &manifest, duration, portrait, audio);
        if name == "odd.mkv" {
            assert_eq!(
                manifest["renditions"][0]["name"], "720p",
                "1079 wide is never upscaled to 1080"
            );
        }
        if name == "silent.mp4" {
            assert_eq!(
                manifest["loudness"]["applied_gain_db"], 0.0,
                "silence is not amplified"
            );
        }
    }
}
