//! Decoding is bounded: a file that lies about its length is refused quickly
//! (the decode stops at the declared duration plus a margin), the ASR audio
//! has a hard cap, loudness is metered as frames arrive and measures what it
//! measured before, and errors say whether the input is at fault.
//!
//! Every input is generated here with ffmpeg's lavfi sources; the liar is a
//! real Matroska file whose Duration element is rewritten.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stemfeed_core::Profile;
use stemfeed_media::limits::asr_sample_cap;
use stemfeed_media::{DecodeLimit, Fault, MediaError, Watchdog};

const WATCHDOG: Watchdog = Watchdog {
    timeout: Duration::from_secs(120),
    stall: Duration::from_secs(20),
};

/// Integrated loudness and true peak of `tone.mp4` (below) as measured by
/// the whole-file decode-then-meter code this change replaced.
const OLD_TONE_MP4_LUFS: f64 = -27.083_741;
const OLD_TONE_MP4_PEAK_DBTP: f64 = -25.740_001;
/// The same for `tone.mkv` (FLAC, no gain).
const OLD_TONE_MKV_LUFS: f64 = -21.067_276;

fn ffmpeg(dir: &Path, name: &str, inputs: &[&str], args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"]);
    for input in inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    let out = cmd
        .args(args)
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

/// 60 s of 8 kHz Opus and a 64×64 H.264 picture at 5 fps (≈70 KB) in
/// Matroska, whose segment Duration is then rewritten to claim 5 s.
fn liar(dir: &Path) -> PathBuf {
    let honest = ffmpeg(
        dir,
        "honest-60s.mkv",
        &[
            "sine=frequency=440:sample_rate=8000:duration=60",
            "color=c=blue:s=64x64:r=5:d=60",
        ],
        &[
            "-c:a",
            "libopus",
            "-b:a",
            "8k",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
        ],
    );
    let mut bytes = std::fs::read(&honest).unwrap();
    // Segment Info's Duration: ID 0x4489, size 8 (0x88), a big-endian double
    // in TimestampScale units (ffmpeg writes 1 ms).
    let at = bytes
        .windows(3)
        .position(|w| w == [0x44, 0x89, 0x88])
        .expect("ffmpeg writes an 8-byte Duration element");
    let declared = f64::from_be_bytes(bytes[at + 3..at + 11].try_into().unwrap());
    assert!(
        (declared - 60_000.0).abs() < 100.0,
        "Duration was {declared}"
    );
    bytes[at + 3..at + 11].copy_from_slice(&5_000.0f64.to_be_bytes());
    let path = dir.join("liar.mkv");
    std::fs::write(&path, bytes).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 200_000);
    path
}

/// 2 s of a 1 kHz stereo tone at -6 dB (AAC) with a small H.264 picture.
fn tone_mp4(dir: &Path) -> PathBuf {
    ffmpeg(
        dir,
        "tone.mp4",
        &[
            "sine=frequency=1000:sample_rate=48000:duration=2,volume=-6dB",
            "testsrc=s=144x256:r=10:d=2",
        ],
        &[
            "-ac",
            "2",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-shortest",
        ],
    )
}

fn tone_mkv(dir: &Path) -> PathBuf {
    ffmpeg(
        dir,
        "tone.mkv",
        &["sine=frequency=1000:sample_rate=48000:duration=2"],
        &["-ac", "2", "-c:a", "flac"],
    )
}

fn fast_profile() -> Profile {
    let mut profile = Profile::short_form();
    profile.video.x264_preset = "ultrafast".into();
    profile
}

fn probe(path: &Path) -> stemfeed_core::MediaInfo {
    stemfeed_media::probe::probe(path, Duration::from_secs(30)).unwrap()
}

