//! `stemfeed export platform VIDEO --language L --out FILE`: one vertical
//! MP4 with the video's approved captions burned in, for short-video
//! platforms that show no sidecar captions (and whose own automatic
//! captions do not serve Urdu).
//!
//! The largest rendition (made by stemfeed's own encoder from the upload)
//! is decoded, scaled to the profile's frame, and the approved track drawn
//! in the profile's safe area: Nastaliq for Urdu, Punjabi (Shahmukhi),
//! Sindhi and Pashto, Noto Sans otherwise, shaped by Pango. The audio is
//! copied as it is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use stemfeed_captions::bidi;
use stemfeed_core::Config;
use stemfeed_media::burnin::{self, Style, TimedText};
use stemfeed_server::{ServerSettings, tus};

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A vertical H.264/AAC MP4 with an approved caption track burned in.
    Platform(PlatformArgs),
    /// A self-contained static site of approved videos for offline use (USB
    /// stick, SD card, a school's Wi-Fi box); opens from file:// too.
    Bundle(BundleArgs),
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The bundle's directory; a second export into it copies only what changed.
    #[arg(long)]
    out: PathBuf,
    /// Only videos spoken in, or captioned in, this language (ISO 639-1).
    #[arg(long)]
    language: Option<String>,
    /// Only videos filed under this subject (a taxonomy id, e.g. physics).
    #[arg(long)]
    subject: Option<String>,
    /// Only videos whose grade band holds this grade (1–12).
    #[arg(long)]
    grade: Option<String>,
    /// Size budget, e.g. 4GiB, 700MB, 1500000000: videos are taken, most
    /// recently approved first, while they fit.
    #[arg(long, default_value = "4GiB")]
    max_size: String,
    /// Which rendition of each video: the smallest (data-saver, the default)
    /// or the largest.
    #[arg(long, default_value = "smallest", value_parser = ["smallest", "largest"])]
    rendition: String,
}

#[derive(Debug, Args)]
pub struct PlatformArgs {
    /// The video's id (as the review queue and the feed name it).
    video: String,
    /// The caption language to burn in (ISO 639-1): the video's transcript
    /// when it is spoken in it, else its translation.
    #[arg(long)]
    language: String,
    /// Where to write the MP4 (refused if it exists, unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// Profile whose `[platform]` settings apply (default: short-form, built in).
    #[arg(long)]
    profile: Option<PathBuf>,
}

/// Average advance of a character, in ems, with room to spare: what a line
/// of the safe area's width holds (measured: Noto Sans 0.47, Noto Nastaliq
/// Urdu 0.38 on running text).
const LATIN_EM: f64 = 0.55;
const NASTALIQ_EM: f64 = 0.5;

pub fn run(cmd: ExportCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        ExportCommand::Platform(args) => platform(&args, config),
        ExportCommand::Bundle(args) => bundle(&args, config),
    }
}

