//! EBU R128 loudness: measure the input as it will be output (the profile's
//! rate and channel layout), then bring it to the target with one gain and,
//! where that gain would push peaks over the true-peak ceiling, a
//! look-ahead limiter instead of a smaller gain.
//!
//! The meter is fed from the decoder's appsink as buffers arrive, and the
//! decode stops (refusing the file) once it runs past its declared duration
//! plus a margin. The samples are kept (bounded by that duration) so the
//! limiter can be planned with the whole programme in view, applied to them,
//! and the result metered again: the manifest records what the renditions
//! will measure, not a guess.
//!
//! The limiter's gain is one value per millisecond: it ramps down linearly
//! over a 5 ms look-ahead before each peak (measured as a true peak, 4×
//! oversampled by the EBU meter) and recovers with a 40 ms time constant,
//! as broadcast limiters and ffmpeg's `loudnorm` do. The transcoder applies
//! the same curve to the same decoded samples, counted from the first.
//!
//! AAC adds to the peaks it is given (libavcodec's encoder up to 3 dB at
//! 32 kbit/s mono), so the plan is checked the way a viewer's player meets
//! it: the processed audio is encoded at each of the profile's audio
//! bitrates, decoded and metered, and planned again with more headroom
//! until the encoded peak stays under the ceiling.

use std::path::Path;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstreamer as gst;
use serde::Serialize;

use crate::error::MediaError;
use crate::limits::{DecodeLimit, Watchdog};

const STAGE: &str = "loudness";
/// Below this the programme is treated as silence and left alone.
const SILENCE_LUFS: f64 = -70.0;
/// Quiet recordings are lifted at most this much, so room noise under a
/// whisper is not amplified into a roar.
const MAX_BOOST_DB: f64 = 24.0;
/// The limiter takes at most this much off a peak; beyond it the gain is
/// lowered instead (heavier limiting audibly flattens speech).
const MAX_LIMITING_DB: f64 = 16.0;
/// First guess at what AAC encoding adds to the true peak: the limiter's
/// ceiling sits this far under the profile's. The guess is then checked by
/// encoding the limited audio at each of the profile's audio bitrates,
/// decoding it and metering it again ([`encoded_true_peak`]); where a
/// bitrate overshoots (libavcodec's encoder at 32 kbit/s mono added up to
/// 3 dB to real read speech), the headroom grows by the overshoot and the
/// plan is made again.
const CODEC_HEADROOM_DB: f64 = 1.0;
/// Rounds of plan → encode → meter before the result is taken as it is.
const CODEC_ROUNDS: usize = 5;
/// The encoded true peak is aimed this far under the ceiling, so another
/// meter's oversampling (ffmpeg's ebur128 at 192 kHz) reads it under too.
const METER_MARGIN_DB: f64 = 0.3;
const BLOCKS_PER_SECOND: u32 = 1000;
const ATTACK_BLOCKS: usize = 5;
const RELEASE_BLOCKS: f32 = 40.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Loudness {
    /// Integrated loudness of the input, LUFS; `None` for silence.
    pub measured_lufs: Option<f64>,
    /// Highest true peak of the input over all channels, dBTP; `None` for silence.
    pub measured_true_peak_dbtp: Option<f64>,
    pub target_lufs: f64,
    pub true_peak_max_dbtp: f64,
    /// Gain applied to every rendition, dB.
    pub applied_gain_db: f64,
    /// Loudness of the audio after the gain and the limiter (metered on the
    /// processed samples before AAC encoding when the limiter ran).
    pub expected_lufs: Option<f64>,
    /// Why the gain differs from `target - measured`, if it does.
    pub limited_by: Option<String>,
    /// Largest reduction the limiter applied to a peak, dB (0 when it did not run).
    pub limiter_max_reduction_db: f64,
    /// True peak after the gain and the limiter, dBTP.
    pub output_true_peak_dbtp: Option<f64>,
    /// How far under the true-peak ceiling the limiter aimed, to leave room
    /// for what AAC encoding adds, dB.
    pub codec_headroom_db: f64,
    /// True peak of that audio once AAC-encoded at each of the profile's
    /// audio bitrates and decoded again (the highest), dBTP: what the
    /// renditions measure. `None` when nothing was encoded (silence, or no
    /// audio rung).
    pub encoded_true_peak_dbtp: Option<f64>,
    /// The limiter's gain curve, for the transcoder.
    #[serde(skip)]
    pub limiter: Option<Arc<GainEnvelope>>,
}

