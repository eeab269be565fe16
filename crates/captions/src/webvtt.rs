//! WebVTT (W3C WebVTT: The Web Video Text Tracks Format) reading and writing.
//!
//! The reader is the specification's "WebVTT file parsing" algorithm
//! ([`parse_spec`]): the signature check, NULs replaced by U+FFFD, CR/LF/CRLF
//! line ends, header, "collect a WebVTT block" (cues, STYLE and REGION
//! blocks, everything else dropped), "collect a WebVTT timestamp", "parse
//! the WebVTT cue settings" and "collect WebVTT region settings". It is
//! checked against the web-platform-tests `webvtt/parsing/file-parsing`
//! cases (tests/webvtt_wpt.rs). [`parse`] maps its result onto the caption
//! model. The writer escapes `&`, `<` and `>` so cue text round-trips exactly.

use crate::cue::{Cue, CueSettings, Track};
use crate::{ParseError, format_timestamp};

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

/// ASCII whitespace as the spec (and the Infra standard) defines it.
fn is_ascii_ws(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{C}' | '\r' | ' ')
}

/// "Split a string on spaces": the non-empty runs between ASCII whitespace.
fn split_on_spaces(input: &str) -> impl Iterator<Item = &str> {
    input.split(is_ascii_ws).filter(|t| !t.is_empty())
}

/// A setting token's name and value, or `None` when the spec skips the token
/// (no colon, or the first colon is its first or last character).
fn name_value(setting: &str) -> Option<(&str, &str)> {
    let colon = setting.find(':')?;
    (colon != 0 && colon + 1 != setting.len()).then(|| (&setting[..colon], &setting[colon + 1..]))
}

/// Splits `value` at its first comma: `(before, Some(after))`, or
/// `(value, None)` when it has none.
fn split_comma(value: &str) -> (&str, Option<&str>) {
    match value.split_once(',') {
        Some((a, b)) => (a, Some(b)),
        None => (value, None),
    }
}

/// The HTML "rules for parsing floating-point number values" for the strings
/// the WebVTT parser hands them (an optional leading `-`, ASCII digits, at
/// most one `.` between digits): the nearest finite double, never -0, or
/// `None` when the value is out of the double range.
fn parse_real(text: &str) -> Option<f64> {
    let n: f64 = text.parse().ok()?;
    n.is_finite().then_some(if n == 0.0 { 0.0 } else { n })
}

/// "Parse a percentage string": a WebVTT percentage (digits, optionally `.`
/// and digits, then `%`) between 0 and 100.
fn parse_percentage(input: &str) -> Option<f64> {
    let number = input.strip_suffix('%')?;
    let (int, frac) = split_dot(number);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    let p = parse_real(number)?;
    (0.0..=100.0).contains(&p).then_some(p)
}

fn split_dot(s: &str) -> (&str, Option<&str>) {
    match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// WebVTT cue text alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    Start,
    #[default]
    Center,
    End,
    Left,
    Right,
}

impl Align {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Center => "center",
            Self::End => "end",
            Self::Left => "left",
            Self::Right => "right",
        }
    }
}

/// WebVTT cue line alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineAlign {
    #[default]
    Start,
    Center,
    End,
}

impl LineAlign {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Center => "center",
            Self::End => "end",
        }
    }
}

/// WebVTT cue position alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PositionAlign {
    LineLeft,
    Center,
    LineRight,
    #[default]
    Auto,
}

impl PositionAlign {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LineLeft => "line-left",
            Self::Center => "center",
            Self::LineRight => "line-right",
            Self::Auto => "auto",
        }
    }
}

/// WebVTT cue writing direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vertical {
    #[default]
    Horizontal,
    /// Vertical growing left (`vertical:rl`).
    Rl,
    /// Vertical growing right (`vertical:lr`).
    Lr,
}

impl Vertical {
    /// The `VTTCue.vertical` string: empty for horizontal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Horizontal => "",
            Self::Rl => "rl",
            Self::Lr => "lr",
        }
    }
}

