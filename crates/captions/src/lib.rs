//! Caption tracks for stemfeed: pure Rust, no native dependencies, so the
//! server and tools read and write captions without linking GStreamer or
//! whisper.cpp.
//!
//! * [`segment`] turns word timings into cues that follow the profile's rules
//!   (line length in grapheme clusters, lines per cue, duration, gap, reading
//!   speed, breaks at punctuation and clause boundaries, never inside a word).
//! * [`bidi`] makes right-to-left lines render right: an RLM at the start of
//!   each line and LTR runs (English terms, numbers, formulas) isolated.
//! * [`webvtt`] and [`srt`] write and read the two formats; curators' edits
//!   and creators' own captions round-trip through them.

pub mod bidi;
pub mod cue;
pub mod file;
pub mod score;
pub mod script;
pub mod segment;
pub mod srt;
pub mod translit;
pub mod webvtt;

pub use cue::{Cue, CueSettings, Track, Word};
pub use file::{CaptionFile, LanguageChoice, Status};

/// A caption file that could not be read. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Caption file text without a byte-order mark and with `\n` line ends
/// (files arrive with CRLF from Windows tools and CR from old Mac ones).
pub(crate) fn normalize_text(input: &str) -> String {
    input
        .strip_prefix('\u{FEFF}')
        .unwrap_or(input)
        .replace("\r\n", "\n")
        .replace('\r', "\n")
}

/// Seconds → `hh:mm:ss.mmm` (WebVTT) or `hh:mm:ss,mmm` (SRT).
pub(crate) fn format_timestamp(seconds: f64, decimal: char) -> String {
    let total_ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}{decimal}{ms:03}")
}

/// Parses `[hh:]mm:ss.mmm` (or with `,` for SRT) into seconds.
pub(crate) fn parse_timestamp(text: &str, decimal: char) -> Option<f64> {
    let (clock, frac) = text.split_once(decimal)?;
    if frac.len() != 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (h, m, s) = match parts.as_slice() {
        [m, s] if m.len() == 2 && s.len() == 2 => (0, num(m)?, num(s)?),
        [h, m, s] if h.len() >= 2 && m.len() == 2 && s.len() == 2 => (num(h)?, num(m)?, num(s)?),
        _ => return None,
    };
    if m > 59 || s > 59 {
        return None;
    }
    Some((h * 3600 + m * 60 + s) as f64 + frac.parse::<u64>().ok()? as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(format_timestamp(3723.5, '.'), "01:02:03.500");
        assert_eq!(parse_timestamp("01:02:03.500", '.'), Some(3723.5));
        assert_eq!(parse_timestamp("02:03.004", '.'), Some(123.004));
        assert_eq!(parse_timestamp("00:00:01,250", ','), Some(1.25));
        assert_eq!(parse_timestamp("00:61:00.000", '.'), None);
        assert_eq!(parse_timestamp("1:02.000", '.'), None);
    }
}
