//! SubRip (SRT) reading and writing. The reader is tolerant of what real
//! files contain: a BOM, CRLF, missing or wrong index numbers, `.` instead of
//! `,` before the milliseconds, and extra blank lines.

use crate::cue::{Cue, Track};
use crate::{ParseError, format_timestamp, parse_timestamp};

pub fn write(track: &Track) -> String {
    let mut out = String::new();
    for (i, cue) in track.cues.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n",
            i + 1,
            format_timestamp(cue.start, ','),
            format_timestamp(cue.end, ',')
        ));
        for line in cue.text.split('\n').filter(|l| !l.trim().is_empty()) {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn timestamp(text: &str) -> Option<f64> {
    let t = text.trim();
    parse_timestamp(t, ',').or_else(|| parse_timestamp(t, '.'))
}

pub fn parse(input: &str) -> Result<Track, ParseError> {
    let text = crate::normalize_text(input);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut cues = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        let block_line = i + 1;
        // Optional numeric index.
        if !lines[i].contains("-->") {
            i += 1;
        }
        let timing = lines.get(i).copied().unwrap_or_default();
        let (start, end) = timing
            .split_once("-->")
            .and_then(|(a, b)| {
                // Some writers append coordinates after the end time: ignore them.
                let end = b.split_whitespace().next()?;
                Some((timestamp(a)?, timestamp(end)?))
            })
            .ok_or_else(|| ParseError { line: i + 1, reason: format!("expected `start --> end` in block starting at line {block_line}, found {timing:?}") })?;
        if end < start {
            return Err(ParseError {
                line: i + 1,
                reason: "cue ends before it starts".into(),
            });
        }
        i += 1;
        let mut text_lines = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            text_lines.push(lines[i]);
            i += 1;
        }
        cues.push(Cue::new(start, end, text_lines.join("\n")));
    }
    Ok(Track {
        language: String::new(),
        kind: String::new(),
        cues,
        regions: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_world_srt_and_round_trips() {
        let input = "\u{FEFF}1\r\n00:00:01,000 --> 00:00:02,500\r\nHello\r\nworld\r\n\r\n\r\n7\r\n00:00:03.000 --> 00:00:04,000 X1:10 X2:20\r\nقوت\r\n";
        let t = parse(input).unwrap();
        assert_eq!(t.cues.len(), 2);
        assert_eq!(
            (t.cues[0].start, t.cues[0].end, t.cues[0].text.as_str()),
            (1.0, 2.5, "Hello\nworld")
        );
        assert_eq!(t.cues[1].text, "قوت");
        assert_eq!(parse(&write(&t)).unwrap().cues, t.cues);
    }

    #[test]
    fn reports_the_line_of_a_broken_timing() {
        let err = parse("1\n00:00:01,000 -> 00:00:02,000\nhi\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
