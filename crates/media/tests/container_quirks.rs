//! Containers whose quirks once stalled or misjudged a job, each generated
//! here with ffmpeg's lavfi sources (as the hostile-input test made them):
//!
//! - a 1 s H.264/AAC MPEG-TS, for which tsdemux (and so the Discoverer)
//!   reports no duration: it is probed at its length from its timestamps;
//! - a bare elementary stream is timed by its parser's timestamps, and one
//!   with no duration and no timestamps gets a clear refusal;
//! - an MPEG program stream (.mpg/.vob) with MP2 audio, once exposed whole
//!   and undemuxed as "video" by the audio pass, which then waited for
//!   audio until the stall watchdog gave up: measured and transcoded at once;
//! - a faststart MP4 cut after its index, and an audio pass over a file
//!   without audio: refused at once as bad input instead of stalling.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stemfeed_core::Profile;
use stemfeed_media::limits::asr_sample_cap;
use stemfeed_media::{DecodeLimit, MediaError, Watchdog};

/// The production stall limit: a regression shows as a run that takes it.
const WATCHDOG: Watchdog = Watchdog {
    timeout: Duration::from_secs(120),
    stall: Duration::from_secs(20),
};
/// Far below the stall limit, far above what these tiny inputs need.
const QUICK: Duration = Duration::from_secs(8);