fn platform(args: &PlatformArgs, config: &Config) -> anyhow::Result<ExitCode> {
    // The jobs' profile unless one is named: its `[platform]` settings.
    let profile = crate::probe_cmd::load_profile(
        args.profile.as_deref().or(config.worker.profile.as_deref()),
    )?;
    let p = &profile.platform;
    if args.out.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let work = tempfile::tempdir().context("creating a work directory")?;
    let input = work.path().join("rendition.mp4");
    let source = runtime.block_on(async {
        let app = review_app(config).await?;
        let source = stemfeed_server::export::platform_source(&app, &args.video, &args.language)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.1))?;
        app.store
            .get_file(&source.rendition_key, &input)
            .await
            .with_context(|| format!("fetching the rendition of {}", args.video))?;
        anyhow::Ok(source)
    })?;

    let nastaliq = bidi::is_rtl_language(&args.language);
    let (font, size, em) = if nastaliq {
        ("Noto Nastaliq Urdu", p.nastaliq_font_px, NASTALIQ_EM)
    } else {
        ("Noto Sans", p.font_px, LATIN_EM)
    };
    let left = (f64::from(p.width) * p.safe_left).round() as u32;
    let right = (f64::from(p.width) * p.safe_right).round() as u32;
    let bottom = (f64::from(p.height) * p.safe_bottom).round() as u32;
    let safe_width = f64::from(p.width.saturating_sub(left + right));
    let max_line = (safe_width / (f64::from(size) * em)).floor().max(8.0) as usize;
    let cues: Vec<TimedText> = source
        .cues
        .iter()
        .map(|c| TimedText {
            start: c.start,
            end: c.end.min(source.duration_s.max(c.start)),
            text: bidi::strip_marks(&c.text),
        })
        .collect();
    let cues = burnin::wrap(
        &cues,
        max_line,
        p.max_lines,
        stemfeed_captions::segment::graphemes,
    );
    let style = Style {
        font: font.to_owned(),
        size_px: size,
        left,
        right,
        bottom,
        crf: p.quantizer,
    };
    // Each drawn line is its own paragraph to Pango, which takes its
    // direction from the first strong character: an Urdu line that starts
    // with "Newton" or "100" would be laid out left to right, its words in
    // reverse. Marked as the WebVTT tracks are (a right-to-left mark first,
    // English terms and numbers isolated) after wrapping, so every line
    // keeps the track's direction.
    let drawn: Vec<TimedText> = cues
        .iter()
        .map(|c| TimedText {
            text: if nastaliq {
                bidi::mark_rtl_text(&c.text)
            } else {
                c.text.clone()
            },
            ..c.clone()
        })
        .collect();
    // Drawn in an isolated child with no credentials, inside the work
    // directory; copied to the destination once complete.
    let burned = work.path().join("burned.mp4");
    let request = crate::burnin_cmd::BurnRequest {
        input: input.clone(),
        output: burned.clone(),
        width: p.width,
        height: p.height,
        cues: drawn,
        style,
        duration_s: source.duration_s,
    };
    let isolation = crate::burnin_cmd::burn_isolated(&request)
        .with_context(|| format!("burning {} into {}", source.track, args.video))?;
    let partial = args.out.with_extension("partial.mp4");
    let placed =
        std::fs::copy(&burned, &partial).and_then(|_| std::fs::rename(&partial, &args.out));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("writing {}", args.out.display()));
    }
    let report = serde_json::json!({
        "video": args.video,
        "title": source.title,
        "track": source.track,
        "version": source.version,
        "rendition": source.rendition_key,
        "captions": cues.iter().map(|c| serde_json::json!({"start": c.start, "end": c.end, "text": c.text})).collect::<Vec<_>>(),
        "out": args.out,
        "width": p.width,
        "height": p.height,
        "safe_area": { "left": left, "right": p.width - right, "bottom": p.height - bottom },
        "font": format!("{font} {size}px"),
        "max_line": max_line,
        "isolation": isolation,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// The review data of this deployment, for commands that read it.
async fn review_app(config: &Config) -> anyhow::Result<std::sync::Arc<stemfeed_server::App>> {
    let server = ServerSettings::new(&config.server, "127.0.0.1:0".parse()?);
    crate::serve::app(
        config,
        server,
        0,
        tus::UploadLimits {
            expiry: Duration::from_secs(1),
            max_open_per_submitter: 0,
            max_bytes_per_submitter: 0,
            min_free_mib: 0,
        },
    )
    .await
}

/// `4GiB`, `700MB`, `1500000000` → bytes.
fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .with_context(|| format!("{s:?} is not a size such as 4GiB or 700MB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("unknown size unit {other:?} (use B, KB, MB, GB, KiB, MiB or GiB)"),
    };
    Ok((n * scale) as u64)
}

/// What a bundle directory holds, by relative path: (bytes, sha256 hex).
type Files = std::collections::BTreeMap<String, (u64, String)>;

/// Writes files into a bundle, skipping those already there unchanged.
struct Sync {
    dir: PathBuf,
    old: Files,
    new: Files,
    copied: usize,
    copied_bytes: u64,
    unchanged: usize,
}

impl Sync {
    fn same(&self, rel: &str, size: u64, sha: &str) -> bool {
        self.old
            .get(rel)
            .is_some_and(|(s, h)| *s == size && h == sha)
            && std::fs::metadata(self.dir.join(rel)).is_ok_and(|m| m.len() == size)
    }

    /// Writes `rel` through a partial file and a rename.
    fn write(
        &mut self,
        rel: &str,
        size: u64,
        fill: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let partial = path.with_extension("partial");
        fill(&partial)?;
        std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
        self.copied += 1;
        self.copied_bytes += size;
        Ok(())
    }

    fn put_bytes(&mut self, rel: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let (size, sha) = (bytes.len() as u64, hex_sha256(bytes));
        if self.same(rel, size, &sha) {
            self.unchanged += 1;
        } else {
            self.write(rel, size, |p| {
                std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))
            })?;
        }
        self.new.insert(rel.to_owned(), (size, sha));
        Ok(())
    }

    /// An object of the store (fetched to `scratch` unless the store is a
    /// local directory), copied only if it differs from the bundle's.
    async fn put_object(
        &mut self,
        store: &dyn stemfeed_store::ObjectStore,
        key: &str,
        rel: &str,
        scratch: &Path,
    ) -> anyhow::Result<()> {
        let source = match store.local_path(key) {
            Some(p) => p,
            None => {
                store
                    .get_file(key, scratch)
                    .await
                    .with_context(|| format!("fetching {key}"))?;
                scratch.to_path_buf()
            }
        };
        let (size, sha) = file_sha256(&source)?;
        if self.same(rel, size, &sha) {
            self.unchanged += 1;
        } else {
            self.write(rel, size, |p| {
                std::fs::copy(&source, p)
                    .map(drop)
                    .with_context(|| format!("copying {key} to {}", p.display()))
            })?;
        }
        self.new.insert(rel.to_owned(), (size, sha));
        Ok(())
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

fn file_sha256(path: &Path) -> anyhow::Result<(u64, String)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, format!("{:x}", hasher.finalize())))
}

