//! EBU R128 loudness: measure the input as it will be output (the profile's
//! rate and channel layout), then choose one gain that brings it to the
//! target without pushing the true peak over the ceiling.
//!
//! The meter is fed from the decoder's appsink as buffers arrive: nothing
//! holds the whole programme, and the decode stops (refusing the file) once
//! it runs past its declared duration plus a margin.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::MediaError;
use crate::limits::{DecodeLimit, Watchdog};

const STAGE: &str = "loudness";
/// Below this the programme is treated as silence and left alone.
const SILENCE_LUFS: f64 = -70.0;
/// Quiet recordings are lifted at most this much, so room noise under a
/// whisper is not amplified into a roar.
const MAX_BOOST_DB: f64 = 24.0;

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
    /// Loudness the renditions should have after the gain.
    pub expected_lufs: Option<f64>,
    /// Why the gain differs from `target - measured`, if it does.
    pub limited_by: Option<String>,
}

/// Measures `path`'s first audio stream as `channels` × `rate` Hz, metering
/// each buffer as it is decoded. Refuses a file whose streams run past
/// `limit` (bad input, see [`MediaError::Overrun`]).
pub fn measure(
    path: &Path,
    rate: u32,
    channels: u32,
    target_lufs: f64,
    true_peak_max_dbtp: f64,
    limit: DecodeLimit,
    watchdog: Watchdog,
) -> Result<Loudness, MediaError> {
    let fail = |path: &Path, e: ebur128::Error| MediaError::Input {
        path: path.to_path_buf(),
        stage: STAGE,
        reason: format!("EBU R128 measurement failed: {e}"),
    };
    let meter = ebur128::EbuR128::new(channels, rate, ebur128::Mode::I | ebur128::Mode::TRUE_PEAK)
        .map_err(|e| fail(path, e))?;
    let meter = Arc::new(Mutex::new(meter));
    let feed = Arc::clone(&meter);
    let owned = path.to_path_buf();
    crate::audio::stream(
        path,
        STAGE,
        rate as i32,
        channels as i32,
        limit,
        watchdog,
        move |frames| {
            feed.lock()
                .unwrap_or_else(|p| p.into_inner())
                .add_frames_f32(frames)
                .map_err(|e| fail(&owned, e))
        },
    )?;
    let meter = meter.lock().unwrap_or_else(|p| p.into_inner());
    let integrated = meter.loudness_global().map_err(|e| fail(path, e))?;
    let peak = (0..channels)
        .map(|c| meter.true_peak(c))
        .collect::<Result<Vec<f64>, _>>()
        .map_err(|e| fail(path, e))?;
    let peak_linear = peak.into_iter().fold(0.0, f64::max);
    let measured_true_peak = (peak_linear > 0.0).then(|| 20.0 * peak_linear.log10());
    Ok(plan(
        (integrated.is_finite() && integrated > SILENCE_LUFS).then_some(integrated),
        measured_true_peak,
        target_lufs,
        true_peak_max_dbtp,
    ))
}

/// The gain decision, separated from measurement so it can be tested exactly.
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
    }
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
}