fn ffmpeg(dir: &Path, name: &str, inputs: &[&str], args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"]);
    for input in inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    let out = cmd
        .args(args)
        .args(["-threads", "1", "-fflags", "+bitexact"])
        .arg(&path)
        .output()
        .expect("ffmpeg is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "ffmpeg failed for {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// `seconds` of a 160x288 test picture and a 440 Hz tone.
fn sources(seconds: f64, fps: u32, rate: u32) -> [String; 2] {
    [
        format!("testsrc2=size=160x288:rate={fps}:duration={seconds}"),
        format!("sine=frequency=440:sample_rate={rate}:duration={seconds}"),
    ]
}

/// The hostile test's seed: 1 s of H.264 and AAC in MPEG-TS, ~60 KB, less
/// than tsdemux's 64 KiB scan window.
fn h264_aac_ts(dir: &Path) -> PathBuf {
    let [video, audio] = sources(1.0, 15, 22_050);
    ffmpeg(
        dir,
        "h264-aac-1s.ts",
        &[&video, &audio],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
        ],
    )
}

fn h264_aac_mp4(dir: &Path, name: &str, seconds: f64, faststart: bool) -> PathBuf {
    let [video, audio] = sources(seconds, 15, 22_050);
    let mut args = vec![
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "32k",
    ];
    if faststart {
        args.extend(["-movflags", "+faststart"]);
    }
    ffmpeg(dir, name, &[&video, &audio], &args)
}

fn fast_profile() -> Profile {
    let mut profile = Profile::short_form();
    profile.video.x264_preset = "ultrafast".into();
    profile
}

fn probe(path: &Path) -> stemfeed_core::MediaInfo {
    stemfeed_media::probe::probe(path, Duration::from_secs(30)).unwrap()
}

fn loudness(
    path: &Path,
    declared_s: f64,
) -> Result<stemfeed_media::loudness::AudioPass, MediaError> {
    stemfeed_media::loudness::measure(
        path,
        48_000,
        2,
        -14.0,
        -1.0,
        &[],
        DecodeLimit::for_declared(declared_s),
        asr_sample_cap(fast_profile().limits.max_duration_s),
        WATCHDOG,
    )
}

fn transcode(
    path: &Path,
    info: &stemfeed_core::MediaInfo,
    out: &Path,
) -> Result<stemfeed_media::transcode::TranscodeOutput, MediaError> {
    let profile = fast_profile();
    stemfeed_media::transcode::transcode(
        path,
        info,
        &profile,
        out,
        0.0,
        DecodeLimit::for_declared(info.duration_s),
        WATCHDOG,
        &mut |_| {},
    )
}

#[test]
fn a_one_second_h264_aac_mpeg_ts_is_probed_at_its_length_and_processed() {
    let dir = tempfile::tempdir().unwrap();
    let path = h264_aac_ts(dir.path());
    assert!(std::fs::metadata(&path).unwrap().len() < 64 * 1024);

    let started = Instant::now();
    let info = probe(&path);
    assert!(
        started.elapsed() < QUICK,
        "probe took {:?}",
        started.elapsed()
    );
    // ffprobe: 1.046 s (it counts the AAC priming the stream starts with).
    assert!((0.95..=1.1).contains(&info.duration_s), "probed {info:?}");
    stemfeed_core::media_info::validate(&info, &fast_profile()).unwrap();

    // The measured duration is what the decodes are bounded by: neither
    // the loudness pass nor the transcode finds the file overrunning it.
    let pass = loudness(&path, info.duration_s).unwrap();
    let l = &pass.loudness;
    assert!(l.measured_lufs.is_some(), "{l:?}");
    assert!(
        (14_000..=18_000).contains(&pass.asr_pcm.len()),
        "{}",
        pass.asr_pcm.len()
    );
    let out = transcode(&path, &info, &dir.path().join("out")).unwrap();
    assert!(out.renditions.iter().all(|r| r.mp4.is_file()));
}

#[test]
fn the_timestamp_scan_agrees_with_the_durations_containers_declare() {
    let dir = tempfile::tempdir().unwrap();
    let [video, audio] = sources(2.0, 15, 22_050);
    let ts = ffmpeg(
        dir.path(),
        "h264-aac-2s.ts",
        &[&video, &audio],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
        ],
    );
    let mp4 = h264_aac_mp4(dir.path(), "h264-aac-2s.mp4", 2.0, false);
    let mpg = ffmpeg(
        dir.path(),
        "mpeg2-mp2-2s.mpg",
        &[
            "testsrc2=size=160x288:rate=25:duration=2",
            "sine=frequency=440:sample_rate=48000:duration=2",
        ],
        &["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "vob"],
    );
    for path in [ts, mp4, mpg] {
        let declared = probe(&path).duration_s;
        let scanned = stemfeed_media::probe::scan_duration(&path, Duration::from_secs(30))
            .unwrap()
            .unwrap();
        assert!(
            (scanned - declared).abs() < 0.1 && (scanned - 2.0).abs() < 0.1,
            "{}: declared {declared} s, scanned {scanned} s",
            path.display()
        );
    }
}

#[test]
fn elementary_streams_are_timed_by_their_own_timestamps_or_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let picture = "testsrc2=size=160x288:rate=15:duration=1";
    // Bare H.264 (Annex B): no container, so no declared duration, but its
    // parser times every frame from the SPS.
    let h264 = ffmpeg(
        dir.path(),
        "bare.h264",
        &[picture],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "h264",
        ],
    );
    let info = probe(&h264);
    assert!((info.duration_s - 1.0).abs() < 0.1, "{info:?}");

    // Bare MPEG-4 Part 2: no container and no timestamps at all.
    let path = ffmpeg(
        dir.path(),
        "bare.m4v",
        &[picture],
        &["-c:v", "mpeg4", "-f", "m4v"],
    );
    let started = Instant::now();
    let err = stemfeed_media::probe::probe(&path, Duration::from_secs(30)).unwrap_err();
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(err.is_bad_input(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: probe: unknown duration: the container declares none and the streams \
             carry no timestamps to measure it by",
            path.display()
        )
    );
}

