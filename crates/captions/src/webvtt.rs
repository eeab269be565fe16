//! WebVTT (W3C WebVTT: The Web Video Text Tracks Format) reading and writing.
//!
//! The reader follows the specification's parsing rules where they matter
//! for real files: an optional BOM, the `WEBVTT` signature, CR/LF/CRLF line
//! ends, NOTE and STYLE blocks ignored, REGION blocks kept, optional cue
//! identifiers, `mm:ss.ttt` and `hh:mm:ss.ttt` timestamps, cue settings, and
//! malformed cue blocks skipped rather than failing the whole file. The
//! writer escapes `&`, `<` and `>` so cue text round-trips exactly.

use crate::cue::{Cue, CueSettings, Track};
use crate::{ParseError, format_timestamp, parse_timestamp};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn unescape(text: &str) -> String {
    // Only the named references WebVTT defines in practice; &amp; last.
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&lrm;", "\u{200E}")
        .replace("&rlm;", "\u{200F}")
        .replace("&nbsp;", "\u{A0}")
        .replace("&amp;", "&")
}

fn settings_text(s: &CueSettings) -> String {
    [
        ("vertical", &s.vertical),
        ("line", &s.line),
        ("position", &s.position),
        ("size", &s.size),
        ("align", &s.align),
        ("region", &s.region),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!(" {k}:{v}")))
    .collect()
}

