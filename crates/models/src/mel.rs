//! The mel filterbank stored in a ggml Whisper file.
//!
//! whisper.cpp computes its log-mel spectrogram with the filters found in the
//! model file, so they must equal the ones Whisper was trained with: librosa's
//! `filters.mel(sr=16000, n_fft=400, n_mels=N)` with Slaney mel scale and
//! Slaney area normalisation (OpenAI ships them as `mel_filters.npz`;
//! faster-whisper recomputes them with the same formula). Computed in f64 and
//! stored as f32, as librosa does.

pub const SAMPLE_RATE: f64 = 16_000.0;
pub const N_FFT: usize = 400;

/// Number of FFT bins the filters span (`n_fft / 2 + 1`).
pub const N_BINS: usize = N_FFT / 2 + 1;

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// Row-major `n_mels × N_BINS` filterbank.
///
/// The arithmetic follows librosa step by step (numpy's `rfftfreq` and
/// `linspace`, triangle weights stored as f32 before the f64 normalisation
/// is applied and rounded again), so the values match `mel_filters.npz` bit
/// for bit rather than merely to within rounding.
pub fn filterbank(n_mels: usize) -> Vec<f32> {
    let bin_hz = 1.0 / (N_FFT as f64 * (1.0 / SAMPLE_RATE));
    let fft_freqs: Vec<f64> = (0..N_BINS).map(|k| k as f64 * bin_hz).collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let points = n_mels + 2;
    let step = (hi - lo) / (points - 1) as f64;
    let mel_f: Vec<f64> = (0..points)
        .map(|i| {
            if i == points - 1 {
                hi
            } else {
                i as f64 * step + lo
            }
        })
        .map(mel_to_hz)
        .collect();
    let mut out = Vec::with_capacity(n_mels * N_BINS);
    for i in 0..n_mels {
        let (left, centre, right) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
        let enorm = 2.0 / (right - left);
        for &f in &fft_freqs {
            let lower = -(left - f) / (centre - left);
            let upper = (right - f) / (right - centre);
            let triangle = lower.min(upper).max(0.0) as f32;
            out.push((f64::from(triangle) * enorm) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips() {
        for hz in [0.0, 440.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
    }

    #[test]
    fn filters_are_triangles_that_tile_the_spectrum() {
        let fb = filterbank(80);
        assert_eq!(fb.len(), 80 * N_BINS);
        // DC and Nyquist belong to no filter; every row peaks once.
        for row in fb.chunks(N_BINS) {
            assert_eq!(row[0], 0.0);
            assert_eq!(row[N_BINS - 1], 0.0);
            assert!(row.iter().all(|&v| v >= 0.0));
            assert!(row.iter().any(|&v| v > 0.0));
        }
        // Slaney normalisation: each filter has (about) unit area in Hz/2 terms,
        // so low filters are tall and narrow, high ones low and wide.
        let peak = |r: usize| {
            fb[r * N_BINS..(r + 1) * N_BINS]
                .iter()
                .cloned()
                .fold(0.0, f32::max)
        };
        assert!(peak(0) > peak(79) * 5.0);
        // librosa's filters.mel(sr=16000, n_fft=400, n_mels=80)[0][1], the first
        // non-zero weight of OpenAI's mel_filters.npz.
        assert!((fb[1] - 0.024_862_594).abs() < 1e-8, "{}", fb[1]);
    }
}