/// A WebVTT region as "collect WebVTT region settings" leaves it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecRegion {
    pub id: String,
    /// Percent of the video width.
    pub width: f64,
    /// Lines; an integer, kept as `f64` because the spec puts no upper bound on it.
    pub lines: f64,
    /// Region anchor point (x, y), percent.
    pub region_anchor: (f64, f64),
    /// Viewport anchor point (x, y), percent.
    pub viewport_anchor: (f64, f64),
    /// Scroll value up (`scroll:up`); otherwise none.
    pub scroll_up: bool,
    /// The block's settings text (the lines after `REGION`), verbatim.
    pub source: String,
}

impl Default for SpecRegion {
    fn default() -> Self {
        Self {
            id: String::new(),
            width: 100.0,
            lines: 3.0,
            region_anchor: (0.0, 100.0),
            viewport_anchor: (0.0, 100.0),
            scroll_up: false,
            source: String::new(),
        }
    }
}

impl SpecRegion {
    /// The region as a `VTTRegion` presents it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "lines": self.lines,
            "scroll": if self.scroll_up { "up" } else { "" },
            "width": self.width,
            "regionAnchorX": self.region_anchor.0,
            "regionAnchorY": self.region_anchor.1,
            "viewportAnchorX": self.viewport_anchor.0,
            "viewportAnchorY": self.viewport_anchor.1,
        })
    }

    /// "Collect WebVTT region settings" from `input` into `self`.
    fn collect_settings(&mut self, input: &str) {
        for setting in split_on_spaces(input) {
            let Some((name, value)) = name_value(setting) else {
                continue;
            };
            let anchor = |value: &str| {
                let (x, y) = value.split_once(',')?;
                Some((parse_percentage(x)?, parse_percentage(y)?))
            };
            match name {
                "id" => self.id = value.to_owned(),
                "width" => {
                    if let Some(p) = parse_percentage(value) {
                        self.width = p;
                    }
                }
                "lines" => {
                    if value.bytes().all(|b| b.is_ascii_digit())
                        && let Some(n) = parse_real(value)
                    {
                        self.lines = n;
                    }
                }
                "regionanchor" => {
                    if let Some(a) = anchor(value) {
                        self.region_anchor = a;
                    }
                }
                "viewportanchor" => {
                    if let Some(a) = anchor(value) {
                        self.viewport_anchor = a;
                    }
                }
                "scroll" if value == "up" => self.scroll_up = true,
                _ => {}
            }
        }
    }
}

/// A WebVTT cue line: `auto` or a number (lines, or percent when
/// `snap_to_lines` is false).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LineOrAuto {
    #[default]
    Auto,
    Number(f64),
}

/// A WebVTT cue with every setting as the spec's parser computes it
/// (W3C WebVTT, "collect a WebVTT block" and "parse the WebVTT cue settings").
#[derive(Debug, Clone, PartialEq)]
pub struct SpecCue {
    /// The cue identifier; empty when the block has none.
    pub id: String,
    pub start: f64,
    pub end: f64,
    /// The cue text as the parser collected it: lines joined with `\n`,
    /// character references not decoded (that is cue text parsing, a later step).
    pub text: String,
    /// Index into [`SpecTrack::regions`].
    pub region: Option<usize>,
    pub vertical: Vertical,
    pub snap_to_lines: bool,
    pub line: LineOrAuto,
    pub line_align: LineAlign,
    /// Percent, or `None` for auto.
    pub position: Option<f64>,
    pub position_align: PositionAlign,
    /// Percent.
    pub size: f64,
    pub align: Align,
    /// The timing line after the end timestamp, verbatim (the raw settings).
    pub settings_text: String,
}

impl SpecCue {
    fn new(id: String) -> Self {
        Self {
            id,
            start: 0.0,
            end: 0.0,
            text: String::new(),
            region: None,
            vertical: Vertical::Horizontal,
            snap_to_lines: true,
            line: LineOrAuto::Auto,
            line_align: LineAlign::Start,
            position: None,
            position_align: PositionAlign::Auto,
            size: 100.0,
            align: Align::Center,
            settings_text: String::new(),
        }
    }