/// The liar is probed as the 5 s it claims, then refused once decoding
/// passes 7 s (5 s + the 2 s minimum margin) with the reason.
fn assert_refused_as_liar(err: &MediaError, path: &Path, stage: &str, started: Instant) {
    let elapsed = started.elapsed();
    let MediaError::Overrun {
        stage: got_stage,
        declared_s,
        decoded_s,
        ..
    } = err
    else {
        panic!("expected an overrun refusal, got {err:?}");
    };
    assert_eq!(*got_stage, stage);
    assert!((declared_s - 5.0).abs() < 0.01, "{err}");
    // Decoding stopped right past the limit: memory stayed bounded by ~7 s
    // of media, not the 60 s the bytes hold.
    assert!(*decoded_s > 7.0 && *decoded_s < 8.5, "{err}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}: {err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "{}: {stage}: the stream runs past its declared duration of 5.0 s (decoded ",
            path.display()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("; refusing a file that lies about its length"),
        "{message}"
    );
    assert!(err.is_bad_input(), "{message}");
}

#[test]
fn a_file_lying_about_its_duration_is_refused_by_the_loudness_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = liar(dir.path());
    let info = probe(&path);
    assert!((info.duration_s - 5.0).abs() < 0.1, "probe saw {info:?}");
    let started = Instant::now();
    let err = stemfeed_media::loudness::measure(
        &path,
        48_000,
        2,
        -14.0,
        -1.0,
        &[],
        DecodeLimit::for_declared(info.duration_s),
        asr_sample_cap(180.0),
        WATCHDOG,
    )
    .unwrap_err();
    assert_refused_as_liar(&err, &path, "loudness", started);
}

#[test]
fn a_file_lying_about_its_duration_is_refused_by_the_audio_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = liar(dir.path());
    let info = probe(&path);
    let started = Instant::now();
    // A cap far above the lie: the duration limit is what stops it.
    let err = stemfeed_media::audio::decode_to_asr_pcm(
        &path,
        DecodeLimit::for_declared(info.duration_s),
        asr_sample_cap(180.0),
        WATCHDOG,
    )
    .unwrap_err();
    assert_refused_as_liar(&err, &path, "audio decode", started);
}

#[test]
fn a_file_lying_about_its_duration_is_refused_by_the_transcode() {
    let dir = tempfile::tempdir().unwrap();
    let path = liar(dir.path());
    let info = probe(&path);
    let profile = fast_profile();
    let started = Instant::now();
    let err = stemfeed_media::transcode::transcode(
        &path,
        &info,
        &profile,
        &dir.path().join("out"),
        0.0,
        DecodeLimit::for_declared(info.duration_s),
        WATCHDOG,
        &mut |_| {},
    )
    .unwrap_err();
    assert_refused_as_liar(&err, &path, "transcode", started);
}

#[test]
fn loudness_metered_as_frames_arrive_matches_the_whole_file_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let measure = |path: &Path| {
        let declared = probe(path).duration_s;
        stemfeed_media::loudness::measure(
            path,
            48_000,
            2,
            -14.0,
            -1.0,
            &[],
            DecodeLimit::for_declared(declared),
            asr_sample_cap(180.0),
            WATCHDOG,
        )
        .unwrap()
        .loudness
    };

    let mp4 = tone_mp4(dir.path());
    let l = measure(&mp4);
    let lufs = l.measured_lufs.unwrap();
    assert!((lufs - OLD_TONE_MP4_LUFS).abs() < 0.1, "{l:?}");
    let peak = l.measured_true_peak_dbtp.unwrap();
    assert!((peak - OLD_TONE_MP4_PEAK_DBTP).abs() < 0.1, "{l:?}");

    // The same decode metered in one piece, as the old code did.
    let samples = stemfeed_media::audio::decode(
        &mp4,
        48_000,
        2,
        DecodeLimit::for_declared(2.0),
        DecodeLimit::for_declared(2.0).samples_at(48_000) * 2,
        WATCHDOG,
    )
    .unwrap();
    let mut whole = ebur128::EbuR128::new(2, 48_000, ebur128::Mode::I).unwrap();
    whole.add_frames_f32(&samples).unwrap();
    assert!((whole.loudness_global().unwrap() - lufs).abs() < 1e-6);

    let mkv = tone_mkv(dir.path());
    let l = measure(&mkv);
    assert!(
        (l.measured_lufs.unwrap() - OLD_TONE_MKV_LUFS).abs() < 0.1,
        "{l:?}"
    );
}

