//! CTranslate2's `vocabulary.txt` → the raw token bytes ggml stores.
//!
//! CTranslate2 writes one token per line in GPT-2's byte-to-unicode form:
//! every byte is shown as a printable code point (space as `Ġ`, newline as
//! `Ċ`). whisper.cpp wants the raw bytes, so the mapping is inverted here.
//! Only GPT-2's 50,257 base tokens are written, as whisper.cpp's reference
//! converter does (for English-only models that includes `<|endoftext|>`);
//! whisper.cpp derives the special tokens from the vocabulary size itself.

use std::path::Path;

use crate::error::ModelError;

pub const END_OF_TEXT: &str = "<|endoftext|>";
/// Size of the byte-level BPE vocabulary Whisper inherits from GPT-2.
pub const BASE_TOKENS: usize = 50_257;

/// GPT-2's `bytes_to_unicode`, inverted: code point → byte.
fn unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut shifted = 0u32;
    for b in 0u32..256 {
        let cp = if printable(b) {
            b
        } else {
            shifted += 1;
            255 + shifted
        };
        map.insert(char::from_u32(cp).expect("valid code point"), b as u8);
    }
    map
}

/// A Whisper vocabulary as raw bytes, in id order.
#[derive(Debug)]
pub struct Vocabulary {
    /// Every token, special ones included.
    pub tokens: Vec<Vec<u8>>,
    /// Id of `<|endoftext|>`: 50,256 for English-only models, 50,257 for multilingual.
    pub end_of_text: usize,
}

impl Vocabulary {
    /// The tokens a ggml file stores.
    pub fn base_tokens(&self) -> &[Vec<u8>] {
        &self.tokens[..self.tokens.len().min(BASE_TOKENS)]
    }
}

impl Vocabulary {
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ModelError::MissingFile {
                path: path.to_path_buf(),
                what: "vocabulary.txt",
            },
            _ => ModelError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        Self::parse(&text).map_err(|reason| ModelError::Vocabulary {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let lines: Vec<&str> = text.lines().collect();
        let eot = lines
            .iter()
            .position(|l| *l == END_OF_TEXT)
            .ok_or_else(|| format!("no {END_OF_TEXT} token in {} lines", lines.len()))?;
        let map = unicode_to_byte();
        let tokens = lines
            .iter()
            .enumerate()
            .map(|(id, line)| {
                line.chars()
                    .map(|c| {
                        map.get(&c).copied().ok_or_else(|| {
                            format!("token {id} {line:?} has {c:?}, outside GPT-2's byte alphabet")
                        })
                    })
                    .collect::<Result<Vec<u8>, String>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            tokens,
            end_of_text: eot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_a_bijection() {
        let map = unicode_to_byte();
        assert_eq!(map.len(), 256);
        let mut bytes: Vec<u8> = map.values().copied().collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
    }

    #[test]
    fn decodes_gpt2_forms() {
        let v =
            Vocabulary::parse("!\nĠthe\nĊ\nÙĨ\n<|endoftext|>\n<|startoftranscript|>\n").unwrap();
        assert_eq!(
            v.tokens[..4],
            [
                b"!".to_vec(),
                b" the".to_vec(),
                b"\n".to_vec(),
                vec![0xd9, 0x86]
            ]
        );
        assert_eq!(v.tokens[4], b"<|endoftext|>");
        assert_eq!((v.end_of_text, v.tokens.len()), (4, 6));
        // 0xd9 0x86 is U+0646, Arabic letter noon.
        assert_eq!(std::str::from_utf8(&v.tokens[3]).unwrap(), "ن");
    }

    #[test]
    fn rejects_vocabulary_without_end_of_text() {
        assert!(
            Vocabulary::parse("a\nb\n")
                .unwrap_err()
                .contains("<|endoftext|>")
        );
    }

    #[test]
    fn rejects_characters_outside_the_alphabet() {
        let err = Vocabulary::parse("ok\nبad\n<|endoftext|>\n").unwrap_err();
        assert!(err.contains("token 1"), "{err}");
    }
}
