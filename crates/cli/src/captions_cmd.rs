//! `stemfeed captions parse|convert`: read and write WebVTT and SRT.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use stemfeed_captions::{Track, srt, webvtt};

#[derive(Debug, Subcommand)]
pub enum CaptionsCommand {
    /// Parse a WebVTT or SRT file and print its cues.
    Parse {
        file: PathBuf,
        /// Print JSON (id, start, end, text, WebVTT settings) instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Convert between SRT and WebVTT (by the output file's extension).
    Convert { input: PathBuf, output: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    WebVtt,
    Srt,
}

fn read(path: &Path) -> anyhow::Result<(Format, Track)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
    let is_vtt = text.trim_start_matches('\u{FEFF}').starts_with("WEBVTT")
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("vtt"));
    let (format, parsed) = if is_vtt {
        (Format::WebVtt, webvtt::parse(&text))
    } else {
        (Format::Srt, srt::parse(&text))
    };
    let track = parsed.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((format, track))
}

pub fn run(cmd: CaptionsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CaptionsCommand::Parse { file, json } => {
            let (format, track) = read(&file)?;
            if json {
                let cues: Vec<_> = track
                    .cues
                    .iter()
                    .map(|c| {
                        json!({
                            "id": c.id,
                            "start": c.start,
                            "end": c.end,
                            "text": c.text,
                            "settings": {
                                "align": c.settings.align,
                                "line": c.settings.line,
                                "position": c.settings.position,
                                "size": c.settings.size,
                                "vertical": c.settings.vertical,
                                "region": c.settings.region,
                            },
                        })
                    })
                    .collect();
                let format = if format == Format::WebVtt {
                    "webvtt"
                } else {
                    "srt"
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"format": format, "regions": track.regions, "cues": cues})
                    )?
                );
            } else {
                for c in &track.cues {
                    println!(
                        "{:>9.3} → {:>9.3}  {}",
                        c.start,
                        c.end,
                        c.text.replace('\n', " / ")
                    );
                }
                eprintln!("{} cues", track.cues.len());
            }
        }
        CaptionsCommand::Convert { input, output } => {
            let (_, track) = read(&input)?;
            let text = match output
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("vtt") => webvtt::write(&track),
                Some("srt") => srt::write(&track),
                _ => bail!("{}: output must end in .vtt or .srt", output.display()),
            };
            std::fs::write(&output, text)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!("{} cues → {}", track.cues.len(), output.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
