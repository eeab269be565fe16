//! Explicit grade mentions: "class 9", "9th class", "grade 10", "جماعت ۹",
//! "نویں جماعت", "FSc" (through the taxonomy's band terms).

use crate::text::Token;

const LEVEL_WORDS: &[&str] = &[
    "class",
    "grade",
    "std",
    "standard",
    "jamat",
    "jamaat",
    "jamaa",
    "جماعت",
    "کلاس",
];

const ENGLISH_ORDINALS: &[&str] = &[
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth",
];

const ENGLISH_CARDINALS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve",
];

/// Urdu ordinals in the folded spelling [`crate::text::tokens`] produces.
const URDU_ORDINALS: &[&str] = &[
    "پہلی",
    "دوسری",
    "تیسری",
    "چوتھی",
    "پانچویں",
    "چھٹی",
    "ساتویں",
    "اٹھویں",
    "نویں",
    "دسویں",
    "گیارہویں",
    "بارہویں",
];

/// A grade number named by one token: "9", "9th", "9ویں", "ninth", "نویں".
fn grade_number(token: &str) -> Option<u8> {
    let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
    if !digits.is_empty() {
        let rest = &token[digits.len()..];
        let ordinal_suffix = [
            "", "st", "nd", "rd", "th", "vi", "vin", "veen", "ween", "wi", "wein", "ویں", "وی",
        ];
        if !ordinal_suffix.contains(&rest) {
            return None;
        }
        return digits.parse().ok().filter(|g| (1..=12).contains(g));
    }
    let folded = crate::text::tokens(token).pop()?.surface;
    ENGLISH_ORDINALS
        .iter()
        .chain(URDU_ORDINALS)
        .chain(ENGLISH_CARDINALS)
        .position(|w| {
            *w == folded
                || crate::text::tokens(w)
                    .pop()
                    .is_some_and(|t| t.surface == folded)
        })
        .map(|i| (i % 12) as u8 + 1)
}

/// Grades named in `tokens`, with the text that named them.
pub fn mentions(tokens: &[Token]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !LEVEL_WORDS.contains(&t.surface.as_str()) {
            continue;
        }
        // "class 9", "جماعت ۹" (number after) or "9th class", "نویں جماعت" (before).
        let after = tokens
            .get(i + 1)
            .and_then(|n| grade_number(&n.surface).map(|g| (g, n)));
        let before = i
            .checked_sub(1)
            .and_then(|j| grade_number(&tokens[j].surface).map(|g| (g, &tokens[j])));
        if let Some((g, n)) = after {
            out.push((g, format!("{} {}", t.surface, n.surface)));
        } else if let Some((g, n)) = before {
            out.push((g, format!("{} {}", n.surface, t.surface)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokens;

    fn grades(s: &str) -> Vec<u8> {
        mentions(&tokens(s)).into_iter().map(|(g, _)| g).collect()
    }

    #[test]
    fn finds_grades_in_english_urdu_and_roman() {
        assert_eq!(grades("for class 9 students"), [9]);
        assert_eq!(grades("10th class ka chapter"), [10]);
        assert_eq!(grades("ninth grade physics"), [9]);
        assert_eq!(grades("the lesson of class nine"), [9]);
        assert_eq!(grades("نویں جماعت کے طلبہ"), [9]);
        assert_eq!(grades("جماعت ۵ کی ریاضی"), [5]);
        assert_eq!(grades("9ویں کلاس"), [9]);
    }

    #[test]
    fn ignores_numbers_that_are_not_grades() {
        assert!(grades("class 15 minutes later").is_empty());
        assert!(grades("a class of problems, 9 of them").is_empty());
    }
}