#[test]
fn the_asr_audio_is_refused_past_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = tone_mp4(dir.path());
    let limit = DecodeLimit::for_declared(probe(&path).duration_s);

    // Within the cap the audio comes back whole (2 s at 16 kHz, give or
    // take the codec's padding).
    let cap = asr_sample_cap(2.0);
    let pcm = stemfeed_media::audio::decode_to_asr_pcm(&path, limit, cap, WATCHDOG).unwrap();
    assert!((31_000..=33_500).contains(&pcm.len()), "{}", pcm.len());

    // Past a 1 s cap: refused, never grown.
    let err = stemfeed_media::audio::decode_to_asr_pcm(&path, limit, 16_000, WATCHDOG).unwrap_err();
    assert!(
        matches!(
            err,
            MediaError::AudioCap {
                max_samples: 16_000,
                stage: "audio decode",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_bad_input());
    assert_eq!(
        err.to_string(),
        format!(
            "{}: audio decode: the audio for speech recognition runs past its cap of 16000 \
             samples (1.0 s); refusing a file that lies about its length",
            path.display()
        )
    );

    // The loudness pass, which makes the pipeline's ASR audio, keeps the
    // same cap.
    let measure = |cap: usize| {
        stemfeed_media::loudness::measure(&path, 48_000, 2, -14.0, -1.0, &[], limit, cap, WATCHDOG)
    };
    let err = measure(16_000).unwrap_err();
    assert!(
        matches!(
            err,
            MediaError::AudioCap {
                stage: "ASR audio",
                ..
            }
        ),
        "{err:?}"
    );
    let pass = measure(asr_sample_cap(2.0)).unwrap();
    assert!(
        (31_000..=33_500).contains(&pass.asr_pcm.len()),
        "{}",
        pass.asr_pcm.len()
    );
    // It is the same audio the direct decode gives.
    let diff = pcm
        .iter()
        .zip(&pass.asr_pcm)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        pcm.len().abs_diff(pass.asr_pcm.len()) < 200,
        "{} vs {}",
        pcm.len(),
        pass.asr_pcm.len()
    );
    assert!(diff < 0.05, "largest sample difference {diff}");
}

#[test]
fn undecodable_bytes_are_bad_input_but_a_full_disk_is_not() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(&garbage, vec![0x5a_u8; 64 * 1024]).unwrap();
    let err = stemfeed_media::audio::decode_to_asr_pcm(
        &garbage,
        DecodeLimit::for_declared(2.0),
        asr_sample_cap(2.0),
        WATCHDOG,
    )
    .unwrap_err();
    assert!(err.is_bad_input(), "{err:?}");
    assert!(
        matches!(
            err,
            MediaError::Pipeline {
                fault: Fault::Input,
                ..
            }
        ),
        "{err:?}"
    );

    // The rendition's file is /dev/full: every write fails with ENOSPC.
    let path = tone_mp4(dir.path());
    let info = probe(&path);
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("renditions")).unwrap();
    std::os::unix::fs::symlink("/dev/full", out.join("renditions").join("144p.mp4")).unwrap();
    let profile = fast_profile();
    let err = stemfeed_media::transcode::transcode(
        &path,
        &info,
        &profile,
        &out,
        0.0,
        DecodeLimit::for_declared(info.duration_s),
        WATCHDOG,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(!err.is_bad_input(), "{err:?}");
    assert!(
        matches!(
            err,
            MediaError::Pipeline {
                fault: Fault::Output,
                ..
            }
        ),
        "{err:?}"
    );

    // An output directory that cannot be created is not the input's fault either.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"a file where a directory should be").unwrap();
    let err = stemfeed_media::transcode::transcode(
        &path,
        &info,
        &profile,
        &blocked,
        0.0,
        DecodeLimit::for_declared(info.duration_s),
        WATCHDOG,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, MediaError::Output { .. }) && !err.is_bad_input(),
        "{err:?}"
    );
}
