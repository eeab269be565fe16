//! `stemfeed jobs`: the operator's view of the queue — submit a local file,
//! list jobs, show one with its history, cancel.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use stemfeed_core::Config;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Store a video as a new upload and queue its job (the same content twice is one video).
    Submit {
        file: PathBuf,
        #[command(flatten)]
        meta: crate::submit_cmd::MetaArgs,
    },
    /// Jobs and queue depth by state, as JSON.
    List,
    /// One job with its video and event history, as JSON.
    Show { id: i64 },
    /// Cancel a queued job, or ask the worker running it to stop.
    Cancel { id: i64 },
}

pub fn run(cmd: JobsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let catalog = stemfeed_worker::open_catalog(config).await?;
        let c = std::sync::Arc::clone(&catalog);
        let out = match cmd {
            JobsCommand::Submit { file, meta } => {
                let store = stemfeed_worker::open_store(config).await?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "upload".to_owned());
                let meta = meta.into_meta(name.clone());
                let s = stemfeed_worker::ingest::submit_file(&*store, &catalog, &file, &name, &meta, config.worker.max_attempts).await?;
                match s {
                    stemfeed_queue::Submitted::Created { video_id, job_id } => {
                        serde_json::json!({"video": video_id, "job": job_id, "new": true})
                    }
                    stemfeed_queue::Submitted::Duplicate { video_id } => {
                        serde_json::json!({"video": video_id, "new": false, "note": "same content as an earlier upload"})
                    }
                }
            }
            JobsCommand::List => {
                tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let counts: std::collections::BTreeMap<&str, i64> =
                        c.counts()?.into_iter().map(|(s, n)| (s.as_str(), n)).collect();
                    Ok(serde_json::json!({"counts": counts, "jobs": c.jobs(None)?}))
                })
                .await??
            }
            JobsCommand::Show { id } => {
                tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let job = c.job(id)?.with_context(|| format!("no job {id}"))?;
                    let video = c.video(&job.video_id)?;
                    Ok(serde_json::json!({"job": job, "video": video, "events": c.events(id)?}))
                })
                .await??
            }
            JobsCommand::Cancel { id } => {
                let state = tokio::task::spawn_blocking(move || c.cancel(id)).await??;
                let state = state.with_context(|| format!("no job {id}"))?;
                serde_json::json!({"job": id, "state": state.as_str()})
            }
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
