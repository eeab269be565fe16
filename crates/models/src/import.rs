//! `models import`: a CTranslate2 Whisper directory → one ggml file.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::ct2::Ct2Model;
use crate::error::ModelError;
use crate::ggml::{HParams, Plan, Precision};
use crate::mel;
use crate::vocab::Vocabulary;

/// What an import produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub output: PathBuf,
    pub hparams: HParams,
    pub tensors: usize,
    pub ct2_variables: usize,
    pub vocabulary_tokens: usize,
    pub bytes: u64,
    pub precision: Precision,
}

/// Converts `dir` (model.bin + vocabulary.txt, as faster-whisper ships them)
/// into the ggml file `output`. The file appears atomically: it is written
/// beside its destination and renamed only once complete.
pub fn import_dir(
    dir: &Path,
    output: &Path,
    precision: Precision,
) -> Result<ImportReport, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::MissingFile {
            path: dir.to_path_buf(),
            what: "model directory",
        });
    }
    let model_bin = dir.join("model.bin");
    if !model_bin.is_file() {
        return Err(ModelError::MissingFile {
            path: model_bin,
            what: "model.bin",
        });
    }
    let vocab_path = dir.join("vocabulary.txt");
    if !vocab_path.is_file() {
        return Err(ModelError::MissingFile {
            path: vocab_path,
            what: "vocabulary.txt",
        });
    }
    let model = Ct2Model::open(&model_bin)?;
    let vocab = Vocabulary::read(&vocab_path)?;
    let plan = Plan::new(&model, precision)?;
    check_vocabulary(&vocab, &plan.hparams, &vocab_path)?;

    let filters = mel::filterbank(plan.hparams.n_mels);
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(ModelError::io(parent))?;
    let tmp = tempfile_in(parent, output)?;
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(ModelError::io(&tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        plan.write(&model, &vocab, &filters, mel::N_BINS, &mut w)?;
        let file = w.into_inner().map_err(|e| ModelError::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(ModelError::io(&tmp))?;
        std::fs::rename(&tmp, output).map_err(ModelError::io(output))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    let bytes = std::fs::metadata(output)
        .map_err(ModelError::io(output))?
        .len();
    Ok(ImportReport {
        output: output.to_path_buf(),
        hparams: plan.hparams.clone(),
        tensors: plan.tensor_count(),
        ct2_variables: model.variable_count(),
        vocabulary_tokens: vocab.tokens.len(),
        bytes,
        precision,
    })
}

fn tempfile_in(dir: &Path, output: &Path) -> Result<PathBuf, ModelError> {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    Ok(dir.join(format!(".{name}.{}.partial", std::process::id())))
}

/// The vocabulary must belong to the model: whisper.cpp derives special token
/// ids from `n_vocab` and would silently mis-decode a mismatched pair.
fn check_vocabulary(vocab: &Vocabulary, h: &HParams, path: &Path) -> Result<(), ModelError> {
    let expected_eot = if h.is_multilingual() { 50_257 } else { 50_256 };
    let fail = |reason: String| ModelError::Vocabulary {
        path: path.to_path_buf(),
        reason,
    };
    if vocab.end_of_text != expected_eot {
        return Err(fail(format!(
            "<|endoftext|> is token {}, but a {} model with {} embeddings puts it at {expected_eot}",
            vocab.end_of_text,
            if h.is_multilingual() {
                "multilingual"
            } else {
                "English-only"
            },
            h.n_vocab
        )));
    }
    if vocab.tokens.len() > h.n_vocab {
        return Err(fail(format!(
            "{} tokens, more than the model's {} embeddings",
            vocab.tokens.len(),
            h.n_vocab
        )));
    }
    Ok(())
}
