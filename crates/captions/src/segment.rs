//! Word timings → caption cues, following the profile's rules.
//!
//! Greedy, one pass: words are added to the current cue while it still fits
//! (lines, line length, duration, reading speed); a cue is closed early at a
//! sentence end, at a clause boundary once it is reasonably full, and at a
//! pause in the speech. Words are never split. Timing then gives every cue at
//! least the minimum duration and enough time to be read, extending into the
//! silence after it and, when speech runs on, delaying the next cue a little
//! (never more than [`MAX_LAG`] behind its first word).

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::cue::{Cue, Word};

/// The rules every cue must satisfy. Defaults follow the Netflix timed-text
/// guidelines stemfeed's profiles start from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    pub max_line_graphemes: usize,
    pub max_lines: usize,
    pub min_duration: f64,
    pub max_duration: f64,
    /// Minimum gap between cues, seconds (2 frames at the video's rate).
    pub min_gap: f64,
    /// Reading speed ceiling, grapheme clusters per second (line breaks excluded).
    pub max_cps: f64,
    /// A pause at least this long always ends a cue.
    pub pause_break: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_line_graphemes: 42,
            max_lines: 2,
            min_duration: 0.833,
            max_duration: 7.0,
            min_gap: 2.0 / 30.0,
            max_cps: 17.0,
            pause_break: 0.8,
        }
    }
}

/// How far a cue may be shown after its first word starts, when earlier cues
/// needed more time to be read.
pub const MAX_LAG: f64 = 1.0;

pub fn graphemes(text: &str) -> usize {
    text.graphemes(true).count()
}

fn ends_sentence(word: &str) -> bool {
    word.trim_end().ends_with(['.', '?', '!', '؟', '۔', '।'])
}

fn ends_clause(word: &str) -> bool {
    word.trim_end().ends_with([',', ';', ':', '،', '؛'])
}

/// Breaks `words` (already trimmed) into at most `max_lines` lines of at
/// most `max` graphemes, as balanced as possible and preferring a break
/// after punctuation. `None` if they do not fit.
pub fn wrap(words: &[&str], max: usize, max_lines: usize) -> Option<Vec<String>> {
    let one = words.join(" ");
    if graphemes(&one) <= max {
        return Some(vec![one]);
    }
    if max_lines < 2 || words.len() < 2 {
        return None;
    }
    // Two lines is the common case and all rules allow; choose the best split.
    let mut best: Option<(f64, usize)> = None;
    for split in 1..words.len() {
        let (a, b) = (words[..split].join(" "), words[split..].join(" "));
        let (la, lb) = (graphemes(&a), graphemes(&b));
        if la > max || lb > max {
            continue;
        }
        let mut cost = (la as f64 - lb as f64).abs();
        if ends_sentence(words[split - 1]) || ends_clause(words[split - 1]) {
            cost -= max as f64 / 3.0;
        }
        // Prefer the bottom line longer (the reader's eye starts low).
        if la > lb {
            cost += 1.0;
        }
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, split));
        }
    }
    best.map(|(_, s)| vec![words[..s].join(" "), words[s..].join(" ")])
}

fn cue_text_len(words: &[&str]) -> usize {
    graphemes(&words.join(" "))
}

