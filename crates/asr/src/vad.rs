//! Voice-activity detection with WebRTC's VAD (a Gaussian-mixture speech
//! model over sub-band energies, as used by WebRTC's audio pipeline), plus
//! an energy floor and smoothing. Regions without speech never reach
//! Whisper, so silence yields no cues and Whisper has nothing to
//! hallucinate over; words outside the regions are dropped afterwards.

use webrtc_vad::{SampleRate, Vad, VadMode};

const FRAME: usize = 480; // 30 ms at 16 kHz
const FRAME_S: f64 = 0.03;
/// Frames quieter than this (dBFS RMS) are never speech.
const ENERGY_FLOOR_DBFS: f64 = -55.0;
/// A region opens when this share of a 300 ms window is voiced…
const OPEN: f64 = 0.6;
/// …and closes when this share is unvoiced.
const CLOSE: f64 = 0.9;
const WINDOW: usize = 10;
const PAD_S: f64 = 0.2;
const MERGE_GAP_S: f64 = 0.3;
const MIN_REGION_S: f64 = 0.25;

/// Speech regions (start, end) in seconds, padded and merged.
pub fn speech_regions(pcm: &[f32]) -> Vec<(f64, f64)> {
    let mut vad = Vad::new_with_rate_and_mode(SampleRate::Rate16kHz, VadMode::VeryAggressive);
    let voiced: Vec<bool> = pcm
        .chunks_exact(FRAME)
        .map(|frame| {
            let rms = (frame
                .iter()
                .map(|s| f64::from(*s) * f64::from(*s))
                .sum::<f64>()
                / FRAME as f64)
                .sqrt();
            if rms <= 0.0 || 20.0 * rms.log10() < ENERGY_FLOOR_DBFS {
                return false;
            }
            let samples: Vec<i16> = frame
                .iter()
                .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
                .collect();
            vad.is_voice_segment(&samples).unwrap_or(false)
        })
        .collect();

    let mut raw = Vec::new();
    let mut open: Option<usize> = None;
    for i in 0..voiced.len() {
        let lo = i.saturating_sub(WINDOW - 1);
        let window = &voiced[lo..=i];
        let share = window.iter().filter(|v| **v).count() as f64 / WINDOW as f64;
        match open {
            None if share >= OPEN => open = Some(lo),
            Some(start) if 1.0 - share >= CLOSE => {
                raw.push((start as f64 * FRAME_S, (i + 1) as f64 * FRAME_S));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        raw.push((start as f64 * FRAME_S, voiced.len() as f64 * FRAME_S));
    }
    let total = pcm.len() as f64 / 16_000.0;
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for (s, e) in raw {
        let (s, e) = ((s - PAD_S).max(0.0), (e + PAD_S).min(total));
        match merged.last_mut() {
            Some(last) if s - last.1 <= MERGE_GAP_S => last.1 = e,
            _ => merged.push((s, e)),
        }
    }
    merged.retain(|(s, e)| e - s >= MIN_REGION_S + 2.0 * PAD_S - 1e-9 || e - s >= MIN_REGION_S);
    merged
}

/// Total speech in seconds.
pub fn speech_seconds(regions: &[(f64, f64)]) -> f64 {
    regions.iter().map(|(s, e)| e - s).sum()
}

/// A copy of `pcm` with everything outside `regions` silenced.
pub fn gate(pcm: &[f32], regions: &[(f64, f64)]) -> Vec<f32> {
    let mut out = vec![0.0; pcm.len()];
    for (s, e) in regions {
        let (a, b) = (
            (s * 16_000.0) as usize,
            ((e * 16_000.0) as usize).min(pcm.len()),
        );
        out[a..b].copy_from_slice(&pcm[a..b]);
    }
    out
}

/// Does the span [start, end] lie mostly inside speech?
pub fn mostly_speech(regions: &[(f64, f64)], start: f64, end: f64) -> bool {
    let len = (end - start).max(0.01);
    let overlap: f64 = regions
        .iter()
        .map(|(s, e)| (e.min(end) - s.max(start)).max(0.0))
        .sum();
    overlap / len >= 0.5
}

/// How far outside every speech region a word's timing may fall and still
/// be taken as a timing error rather than words over silence. Whisper's
/// token times are coarse at the edges of speech: the first word of a
/// clip that opens with silence is often stamped 0.0 s, the last words of a
/// region are often stamped at its end.
pub const EDGE_TOLERANCE_S: f64 = 1.0;

/// A word's span moved into speech: unchanged when it lies mostly inside a
/// region; clamped into the nearest region when it lies within
/// [`EDGE_TOLERANCE_S`] of it; `None` when it is far from all speech.
pub fn snap_to_speech(regions: &[(f64, f64)], start: f64, end: f64) -> Option<(f64, f64)> {
    if mostly_speech(regions, start, end) {
        return Some((start, end));
    }
    let (region, gap) = nearest_region(regions, start, end)?;
    (gap <= EDGE_TOLERANCE_S).then(|| place_in(region, start, end))
}

/// A word's span inside speech: unchanged when mostly inside a region,
/// else moved into the nearest region (at any distance). For words of a
/// segment already judged to be speech.
pub fn clamp_to_speech(regions: &[(f64, f64)], start: f64, end: f64) -> (f64, f64) {
    if mostly_speech(regions, start, end) {
        return (start, end);
    }
    nearest_region(regions, start, end)
        .map_or((start, end), |(region, _)| place_in(region, start, end))
}

/// The region closest to [start, end] and the gap to it (0 when they touch).
fn nearest_region(regions: &[(f64, f64)], start: f64, end: f64) -> Option<((f64, f64), f64)> {
    regions
        .iter()
        .map(|&(s, e)| ((s, e), (s - end).max(start - e).max(0.0)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// [start, end] moved (its length kept where it fits) inside `region`.
fn place_in((s, e): (f64, f64), start: f64, end: f64) -> (f64, f64) {
    let len = (end - start).clamp(0.05, (e - s).max(0.05));
    let start = start.clamp(s, (e - len).max(s));
    (start, (start + len).min(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_has_no_speech() {
        assert!(speech_regions(&vec![0.0; 16_000 * 5]).is_empty());
    }

    #[test]
    fn overlap_rule() {
        let r = [(1.0, 2.0)];
        assert!(mostly_speech(&r, 1.2, 1.8));
        assert!(!mostly_speech(&r, 1.9, 3.0));
    }

    #[test]
    fn words_at_the_edges_of_speech_are_moved_in_words_far_away_dropped() {
        let r = [(0.9, 3.0), (6.0, 7.0)];
        assert_eq!(snap_to_speech(&r, 1.2, 1.5), Some((1.2, 1.5)));
        // Stamped at 0.0 s before speech that starts at 0.9 s.
        assert_eq!(snap_to_speech(&r, 0.0, 0.3), Some((0.9, 1.2)));
        // Stamped past the end of the first region.
        let (s, e) = snap_to_speech(&r, 3.2, 3.6).unwrap();
        assert!((s - 2.6).abs() < 1e-9 && (e - 3.0).abs() < 1e-9, "{s} {e}");
        // Words in the middle of a long silence are not speech.
        assert_eq!(snap_to_speech(&r, 4.2, 4.6), None);
        assert_eq!(snap_to_speech(&[], 1.0, 2.0), None);
    }

    #[test]
    fn words_of_speech_segments_are_clamped_at_any_distance() {
        let r = [(0.9, 3.0)];
        // The last word stamped at the end of a 6.7 s clip.
        let (s, e) = clamp_to_speech(&r, 6.5, 6.7);
        assert!((s - 2.8).abs() < 1e-9 && (e - 3.0).abs() < 1e-9, "{s} {e}");
        assert_eq!(clamp_to_speech(&r, 1.0, 1.5), (1.0, 1.5));
        assert_eq!(clamp_to_speech(&[], 4.0, 4.5), (4.0, 4.5));
    }
}
