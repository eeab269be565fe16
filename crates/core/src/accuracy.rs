//! Measured accuracy of models per language (`models/accuracy.toml`,
//! compiled in): what the caption stage may promise about a track before a
//! curator reads it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

type Table = BTreeMap<String, BTreeMap<String, f64>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        toml::from_str(include_str!("../../../models/accuracy.toml"))
            .expect("models/accuracy.toml is valid (checked by tests)")
    })
}

/// The word error rate measured for `model` on real `language` speech, if
/// it has been measured.
pub fn measured_wer(model: &str, language: &str) -> Option<f64> {
    table().get(model)?.get(language).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_holds_rates() {
        assert!(
            table()
                .values()
                .flat_map(|l| l.values())
                .all(|w| (0.0..=5.0).contains(w))
        );
        assert!(measured_wer("base", "ur").is_some());
        assert_eq!(measured_wer("base", "xx"), None);
        assert_eq!(measured_wer("no-such-model", "en"), None);
    }
}
