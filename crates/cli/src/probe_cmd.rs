//! `stemfeed probe`: what an input contains and whether a profile accepts it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use stemfeed_core::{Profile, media_info};

/// Longest a probe may take; a file that cannot be understood by then is refused.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Video file to inspect (only read, never modified).
    input: PathBuf,
    /// Profile to validate against (default: pipelines/short-form.toml, built in).
    #[arg(long)]
    profile: Option<PathBuf>,
}

pub fn load_profile(path: Option<&std::path::Path>) -> anyhow::Result<Profile> {
    Ok(match path {
        Some(p) => Profile::from_file(p)?,
        None => Profile::short_form(),
    })
}

pub fn run(args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let profile = load_profile(args.profile.as_deref())?;
    let info = stemfeed_media::probe::probe(&args.input, PROBE_TIMEOUT)?;
    let verdict = media_info::validate(&info, &profile);
    let report = serde_json::json!({
        "input": args.input,
        "profile": profile.name,
        "media": info,
        "accepted": verdict.as_ref().ok(),
        "rejected": verdict.as_ref().err().map(|r| serde_json::json!({"reason": r.to_string(), "detail": r})),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    match verdict {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(reason) => {
            eprintln!("error: {}: validate: {reason}", args.input.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
