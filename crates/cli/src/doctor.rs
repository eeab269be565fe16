//! `stemfeed doctor`: is this machine ready, and if not, what fixes it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use stemfeed_core::Config;
use stemfeed_models::ModelStore;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also load every installed model with whisper.cpp (slower).
    #[arg(long)]
    deep: bool,
}

#[derive(Debug)]
enum Status {
    Ok,
    /// Works, but worth knowing.
    Note,
    Fail,
}

struct Check {
    area: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

pub fn run(args: &DoctorArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let mut checks = vec![check_gstreamer()];
    checks.extend(check_models(config, args.deep));
    checks.push(check_store(&config.data_dir));
    checks.extend(check_queue(config));
    checks.push(check_gpu(config));
    checks.push(check_sandbox(config));
    let mut failed = 0;
    for c in &checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Note => "note",
            Status::Fail => {
                failed += 1;
                "FAIL"
            }
        };
        println!("{tag}  {:<10} {}", c.area, c.detail);
        if let Some(fix) = &c.fix {
            println!("      {:<10} fix: {fix}", "");
        }
    }
    if failed > 0 {
        println!("{failed} check(s) failed: stemfeed is not ready");
        Ok(ExitCode::FAILURE)
    } else {
        println!("ready");
        Ok(ExitCode::SUCCESS)
    }
}

fn check_gstreamer() -> Check {
    if let Err(e) = stemfeed_media::init() {
        return Check {
            area: "gstreamer",
            status: Status::Fail,
            detail: e.to_string(),
            fix: Some("sudo scripts/setup.sh (installs Debian's GStreamer packages)".into()),
        };
    }
    let required = stemfeed_media::elements::REQUIRED;
    let missing = stemfeed_media::elements::missing(required);
    if missing.is_empty() {
        Check {
            area: "gstreamer",
            status: Status::Ok,
            detail: format!(
                "{}, all {} elements present",
                stemfeed_media::gstreamer_version(),
                required.len()
            ),
            fix: None,
        }
    } else {
        let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        packages.sort_unstable();
        packages.dedup();
        Check {
            area: "gstreamer",
            status: Status::Fail,
            detail: format!(
                "missing elements: {}",
                missing
                    .iter()
                    .map(|(e, _)| *e)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix: Some(format!("sudo apt-get install {}", packages.join(" "))),
        }
    }
}

fn check_models(config: &Config, deep: bool) -> Vec<Check> {
    let store = ModelStore::new(&config.models_dir);
    let install_fix = Some("stemfeed models install default".to_owned());
    let mut checks = Vec::new();
    let wanted = &config.asr.model;
    match store.get(wanted) {
        Ok(Some(m)) => {
            let loaded = stemfeed_asr::Model::load(&m.file, false);
            checks.push(match loaded {
                Ok(model) => Check {
                    area: "models",
                    status: Status::Ok,
                    detail: format!(
                        "{wanted} loads ({} layers, {}), {}",
                        model.info().n_audio_layer,
                        m.languages(),
                        m.file.display()
                    ),
                    fix: None,
                },
                Err(e) => Check {
                    area: "models",
                    status: Status::Fail,
                    detail: e.to_string(),
                    fix: Some(format!("stemfeed models install {wanted}")),
                },
            });
        }
        Ok(None) => checks.push(Check {
            area: "models",
            status: Status::Fail,
            detail: format!(
                "configured model {wanted} is not installed in {}",
                store.root().display()
            ),
            fix: install_fix,
        }),
        Err(e) => checks.push(Check {
            area: "models",
            status: Status::Fail,
            detail: e.to_string(),
            fix: install_fix,
        }),
    }
    if deep {
        for m in store.list().unwrap_or_default() {
            let loads = match m.kind {
                stemfeed_models::store::ModelKind::Whisper => {
                    stemfeed_asr::Model::load(&m.file, false).is_ok()
                }
                stemfeed_models::store::ModelKind::Vad => {
                    stemfeed_asr::silero::SileroVad::load(&m.file).is_ok()
                }
            };
            let ok = store.verify(&m).unwrap_or(false) && loads;
            checks.push(Check {
                area: "models",
                status: if ok { Status::Ok } else { Status::Fail },
                detail: format!(
                    "{}: {}",
                    m.name,
                    if ok {
                        "checksum matches, loads"
                    } else {
                        "corrupt or unloadable"
                    }
                ),
                fix: (!ok).then(|| format!("stemfeed models install {}", m.name)),
            });
        }
    }
    checks
}

/// The embedded object store and catalog live under the data directory; it
/// must exist (or be creatable) and be writable.
fn check_store(data_dir: &Path) -> Check {
    let probe = data_dir.join(".doctor-probe");
    let result = std::fs::create_dir_all(data_dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) => Check {
            area: "store",
            status: Status::Ok,
            detail: format!("embedded store: {} is writable", data_dir.display()),
            fix: None,
        },
        Err(e) => Check {
            area: "store",
            status: Status::Fail,
            detail: format!("embedded store: {}: {e}", data_dir.display()),
            fix: Some(
                "set data_dir in stemfeed.toml (or STEMFEED_DATA_DIR) to a writable directory"
                    .into(),
            ),
        },
    }
}