/// The limiter's gain: one linear factor (≤ 1) per block of frames, applied
/// per frame by interpolating between neighbouring blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct GainEnvelope {
    block_frames: usize,
    gains: Vec<f32>,
}

impl GainEnvelope {
    /// Multiplies interleaved `samples`, whose first frame is frame number
    /// `first_frame` of the programme, by the curve.
    pub fn apply(&self, first_frame: u64, samples: &mut [f32], channels: usize) {
        let channels = channels.max(1);
        for (i, frame) in samples.chunks_mut(channels).enumerate() {
            let g = self.at(first_frame + i as u64);
            frame.iter_mut().for_each(|s| *s *= g);
        }
    }

    fn at(&self, frame: u64) -> f32 {
        let block = (frame / self.block_frames as u64) as usize;
        let Some(&here) = self.gains.get(block) else {
            return self.gains.last().copied().unwrap_or(1.0);
        };
        let next = self.gains.get(block + 1).copied().unwrap_or(here);
        let t = (frame % self.block_frames as u64) as f32 / self.block_frames as f32;
        here + (next - here) * t
    }

    /// Largest reduction, dB.
    pub fn max_reduction_db(&self) -> f64 {
        let min = self.gains.iter().copied().fold(1.0f32, f32::min);
        -20.0 * f64::from(min).log10()
    }
}

/// Gains (≤ 1) that keep every block's peak × gain at or under `ceiling`:
/// a block's gain may ramp linearly down to any need within the look-ahead
/// (and never exceeds the need of the block before it, so interpolation
/// between blocks stays under both), then recovers exponentially.
fn limiter_gains(peaks: &[f32], ceiling: f32, attack: usize, release: f32) -> Vec<f32> {
    let need: Vec<f32> = peaks
        .iter()
        .map(|&p| if p > ceiling { ceiling / p } else { 1.0 })
        .collect();
    let n = need.len();
    let mut gains: Vec<f32> = (0..n)
        .map(|b| {
            (b.saturating_sub(1)..=(b + attack).min(n - 1))
                .map(|k| {
                    let ahead = k.saturating_sub(b) as f32 / (attack as f32 + 1.0);
                    need[k] + (1.0 - need[k]) * ahead
                })
                .fold(1.0, f32::min)
        })
        .collect();
    let rise = 1.0 - (-1.0 / release).exp();
    for b in 1..n {
        let recovered = gains[b - 1] + (1.0 - gains[b - 1]) * rise;
        gains[b] = gains[b].min(recovered);
    }
    gains
}

/// What one pass over a file's audio yields: its loudness plan and the
/// 16 kHz mono audio Whisper hears (the decoded audio as it is, before gain
/// and limiter), ready before any video is encoded.
#[derive(Debug, Clone)]
pub struct AudioPass {
    pub loudness: Loudness,
    pub asr_pcm: Vec<f32>,
}