#[test]
fn mpeg_program_streams_with_mp2_audio_are_measured_and_transcoded_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let video = "testsrc2=size=160x288:rate=25:duration=1.5";
    let audio = "sine=frequency=1000:sample_rate=48000:duration=1.5,volume=-6dB";
    // MPEG-2 program stream (DVD) and MPEG-1 system stream.
    let files = [
        ffmpeg(
            dir.path(),
            "mpeg2-mp2.mpg",
            &[video, audio],
            &["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "vob"],
        ),
        ffmpeg(
            dir.path(),
            "mpeg1-mp2.mpg",
            &[video, audio],
            &["-c:v", "mpeg1video", "-c:a", "mp2", "-f", "mpeg"],
        ),
    ];
    for (i, path) in files.iter().enumerate() {
        let info = probe(path);
        assert!((info.duration_s - 1.5).abs() < 0.15, "{info:?}");
        assert!(info.audio.is_some(), "{info:?}");

        let started = Instant::now();
        let pass = loudness(path, info.duration_s).unwrap();
        assert!(
            started.elapsed() < QUICK,
            "loudness took {:?}",
            started.elapsed()
        );
        // The ASR audio comes from the same pass.
        assert!(
            (22_000..=26_000).contains(&pass.asr_pcm.len()),
            "{}",
            pass.asr_pcm.len()
        );
        let l = pass.loudness;
        // lavfi's sine peaks at 1/8 (-18 dBFS), then -6 dB: a 1 kHz tone
        // at -24 dBFS, mono played on both channels, meters about -24 LUFS.
        let lufs = l.measured_lufs.unwrap();
        assert!((-25.5..=-22.5).contains(&lufs), "{l:?}");

        let started = Instant::now();
        let pcm = stemfeed_media::audio::decode_to_asr_pcm(
            path,
            DecodeLimit::for_declared(info.duration_s),
            asr_sample_cap(2.0),
            WATCHDOG,
        )
        .unwrap();
        assert!(
            started.elapsed() < QUICK,
            "ASR decode took {:?}",
            started.elapsed()
        );
        assert!((22_000..=26_000).contains(&pcm.len()), "{}", pcm.len());

        let started = Instant::now();
        let out = transcode(path, &info, &dir.path().join(format!("out{i}"))).unwrap();
        assert!(
            started.elapsed() < QUICK,
            "transcode took {:?}",
            started.elapsed()
        );
        assert!(out.renditions.iter().all(|r| r.mp4.is_file()));
    }
}

/// The byte offset just past the top-level `moov` box.
fn moov_end(bytes: &[u8]) -> usize {
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(size >= 8, "ffmpeg writes 32-bit box sizes");
        if &bytes[at + 4..at + 8] == b"moov" {
            return at + size;
        }
        at += size;
    }
    panic!("no moov box");
}

fn assert_refused_at_once(err: &MediaError, stage: &str, what: &str, started: Instant) {
    assert!(
        started.elapsed() < QUICK,
        "took {:?}: {err}",
        started.elapsed()
    );
    let MediaError::Input {
        stage: got, reason, ..
    } = err
    else {
        panic!("expected bad input, got {err:?}");
    };
    assert_eq!(*got, stage);
    assert!(reason.contains(what), "{err}");
    assert!(err.is_bad_input(), "{err}");
}

#[test]
fn a_faststart_mp4_cut_after_its_index_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let whole = h264_aac_mp4(dir.path(), "faststart.mp4", 1.0, true);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = moov_end(&bytes) + 64;
    assert!(cut < bytes.len() / 2, "the index comes first");
    let path = dir.path().join("truncated.mp4");
    std::fs::write(&path, &bytes[..cut]).unwrap();

    // The index is whole, so the probe sees a 1 s video with audio...
    let info = probe(&path);
    assert!((info.duration_s - 1.0).abs() < 0.1, "{info:?}");
    assert!(info.audio.is_some());

    // ...whose samples are missing: every decode ends before its first
    // frame, and says so at once.
    let started = Instant::now();
    let err = loudness(&path, info.duration_s).unwrap_err();
    assert_refused_at_once(
        &err,
        "loudness",
        "the audio stream ended before any of it was decoded",
        started,
    );

    let started = Instant::now();
    let err = stemfeed_media::audio::decode_to_asr_pcm(
        &path,
        DecodeLimit::for_declared(info.duration_s),
        asr_sample_cap(2.0),
        WATCHDOG,
    )
    .unwrap_err();
    assert_refused_at_once(
        &err,
        "audio decode",
        "ended before any of it was decoded",
        started,
    );

    let started = Instant::now();
    let err = transcode(&path, &info, &dir.path().join("out")).unwrap_err();
    assert_refused_at_once(
        &err,
        "transcode",
        "ended before any of it was decoded",
        started,
    );
}

#[test]
fn an_audio_pass_over_a_file_without_audio_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = ffmpeg(
        dir.path(),
        "silent.mp4",
        &["testsrc2=size=160x288:rate=15:duration=1"],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let started = Instant::now();
    let err = loudness(&path, 1.0).unwrap_err();
    assert_refused_at_once(&err, "loudness", "no decodable audio stream", started);
}
