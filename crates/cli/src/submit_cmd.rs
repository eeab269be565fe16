//! `stemfeed submit FILE`: uploads a video to a stemfeed server with the tus
//! protocol, in chunks, showing progress; a dropped connection resumes from
//! the server's offset instead of starting again.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Args;

#[derive(Debug, Args)]
pub struct SubmitArgs {
    file: PathBuf,
    /// Server URL, e.g. http://127.0.0.1:8080
    #[arg(long, env = "STEMFEED_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// API token of a submitter (`stemfeed tokens add NAME --role submitter`).
    #[arg(long, env = "STEMFEED_TOKEN")]
    token: String,
    #[command(flatten)]
    meta: MetaArgs,
    /// Chunk size in MiB.
    #[arg(long, default_value_t = 8)]
    chunk_mib: u64,
    /// Resume an upload created earlier (its URL, printed when it started).
    #[arg(long)]
    resume: Option<String>,
    /// Stop after this many bytes (tests resumption; the upload stays resumable).
    #[arg(long, hide = true)]
    stop_after: Option<u64>,
}

/// What a submitter says about an upload (shared by `submit` and `jobs submit`).
#[derive(Debug, Clone, Args)]
pub struct MetaArgs {
    #[arg(long, default_value = "")]
    pub title: String,
    #[arg(long, default_value = "")]
    pub description: String,
    #[arg(long, default_value = "")]
    pub creator: String,
    /// Spoken language hint (ISO 639-1).
    #[arg(long)]
    pub language: Option<String>,
    /// The audience's grade, 1–12.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=12))]
    pub grade: Option<u8>,
}

impl MetaArgs {
    pub fn into_meta(self, filename: String) -> stemfeed_worker::ingest::UploadMeta {
        stemfeed_worker::ingest::UploadMeta {
            filename,
            title: self.title,
            description: self.description,
            creator: self.creator,
            language: self.language,
            grade: self.grade,
        }
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn bar(done: u64, total: u64) {
    let pct = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let filled = (pct / 5.0) as usize;
    eprint!(
        "\r[{}{}] {pct:5.1}%  {done}/{total} bytes",
        "#".repeat(filled),
        " ".repeat(20 - filled.min(20))
    );
    let _ = std::io::stderr().flush();
}

pub fn run(args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let mut file = std::fs::File::open(&args.file)
        .with_context(|| format!("{}: cannot open", args.file.display()))?;
    let total = file.metadata()?.len();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let server = args.server.trim_end_matches('/');
    let auth = format!("Bearer {}", args.token);
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let url = match &args.resume {
        Some(u) => u.clone(),
        None => {
            let mut meta = vec![format!("filename {}", b64(&name))];
            for (k, v) in [
                ("title", &args.meta.title),
                ("description", &args.meta.description),
                ("creator", &args.meta.creator),
            ] {
                if !v.is_empty() {
                    meta.push(format!("{k} {}", b64(v)));
                }
            }
            if let Some(l) = &args.meta.language {
                meta.push(format!("language {}", b64(l)));
            }
            if let Some(g) = args.meta.grade {
                meta.push(format!("grade {}", b64(&g.to_string())));
            }
            let resp = agent
                .post(&format!("{server}/api/uploads"))
                .header("authorization", &auth)
                .header("tus-resumable", "1.0.0")
                .header("upload-length", &total.to_string())
                .header("upload-metadata", &meta.join(","))
                .send_empty()
                .with_context(|| format!("connecting to {server}"))?;
            let status = resp.status().as_u16();
            let mut resp = resp;
            anyhow::ensure!(
                status == 201,
                "{}: server refused the upload ({status}): {}",
                name,
                resp.body_mut().read_to_string().unwrap_or_default()
            );
            let loc = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .context("server sent no Location")?;
            let u = if loc.starts_with("http") {
                loc.to_owned()
            } else {
                format!("{server}{loc}")
            };
            eprintln!("upload {u}; if interrupted, resume with --resume {u}");
            u
        }
    };
    let chunk = (args.chunk_mib.max(1) * 1024 * 1024) as usize;
    let mut retries = 0;
    let mut sent_this_run = 0u64;
    loop {
        let head = agent
            .head(&url)
            .header("authorization", &auth)
            .header("tus-resumable", "1.0.0")
            .call();
        let offset: u64 = match head {
            Ok(r) if r.status().as_u16() == 200 => r
                .headers()
                .get("upload-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .context("no Upload-Offset")?,
            Ok(r) => anyhow::bail!("{url}: status {}", r.status()),
            Err(e) if retries < 5 => {
                retries += 1;
                eprintln!("\n{e}; retrying");
                std::thread::sleep(Duration::from_secs(retries));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        bar(offset, total);
        if offset == total {
            break;
        }
        if args.stop_after.is_some_and(|s| sent_this_run >= s) {
            eprintln!("\nstopped at {offset} bytes; resume with --resume {url}");
            return Ok(ExitCode::from(3));
        }
        file.seek(std::io::SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; chunk.min((total - offset) as usize)];
        file.read_exact(&mut buf)?;
        let resp = agent
            .patch(&url)
            .header("authorization", &auth)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", &offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .send(&buf[..]);
        match resp {
            Ok(mut r) if r.status().as_u16() == 204 => {
                sent_this_run += buf.len() as u64;
                if let Some(video) = r
                    .headers()
                    .get("stemfeed-video")
                    .and_then(|v| v.to_str().ok())
                {
                    bar(total, total);
                    eprintln!();
                    println!(
                        "{}",
                        serde_json::json!({"video": video, "status": format!("{server}/api/videos/{video}")})
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                let _ = r.body_mut().read_to_string();
            }
            Ok(mut r) => anyhow::bail!(
                "\n{name}: upload refused ({}): {}",
                r.status(),
                r.body_mut().read_to_string().unwrap_or_default()
            ),
            Err(e) if retries < 5 => {
                retries += 1;
                eprintln!("\n{e}; resuming");
                std::thread::sleep(Duration::from_secs(retries));
            }
            Err(e) => return Err(e.into()),
        }
    }
    eprintln!();
    let video = agent
        .head(&url)
        .header("authorization", &auth)
        .header("tus-resumable", "1.0.0")
        .call()?
        .headers()
        .get("stemfeed-video")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    println!("{}", serde_json::json!({"video": video}));
    Ok(ExitCode::SUCCESS)
}