/// Measures `path`'s first audio stream as `channels` × `rate` Hz, metering
/// each buffer as it is decoded, and derives the ASR audio (at most
/// `asr_max_samples` samples, see [`crate::limits::asr_sample_cap`]) from
/// the same decode. Refuses a file whose streams run past `limit` (bad
/// input, see [`MediaError::Overrun`]).
#[allow(clippy::too_many_arguments)]
pub fn measure(
    path: &Path,
    rate: u32,
    channels: u32,
    target_lufs: f64,
    true_peak_max_dbtp: f64,
    codec_kbps: &[u32],
    limit: DecodeLimit,
    asr_max_samples: usize,
    watchdog: Watchdog,
) -> Result<AudioPass, MediaError> {
    let fail = |path: &Path, e| r128_failed(path, STAGE, e);
    let meter = ebur128::EbuR128::new(channels, rate, ebur128::Mode::I | ebur128::Mode::TRUE_PEAK)
        .map_err(|e| fail(path, e))?;
    let meter = Arc::new(Mutex::new(meter));
    let samples = Arc::new(Mutex::new(Vec::<f32>::new()));
    let (feed, keep) = (Arc::clone(&meter), Arc::clone(&samples));
    let owned = path.to_path_buf();
    crate::audio::stream(
        path,
        STAGE,
        rate as i32,
        channels as i32,
        limit,
        watchdog,
        move |frames| {
            keep.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(frames);
            feed.lock()
                .unwrap_or_else(|p| p.into_inner())
                .add_frames_f32(frames)
                .map_err(|e| fail(&owned, e))
        },
    )?;
    let meter = meter.lock().unwrap_or_else(|p| p.into_inner());
    let integrated = meter.loudness_global().map_err(|e| fail(path, e))?;
    let peak = max_true_peak(&meter, channels).map_err(|e| fail(path, e))?;
    let measured_true_peak = (peak > 0.0).then(|| 20.0 * peak.log10());
    let measured = (integrated.is_finite() && integrated > SILENCE_LUFS).then_some(integrated);
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    let plan_with = |headroom: f64| -> Result<Loudness, MediaError> {
        // The plain gain stops short of the ceiling by the headroom too.
        let mut loudness = plan(
            measured,
            measured_true_peak,
            target_lufs,
            true_peak_max_dbtp - headroom,
        );
        loudness.true_peak_max_dbtp = true_peak_max_dbtp;
        loudness.codec_headroom_db = headroom;
        if let (Some(measured), Some(tp)) = (measured, measured_true_peak) {
            let wanted = (target_lufs - measured).min(MAX_BOOST_DB);
            if tp + wanted > true_peak_max_dbtp - headroom {
                limit_peaks(&mut loudness, &samples, rate, channels, wanted)
                    .map_err(|e| fail(path, e))?;
            }
        }
        Ok(loudness)
    };
    let encode = |loudness: &mut Loudness| -> Result<f64, MediaError> {
        let processed = Arc::new(loudness.process(&samples, channels));
        // One encoder per bitrate, side by side (nothing else runs yet).
        let peaks: Vec<Result<f64, MediaError>> = std::thread::scope(|scope| {
            let runs: Vec<_> = codec_kbps
                .iter()
                .map(|&kbps| {
                    let processed = Arc::clone(&processed);
                    scope.spawn(move || {
                        encoded_true_peak(path, processed, rate, channels, kbps, watchdog)
                    })
                })
                .collect();
            runs.into_iter()
                .map(|r| r.join().expect("an encoder check does not panic"))
                .collect()
        });
        let mut encoded = f64::NEG_INFINITY;
        for peak in peaks {
            encoded = encoded.max(peak?);
        }
        loudness.encoded_true_peak_dbtp = encoded.is_finite().then_some(encoded);
        Ok(encoded - (true_peak_max_dbtp - METER_MARGIN_DB))
    };
    let mut headroom = CODEC_HEADROOM_DB;
    let mut loudness = plan_with(headroom)?;
    if measured.is_some() && !codec_kbps.is_empty() {
        // The encoder's overshoot depends on the waveform the plan makes,
        // so each round plans again with the headroom grown by what the
        // last one overshot.
        for round in 1..=CODEC_ROUNDS {
            let over = encode(&mut loudness)?;
            if over <= 0.0 {
                break;
            }
            if round == CODEC_ROUNDS {
                // No plan stayed under: lower this one's gain by what it
                // overshot, and record what that measures.
                let cut = over + 0.1;
                loudness.applied_gain_db -= cut;
                loudness.expected_lufs = loudness.expected_lufs.map(|l| l - cut);
                loudness.output_true_peak_dbtp = loudness.output_true_peak_dbtp.map(|p| p - cut);
                loudness.limited_by = Some(format!(
                    "AAC encoding raised the peaks: gain lowered by {cut:.1} dB"
                ));
                encode(&mut loudness)?;
                break;
            }
            headroom += over + 0.1;
            loudness = plan_with(headroom)?;
        }
    }
    let asr_pcm =
        crate::audio::to_asr_pcm(path, samples, rate, channels, asr_max_samples, watchdog)?;
    Ok(AudioPass { loudness, asr_pcm })
}

