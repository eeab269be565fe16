//! Whisper tokens → words, and the guards that drop hallucinated text.

use stemfeed_captions::Word;

/// One decoded token with whisper.cpp's timing (seconds) and probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub bytes: Vec<u8>,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// Joins BPE tokens into words: a token starting with a space begins a new
/// word. Bytes are joined before decoding because one Urdu letter can be
/// split across two tokens.
pub fn tokens_to_words(tokens: &[Token]) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<(Vec<u8>, f64, f64, Vec<f32>)> = None;
    let flush = |cur: Option<(Vec<u8>, f64, f64, Vec<f32>)>, words: &mut Vec<Word>| {
        if let Some((bytes, start, end, probs)) = cur {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            if !text.is_empty() {
                let probability = probs.iter().sum::<f32>() / probs.len().max(1) as f32;
                words.push(Word {
                    text,
                    start,
                    end: end.max(start),
                    probability,
                });
            }
        }
    };
    for t in tokens {
        let starts_word = t.bytes.first() == Some(&b' ');
        match current.as_mut() {
            Some((bytes, _, end, probs)) if !starts_word => {
                bytes.extend_from_slice(&t.bytes);
                *end = t.end;
                probs.push(t.probability);
            }
            _ => {
                flush(current.take(), &mut words);
                current = Some((t.bytes.clone(), t.start, t.end, vec![t.probability]));
            }
        }
    }
    flush(current, &mut words);
    words
}

/// Text Whisper writes for non-speech ("[Music]", "(applause)", "♪ ♪").
pub fn is_non_speech(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('(') && t.ends_with(')'))
        || t.chars()
            .all(|c| matches!(c, '♪' | '♫' | '🎵' | '🎶' | '*' | '-' | '.' | ' '))
}

/// Length of the longest run of one n-gram (n = 1..=4) repeated back to back.
pub fn longest_repeat(words: &[&str]) -> usize {
    let mut best = 1;
    for n in 1..=4.min(words.len()) {
        for start in 0..n {
            let mut run = 1;
            let mut i = start + n;
            while i + n <= words.len() {
                if words[i..i + n] == words[i - n..i] {
                    run += 1;
                    best = best.max(run);
                } else {
                    run = 1;
                }
                i += n;
            }
        }
    }
    best
}

/// How compressible a text is: characters per distinct 4-character shingle.
/// Natural sentences stay near 1; a runaway loop ("the the the …") grows
/// with its length, like a high gzip compression ratio.
pub fn compression_ratio(text: &str) -> f64 {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 8 {
        return 1.0;
    }
    let shingles: std::collections::HashSet<&[char]> = chars.windows(4).collect();
    chars.len() as f64 / shingles.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &[u8], a: f64, b: f64) -> Token {
        Token {
            bytes: s.to_vec(),
            start: a,
            end: b,
            probability: 0.5,
        }
    }

    #[test]
    fn joins_subword_tokens_and_split_utf8() {
        // "قوت" is d9 82 d9 88 d8 aa; split mid-letter across tokens.
        let tokens = [
            tok(b" New", 0.0, 0.2),
            tok(b"ton", 0.2, 0.4),
            tok(&[b' ', 0xd9], 0.5, 0.6),
            tok(&[0x82, 0xd9, 0x88, 0xd8, 0xaa], 0.6, 0.9),
        ];
        let words = tokens_to_words(&tokens);
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Newton", "قوت"]);
        assert_eq!((words[0].start, words[0].end), (0.0, 0.4));
    }

    #[test]
    fn detects_loops_and_non_speech() {
        let looped: Vec<&str> = "thank you thank you thank you thank you"
            .split(' ')
            .collect();
        assert_eq!(longest_repeat(&looped), 4);
        assert_eq!(
            longest_repeat(
                &"force equals mass times acceleration"
                    .split(' ')
                    .collect::<Vec<_>>()
            ),
            1
        );
        assert!(compression_ratio(&"so so so so so so so so so so so so so so".repeat(3)) > 3.0);
        assert!(compression_ratio("Photosynthesis turns sunlight into chemical energy.") < 1.5);
        assert!(is_non_speech("[Music]") && is_non_speech("♪ ♪") && !is_non_speech("Newton"));
    }
}
