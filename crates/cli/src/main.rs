//! The `stemfeed` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stemfeed_core::Config;

mod accounts_cmd;
mod burnin_cmd;
mod captions_cmd;
mod doctor;
mod eval_cmd;
mod export_cmd;
mod jobs_cmd;
mod models_cmd;
mod probe_cmd;
mod process;
mod serve;
mod stage_cmd;
mod submit_cmd;
mod tagging_cmd;
mod transcribe;
mod worker_cmd;

#[derive(Debug, Parser)]
#[command(
    name = "stemfeed",
    version,
    about = "Short STEM videos in Pakistani languages: transcode, caption, tag, review, publish"
)]
struct Cli {
    /// Configuration file (default: $STEMFEED_CONFIG, else ./stemfeed.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory of installed Whisper models (overrides config and $STEMFEED_MODELS_DIR).
    #[arg(long, global = true)]
    models_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install, import, fetch and list Whisper models.
    #[command(subcommand)]
    Models(models_cmd::ModelsCommand),
    /// Read, check and convert WebVTT and SRT caption files.
    #[command(subcommand)]
    Captions(captions_cmd::CaptionsCommand),
    /// Check that this machine can run stemfeed; prints what is missing and how to fix it.
    Doctor(doctor::DoctorArgs),
    /// Probe, validate and transcode one video into an output directory with manifest.json.
    Process(process::ProcessArgs),
    /// Probe a video and validate it against a profile; prints JSON.
    Probe(probe_cmd::ProbeArgs),
    /// Tag a processed video (subject, topic, grade band, off-topic) and rewrite tags.json.
    Tag(tagging_cmd::TagArgs),
    /// Submit uploads and inspect or cancel jobs in the queue.
    #[command(subcommand)]
    Jobs(jobs_cmd::JobsCommand),
    /// Run the web server (submission API, curator UI, feed) and, unless --no-worker, the workers.
    Serve(serve::ServeArgs),
    /// Upload a video to a stemfeed server (resumable, with progress).
    Submit(submit_cmd::SubmitArgs),
    /// Manage people who log in to the web UI.
    #[command(subcommand)]
    Users(accounts_cmd::UsersCommand),
    /// Manage API tokens for machines.
    #[command(subcommand)]
    Tokens(accounts_cmd::TokensCommand),
    /// Run jobs from the queue (and turn uploads under incoming/ into jobs) until stopped.
    Worker(worker_cmd::WorkerArgs),
    /// Transcribe (or translate) the speech in an audio or video file.
    Transcribe(transcribe::TranscribeArgs),
    /// Measure accuracy on your own recordings (word and character error rates).
    #[command(subcommand)]
    Eval(eval_cmd::EvalCommand),
    /// Export approved videos: burned-in captions for short-video platforms.
    #[command(subcommand)]
    Export(export_cmd::ExportCommand),
    /// Internal: the isolated process a worker runs one stage in.
    #[command(hide = true)]
    Stage(stage_cmd::StageArgs),
    /// Internal: the isolated process a platform export draws captions in.
    #[command(hide = true)]
    BurnIn(burnin_cmd::BurnInArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // A stage process needs no configuration (its request carries what it
    // may know) and must not read the operator's file of credentials.
    let command = match cli.command {
        Command::Stage(args) => return Ok(stage_cmd::run(&args)),
        Command::BurnIn(args) => return Ok(burnin_cmd::run(&args)),
        other => other,
    };
    let mut config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    if let Some(dir) = cli.models_dir {
        config.models_dir = dir;
    }
    match command {
        Command::Models(cmd) => models_cmd::run(cmd, &config),
        Command::Captions(cmd) => captions_cmd::run(cmd),
        Command::Doctor(args) => doctor::run(&args, &config),
        Command::Probe(args) => probe_cmd::run(&args),
        Command::Process(args) => process::run(&args, &config),
        Command::Tag(args) => tagging_cmd::run(&args, &config),
        Command::Jobs(cmd) => jobs_cmd::run(cmd, &config),
        Command::Serve(args) => serve::run(&args, &config),
        Command::Submit(args) => submit_cmd::run(&args),
        Command::Users(cmd) => accounts_cmd::users(cmd, &config),
        Command::Tokens(cmd) => accounts_cmd::tokens(cmd, &config),
        Command::Worker(args) => worker_cmd::run(&args, &config),
        Command::Transcribe(args) => transcribe::run(&args, &config),
        Command::Eval(cmd) => eval_cmd::run(cmd, &config),
        Command::Export(cmd) => export_cmd::run(cmd, &config),
        Command::Stage(_) | Command::BurnIn(_) => {
            unreachable!("handled before the configuration is read")
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEMFEED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