fn r128_failed(path: &Path, stage: &'static str, e: ebur128::Error) -> MediaError {
    MediaError::Input {
        path: path.to_path_buf(),
        stage,
        reason: format!("EBU R128 measurement failed: {e}"),
    }
}

fn max_true_peak(meter: &ebur128::EbuR128, channels: u32) -> Result<f64, ebur128::Error> {
    (0..channels).try_fold(0.0, |m, c| Ok(f64::max(m, meter.true_peak(c)?)))
}

/// Replaces a gain held back by the true-peak ceiling with the gain the
/// target asks for and a limiter on the peaks. The processed samples are
/// metered: the curve is tightened until they stay under the ceiling less
/// the codec headroom, and the gain raised by what the limiting took from
/// the loudness, as long as no peak loses more than [`MAX_LIMITING_DB`]
/// (the gain gives way beyond it).
fn limit_peaks(
    loudness: &mut Loudness,
    samples: &[f32],
    rate: u32,
    channels: u32,
    wanted_db: f64,
) -> Result<(), ebur128::Error> {
    let block_frames = (rate / BLOCKS_PER_SECOND).max(1) as usize;
    let peaks = block_true_peaks(samples, rate, channels, block_frames)?;
    let peak_ceiling_db = loudness.true_peak_max_dbtp - loudness.codec_headroom_db;
    let mut gain_db = wanted_db;
    let mut ceiling_db = peak_ceiling_db;
    let mut limited_by = None;
    let mut processed = Vec::with_capacity(samples.len());
    let mut result = None;
    for _ in 0..8 {
        let gain = 10f32.powf(gain_db as f32 / 20.0);
        let ceiling = 10f32.powf(ceiling_db as f32 / 20.0);
        let scaled: Vec<f32> = peaks.iter().map(|p| p * gain).collect();
        let envelope = GainEnvelope {
            block_frames,
            gains: limiter_gains(&scaled, ceiling, ATTACK_BLOCKS, RELEASE_BLOCKS),
        };
        let reduction = envelope.max_reduction_db();
        if reduction > MAX_LIMITING_DB + 0.01 {
            gain_db -= reduction - MAX_LIMITING_DB;
            limited_by = Some(format!(
                "peaks would need more than {MAX_LIMITING_DB} dB of limiting to reach the target"
            ));
            continue;
        }
        processed.clear();
        processed.extend(samples.iter().map(|s| s * gain));
        envelope.apply(0, &mut processed, channels as usize);
        let mut meter =
            ebur128::EbuR128::new(channels, rate, ebur128::Mode::I | ebur128::Mode::TRUE_PEAK)?;
        meter.add_frames_f32(&processed)?;
        let out_peak = 20.0 * max_true_peak(&meter, channels)?.log10();
        let out_lufs = meter.loudness_global()?;
        result = Some((envelope, gain_db, out_lufs, out_peak));
        let over = out_peak - peak_ceiling_db;
        let short = loudness.target_lufs - out_lufs;
        if over > 0.0 {
            // Oversampling between blocks can still poke through: aim lower.
            ceiling_db -= over + 0.05;
        } else if short > 0.2 && limited_by.is_none() && gain_db + short <= MAX_BOOST_DB {
            // Limiting took some loudness away: give it back.
            gain_db += short;
        } else {
            break;
        }
    }
    let Some((envelope, gain_db, out_lufs, out_peak)) = result else {
        return Ok(());
    };
    loudness.applied_gain_db = gain_db;
    loudness.expected_lufs = out_lufs.is_finite().then_some(out_lufs);
    loudness.output_true_peak_dbtp = Some(out_peak);
    loudness.limiter_max_reduction_db = envelope.max_reduction_db();
    loudness.limited_by = limited_by;
    loudness.limiter = Some(Arc::new(envelope));
    Ok(())
}

