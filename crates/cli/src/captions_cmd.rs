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
        /// Print JSON instead of a summary. WebVTT: each cue as the W3C WebVTT
        /// parser computes it (id, start, end, text, align, line, snapToLines,
        /// lineAlign, position, positionAlign, size, vertical, region) plus
        /// the raw settings strings; SRT: id, start, end, text.
        #[arg(long)]
        json: bool,
    },
    /// Convert between SRT and WebVTT (by the output file's extension).
    Convert { input: PathBuf, output: PathBuf },
}

/// A caption file as read: the caption model, and for WebVTT (`spec` is
/// `Some`) also what the specification's parser computes; the two agree on
/// which cues exist.
struct Read {
    track: Track,
    spec: Option<webvtt::SpecTrack>,
}

fn read(path: &Path) -> anyhow::Result<Read> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // WebVTT is decoded as the spec says (UTF-8, bad bytes become U+FFFD);
    // SRT has to be UTF-8.
    let lossy = String::from_utf8_lossy(&bytes);
    let is_vtt = lossy.trim_start_matches('\u{FEFF}').starts_with("WEBVTT")
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("vtt"));
    let failed = |e: stemfeed_captions::ParseError| anyhow::anyhow!("{}: {e}", path.display());
    if is_vtt {
        let spec = webvtt::parse_spec(&lossy).map_err(failed)?;
        let track = webvtt::parse(&lossy).map_err(failed)?;
        return Ok(Read {
            track,
            spec: Some(spec),
        });
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
    Ok(Read {
        track: srt::parse(&text).map_err(failed)?,
        spec: None,
    })
}

/// The raw `name:value` settings of a cue's timing line (SRT has none).
fn raw_settings(c: &stemfeed_captions::Cue) -> serde_json::Value {
    json!({
        "align": c.settings.align,
        "line": c.settings.line,
        "position": c.settings.position,
        "size": c.settings.size,
        "vertical": c.settings.vertical,
        "region": c.settings.region,
    })
}

pub fn run(cmd: CaptionsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CaptionsCommand::Parse { file, json } => {
            let Read { track, spec } = read(&file)?;
            if json {
                let doc = match spec {
                    // Each cue as the WebVTT spec's parser computes it
                    // (VTTCue's attributes: text as collected, settings
                    // resolved, region expanded), plus the raw settings
                    // strings under "settings".
                    Some(spec) => {
                        let mut doc = spec.to_json();
                        let cues = doc["cues"].as_array_mut().expect("cues are a list");
                        for (c, cue) in cues.iter_mut().zip(&track.cues) {
                            c["settings"] = raw_settings(cue);
                        }
                        doc["format"] = json!("webvtt");
                        doc
                    }
                    None => {
                        let cues: Vec<_> = track
                            .cues
                            .iter()
                            .map(|c| {
                                json!({
                                    "id": c.id,
                                    "start": c.start,
                                    "end": c.end,
                                    "text": c.text,
                                    "settings": raw_settings(c),
                                })
                            })
                            .collect();
                        json!({"format": "srt", "regions": track.regions, "cues": cues})
                    }
                };
                println!("{}", serde_json::to_string_pretty(&doc)?);
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
            let Read { track, .. } = read(&input)?;
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