/// The configured object store answers a listing and the catalog opens
/// (running its migrations) and counts its jobs.
fn check_queue(config: &Config) -> Vec<Check> {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    runtime.block_on(async {
        let store = match stemfeed_worker::open_store(config).await {
            Ok(s) => match s.list(stemfeed_worker::ingest::INCOMING).await {
                Ok(objects) => Check {
                    area: "objects",
                    status: Status::Ok,
                    detail: format!(
                        "{}: {} upload(s) waiting in incoming/",
                        s.describe(),
                        objects.len()
                    ),
                    fix: None,
                },
                Err(e) => Check {
                    area: "objects",
                    status: Status::Fail,
                    detail: format!("{}: {e}", s.describe()),
                    fix: Some("check [store] url/endpoint and the AWS_* credentials".into()),
                },
            },
            Err(e) => Check {
                area: "objects",
                status: Status::Fail,
                detail: format!("{e:#}"),
                fix: Some("set [store] url to file:DIR or s3://BUCKET".into()),
            },
        };
        let queue = match stemfeed_worker::open_catalog(config).await {
            Ok(c) => match tokio::task::spawn_blocking(move || {
                c.counts().map(|n| (c.describe().to_owned(), n))
            })
            .await
            {
                Ok(Ok((url, counts))) => Check {
                    area: "queue",
                    status: Status::Ok,
                    detail: format!(
                        "{url}: {} queued, {} running, {} in review, {} dead",
                        counts[&stemfeed_queue::JobState::Queued],
                        stemfeed_queue::JobState::ACTIVE
                            .iter()
                            .map(|s| counts[s])
                            .sum::<i64>(),
                        counts[&stemfeed_queue::JobState::InReview],
                        counts[&stemfeed_queue::JobState::Dead],
                    ),
                    fix: None,
                },
                other => Check {
                    area: "queue",
                    status: Status::Fail,
                    detail: format!("{other:?}"),
                    fix: Some("check [catalog] url".into()),
                },
            },
            Err(e) => Check {
                area: "queue",
                status: Status::Fail,
                detail: format!("{e:#}"),
                fix: Some(
                    "check [catalog] url (sqlite:PATH or postgres://…) and that the server is up"
                        .into(),
                ),
            },
        };
        vec![store, queue, check_disk(config)]
    })
}

/// The work directory's free space against the worker's floor.
fn check_disk(config: &Config) -> Check {
    let dir = config.data_dir.join("work");
    let probe = if dir.exists() {
        dir.clone()
    } else {
        config.data_dir.clone()
    };
    let probe = if probe.exists() {
        probe
    } else {
        PathBuf::from(".")
    };
    let floor = config.worker.min_free_mib;
    match stemfeed_worker::wiring::free_mib(&probe) {
        Ok(free) if free < floor => Check {
            area: "disk",
            status: Status::Fail,
            detail: format!(
                "{}: {free} MiB free, under worker.min_free_mib = {floor}: workers claim no jobs",
                dir.display()
            ),
            fix: Some("free space on that file system, or move data_dir".into()),
        },
        Ok(free) => Check {
            area: "disk",
            status: Status::Ok,
            detail: format!("{}: {free} MiB free (floor {floor} MiB)", dir.display()),
            fix: None,
        },
        Err(e) => Check {
            area: "disk",
            status: Status::Fail,
            detail: format!("{}: {e}", probe.display()),
            fix: None,
        },
    }
}

/// Whether stage processes can be locked down here (as the worker checks
/// before it starts).
fn check_sandbox(config: &Config) -> Check {
    let report = std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|exe| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(stemfeed_pipeline::isolate::check_sandbox(
                    &stemfeed_pipeline::isolate::Isolation { exe },
                ))
        });
    match report {
        Ok(r) if r.complete() => Check {
            area: "sandbox",
            status: Status::Ok,
            detail: format!("stage processes: {r}"),
            fix: None,
        },
        Ok(r) => Check {
            area: "sandbox",
            status: if config.worker.require_sandbox { Status::Fail } else { Status::Note },
            detail: format!("stage processes: {r}"),
            fix: Some("a kernel with Landlock ABI 6 (Linux 6.12+) and user namespaces; or worker.require_sandbox = false to accept running decoders unconfined".into()),
        },
        Err(e) => Check {
            area: "sandbox",
            status: Status::Fail,
            detail: e,
            fix: None,
        },
    }
}

fn check_gpu(config: &Config) -> Check {
    let built_with_gpu = cfg!(feature = "cuda");
    let nvidia = Path::new("/dev/nvidia0").exists();
    let (status, detail, fix) = match (built_with_gpu, nvidia) {
        (true, true) => (
            Status::Ok,
            "CUDA build, NVIDIA device present".to_owned(),
            None,
        ),
        (true, false) => (
            Status::Note,
            "CUDA build but no NVIDIA device: Whisper falls back to CPU".to_owned(),
            None,
        ),
        (false, true) => (
            Status::Note,
            "NVIDIA device present but this build is CPU-only".to_owned(),
            Some("cargo build --release --features cuda".to_owned()),
        ),
        (false, false) => (Status::Note, "CPU only (no NVIDIA device)".to_owned(), None),
    };
    let detail = if config.asr.gpu {
        detail
    } else {
        format!("{detail}; GPU disabled by asr.gpu = false")
    };
    // A GPU box is meant for the captions stage, a CPU box for transcoding.
    let w = &config.worker;
    let detail = match (w.transcodes(), w.captions_and_tags(), nvidia) {
        (true, false, true) => format!(
            "{detail}; worker.stages = [\"transcode\"] leaves this GPU idle (x264 runs on the CPU)"
        ),
        (false, true, false) => format!(
            "{detail}; worker.stages claims only captions and tags, which run on the CPU here"
        ),
        _ => format!("{detail}; worker.stages = {:?}", w.stages),
    };
    Check {
        area: "gpu",
        status,
        detail,
        fix,
    }
}