/// The true peak (linear, all channels) of each block of `block_frames`.
fn block_true_peaks(
    samples: &[f32],
    rate: u32,
    channels: u32,
    block_frames: usize,
) -> Result<Vec<f32>, ebur128::Error> {
    let mut meter = ebur128::EbuR128::new(channels, rate, ebur128::Mode::TRUE_PEAK)?;
    samples
        .chunks(block_frames * channels as usize)
        .map(|block| {
            meter.add_frames_f32(block)?;
            (0..channels).try_fold(0.0f32, |m, c| Ok(m.max(meter.prev_true_peak(c)? as f32)))
        })
        .collect()
}

/// The gain decision without a limiter: the target, capped by the boost
/// limit and by the true-peak ceiling.
pub fn plan(measured: Option<f64>, true_peak: Option<f64>, target: f64, ceiling: f64) -> Loudness {
    let mut limited_by = None;
    let gain = match measured {
        None => {
            limited_by = Some("silence: no gain".to_owned());
            0.0
        }
        Some(lufs) => {
            let mut gain = target - lufs;
            if gain > MAX_BOOST_DB {
                gain = MAX_BOOST_DB;
                limited_by = Some(format!("boost capped at {MAX_BOOST_DB} dB"));
            }
            if let Some(tp) = true_peak
                && tp + gain > ceiling
            {
                gain = ceiling - tp;
                limited_by = Some(format!(
                    "true peak {tp:.1} dBTP would exceed {ceiling:.1} dBTP"
                ));
            }
            gain
        }
    };
    Loudness {
        measured_lufs: measured,
        measured_true_peak_dbtp: true_peak,
        target_lufs: target,
        true_peak_max_dbtp: ceiling,
        applied_gain_db: gain,
        expected_lufs: measured.map(|m| m + gain),
        limited_by,
        limiter_max_reduction_db: 0.0,
        output_true_peak_dbtp: true_peak.map(|tp| tp + gain),
        codec_headroom_db: 0.0,
        encoded_true_peak_dbtp: None,
        limiter: None,
    }
}

impl Loudness {
    /// `samples` (interleaved, counted from the programme's first frame) as
    /// the renditions carry them: the gain, then the limiter's curve.
    pub fn process(&self, samples: &[f32], channels: u32) -> Vec<f32> {
        let gain = 10f32.powf(self.applied_gain_db as f32 / 20.0);
        let mut out: Vec<f32> = samples.iter().map(|s| s * gain).collect();
        if let Some(limiter) = &self.limiter {
            limiter.apply(0, &mut out, channels as usize);
        }
        out
    }
}

