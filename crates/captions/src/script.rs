//! Which writing system a transcript is in, word by word.
//!
//! Whisper writes Urdu in Arabic script, Devanagari or Latin (romanised)
//! depending on its language guess; Punjabi wanders between Gurmukhi, Latin
//! and Arabic (Shahmukhi). Counting words per script lets the caption stage
//! refuse the wrong one, while English technical terms inside Urdu speech
//! ("Newton", "DNA") stay allowed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Script {
    Arabic,
    Devanagari,
    Gurmukhi,
    Latin,
    Other,
}

fn script_of(c: char) -> Option<Script> {
    if !c.is_alphabetic() {
        return None;
    }
    Some(match c {
        _ if crate::bidi::is_arabic_script(c) => Script::Arabic,
        '\u{0900}'..='\u{097F}' | '\u{A8E0}'..='\u{A8FF}' => Script::Devanagari,
        '\u{0A00}'..='\u{0A7F}' => Script::Gurmukhi,
        'a'..='z' | 'A'..='Z' | '\u{00C0}'..='\u{024F}' => Script::Latin,
        _ => Script::Other,
    })
}

/// The script of a word: that of most of its letters; `None` for numbers and punctuation.
pub fn word_script(word: &str) -> Option<Script> {
    let mut counts = [0usize; 5];
    for s in word.chars().filter_map(script_of) {
        counts[s as usize] += 1;
    }
    let (i, n) = counts.iter().enumerate().max_by_key(|(_, n)| **n)?;
    (*n > 0).then(|| {
        [
            Script::Arabic,
            Script::Devanagari,
            Script::Gurmukhi,
            Script::Latin,
            Script::Other,
        ][i]
    })
}

/// Words per script in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptCounts {
    pub arabic: usize,
    pub devanagari: usize,
    pub gurmukhi: usize,
    pub latin: usize,
    pub other: usize,
}

impl ScriptCounts {
    pub fn of(text: &str) -> Self {
        let mut c = Self::default();
        for w in text.split_whitespace() {
            match word_script(w) {
                Some(Script::Arabic) => c.arabic += 1,
                Some(Script::Devanagari) => c.devanagari += 1,
                Some(Script::Gurmukhi) => c.gurmukhi += 1,
                Some(Script::Latin) => c.latin += 1,
                Some(Script::Other) => c.other += 1,
                None => {}
            }
        }
        c
    }

    /// Adds another text's counts to these.
    pub fn add(&mut self, other: &Self) {
        self.arabic += other.arabic;
        self.devanagari += other.devanagari;
        self.gurmukhi += other.gurmukhi;
        self.latin += other.latin;
        self.other += other.other;
    }

    pub fn words(&self) -> usize {
        self.arabic + self.devanagari + self.gurmukhi + self.latin + self.other
    }

    pub fn share(&self, n: usize) -> f64 {
        if self.words() == 0 {
            0.0
        } else {
            n as f64 / self.words() as f64
        }
    }
}

/// Largest share of Latin words an Arabic-script track may have: English
/// terms inside Urdu speech are normal, a romanised transcript is not.
pub const MAX_LATIN_SHARE_IN_ARABIC: f64 = 0.4;

/// Does `text` meet the script requirement of `language`? `Err` says why not.
pub fn check(language: &str, text: &str) -> Result<ScriptCounts, String> {
    let c = ScriptCounts::of(text);
    if c.words() == 0 {
        return Ok(c);
    }
    match language {
        "ur" | "sd" | "pa" => {
            let foreign = c.devanagari + c.gurmukhi + c.other;
            if foreign > 0 {
                return Err(format!(
                    "{foreign} of {} words in Devanagari, Gurmukhi or another script; {language} must be Arabic script",
                    c.words()
                ));
            }
            if c.share(c.latin) > MAX_LATIN_SHARE_IN_ARABIC {
                return Err(format!(
                    "{} of {} words in Latin script (romanised); {language} must be Arabic script",
                    c.latin,
                    c.words()
                ));
            }
            Ok(c)
        }
        "hi" => {
            if c.share(c.devanagari) < 1.0 - MAX_LATIN_SHARE_IN_ARABIC {
                return Err(format!(
                    "{} of {} words in Devanagari; hi must be Devanagari",
                    c.devanagari,
                    c.words()
                ));
            }
            Ok(c)
        }
        "en" => {
            if c.share(c.latin) < 0.8 {
                return Err(format!(
                    "only {} of {} words in Latin script",
                    c.latin,
                    c.words()
                ));
            }
            Ok(c)
        }
        _ => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urdu_with_english_terms_passes() {
        assert!(check("ur", "Newton کا دوسرا قانون کہتا ہے کہ force برابر ہے").is_ok());
    }

    #[test]
    fn romanised_or_devanagari_urdu_fails() {
        let e = check("ur", "Newton ka doosra qanoon kehta hai").unwrap_err();
        assert!(e.contains("Latin"), "{e}");
        let e = check("ur", "न्यूटन का दूसरा नियम").unwrap_err();
        assert!(e.contains("Devanagari"), "{e}");
        assert!(
            check("pa", "ਨਿਊਟਨ ਦਾ ਨਿਯਮ")
                .unwrap_err()
                .contains("Gurmukhi")
        );
    }

    #[test]
    fn numbers_do_not_count() {
        assert_eq!(ScriptCounts::of("9.8 = g").words(), 1);
    }
}