pub fn write(track: &Track) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for region in &track.regions {
        out.push_str("REGION\n");
        out.push_str(region.trim_end());
        out.push_str("\n\n");
    }
    for cue in &track.cues {
        if let Some(id) = &cue.id {
            out.push_str(&id.replace("-->", "->"));
            out.push('\n');
        }
        out.push_str(&format!(
            "{} --> {}{}\n",
            format_timestamp(cue.start, '.'),
            format_timestamp(cue.end, '.'),
            settings_text(&cue.settings)
        ));
        // A blank line would end the cue: keep every payload line non-empty.
        for line in cue.text.split('\n').filter(|l| !l.trim().is_empty()) {
            out.push_str(&escape(line));
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn parse_settings(text: &str) -> CueSettings {
    let mut s = CueSettings::default();
    for token in text.split([' ', '\t']).filter(|t| !t.is_empty()) {
        let Some((name, value)) = token.split_once(':') else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let slot = match name {
            "align" => &mut s.align,
            "line" => &mut s.line,
            "position" => &mut s.position,
            "size" => &mut s.size,
            "vertical" => &mut s.vertical,
            "region" => &mut s.region,
            _ => continue,
        };
        *slot = Some(value.to_owned());
    }
    s
}

/// Parses `start --> end settings`; `None` when it is not a valid timing line.
fn parse_timing(line: &str) -> Option<(f64, f64, CueSettings)> {
    let (left, right) = line.split_once("-->")?;
    let start = parse_timestamp(left.trim_matches([' ', '\t']), '.')?;
    let right = right.trim_start_matches([' ', '\t']);
    let (end_text, rest) = right.split_once([' ', '\t']).unwrap_or((right, ""));
    let end = parse_timestamp(end_text, '.')?;
    Some((start, end, parse_settings(rest)))
}

pub fn parse(input: &str) -> Result<Track, ParseError> {
    let text = crate::normalize_text(input);
    let lines: Vec<&str> = text.split('\n').collect();
    let signature = lines.first().copied().unwrap_or_default();
    let valid_signature = signature == "WEBVTT"
        || signature.starts_with("WEBVTT ")
        || signature.starts_with("WEBVTT\t");
    if !valid_signature {
        return Err(ParseError {
            line: 1,
            reason: "missing WEBVTT signature".into(),
        });
    }
    let mut i = 1;
    // Header: everything up to the first blank line.
    while i < lines.len() && !lines[i].is_empty() {
        i += 1;
    }
    let mut track = Track {
        language: String::new(),
        kind: String::new(),
        cues: Vec::new(),
        regions: Vec::new(),
    };
    while i < lines.len() {
        while i < lines.len() && lines[i].is_empty() {
            i += 1;
        }
        if i >= lines.len() {
            break;
        }
        let mut block: Vec<&str> = Vec::new();
        while i < lines.len() && !lines[i].is_empty() {
            // A timing line inside a cue's text starts a new cue (spec rule).
            if !block.is_empty()
                && lines[i].contains("-->")
                && block.iter().any(|l| l.contains("-->"))
            {
                break;
            }
            block.push(lines[i]);
            i += 1;
        }
        let first = block[0];
        let keyword = |k: &str| {
            first == k
                || first.starts_with(&format!("{k} "))
                || first.starts_with(&format!("{k}\t"))
        };
        if keyword("NOTE") || keyword("STYLE") {
            continue;
        }
        if keyword("REGION") && !first.contains("-->") {
            track.regions.push(block[1..].join("\n"));
            continue;
        }
        let (id, timing_index) = if first.contains("-->") {
            (None, 0)
        } else {
            (Some(first.to_owned()), 1)
        };
        let Some(timing) = block.get(timing_index) else {
            continue;
        };
        // The spec discards a block whose timing line does not parse.
        let Some((start, end, settings)) = parse_timing(timing) else {
            continue;
        };
        let text = block[timing_index + 1..]
            .iter()
            .map(|l| unescape(l))
            .collect::<Vec<_>>()
            .join("\n");
        let mut cue = Cue::new(start, end, text);
        cue.id = id;
        cue.settings = settings;
        track.cues.push(cue);
    }
    Ok(track)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_settings_regions_notes_and_short_timestamps() {
        let input = "\u{FEFF}WEBVTT - lesson 3\r\nKind: captions\r\n\r\nREGION\r\nid:bottom\r\nwidth:40%\r\n\r\nNOTE a comment\r\nspanning lines\r\n\r\nSTYLE\r\n::cue { color: yellow }\r\n\r\nintro\r\n00:01.000 --> 00:04.500 align:start line:90% position:10% size:80% region:bottom\r\nNewton &amp; the apple\r\n&lt;not a tag&gt;\r\n\r\n01:00:00.000 --> 01:00:02.000 vertical:rl\r\nلمبا\r\n\r\n00:05.000 --> bad\r\nskipped\r\n";
        let t = parse(input).unwrap();
        assert_eq!(t.regions, ["id:bottom\nwidth:40%"]);
        assert_eq!(t.cues.len(), 2);
        let c = &t.cues[0];
        assert_eq!((c.id.as_deref(), c.start, c.end), (Some("intro"), 1.0, 4.5));
        assert_eq!(c.text, "Newton & the apple\n<not a tag>");
        assert_eq!(c.settings.align.as_deref(), Some("start"));
        assert_eq!(c.settings.line.as_deref(), Some("90%"));
        assert_eq!(c.settings.region.as_deref(), Some("bottom"));
        assert_eq!(t.cues[1].start, 3600.0);
        assert_eq!(t.cues[1].settings.vertical.as_deref(), Some("rl"));
    }

    #[test]
    fn round_trips_what_it_writes() {
        let mut a = Cue::new(
            0.5,
            2.25,
            "\u{200F}\u{2066}Newton\u{2069} کا قانون\nF < m & a",
        );
        a.id = Some("1".into());
        a.settings.align = Some("center".into());
        let track = Track {
            language: "ur".into(),
            kind: "transcript".into(),
            cues: vec![a, Cue::new(3.0, 4.0, "دوسرا")],
            regions: vec![],
        };
        let back = parse(&write(&track)).unwrap();
        assert_eq!(back.cues, track.cues);
    }

    #[test]
    fn rejects_a_file_without_the_signature() {
        assert_eq!(
            parse("1\n00:00:01,000 --> 00:00:02,000\nhi\n")
                .unwrap_err()
                .line,
            1
        );
        assert!(parse("WEBVTTX\n").is_err());
    }
}