/// The true peak (dBTP, all channels) of `samples` once encoded by the
/// renditions' AAC encoder at `kbps` and decoded again: the same
/// audioconvert → avenc_aac the transcoder runs, then avdec_aac and the
/// EBU meter. `path` names the upload in errors.
fn encoded_true_peak(
    path: &Path,
    samples: Arc<Vec<f32>>,
    rate: u32,
    channels: u32,
    kbps: u32,
    watchdog: Watchdog,
) -> Result<f64, MediaError> {
    const STAGE: &str = "loudness (encoded peak)";
    let fail = |e| r128_failed(path, STAGE, e);
    let meter = ebur128::EbuR128::new(channels, rate, ebur128::Mode::TRUE_PEAK).map_err(fail)?;
    let meter = Arc::new(Mutex::new(meter));
    let feed = Arc::clone(&meter);
    let owned = path.to_path_buf();
    let aac = crate::make("avenc_aac")?;
    aac.set_property("bitrate", i32::try_from(kbps * 1000).unwrap_or(i32::MAX));
    let chain = [
        crate::make("audioconvert")?,
        aac,
        crate::make("aacparse")?,
        crate::make("avdec_aac")?,
        crate::make("audioconvert")?,
        crate::make("audioresample")?,
    ];
    crate::audio::through(
        path,
        STAGE,
        (samples, rate, channels),
        &chain,
        (rate as i32, channels as i32),
        watchdog,
        move |frames| {
            feed.lock()
                .unwrap_or_else(|p| p.into_inner())
                .add_frames_f32(frames)
                .map_err(|e| r128_failed(&owned, STAGE, e))
        },
    )?;
    let meter = meter.lock().unwrap_or_else(|p| p.into_inner());
    let peak = max_true_peak(&meter, channels).map_err(fail)?;
    Ok(if peak > 0.0 {
        20.0 * peak.log10()
    } else {
        f64::NEG_INFINITY
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_speech_is_raised_to_target() {
        let l = plan(Some(-26.0), Some(-12.0), -14.0, -1.0);
        assert_eq!(l.applied_gain_db, 11.0);
        assert_eq!(l.expected_lufs, Some(-15.0));
        assert!(l.limited_by.unwrap().contains("true peak"));
        let free = plan(Some(-20.0), Some(-10.0), -14.0, -1.0);
        assert_eq!((free.applied_gain_db, free.limited_by), (6.0, None));
    }

    #[test]
    fn loud_music_is_lowered_and_silence_left_alone() {
        assert_eq!(
            plan(Some(-8.0), Some(0.5), -14.0, -1.0).applied_gain_db,
            -6.0
        );
        assert_eq!(plan(None, None, -14.0, -1.0).applied_gain_db, 0.0);
        assert_eq!(
            plan(Some(-60.0), Some(-50.0), -14.0, -1.0).applied_gain_db,
            MAX_BOOST_DB
        );
    }

    #[test]
    fn the_limiter_ramps_down_before_a_peak_and_recovers_after() {
        let mut peaks = vec![0.1f32; 400];
        peaks[100] = 2.0;
        let g = limiter_gains(&peaks, 1.0, 5, 100.0);
        // At the peak, and in the block after it (which the interpolation
        // from the peak's block reaches), the gain meets the need.
        assert!(g[100] <= 0.5 && g[101] <= 0.5, "{:?}", &g[94..102]);
        // Ramped down over the look-ahead, untouched before it.
        assert_eq!(g[94], 1.0);
        assert!(
            g[95..=100].windows(2).all(|w| w[0] > w[1]),
            "{:?}",
            &g[94..102]
        );
        // Recovers gradually, never above 1.
        assert!(g[110] < g[200] && g[200] < g[399] && g[399] <= 1.0);
        assert!(g.iter().zip(&peaks).all(|(g, p)| g * p <= 1.0 + 1e-6));
    }

    #[test]
    fn interpolated_gain_stays_under_each_blocks_need() {
        let peaks: Vec<f32> = (0..300)
            .map(|i| if i % 37 == 0 { 3.0 } else { 0.9 })
            .collect();
        let env = GainEnvelope {
            block_frames: 48,
            gains: limiter_gains(&peaks, 1.0, 5, 100.0),
        };
        for (b, p) in peaks.iter().enumerate() {
            let worst = (0..48)
                .map(|i| env.at((b * 48 + i) as u64))
                .fold(0.0f32, f32::max);
            assert!(worst * p <= 1.0 + 1e-5, "block {b}: {worst} × {p}");
        }
        assert!((env.max_reduction_db() - 20.0 * 3f64.log10()).abs() < 0.01);
    }
}
