//! `stemfeed worker`: runs jobs from the queue (and turns uploads under
//! `incoming/` into jobs) until stopped. The job loop lives in the worker
//! crate; this wires the command line to it.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use stemfeed_core::Config;
use stemfeed_worker::WorkerOptions;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Name of this worker in leases and logs (default: host name and process id).
    #[arg(long)]
    id: Option<String>,
    /// Exit once no job is runnable (for batch runs and benchmarks).
    #[arg(long)]
    drain: bool,
    /// The stages this worker claims, overriding `worker.stages`:
    /// `transcode` (CPU boxes), `captions,tags` (GPU boxes), or all three.
    #[arg(long, env = "STEMFEED_WORKER_STAGES", value_delimiter = ',')]
    stages: Option<Vec<String>>,
}

/// The pool's options from the configuration: the profile, and this
/// binary as the stage process.
pub fn options(id: Option<String>, drain: bool, config: &Config) -> anyhow::Result<WorkerOptions> {
    Ok(WorkerOptions {
        id,
        drain,
        config: config.clone(),
        profile: crate::probe_cmd::load_profile(config.worker.profile.as_deref())?,
        stage_exe: std::env::current_exe()
            .context("locating the stemfeed binary for stage processes")?,
    })
}

pub fn run(args: &WorkerArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    if let Some(stages) = &args.stages {
        config.worker.stages = stages.iter().map(|s| s.trim().to_owned()).collect();
    }
    config
        .worker
        .check()
        .map_err(|e| anyhow::anyhow!("{e} (from --stages / STEMFEED_WORKER_STAGES)"))?;
    let options = options(args.id.clone(), args.drain, &config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        stemfeed_worker::on_signals(tx);
        stemfeed_worker::run_pool(options, rx).await
    })
}