    /// "Parse the WebVTT cue settings" from `input` using `regions`.
    fn parse_settings(&mut self, input: &str, regions: &[SpecRegion]) {
        for setting in split_on_spaces(input) {
            let Some((name, value)) = name_value(setting) else {
                continue;
            };
            match name {
                "region" => self.region = regions.iter().rposition(|r| r.id == value),
                "vertical" => {
                    match value {
                        "rl" => self.vertical = Vertical::Rl,
                        "lr" => self.vertical = Vertical::Lr,
                        _ => {}
                    }
                    if self.vertical != Vertical::Horizontal {
                        self.region = None; // there are no vertical regions
                    }
                }
                "line" => {
                    let (linepos, linealign) = split_comma(value);
                    if !linepos.bytes().any(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    let percent = linepos.ends_with('%');
                    let number = if percent {
                        parse_percentage(linepos)
                    } else {
                        parse_line_number(linepos)
                    };
                    let Some(number) = number else {
                        continue;
                    };
                    match linealign {
                        Some("start") => self.line_align = LineAlign::Start,
                        Some("center") => self.line_align = LineAlign::Center,
                        Some("end") => self.line_align = LineAlign::End,
                        Some(_) => continue,
                        None => {}
                    }
                    self.line = LineOrAuto::Number(number);
                    self.snap_to_lines = !percent;
                    // Positioned with a line offset: drops out of the region.
                    self.region = None;
                }
                "position" => {
                    let (colpos, colalign) = split_comma(value);
                    let Some(number) = parse_percentage(colpos) else {
                        continue;
                    };
                    match colalign {
                        Some("line-left") => self.position_align = PositionAlign::LineLeft,
                        Some("center") => self.position_align = PositionAlign::Center,
                        Some("line-right") => self.position_align = PositionAlign::LineRight,
                        Some(_) => continue,
                        None => {}
                    }
                    self.position = Some(number);
                }
                "size" => {
                    let Some(number) = parse_percentage(value) else {
                        continue;
                    };
                    self.size = number;
                    if self.size != 100.0 {
                        self.region = None; // explicitly sized: drops out of the region
                    }
                }
                "align" => match value {
                    "start" => self.align = Align::Start,
                    "center" => self.align = Align::Center,
                    "end" => self.align = Align::End,
                    "left" => self.align = Align::Left,
                    "right" => self.align = Align::Right,
                    _ => {}
                },
                _ => {}
            }
        }
    }

    /// The cue as a `VTTCue` presents it, with its region expanded
    /// (`regions` is the list the cue's region index points into).
    pub fn to_json(&self, regions: &[SpecRegion]) -> serde_json::Value {
        let num_or_auto = |n: Option<f64>| match n {
            Some(n) => serde_json::json!(n),
            None => serde_json::json!("auto"),
        };
        let line = match self.line {
            LineOrAuto::Auto => None,
            LineOrAuto::Number(n) => Some(n),
        };
        serde_json::json!({
            "id": self.id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "align": self.align.as_str(),
            "line": num_or_auto(line),
            "snapToLines": self.snap_to_lines,
            "lineAlign": self.line_align.as_str(),
            "position": num_or_auto(self.position),
            "positionAlign": self.position_align.as_str(),
            "size": self.size,
            "vertical": self.vertical.as_str(),
            "region": self.region.and_then(|i| regions.get(i)).map(SpecRegion::to_json),
        })
    }
}

/// The line position number of a `line:` setting without `%`, following
/// the spec's checks before it hands the string to the float parser.
fn parse_line_number(linepos: &str) -> Option<f64> {
    let b = linepos.as_bytes();
    if !b
        .iter()
        .all(|&c| c == b'-' || c == b'.' || c.is_ascii_digit())
    {
        return None;
    }
    if b.iter().skip(1).any(|&c| c == b'-') {
        return None;
    }
    let dots: Vec<usize> = (0..b.len()).filter(|&i| b[i] == b'.').collect();
    match dots.as_slice() {
        [] => {}
        [i] => {
            let digit = |j: Option<usize>| j.and_then(|j| b.get(j)).is_some_and(u8::is_ascii_digit);
            if !digit(i.checked_sub(1)) || !digit(Some(i + 1)) {
                return None;
            }
        }
        _ => return None,
    }
    parse_real(linepos)
}

/// What the spec's WebVTT parser produces for a file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpecTrack {
    /// The text track list of cues, in file order.
    pub cues: Vec<SpecCue>,
    /// Every region the parser collected (the REGION blocks before the first
    /// cue), in file order; cues point into this list. A later region with
    /// the same identifier wins when a cue names it.
    pub regions: Vec<SpecRegion>,
    /// The text of each STYLE block (a CSS style sheet's source).
    pub stylesheets: Vec<String>,
}

