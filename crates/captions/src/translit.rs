//! EXPERIMENTAL Gurmukhi → Shahmukhi transliteration for Punjabi.
//!
//! Pakistani Punjabi is written in Shahmukhi (Arabic script); Whisper's `pa`
//! output is sometimes Gurmukhi. This maps letters one by one (with the
//! nukta forms, aspirates as do-chashmi he, word-final vowel and nasal
//! forms). Short vowels are not written, as in ordinary Shahmukhi. It is not
//! a linguistic transliterator: spellings of loanwords and many words differ
//! from how a writer would spell them, so a track made with it is always a
//! draft for a person to correct.

fn consonant(c: char) -> Option<&'static str> {
    Some(match c {
        'ਕ' => "ک",
        'ਖ' => "کھ",
        'ਗ' => "گ",
        'ਘ' => "گھ",
        'ਙ' | 'ਞ' => "ں",
        'ਚ' => "چ",
        'ਛ' => "چھ",
        'ਜ' => "ج",
        'ਝ' => "جھ",
        'ਟ' => "ٹ",
        'ਠ' => "ٹھ",
        'ਡ' => "ڈ",
        'ਢ' => "ڈھ",
        'ਣ' => "ݨ",
        'ਤ' => "ت",
        'ਥ' => "تھ",
        'ਦ' => "د",
        'ਧ' => "دھ",
        'ਨ' => "ن",
        'ਪ' => "پ",
        'ਫ' => "پھ",
        'ਬ' => "ب",
        'ਭ' => "بھ",
        'ਮ' => "م",
        'ਯ' => "ی",
        'ਰ' => "ر",
        'ਲ' | '\u{0A33}' => "ل",
        'ਵ' => "و",
        'ੜ' => "ڑ",
        'ਸ' => "س",
        'ਹ' => "ہ",
        '\u{0A36}' => "ش",
        '\u{0A59}' => "خ",
        '\u{0A5A}' => "غ",
        '\u{0A5B}' => "ز",
        '\u{0A5E}' => "ف",
        _ => return None,
    })
}

fn with_nukta(c: char) -> Option<&'static str> {
    Some(match c {
        'ਸ' => "ش",
        'ਖ' => "خ",
        'ਗ' => "غ",
        'ਜ' => "ز",
        'ਫ' => "ف",
        'ਲ' => "ل",
        _ => return None,
    })
}

fn independent_vowel(c: char) -> Option<&'static str> {
    Some(match c {
        'ਅ' | 'ਇ' | 'ਉ' => "ا",
        'ਆ' => "آ",
        'ਈ' => "ای",
        'ਊ' | 'ਓ' | 'ਔ' => "او",
        'ਏ' | 'ਐ' => "اے",
        _ => return None,
    })
}

/// Vowel sign → (medial form, word-final form).
fn vowel_sign(c: char) -> Option<(&'static str, &'static str)> {
    Some(match c {
        'ਾ' => ("ا", "ا"),
        'ਿ' | 'ੁ' => ("", ""),
        'ੀ' => ("ی", "ی"),
        'ੂ' | 'ੋ' | 'ੌ' => ("و", "و"),
        'ੇ' | 'ੈ' => ("ی", "ے"),
        _ => return None,
    })
}

fn transliterate_word(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let is_last_letter = |i: usize| {
        chars[i + 1..]
            .iter()
            .all(|c| !c.is_alphabetic() && !('\u{0A00}'..='\u{0A7F}').contains(c))
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if chars.get(i + 1) == Some(&'\u{0A3C}')
            && let Some(s) = with_nukta(c)
        {
            out.push_str(s);
            i += 2;
            continue;
        }
        if let Some(s) = consonant(c).or_else(|| independent_vowel(c)) {
            out.push_str(s);
        } else if let Some((medial, last)) = vowel_sign(c) {
            out.push_str(if is_last_letter(i) { last } else { medial });
        } else if matches!(c, 'ਂ' | 'ੰ') {
            out.push(if is_last_letter(i) { 'ں' } else { 'ن' });
        } else if matches!(c, 'ੱ' | '੍' | '\u{0A3C}') {
            // Gemination, virama and stray nukta are not written.
        } else if ('੦'..='੯').contains(&c) {
            out.push(char::from_u32('۰' as u32 + (c as u32 - '੦' as u32)).expect("digit"));
        } else if c == '।' {
            out.push('۔');
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// Transliterates every Gurmukhi word of `text`; other text is kept.
pub fn gurmukhi_to_shahmukhi(text: &str) -> String {
    text.split(' ')
        .map(transliterate_word)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_words() {
        assert_eq!(gurmukhi_to_shahmukhi("ਪੰਜਾਬ"), "پنجاب");
        assert_eq!(gurmukhi_to_shahmukhi("ਪਾਣੀ"), "پاݨی");
        assert_eq!(gurmukhi_to_shahmukhi("ਸ਼ਕਤੀ ।"), "شکتی ۔");
        assert_eq!(gurmukhi_to_shahmukhi("ਹੈ"), "ہے");
        assert_eq!(gurmukhi_to_shahmukhi("Newton ੧੦"), "Newton ۱۰");
    }

    #[test]
    fn output_passes_the_punjabi_script_check() {
        let out = gurmukhi_to_shahmukhi("ਨਿਊਟਨ ਦਾ ਦੂਜਾ ਨਿਯਮ ਬਲ ਬਾਰੇ ਹੈ");
        assert!(crate::script::check("pa", &out).is_ok(), "{out}");
    }
}
