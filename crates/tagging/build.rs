//! Trains the tagger's built-in model on `pipelines/tagging-train/*.toml`
//! when the crate is built, with the same code the library uses
//! (`src/learned/model.rs`), and writes for the library:
//! - `corpus.rs`: the list of training files, which the library compiles in
//!   (for a taxonomy the built-in model does not fit, and the evaluation);
//! - `model.bin`: the trained model, which the binary carries, so no process
//!   spends seconds training it.

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "src/text.rs"]
mod text;

#[allow(dead_code)]
#[path = "src/learned/model.rs"]
mod model;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let dir = manifest.join("../../pipelines/tagging-train");
    for watched in ["src/text.rs", "src/learned/model.rs"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    println!("cargo:rerun-if-changed={}", dir.display());

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("listing the training files").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no training files in {}", dir.display());

    let mut list = String::from("&[\n");
    let mut docs = Vec::new();
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = file_name(path);
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        docs.extend(model::parse_corpus_file(&name, &text));
        list.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.canonicalize().expect("the file was just read")
        ));
    }
    list.push_str("]\n");

    let mut classes: Vec<String> = docs.iter().map(|d| d.subject.clone()).collect();
    classes.sort();
    classes.dedup();
    for class in &classes {
        assert!(
            model::teaches(&docs, class),
            "label {class} has fewer than {} training transcripts",
            model::MIN_EXAMPLES
        );
    }
    let trained = model::train(classes, &docs);
    write(&out.join("corpus.rs"), list.as_bytes());
    write(&out.join("model.bin"), &trained.to_bytes());
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_else(|| panic!("{} is not a UTF-8 file name", path.display()))
        .to_owned()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
