//! Text normalisation, tokenising and stemming shared by the lexicon and the
//! documents, so both sides of every comparison go through the same function.
//!
//! Arabic-script Urdu is written with several interchangeable code points
//! (Arabic yeh/kaf/heh against the Urdu letters, optional diacritics, tatweel),
//! and caption files carry bidi marks; all are folded away. Latin text is
//! lower-cased. English plurals and the common Urdu plural endings are
//! stripped, so a lexicon lists base forms.

/// Folds one character; `None` drops it.
fn fold(c: char) -> Option<char> {
    match c {
        // Arabic yeh, alef maksura, farsi yeh → Urdu choti yeh.
        'ي' | 'ى' | 'ې' => Some('ی'),
        'ك' => Some('ک'),
        // Arabic heh and teh marbuta → Urdu gol heh.
        'ه' | 'ة' | 'ۃ' => Some('ہ'),
        'أ' | 'إ' | 'آ' | 'ٱ' => Some('ا'),
        'ؤ' => Some('و'),
        'ۓ' => Some('ے'),
        // Harakat, superscript alef, tatweel, zero-width and bidi controls.
        '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{0640}' => None,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => None,
        // Urdu (extended Arabic-Indic) and Arabic-Indic digits → ASCII.
        '\u{06F0}'..='\u{06F9}' => char::from_digit(c as u32 - 0x06F0, 10),
        '\u{0660}'..='\u{0669}' => char::from_digit(c as u32 - 0x0660, 10),
        _ => Some(c),
    }
}

/// A word of a document with its byte range in the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Normalised and stemmed form used for matching.
    pub key: String,
    /// Normalised surface form before stemming (for evidence).
    pub surface: String,
}

/// Splits `text` into normalised, stemmed tokens.
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            let surface = std::mem::take(word);
            out.push(Token {
                key: stem(&surface),
                surface,
            });
        }
    };
    for c in text.chars() {
        let Some(c) = fold(c) else { continue };
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else {
            flush(&mut word, &mut out);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `text` without caption annotations (`[Music]`, `(applause)`, `♪`), which
/// carry no meaning: each becomes a space.
pub fn without_annotations(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => {
                depth = depth.saturating_sub(1);
                kept.push(' ');
            }
            '♪' | '♫' | '♬' => kept.push(' '),
            _ if depth == 0 => kept.push(c),
            _ => {}
        }
    }
    kept
}

/// Lexicon side: the token keys of a term.
pub fn term_keys(term: &str) -> Vec<String> {
    tokens(term).into_iter().map(|t| t.key).collect()
}

fn is_arabic_script(word: &str) -> bool {
    word.chars().any(|c| ('\u{0600}'..='\u{06FF}').contains(&c))
}

/// Light, symmetric stemming: plural endings only.
pub fn stem(word: &str) -> String {
    let chars = word.chars().count();
    if is_arabic_script(word) {
        for suffix in ["یں", "وں", "ات"] {
            if let Some(base) = word.strip_suffix(suffix)
                && base.chars().count() >= 3
            {
                return base.to_owned();
            }
        }
        return word.to_owned();
    }
    if chars <= 3 || !word.is_ascii() {
        return word.to_owned();
    }
    if let Some(base) = word.strip_suffix("ies") {
        return format!("{base}y");
    }
    for suffix in ["sses", "shes", "ches", "xes", "zes"] {
        if word.ends_with(suffix) {
            return word[..word.len() - 2].to_owned();
        }
    }
    if word.ends_with('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
        && !word.ends_with("is")
    {
        return word[..word.len() - 1].to_owned();
    }
    word.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Vec<String> {
        tokens(s).into_iter().map(|t| t.key).collect()
    }

    #[test]
    fn folds_arabic_variants_and_bidi_marks() {
        // Arabic yeh/kaf/heh, a kasra and an RLM against plain Urdu letters.
        assert_eq!(keys("\u{200F}كيميائي"), keys("کیمیائی"));
        assert_eq!(keys("قوّت"), keys("قوت"));
        assert_eq!(keys("خلية"), keys("خلیہ"));
    }

    #[test]
    fn strips_plurals_on_both_sides() {
        assert_eq!(
            keys("Forces, batteries and boxes"),
            ["force", "battery", "and", "box"]
        );
        assert_eq!(keys("gas bus analysis"), ["gas", "bus", "analysis"]);
        assert_eq!(keys("قوتیں"), keys("قوت"));
    }

    #[test]
    fn splits_on_punctuation_and_urdu_digits() {
        assert_eq!(keys("o-level, جماعت ۹"), ["o", "level", "جماعت", "9"]);
    }
}