impl SpecTrack {
    /// `{"regions": [...], "cues": [...]}` as `VTTRegion`s and `VTTCue`s present them.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "regions": self.regions.iter().map(SpecRegion::to_json).collect::<Vec<_>>(),
            "cues": self.cues.iter().map(|c| c.to_json(&self.regions)).collect::<Vec<_>>(),
        })
    }
}

enum Block {
    Cue(SpecCue),
    Stylesheet(String),
    Region(SpecRegion),
}

/// The WebVTT parser algorithm's state: `input` is already converted (no
/// BOM, NULs replaced, LF line ends); `pos` is a byte offset into it.
struct Parser<'a> {
    input: &'a str,
    pos: usize,
    seen_cue: bool,
    track: SpecTrack,
}

impl<'a> Parser<'a> {
    /// Collects the code points up to the next LF (or the end).
    fn collect_line(&mut self) -> &'a str {
        let rest = &self.input[self.pos..];
        let len = rest.find('\n').unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn skip_line_feeds(&mut self) {
        let rest = &self.input[self.pos..];
        self.pos += rest.len() - rest.trim_start_matches('\n').len();
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    /// "Collect a WebVTT block".
    fn collect_block(&mut self, in_header: bool) -> Option<Block> {
        let mut line_count = 0;
        let mut previous_position = self.pos;
        let mut buffer = String::new();
        let mut seen_arrow = false;
        let mut cue: Option<SpecCue> = None;
        let mut stylesheet = false;
        let mut region: Option<SpecRegion> = None;
        loop {
            let line = self.collect_line();
            line_count += 1;
            let seen_eof = self.at_end();
            if !seen_eof {
                self.pos += 1; // the LF
            }
            if line.contains("-->") {
                if !in_header && (line_count == 1 || (line_count == 2 && !seen_arrow)) {
                    seen_arrow = true;
                    previous_position = self.pos;
                    let mut c = SpecCue::new(buffer.clone());
                    if collect_timings_and_settings(line, &self.track.regions, &mut c) {
                        buffer.clear();
                        self.seen_cue = true;
                        cue = Some(c);
                    } else {
                        cue = None;
                    }
                } else {
                    self.pos = previous_position;
                    break;
                }
            } else if line.is_empty() {
                break;
            } else {
                if !in_header && line_count == 2 && !self.seen_cue {
                    // `buffer` is the block's first line: "STYLE" or
                    // "REGION", optionally followed by ASCII whitespace.
                    let keyword = |k: &str| {
                        buffer
                            .strip_prefix(k)
                            .is_some_and(|rest| rest.chars().all(is_ascii_ws))
                    };
                    let (is_style, is_region) = (keyword("STYLE"), keyword("REGION"));
                    if is_style {
                        stylesheet = true;
                        buffer.clear();
                    } else if is_region {
                        region = Some(SpecRegion::default());
                        buffer.clear();
                    }
                }
                if !buffer.is_empty() {
                    buffer.push('\n');
                }
                buffer.push_str(line);
                previous_position = self.pos;
            }
            if seen_eof {
                break;
            }
        }
        if let Some(mut cue) = cue {
            cue.text = buffer;
            Some(Block::Cue(cue))
        } else if stylesheet {
            Some(Block::Stylesheet(buffer))
        } else if let Some(mut region) = region {
            region.collect_settings(&buffer);
            region.source = buffer;
            Some(Block::Region(region))
        } else {
            None
        }
    }
}

/// "Collect WebVTT cue timings and settings" from a timing line; false when
/// the line is not a valid timing line.
fn collect_timings_and_settings(line: &str, regions: &[SpecRegion], cue: &mut SpecCue) -> bool {
    let b = line.as_bytes();
    let mut pos = 0;
    let skip_ws = |pos: &mut usize| {
        while b.get(*pos).is_some_and(|&c| is_ascii_ws(c as char)) {
            *pos += 1;
        }
    };
    skip_ws(&mut pos);
    let Some(start) = collect_timestamp(b, &mut pos) else {
        return false;
    };
    skip_ws(&mut pos);
    for expected in *b"-->" {
        if b.get(pos) != Some(&expected) {
            return false;
        }
        pos += 1;
    }
    skip_ws(&mut pos);
    let Some(end) = collect_timestamp(b, &mut pos) else {
        return false;
    };
    cue.start = start;
    cue.end = end;
    // Everything consumed so far is ASCII, so `pos` is a char boundary.
    let remainder = &line[pos..];
    cue.parse_settings(remainder, regions);
    cue.settings_text = remainder.to_owned();
    true
}

/// "Collect a WebVTT timestamp" at `pos`: seconds, or `None` for an error.
fn collect_timestamp(b: &[u8], pos: &mut usize) -> Option<f64> {
    let digits = |pos: &mut usize| {
        let start = *pos;
        while b.get(*pos).is_some_and(u8::is_ascii_digit) {
            *pos += 1;
        }
        // ASCII digits: valid UTF-8, and an integer as exact as f64 allows.
        let s = std::str::from_utf8(&b[start..*pos]).unwrap_or_default();
        (s.len(), s.parse::<f64>().unwrap_or(0.0))
    };
    let colon = |pos: &mut usize| {
        let ok = b.get(*pos) == Some(&b':');
        *pos += usize::from(ok);
        ok
    };
    if !b.get(*pos).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let (len1, mut value1) = digits(pos);
    let hours = len1 != 2 || value1 > 59.0;
    if !colon(pos) {
        return None;
    }
    let (len2, mut value2) = digits(pos);
    if len2 != 2 {
        return None;
    }
    let value3;
    if hours || b.get(*pos) == Some(&b':') {
        if !colon(pos) {
            return None;
        }
        let (len3, v3) = digits(pos);
        if len3 != 2 {
            return None;
        }
        value3 = v3;
    } else {
        value3 = value2;
        value2 = value1;
        value1 = 0.0;
    }
    if b.get(*pos) != Some(&b'.') {
        return None;
    }
    *pos += 1;
    let (len4, value4) = digits(pos);
    if len4 != 3 || value2 > 59.0 || value3 > 59.0 {
        return None;
    }
    Some(value1 * 60.0 * 60.0 + value2 * 60.0 + value3 + value4 / 1000.0)
}

/// Runs the W3C WebVTT parser algorithm ("WebVTT file parsing") over a whole
/// file. `Err` is the spec's "the file does not start with the correct WebVTT
/// file signature" (a browser fires `error` on the track); every other
/// problem only drops the block it is in, as the spec says.
pub fn parse_spec(input: &str) -> Result<SpecTrack, ParseError> {
    // UTF-8 decode drops one leading BOM; then the spec's own conversions.
    let input = input.strip_prefix('\u{FEFF}').unwrap_or(input);
    let input = input
        .replace('\0', "\u{FFFD}")
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let bad = |reason: &str| ParseError {
        line: 1,
        reason: reason.into(),
    };
    if input.chars().take(6).count() < 6 {
        return Err(bad("missing WEBVTT signature (file too short)"));
    }
    if !input.starts_with("WEBVTT")
        || !matches!(input[6..].chars().next(), None | Some(' ' | '\t' | '\n'))
    {
        return Err(bad("missing WEBVTT signature"));
    }
    let mut p = Parser {
        input: &input,
        pos: 0,
        seen_cue: false,
        track: SpecTrack::default(),
    };
    p.collect_line(); // the signature line
    if p.at_end() {
        return Ok(p.track);
    }
    p.pos += 1;
    if p.at_end() {
        return Ok(p.track);
    }
    if input.as_bytes()[p.pos] != b'\n' {
        p.collect_block(true); // the header; nothing in it is kept
    } else {
        p.pos += 1;
    }
    p.skip_line_feeds();
    while !p.at_end() {
        match p.collect_block(false) {
            Some(Block::Cue(c)) => p.track.cues.push(c),
            Some(Block::Stylesheet(s)) => p.track.stylesheets.push(s),
            Some(Block::Region(r)) => p.track.regions.push(r),
            None => {}
        }
        p.skip_line_feeds();
    }
    Ok(p.track)
}

/// Reads a WebVTT file into the caption model. Which cues exist, and their
/// ids, times and order, are exactly [`parse_spec`]'s; cue text has the
/// character references `&amp;`, `&lt;`, `&gt;`, `&lrm;`, `&rlm;` and
/// `&nbsp;` decoded; settings are the raw `name:value` strings of the timing
/// line (the last one of each name wins); `regions` holds the text of each
/// REGION block the spec keeps.
pub fn parse(input: &str) -> Result<Track, ParseError> {
    let spec = parse_spec(input)?;
    let cues = spec
        .cues
        .into_iter()
        .map(|c| {
            let mut cue = Cue::new(c.start, c.end, unescape(&c.text));
            cue.id = (!c.id.is_empty()).then_some(c.id);
            cue.settings = parse_settings(&c.settings_text);
            cue
        })
        .collect();
    Ok(Track {
        language: String::new(),
        kind: String::new(),
        cues,
        regions: spec.regions.into_iter().map(|r| r.source).collect(),
    })
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
    fn spec_parser_computes_settings_and_regions() {
        let input = "WEBVTT\n\nREGION\nid:low width:40% lines:2 scroll:up\n\n\
            a\n00:01.000 --> 00:02.000 region:low line:10%,end position:20%,line-left size:50% align:left\nx\n\n\
            b\n00:03.000 --> 00:04.000 line:10% region:low\ny\n\n\
            00:05.000 --> 00:06.000 region:low vertical:rl\nz\n";
        let t = parse_spec(input).unwrap();
        assert_eq!(t.regions.len(), 1);
        let r = &t.regions[0];
        assert_eq!(
            (r.id.as_str(), r.width, r.lines, r.scroll_up),
            ("low", 40.0, 2.0, true)
        );
        let a = &t.cues[0];
        assert_eq!(a.line, LineOrAuto::Number(10.0));
        assert!(!a.snap_to_lines);
        assert_eq!(a.line_align, LineAlign::End);
        assert_eq!(
            (a.position, a.position_align),
            (Some(20.0), PositionAlign::LineLeft)
        );
        assert_eq!((a.size, a.align), (50.0, Align::Left));
        // A line offset (and a size) takes the cue out of its region...
        assert_eq!(a.region, None);
        // ...unless the region setting comes after it; vertical cues never have one.
        assert_eq!(t.cues[1].region, Some(0));
        assert_eq!((t.cues[2].region, t.cues[2].vertical), (None, Vertical::Rl));
        let json = t.cues[1].to_json(&t.regions);
        assert_eq!(json["line"], 10.0);
        assert_eq!(json["region"]["id"], "low");
        assert_eq!(t.cues[2].to_json(&t.regions)["line"], "auto");
    }

    #[test]
    fn parse_keeps_the_spec_parsers_cues() {
        // NULs become U+FFFD (a NUL in the timing line spoils it); timestamps
        // with too few digits are invalid; a timing line inside a cue ends it.
        let input = "WEBVTT\n\n\0id\n00:00.000 --> 00:01.000\nt\0x\n\n\
            00:00:00.000\0 --> 00:00:01.000\nbad\n\n\
            0:00.000 --> 00:01.000\nbad\n\n\
            00:00.000 --> 00:01.000\none\n00:02.000 --> 00:03.000\ntwo\n";
        let spec = parse_spec(input).unwrap();
        let track = parse(input).unwrap();
        let ids: Vec<_> = spec.cues.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["\u{FFFD}id", "", ""]);
        assert_eq!(spec.cues[0].text, "t\u{FFFD}x");
        assert_eq!(track.cues.len(), spec.cues.len());
        assert_eq!(track.cues[1].text, "one");
        assert_eq!(
            (track.cues[2].start, track.cues[2].text.as_str()),
            (2.0, "two")
        );
        // Cue text is kept as collected; `parse` decodes the references.
        let t = parse_spec("WEBVTT\n\n00:00.000 --> 00:01.000\nF &amp; m\n").unwrap();
        assert_eq!(t.cues[0].text, "F &amp; m");
        assert_eq!(parse_spec("\u{FEFF}\u{FEFF}WEBVTT\n").unwrap_err().line, 1);
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
