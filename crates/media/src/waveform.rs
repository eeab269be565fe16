//! A waveform for the caption editor: the peak level of the 16 kHz ASR
//! audio in short windows, on a decibel scale so that quiet speech and the
//! silences between phrases (where cue boundaries belong) are both visible.
//! Computed once by the worker from samples it already holds; drawn by the
//! review page.

use serde::{Deserialize, Serialize};

/// Peaks per second: a 20 ms window, finer than a frame at 30 fps.
pub const PEAKS_PER_SECOND: u32 = 50;
/// The level drawn as silence, dBFS; 0 dBFS is drawn full height.
const FLOOR_DB: f32 = -60.0;

/// What `waveform.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waveform {
    pub version: u32,
    pub peaks_per_second: u32,
    /// One per window: 0 (at or under −60 dBFS) to 255 (full scale).
    pub peaks: Vec<u8>,
}

impl Waveform {
    /// The waveform of mono `samples` at `rate` Hz.
    pub fn of(samples: &[f32], rate: u32) -> Self {
        let window = (rate / PEAKS_PER_SECOND).max(1) as usize;
        let peaks = samples
            .chunks(window)
            .map(|w| level(w.iter().fold(0.0f32, |m, s| m.max(s.abs()))))
            .collect();
        Self {
            version: 1,
            peaks_per_second: PEAKS_PER_SECOND,
            peaks,
        }
    }
}

/// A peak amplitude as 0–255 on the decibel scale.
fn level(peak: f32) -> u8 {
    if peak.is_nan() || peak <= 0.0 {
        return 0;
    }
    let db = 20.0 * peak.min(1.0).log10();
    let x = ((db - FLOOR_DB) / -FLOOR_DB).clamp(0.0, 1.0);
    (x * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_between_silences_shows_where_it_sounds() {
        let rate = 16_000;
        let mut samples = vec![0.0f32; rate as usize]; // 1 s silence
        samples.extend((0..rate).map(|i| 0.5 * (i as f32 * 0.1).sin())); // 1 s tone
        samples.extend(vec![0.001f32; rate as usize / 2]); // −60 dBFS hiss
        let w = Waveform::of(&samples, rate);
        assert_eq!(w.peaks.len(), 125);
        assert!(w.peaks[..50].iter().all(|&p| p == 0));
        // −6 dBFS: 90% of the height.
        assert!(
            w.peaks[50..100].iter().all(|&p| (228..=231).contains(&p)),
            "{:?}",
            &w.peaks[50..100]
        );
        assert!(w.peaks[100..].iter().all(|&p| p == 0));
    }

    #[test]
    fn clipped_and_broken_samples_stay_in_range() {
        let w = Waveform::of(&[f32::NAN, 2.0, -3.0, f32::INFINITY], 16_000);
        assert_eq!(w.peaks, [255]);
        assert_eq!(Waveform::of(&[], 16_000).peaks, Vec::<u8>::new());
    }
}