/// Groups words into cues and times them.
pub fn segment(words: &[Word], rules: &Rules) -> Vec<Cue> {
    let words: Vec<Word> = words
        .iter()
        .filter(|w| !w.text.trim().is_empty())
        .map(|w| Word {
            text: w.text.trim().to_owned(),
            ..w.clone()
        })
        .collect();
    let capacity = rules.max_line_graphemes * rules.max_lines;
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    for i in 0..words.len() {
        let texts: Vec<&str> = words[start..=i].iter().map(|w| w.text.as_str()).collect();
        let fits = wrap(&texts, rules.max_line_graphemes, rules.max_lines).is_some()
            && words[i].end - words[start].start <= rules.max_duration - 0.05;
        if !fits && i > start {
            groups.push(start..i);
            start = i;
        }
        let len = cue_text_len(
            &words[start..=i]
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>(),
        );
        let pause = words
            .get(i + 1)
            .map_or(0.0, |next| next.start - words[i].end);
        let full = len as f64 / capacity as f64;
        if i + 1 < words.len()
            && (pause >= rules.pause_break
                || (ends_sentence(&words[i].text) && full >= 0.3)
                || (ends_clause(&words[i].text) && full >= 0.6))
        {
            groups.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < words.len() {
        groups.push(start..words.len());
    }

    let mut cues: Vec<Cue> = Vec::with_capacity(groups.len());
    let mut prev_end = f64::NEG_INFINITY;
    for (g, range) in groups.iter().enumerate() {
        let group = &words[range.clone()];
        let texts: Vec<&str> = group.iter().map(|w| w.text.as_str()).collect();
        let lines = wrap(&texts, rules.max_line_graphemes, rules.max_lines)
            .unwrap_or_else(|| vec![texts.join(" ")]);
        let text = lines.join("\n");
        let start = group[0].start.max(prev_end + rules.min_gap);
        let spoken_end = group.last().expect("groups are non-empty").end;
        let reading = graphemes(&text.replace('\n', "")) as f64 / rules.max_cps;
        let wanted = spoken_end
            .max(start + rules.min_duration)
            .max(start + reading);
        // Room before the next cue: its first word, allowing it to lag a little.
        let limit = groups.get(g + 1).map_or(f64::INFINITY, |next| {
            words[next.start].start + MAX_LAG - rules.min_gap - rules.min_duration
        });
        let end = wanted
            .min(start + rules.max_duration)
            .min(limit.max(spoken_end))
            .max(start + rules.min_duration.min(wanted - start));
        let confidence = group.iter().map(|w| w.probability).sum::<f32>() / group.len() as f32;
        let mut cue = Cue::new(start, end, text);
        cue.confidence = Some(confidence);
        cue.words = group.to_vec();
        prev_end = end;
        cues.push(cue);
    }
    cues
}

/// Every rule a cue breaks, in words; empty when it satisfies them all.
pub fn violations(cues: &[Cue], rules: &Rules) -> Vec<String> {
    let mut out = Vec::new();
    for (i, c) in cues.iter().enumerate() {
        let lines: Vec<&str> = c.lines().collect();
        if lines.len() > rules.max_lines {
            out.push(format!("cue {i}: {} lines", lines.len()));
        }
        for l in &lines {
            let n = graphemes(&crate::bidi::strip_marks(l));
            if n > rules.max_line_graphemes {
                out.push(format!("cue {i}: line of {n} graphemes"));
            }
        }
        let d = c.end - c.start;
        if d < rules.min_duration - 1e-6 || d > rules.max_duration + 1e-6 {
            out.push(format!("cue {i}: duration {d:.3} s"));
        }
        let chars = graphemes(&crate::bidi::strip_marks(&c.text.replace('\n', "")));
        if chars as f64 / d > rules.max_cps + 1e-6 {
            out.push(format!(
                "cue {i}: {:.1} characters per second",
                chars as f64 / d
            ));
        }
        if let Some(next) = cues.get(i + 1)
            && next.start - c.end < rules.min_gap - 1e-6
        {
            out.push(format!(
                "cue {i}: gap {:.3} s to the next cue",
                next.start - c.end
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(spec: &[(&str, f64, f64)]) -> Vec<Word> {
        spec.iter()
            .map(|(t, s, e)| Word {
                text: (*t).into(),
                start: *s,
                end: *e,
                probability: 0.9,
            })
            .collect()
    }

    /// A small deterministic generator (xorshift) for property tests without
    /// an extra dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (self.next() % 10_000) as f64 / 10_000.0 * (hi - lo)
        }
    }

    const ALPHABETS: [&str; 3] = [
        "abcdefghijklmnopqrstuvwxyz",
        "ابتثجحخدذرزسشصضطظعغفقکگلمنوہیے",
        "0123456789",
    ];

    fn random_stream(rng: &mut Rng) -> Vec<Word> {
        let mut t = rng.range(0.0, 2.0);
        let mut out = Vec::new();
        for _ in 0..(5 + rng.next() % 120) {
            let alphabet: Vec<char> = ALPHABETS[(rng.next() % 3) as usize].chars().collect();
            let len = 1 + (rng.next() % 11) as usize;
            let mut text: String = (0..len)
                .map(|_| alphabet[(rng.next() as usize) % alphabet.len()])
                .collect();
            match rng.next() % 12 {
                0 => text.push('.'),
                1 => text.push(','),
                2 => text.push('۔'),
                _ => {}
            }
            // Speech at a natural pace: about 60 ms per character plus the word.
            let dur = 0.12 + 0.065 * len as f64 * rng.range(0.8, 1.2);
            let gap = if rng.next().is_multiple_of(15) {
                rng.range(0.5, 3.0)
            } else {
                rng.range(0.0, 0.15)
            };
            out.push(Word {
                text,
                start: t,
                end: t + dur,
                probability: rng.range(0.2, 1.0) as f32,
            });
            t += dur + gap;
        }
        out
    }

    #[test]
    fn every_cue_of_random_word_streams_satisfies_the_rules() {
        let rules = Rules::default();
        let mut rng = Rng(0x5eed_cafe_f00d);
        for case in 0..400 {
            let stream = random_stream(&mut rng);
            let cues = segment(&stream, &rules);
            let v = violations(&cues, &rules);
            assert!(v.is_empty(), "case {case}: {v:?}\n{cues:#?}");
            // Words are never split or lost, and stay in order.
            let joined: Vec<String> = cues
                .iter()
                .flat_map(|c| c.text.split([' ', '\n']).map(str::to_owned))
                .collect();
            let original: Vec<String> = stream.iter().map(|w| w.text.clone()).collect();
            assert_eq!(joined, original, "case {case}");
            // Cues follow the speech: none starts before its first word or lags by more than MAX_LAG.
            for c in &cues {
                let first = c.words[0].start;
                assert!(
                    c.start >= first - 1e-9 && c.start <= first + MAX_LAG + 1e-9,
                    "case {case}: {c:?}"
                );
            }
        }
    }

    #[test]
    fn breaks_at_sentence_ends_and_pauses() {
        let w = words(&[
            ("Force", 0.0, 0.4),
            ("equals", 0.45, 0.8),
            ("mass", 0.85, 1.1),
            ("times", 1.15, 1.4),
            ("acceleration.", 1.45, 2.2),
            ("Now", 2.3, 2.5),
            ("watch", 2.55, 2.8),
            ("this.", 4.5, 4.9),
        ]);
        let cues = segment(&w, &Rules::default());
        let texts: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Force equals mass times acceleration.",
                "Now watch",
                "this."
            ]
        );
        assert!(violations(&cues, &Rules::default()).is_empty());
    }

    #[test]
    fn long_text_wraps_into_two_balanced_lines() {
        let lines = wrap(
            &"the quick brown fox jumps over the lazy dog and keeps on running far"
                .split(' ')
                .collect::<Vec<_>>(),
            42,
            2,
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| graphemes(l) <= 42));
    }
}
