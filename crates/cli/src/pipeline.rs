//! One video through the stages, split in two halves so a worker can run
//! them under separate limits: [`prepare`] (probe, validate, loudness,
//! transcode: CPU) and [`finish`] (captions, tagging, playlists, manifest:
//! ASR). `stemfeed process` runs both back to back; `stemfeed worker` lets
//! job N's `finish` overlap job N+1's `prepare`.
//!
//! Every error names the input file, the stage and the reason, and says
//! whether it is the input's fault (never retried) or worth retrying.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use stemfeed_core::media_info::{self, Accepted};
use stemfeed_core::{Config, MediaInfo, Profile};
use stemfeed_media::loudness::Loudness;
use stemfeed_media::transcode::TranscodeOutput;
use stemfeed_tagging::Tagger;

use crate::probe_cmd::PROBE_TIMEOUT;

/// Manifest format version; bump on incompatible changes.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Probing,
    Transcoding,
    Captioning,
    Tagging,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Probing => "probe",
            Stage::Transcoding => "transcode",
            Stage::Captioning => "captions",
            Stage::Tagging => "tagging",
        }
    }
}

/// What to process and how.
#[derive(Debug, Clone)]
pub struct Job {
    pub input: PathBuf,
    /// Name shown in errors (the upload's original name for worker jobs).
    pub display_name: String,
    pub out: PathBuf,
    pub profile: Profile,
    pub language: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub grade: Option<u8>,
    pub captions: bool,
}

#[derive(Debug)]
pub struct StageError {
    pub file: String,
    /// The local path the stage read (media errors name it).
    input: String,
    pub stage: Stage,
    /// The upload itself is bad: retrying cannot help.
    pub bad_input: bool,
    pub error: anyhow::Error,
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Media errors already say "<path>: <stage>: …"; name the upload instead.
        let message = format!("{:#}", self.error);
        match message.strip_prefix(&format!("{}: ", self.input)) {
            Some(rest) => write!(f, "{}: {rest}", self.file),
            None => write!(f, "{}: {}: {message}", self.file, self.stage.name()),
        }
    }
}

impl std::error::Error for StageError {}

trait AtStage<T> {
    fn at(self, job: &Job, stage: Stage, bad_input: bool) -> Result<T, StageError>;
}

impl<T, E: Into<anyhow::Error>> AtStage<T> for Result<T, E> {
    fn at(self, job: &Job, stage: Stage, bad_input: bool) -> Result<T, StageError> {
        self.map_err(|e| StageError {
            file: job.display_name.clone(),
            input: job.input.display().to_string(),
            stage,
            bad_input,
            error: e.into(),
        })
    }
}

/// Progress: the stage and its fraction done.
pub type Progress<'a> = &'a mut dyn FnMut(Stage, f64);

/// Transcoding may take a while on a small CPU box; this only stops a hung run.
fn transcode_timeout(duration_s: f64) -> Duration {
    Duration::from_secs_f64(120.0 + duration_s * 20.0)
}

