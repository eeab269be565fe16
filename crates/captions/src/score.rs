//! Scoring a transcript against a reference: word and character error
//! rates after a normalisation that forgives what a reader would not call
//! an error — case, punctuation, bidi and joiner marks, Arabic diacritics,
//! the Arabic code points that look like Urdu letters, the digits of the
//! Urdu and Arabic alphabets, and for Punjabi the choice of script
//! (Gurmukhi is folded to Shahmukhi on both sides, so a reference in one
//! script scores a transcript in the other by its words, not its letters).
//!
//! Character error rate is counted without spaces: Urdu writing joins and
//! splits words inconsistently ("کرچکا" / "کر چکا"), which the word rate
//! already counts.

/// The words of `text` as they are compared for `language` (ISO 639-1).
pub fn normalise(language: &str, text: &str) -> Vec<String> {
    let text = if language == "pa" {
        crate::translit::gurmukhi_to_shahmukhi(text)
    } else {
        text.to_owned()
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match fold(c) {
            Fold::Keep(c) => out.push(c),
            Fold::Space => out.push(' '),
            Fold::Drop => {}
        }
    }
    let words: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    if language == "en" {
        english_numbers(words)
    } else {
        words
    }
}

/// English cardinals up to 99 as digits ("twenty one" → "21", "eight" →
/// "8"), so a transcript that writes digits and a reference that spells
/// them (or the reverse) compare by what was said.
fn english_numbers(words: Vec<String>) -> Vec<String> {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let unit = |w: &str| UNITS.iter().position(|u| *u == w);
    let ten = |w: &str| TENS.iter().position(|t| *t == w).map(|i| (i + 2) * 10);
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        if let Some(t) = ten(w) {
            match words
                .get(i + 1)
                .and_then(|n| unit(n))
                .filter(|u| (1..10).contains(u))
            {
                Some(u) => {
                    out.push((t + u).to_string());
                    i += 2;
                }
                None => {
                    out.push(t.to_string());
                    i += 1;
                }
            }
        } else if let Some(u) = unit(w) {
            out.push(u.to_string());
            i += 1;
        } else {
            out.push(words[i].clone());
            i += 1;
        }
    }
    out
}

enum Fold {
    Keep(char),
    Space,
    Drop,
}

fn fold(c: char) -> Fold {
    match c {
        // Arabic code points that Urdu writes with its own letters.
        '\u{064A}' | '\u{0649}' => Fold::Keep('\u{06CC}'), // ي ى → ی
        '\u{0643}' => Fold::Keep('\u{06A9}'),              // ك → ک
        '\u{0647}' | '\u{06D5}' => Fold::Keep('\u{06C1}'), // ه ە → ہ
        '\u{0629}' | '\u{06C3}' => Fold::Keep('\u{06C1}'), // ة ۃ → ہ
        '\u{0623}' | '\u{0625}' | '\u{0671}' => Fold::Keep('\u{0627}'), // أ إ ٱ → ا
        '\u{0624}' => Fold::Keep('\u{0648}'),              // ؤ → و
        '\u{06C2}' => Fold::Keep('\u{06C1}'),              // ۂ → ہ
        // Urdu (Extended Arabic-Indic) and Arabic-Indic digits.
        '\u{06F0}'..='\u{06F9}' => Fold::Keep(char::from_digit(c as u32 - 0x06F0, 10).unwrap_or(c)),
        '\u{0660}'..='\u{0669}' => Fold::Keep(char::from_digit(c as u32 - 0x0660, 10).unwrap_or(c)),
        // Harakat, superscript alef, Quranic marks, tatweel.
        '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{06D6}'..='\u{06ED}' | '\u{0640}' => Fold::Drop,
        // Gurmukhi nukta and addak change no word's identity in references.
        '\u{0A3C}' | '\u{0A71}' => Fold::Drop,
        // Joiners, bidi marks and isolates, BOM.
        '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}' => Fold::Drop,
        // An apostrophe inside a word ("don't") stays part of it.
        '\'' | '\u{2019}' => Fold::Drop,
        _ if c.is_alphanumeric() => Fold::Keep(c),
        // Combining marks of other scripts (Gurmukhi vowel signs, Devanagari
        // matras) are letters of their words.
        _ if is_mark(c) => Fold::Keep(c),
        _ => Fold::Space,
    }
}

/// Combining vowel signs and marks of the Indic scripts Whisper writes
/// Punjabi and Hindi in (not alphanumeric to Rust, yet part of the word).
fn is_mark(c: char) -> bool {
    matches!(c, '\u{0900}'..='\u{0903}' | '\u{093A}'..='\u{094F}' | '\u{0951}'..='\u{0957}'
        | '\u{0962}' | '\u{0963}' | '\u{0A01}'..='\u{0A03}' | '\u{0A3E}'..='\u{0A4D}'
        | '\u{0A51}' | '\u{0A70}' | '\u{0A75}')
}

