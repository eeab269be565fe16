//! `stemfeed burn-in` (hidden): the process a platform export draws its
//! captions in. Like a stage child, it locks itself down before it reads a
//! byte of its request (inherited descriptors closed, resource limits, no
//! network where the kernel allows), then confines its file access to the
//! export's work directory (Landlock), and is started with no credentials
//! in its environment: decoding and text shaping never run where the
//! store's or the catalog's keys are.

use std::io::Read;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use stemfeed_media::burnin::{self, Style, TimedText};
use stemfeed_media::limits::{DecodeLimit, Watchdog};
use stemfeed_pipeline::child::{self, ChildLimits};

#[derive(Debug, Args)]
pub struct BurnInArgs {
    /// CPU seconds over all threads.
    #[arg(long)]
    cpu_seconds: u64,
}

/// What to draw, read on stdin. `input` and `output` lie in one work
/// directory, the only place the process may read or write.
#[derive(Debug, Serialize, Deserialize)]
pub struct BurnRequest {
    pub input: PathBuf,
    pub output: PathBuf,
    pub width: u32,
    pub height: u32,
    pub cues: Vec<TimedText>,
    pub style: Style,
    pub duration_s: f64,
}

/// The child: harden, read the request, confine, draw.
pub fn run(args: &BurnInArgs) -> ExitCode {
    let limits = ChildLimits {
        memory_mib: 8192,
        file_mib: 8192,
        cpu_seconds: args.cpu_seconds,
        open_files: 256,
    };
    let result = child::harden(&limits)
        .map_err(|e| anyhow::anyhow!("cannot isolate this process: {e}"))
        .and_then(|hardening| {
            let mut text = String::new();
            std::io::stdin()
                .take(child::MAX_REQUEST)
                .read_to_string(&mut text)
                .context("reading the request")?;
            let request: BurnRequest =
                serde_json::from_str(&text).context("parsing the request")?;
            let work = request
                .output
                .parent()
                .context("the output has no directory")?
                .to_path_buf();
            let files = child::confine_to(vec![work.clone()], vec![work])
                .map_err(|e| anyhow::anyhow!("cannot confine this process: {e}"))?;
            tracing::info!(network = hardening.network, files, "burn-in isolated");
            // What held, for the parent's report.
            println!(
                "{}",
                serde_json::json!({"network": hardening.network, "files": files})
            );
            burnin::burn(
                &request.input,
                &request.output,
                request.width,
                request.height,
                &request.cues,
                &request.style,
                DecodeLimit::for_declared(request.duration_s),
                Watchdog::new(
                    Duration::from_secs(60) + Duration::from_secs_f64(request.duration_s * 20.0),
                ),
            )?;
            Ok(())
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("burn-in: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The parent: runs `request` in a `stemfeed burn-in` child with only the
/// kept environment, waits for it, and says why it failed. Returns what
/// the child's isolation held (network, files).
pub fn burn_isolated(request: &BurnRequest) -> anyhow::Result<serde_json::Value> {
    let exe = std::env::current_exe().context("finding stemfeed")?;
    // Generous for x264's medium preset at 1080x1920 on a small machine,
    // and still a bound.
    let cpu_seconds = 120 + (request.duration_s.max(1.0) * 60.0) as u64;
    let mut child = std::process::Command::new(exe)
        .args(["burn-in", &format!("--cpu-seconds={cpu_seconds}")])
        .env_clear()
        .envs(stemfeed_pipeline::isolate::kept_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the burn-in process")?;
    let stdin = child.stdin.take().context("the burn-in process's stdin")?;
    serde_json::to_writer(stdin, request).context("sending the burn-in request")?;
    let output = child
        .wait_with_output()
        .context("waiting for the burn-in process")?;
    if output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        return Ok(stdout
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or(serde_json::Value::Null));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let why = stemfeed_server::export::last_message(&stderr).trim_start_matches("burn-in: ");
    match std::os::unix::process::ExitStatusExt::signal(&output.status) {
        Some(signal) => bail!(
            "the burn-in process was killed by signal {signal} (its limits: {cpu_seconds} CPU seconds, 8 GiB): {why}"
        ),
        None => bail!("{why}"),
    }
}
