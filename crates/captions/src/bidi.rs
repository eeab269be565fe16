//! Right-to-left lines that render right in every WebVTT player.
//!
//! WebVTT has no per-cue direction: a line takes the direction of its first
//! strong character, so an Urdu line that begins with "Newton" renders
//! left-to-right and its word order looks reversed. Each RTL line therefore
//! starts with RIGHT-TO-LEFT MARK (U+200F), and every embedded left-to-right
//! run (English terms, numbers, formulas such as "F = ma") is wrapped in
//! LEFT-TO-RIGHT ISOLATE (U+2066) … POP DIRECTIONAL ISOLATE (U+2069).

pub const RLM: char = '\u{200F}';
pub const LRI: char = '\u{2066}';
pub const PDI: char = '\u{2069}';
const MARKS: [char; 7] = [
    '\u{200E}', '\u{200F}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{061C}',
];

/// Languages written right to left that stemfeed captions.
pub fn is_rtl_language(code: &str) -> bool {
    matches!(
        code,
        "ur" | "sd" | "ps" | "ar" | "fa" | "ug" | "yi" | "he" | "skr" | "pnb"
    )
}

/// Arabic-script letters (Urdu, Sindhi, Pashto, Shahmukhi Punjabi).
pub fn is_arabic_script(c: char) -> bool {
    matches!(c, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{08A0}'..='\u{08FF}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
        && c.is_alphabetic()
}

fn is_ltr_strong(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || (c.is_alphabetic() && !is_arabic_script(c) && !matches!(c, '\u{0590}'..='\u{05FF}'))
}

/// A token that belongs in a left-to-right run: it has LTR letters or
/// digits and no Arabic-script letter.
fn is_ltr_token(token: &str) -> bool {
    token
        .chars()
        .any(|c| is_ltr_strong(c) || c.is_ascii_digit())
        && !token.chars().any(is_arabic_script)
}

/// Symbols that join LTR tokens into one formula run ("F = m × a").
fn is_formula_glue(token: &str) -> bool {
    !token.is_empty() && token.chars().all(|c| "=+-−×÷*/^<>≤≥≈±%().²³".contains(c))
}

/// Marks one line of an RTL track. Idempotent: existing marks are removed first.
pub fn mark_rtl_line(line: &str) -> String {
    let clean = strip_marks(line);
    let tokens: Vec<&str> = clean.split(' ').collect();
    let mut out = String::with_capacity(clean.len() + 8);
    out.push(RLM);
    let mut i = 0;
    while i < tokens.len() {
        if i > 0 {
            out.push(' ');
        }
        if is_ltr_token(tokens[i]) {
            // Extend the run over further LTR tokens and formula glue between them.
            let mut end = i + 1;
            let mut j = i + 1;
            while j < tokens.len() && (is_ltr_token(tokens[j]) || is_formula_glue(tokens[j])) {
                if is_ltr_token(tokens[j]) {
                    end = j + 1;
                }
                j += 1;
            }
            out.push(LRI);
            out.push_str(&tokens[i..end].join(" "));
            out.push(PDI);
            i = end;
        } else {
            out.push_str(tokens[i]);
            i += 1;
        }
    }
    out
}

/// Marks every line of a cue's text.
pub fn mark_rtl_text(text: &str) -> String {
    text.split('\n')
        .map(mark_rtl_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Removes directional marks and isolates (for editing and comparison).
pub fn strip_marks(text: &str) -> String {
    text.chars().filter(|c| !MARKS.contains(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urdu_line_starting_with_an_english_term_renders_rtl() {
        let marked = mark_rtl_line("Newton کا دوسرا قانون F = ma ہے");
        assert!(marked.starts_with(RLM));
        assert_eq!(
            marked,
            "\u{200F}\u{2066}Newton\u{2069} کا دوسرا قانون \u{2066}F = ma\u{2069} ہے"
        );
        assert_eq!(strip_marks(&marked), "Newton کا دوسرا قانون F = ma ہے");
        assert_eq!(mark_rtl_line(&marked), marked, "idempotent");
    }

    #[test]
    fn numbers_are_isolated_and_pure_urdu_only_gets_the_mark() {
        assert_eq!(
            mark_rtl_line("رفتار 9.8 ہے"),
            "\u{200F}رفتار \u{2066}9.8\u{2069} ہے"
        );
        assert_eq!(mark_rtl_line("قوت اور حرکت"), "\u{200F}قوت اور حرکت");
    }
}