/// Edits (substitutions, insertions, deletions) between two sequences.
pub fn edit_distance<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> usize {
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(r != h));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[hypothesis.len()]
}

/// Errors and reference length of one utterance, to pool over a set (the
/// rate of a set is total edits over total reference length, not a mean of
/// per-clip rates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Errors {
    pub word_edits: usize,
    pub words: usize,
    pub char_edits: usize,
    pub chars: usize,
}

impl Errors {
    pub fn of(language: &str, reference: &str, hypothesis: &str) -> Self {
        let (r, h) = (
            normalise(language, reference),
            normalise(language, hypothesis),
        );
        let letters = |w: &[String]| w.iter().flat_map(|w| w.chars()).collect::<Vec<char>>();
        let (rc, hc) = (letters(&r), letters(&h));
        Self {
            word_edits: edit_distance(&r, &h),
            words: r.len(),
            char_edits: edit_distance(&rc, &hc),
            chars: rc.len(),
        }
    }

    pub fn add(&mut self, other: Self) {
        self.word_edits += other.word_edits;
        self.words += other.words;
        self.char_edits += other.char_edits;
        self.chars += other.chars;
    }

    /// Word error rate (can exceed 1 when the hypothesis adds words).
    pub fn wer(&self) -> f64 {
        self.word_edits as f64 / self.words.max(1) as f64
    }

    /// Character error rate, spaces not counted.
    pub fn cer(&self) -> f64 {
        self.char_edits as f64 / self.chars.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_ignores_case_and_punctuation() {
        assert_eq!(
            normalise("en", "Mr. Dashwood's \"plan\" — didn't work!"),
            ["mr", "dashwoods", "plan", "didnt", "work"]
        );
        let e = Errors::of("en", "the cat sat", "The cat, sat.");
        assert_eq!((e.word_edits, e.char_edits), (0, 0));
        let e = Errors::of("en", "the cat sat on the mat", "the cat sat on a hat");
        assert_eq!((e.word_edits, e.words), (2, 6));
        assert_eq!(e.chars, 17);
    }

    #[test]
    fn english_numbers_compare_as_digits() {
        assert_eq!(
            normalise("en", "Eight of spades, twenty one pilots, forty"),
            ["8", "of", "spades", "21", "pilots", "40"]
        );
        assert_eq!(
            Errors::of("en", "eight of clubs", "8 of clubs").word_edits,
            0
        );
        assert_eq!(normalise("en", "someone"), ["someone"]);
    }

    #[test]
    fn urdu_folds_letter_variants_diacritics_digits_and_marks() {
        // Arabic kaf/yeh/heh, a zabar, an RLM and an isolate, Urdu digits,
        // the Urdu full stop.
        let arabic_forms = "\u{200F}كيا يه \u{2066}DNA\u{2069} ہَے؟ ۱۲۔";
        let urdu = "کیا یہ dna ہے 12";
        assert_eq!(normalise("ur", arabic_forms), normalise("ur", urdu));
        assert_eq!(Errors::of("ur", urdu, arabic_forms).word_edits, 0);
    }

    #[test]
    fn urdu_spacing_costs_words_not_letters() {
        let e = Errors::of("ur", "وہ کر چکا ہے", "وہ کرچکا ہے");
        assert_eq!((e.word_edits, e.char_edits), (2, 0));
    }

    #[test]
    fn punjabi_is_scored_across_scripts() {
        let gurmukhi = "ਪਾਣੀ";
        let shahmukhi = crate::translit::gurmukhi_to_shahmukhi(gurmukhi);
        assert_ne!(gurmukhi, shahmukhi);
        assert_eq!(Errors::of("pa", gurmukhi, &shahmukhi).word_edits, 0);
        // Vowel signs stay part of their word.
        assert_eq!(normalise("hi", "पानी है").len(), 2);
    }

    #[test]
    fn rates_pool_over_utterances() {
        let mut all = Errors::default();
        all.add(Errors::of("en", "a b c d", "a b c d"));
        all.add(Errors::of("en", "e f", "e x y"));
        assert_eq!((all.word_edits, all.words), (2, 6));
        assert!((all.wer() - 2.0 / 6.0).abs() < 1e-9);
        assert_eq!(Errors::of("en", "", "").wer(), 0.0);
        assert_eq!(edit_distance(&[1, 2, 3], &[]), 3);
    }
}