const BUNDLE_MANIFEST: &str = "manifest.json";

/// The files an earlier export's `manifest.json` lists.
fn old_files(dir: &Path) -> Files {
    let Ok(bytes) = std::fs::read(dir.join(BUNDLE_MANIFEST)) else {
        return Files::new();
    };
    let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Files::new();
    };
    m["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| {
                    Some((
                        f["path"].as_str()?.to_owned(),
                        (f["bytes"].as_u64()?, f["sha256"].as_str()?.to_owned()),
                    ))
                })
                // Only paths inside the bundle: a doctored manifest must not
                // make the export delete anything else.
                .filter(|(p, _)| safe_relative(p))
                .collect()
        })
        .unwrap_or_default()
}

/// A relative path inside the bundle (no `..`, not absolute).
fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

fn bundle(args: &BundleArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let budget = parse_size(&args.max_size)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(bundle_into(args, config, budget))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

async fn bundle_into(
    args: &BundleArgs,
    config: &Config,
    budget: u64,
) -> anyhow::Result<serde_json::Value> {
    use stemfeed_server::export;
    let app = review_app(config).await?;
    let filter = stemfeed_server::feed::Filter::parse(
        &app,
        args.language.as_deref(),
        args.subject.as_deref(),
        args.grade.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("{}", e.1))?;
    let videos = export::bundle_videos(&app, &filter, args.rendition == "smallest")
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.1))?;
    let css = export::bundle_css();
    // Fixed costs first: the style sheet (with the font), script, licence,
    // and an allowance for the index and manifest.
    let mut used = (css.len() + export::BUNDLE_JS.len() + stemfeed_server::NASTALIQ_LICENSE.len())
        as u64
        + 256 * 1024;
    let mut chosen = Vec::new();
    let mut left_out = Vec::new();
    for v in &videos {
        let poster = match &v.poster_key {
            Some(k) => app.store.head(k).await?.map_or(0, |i| i.size),
            None => 0,
        };
        // The captions twice (file and page) and the page itself.
        let captions: u64 = v.tracks.iter().map(|t| t.vtt.len() as u64 * 3).sum();
        let cost = v.rendition_bytes + poster + captions + 32 * 1024;
        if used + cost <= budget {
            used += cost;
            chosen.push(v);
        } else {
            left_out.push(v.id.clone());
        }
    }
    let mut sync = Sync {
        dir: args.out.clone(),
        old: old_files(&args.out),
        new: Files::new(),
        copied: 0,
        copied_bytes: 0,
        unchanged: 0,
    };
    let scratch = args.out.join(".fetch.partial");
    sync.put_bytes("assets/style.css", css.as_bytes())?;
    sync.put_bytes("assets/player.js", export::BUNDLE_JS.as_bytes())?;
    sync.put_bytes(
        "assets/NotoNastaliqUrdu-LICENSE.txt",
        stemfeed_server::NASTALIQ_LICENSE.as_bytes(),
    )?;
    for v in &chosen {
        let dir = format!("videos/{}", v.id);
        let store = app.store.as_ref();
        sync.put_object(
            store,
            &v.rendition_key,
            &format!("{dir}/video.mp4"),
            &scratch,
        )
        .await?;
        if let Some(k) = &v.poster_key {
            sync.put_object(store, k, &format!("{dir}/poster.jpg"), &scratch)
                .await?;
        }
        // Track names are `<lang>.<kind>`; anything else never becomes a path.
        for t in v.tracks.iter().filter(|t| {
            t.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                && !t.name.starts_with('.')
        }) {
            sync.put_bytes(&format!("{dir}/{}.vtt", t.name), t.vtt.as_bytes())?;
        }
        sync.put_bytes(
            &format!("{dir}/index.html"),
            export::video_html(v).as_bytes(),
        )?;
    }
    let _ = std::fs::remove_file(&scratch);
    sync.put_bytes("index.html", export::index_html(&chosen).as_bytes())?;
    // What an earlier export left that this one does not carry.
    let mut removed = 0;
    for rel in sync.old.keys().filter(|p| !sync.new.contains_key(*p)) {
        let path = args.out.join(rel);
        if std::fs::remove_file(&path).is_ok() {
            removed += 1;
            if let Some(parent) = path.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
    let total: u64 = sync.new.values().map(|(s, _)| s).sum();
    let manifest = serde_json::json!({
        "version": 1,
        "generator": format!("stemfeed {}", env!("CARGO_PKG_VERSION")),
        "filter": {"language": args.language, "subject": args.subject, "grade": args.grade},
        "rendition": args.rendition,
        "max_bytes": budget,
        "total_bytes": total,
        "videos": chosen.iter().map(|v| serde_json::json!({
            "id": v.id,
            "priority": v.priority,
            "title": v.title,
            "language": v.language,
            "subject": v.subject.as_ref().map(|s| &s.0),
            "grade_band": v.grade.as_ref().map(|g| &g.0),
            "tracks": v.tracks.iter().map(|t| &t.name).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "files": sync.new.iter().map(|(p, (s, h))| serde_json::json!({"path": p, "bytes": s, "sha256": h})).collect::<Vec<_>>(),
    });
    // The manifest last: a bundle whose export was cut short keeps the old
    // one, and the next export copies what is missing.
    let text = serde_json::to_vec_pretty(&manifest)?;
    let partial = args.out.join("manifest.json.partial");
    std::fs::write(&partial, &text).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, args.out.join(BUNDLE_MANIFEST))?;
    Ok(serde_json::json!({
        "out": args.out,
        "videos": chosen.iter().map(|v| &v.id).collect::<Vec<_>>(),
        "left_out_for_size": left_out,
        "copied_files": sync.copied,
        "copied_bytes": sync.copied_bytes,
        "unchanged_files": sync.unchanged,
        "removed_files": removed,
        "total_bytes": total + text.len() as u64,
        "max_bytes": budget,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("4GiB").unwrap(), 4 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("700MB").unwrap(), 700_000_000);
        assert_eq!(parse_size("1.5 gb").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("4 bananas").is_err());
        assert!(parse_size("GiB").is_err());
    }

    #[test]
    fn only_paths_inside_the_bundle_are_ever_removed() {
        assert!(safe_relative("videos/v1/video.mp4"));
        for bad in ["", "/etc/passwd", "../x", "videos/../../x", "a//b", "./a"] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }
}