fn relative(out: &Path, path: &Path) -> String {
    path.strip_prefix(out)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The first half's results.
#[derive(Debug)]
pub struct Prepared {
    info: MediaInfo,
    accepted: Accepted,
    loudness: Option<Loudness>,
    output: TranscodeOutput,
    model_file: Option<PathBuf>,
    probe_s: f64,
    loudness_s: f64,
    transcode_s: f64,
    started: Instant,
}

impl Prepared {
    pub fn duration_s(&self) -> f64 {
        self.info.duration_s
    }
}

/// Probe, validate, measure loudness and transcode.
pub fn prepare(job: &Job, config: &Config, progress: Progress) -> Result<Prepared, StageError> {
    let started = Instant::now();
    progress(Stage::Probing, 0.0);
    let info =
        stemfeed_media::probe::probe(&job.input, PROBE_TIMEOUT).at(job, Stage::Probing, true)?;
    let probe_s = started.elapsed().as_secs_f64();
    let accepted = media_info::validate(&info, &job.profile)
        .map_err(|reason| anyhow::anyhow!("validate: {reason}"))
        .at(job, Stage::Probing, true)?;

    // Fail before transcoding if captions cannot run.
    let model_file = if job.captions && accepted.has_audio {
        let store = stemfeed_models::ModelStore::new(&config.models_dir);
        let name = &config.asr.model;
        let installed = store
            .get(name)
            .map_err(anyhow::Error::from)
            .and_then(|m| {
                m.with_context(|| {
                    format!("model {name} is not installed; run `stemfeed models install default` (or pass --no-captions)")
                })
            })
            .at(job, Stage::Captioning, false)?;
        // Per-language models are checked now too, not after the transcode.
        crate::captioning::language_models(config).at(job, Stage::Captioning, false)?;
        Some(installed.file)
    } else {
        None
    };
    std::fs::create_dir_all(&job.out)
        .with_context(|| format!("creating {}", job.out.display()))
        .at(job, Stage::Transcoding, false)?;
    // Outputs of an earlier run are replaced: the manifest that described
    // them goes first, and old caption tracks would mislead tagging.
    let _ = std::fs::remove_file(job.out.join("manifest.json"));
    let _ = std::fs::remove_dir_all(job.out.join("captions"));

    progress(Stage::Transcoding, 0.0);
    let t = Instant::now();
    let loudness = if accepted.has_audio {
        let a = &job.profile.audio;
        Some(
            stemfeed_media::loudness::measure(
                &job.input,
                a.sample_rate,
                a.channels,
                a.loudness_target_lufs,
                a.true_peak_max_dbtp,
                transcode_timeout(info.duration_s),
            )
            .at(job, Stage::Transcoding, false)?,
        )
    } else {
        None
    };
    let loudness_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let output = stemfeed_media::transcode::transcode(
        &job.input,
        &info,
        &job.profile,
        &job.out,
        loudness.as_ref().map_or(0.0, |l| l.applied_gain_db),
        transcode_timeout(info.duration_s),
        &mut |fraction| progress(Stage::Transcoding, fraction),
    )
    .at(job, Stage::Transcoding, false)?;
    Ok(Prepared {
        info,
        accepted,
        loudness,
        output,
        model_file,
        probe_s,
        loudness_s,
        transcode_s: t.elapsed().as_secs_f64(),
        started,
    })
}

/// Captions, tags, playlists and `manifest.json` (written last).
pub fn finish(
    job: &Job,
    config: &Config,
    tagger: &Tagger,
    p: Prepared,
    progress: Progress,
) -> Result<Value, StageError> {
    progress(Stage::Captioning, 0.0);
    let t = Instant::now();
    let fps = p.output.renditions.first().map_or(30, |r| r.fps);
    let captions = match &p.model_file {
        Some(file) => Some(
            crate::captioning::run(
                file,
                &p.output.asr_pcm,
                &job.profile,
                config,
                tagger,
                fps,
                &crate::captioning::Hints {
                    language: job.language.clone(),
                    title: job.title.clone(),
                    description: job.description.clone(),
                },
                &job.out,
                p.info.duration_s,
            )
            .at(job, Stage::Captioning, false)?,
        ),
        None => None,
    };
    let captions_s = t.elapsed().as_secs_f64();

    progress(Stage::Tagging, 0.0);
    let t = Instant::now();
    let meta = crate::tagging_cmd::Metadata {
        title: job.title.clone(),
        description: job.description.clone(),
        grade: job.grade,
    };
    let tags = crate::tagging_cmd::tag_output(tagger, &job.out, &meta, job.language.as_deref())
        .at(job, Stage::Tagging, false)?;
    let tagging_s = t.elapsed().as_secs_f64();

    let subtitles = captions
        .as_ref()
        .map(|c| c.subtitles.clone())
        .unwrap_or_default();
    let master = stemfeed_media::transcode::write_master_playlist(
        &job.out,
        &p.output.renditions,
        &subtitles,
    )
    .context("writing hls/master.m3u8")
    .at(job, Stage::Transcoding, false)?;
    let out = &job.out;
    let renditions: Vec<_> = p
        .output
        .renditions
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "path": relative(out, &r.mp4),
                "hls_playlist": relative(out, &r.hls_playlist),
                "width": r.width,
                "height": r.height,
                "fps": r.fps,
                "video_kbps": r.video_kbps,
                "audio_kbps": r.audio_kbps,
                "codecs": r.codecs,
                "bytes": std::fs::metadata(&r.mp4).map(|m| m.len()).unwrap_or(0),
                "duration_s": p.info.duration_s,
            })
        })
        .collect();
    let manifest = json!({
        "version": MANIFEST_VERSION,
        "source": {
            "file": job.display_name,
            "media": p.info,
            "language_hint": job.language,
            "title": job.title,
            "description": job.description,
            "grade_hint": job.grade,
        },
        "profile": job.profile.name,
        "validation": p.accepted,
        "captions": match (&captions, job.captions, p.accepted.has_audio) {
            (Some(c), _, _) => c.manifest.clone(),
            (None, false, _) => json!({"skipped": "captions disabled"}),
            (None, _, false) => json!({"skipped": "no audio stream"}),
            (None, _, _) => json!(null),
        },
        "tags": crate::tagging_cmd::manifest_entry(&tags),
        "loudness": p.loudness,
        "renditions": renditions,
        "hls": { "master": relative(out, &master) },
        "poster": p.output.poster.as_ref().map(|x| json!({
            "path": relative(out, &x.path), "width": x.width, "height": x.height, "time_s": x.time_s,
        })),
        "thumbnails": p.output.thumbnails.iter().map(|x| json!({
            "path": relative(out, &x.path), "width": x.width, "height": x.height, "time_s": x.time_s,
        })).collect::<Vec<_>>(),
        "asr_audio": { "samples_16k": p.output.asr_pcm.len(), "seconds": p.output.asr_pcm.len() as f64 / 16_000.0 },
        "stages": {
            "probe_s": p.probe_s, "loudness_s": p.loudness_s, "transcode_s": p.transcode_s,
            "captions_s": captions_s, "tagging_s": tagging_s, "total_s": p.started.elapsed().as_secs_f64(),
        },
    });
    let tmp = out.join(".manifest.json.partial");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )
    .and_then(|()| std::fs::rename(&tmp, out.join("manifest.json")))
    .context("writing manifest.json")
    .at(job, Stage::Tagging, false)?;
    Ok(manifest)
}
