//! `stemfeed stage` (hidden): the child process a worker runs each stage
//! in. It locks itself down first (descriptors, limits, network), then
//! reads one request on stdin and answers on stdout.

use std::process::ExitCode;

use clap::Args;
use stemfeed_pipeline::child::{self, ChildLimits};

#[derive(Debug, Args)]
pub struct StageArgs {
    /// Address-space limit, MiB (0 = none).
    #[arg(long, default_value_t = 0)]
    memory_mib: u64,
    /// Largest file written, MiB.
    #[arg(long, default_value_t = 4096)]
    file_mib: u64,
    /// CPU seconds over all threads (0 = none).
    #[arg(long, default_value_t = 0)]
    cpu_seconds: u64,
    /// Open descriptors.
    #[arg(long, default_value_t = 1024)]
    open_files: u64,
    /// Lock down as a stage would and print what held, as JSON.
    #[arg(long)]
    check: bool,
}

pub fn run(args: &StageArgs) -> ExitCode {
    let limits = ChildLimits {
        memory_mib: args.memory_mib,
        file_mib: args.file_mib,
        cpu_seconds: args.cpu_seconds,
        open_files: args.open_files,
    };
    match child::harden(&limits) {
        Ok(hardening) if args.check => {
            let report = child::check(&hardening);
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(hardening) => {
            child::serve(&hardening);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stage: cannot isolate this process: {e}");
            ExitCode::FAILURE
        }
    }
}
