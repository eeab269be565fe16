//! The stage code: one video in two halves, so a worker can run them under
//! separate limits (and in separate child processes): [`prepare`] (probe,
//! validate, loudness, transcode: CPU) and [`finish`] (captions, tags,
//! playlists, `manifest.json` written last: ASR). Links GStreamer and
//! whisper.cpp; only the `stages` feature builds it.

use std::path::Path;
use std::time::{Duration, Instant};

use stemfeed_core::media_info;
use stemfeed_media::MediaError;
use stemfeed_media::limits::{DecodeLimit, Watchdog, asr_sample_cap};
use stemfeed_media::transcode::Gain;
use stemfeed_tagging::Tagger;

use crate::captioning;
use crate::contract::{
    AsrAudio, CaptionsEntry, Hls, JobSpec, Loudness, MANIFEST_VERSION, Manifest, Prepared,
    RenditionEntry, RenditionOutput, Source, StageSettings, StageTimes, StillEntry, StillOutput,
    TagsEntry,
};
use crate::error::{Fault, Stage, StageError, io_fault};
use crate::tag::{self, Metadata};

/// The probe only reads headers; this stops a file that makes it spin.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Progress: the stage and its fraction done.
pub type Progress<'a> = &'a mut dyn FnMut(Stage, f64);

/// Transcoding may take a while on a small CPU box; this only stops a hung run.
fn transcode_timeout(duration_s: f64) -> Duration {
    Duration::from_secs_f64(120.0 + duration_s * 20.0)
}

/// Whose fault a media error is. A run abandoned as stuck counts like a
/// crash (retried once, then refused); a full disk is the machine's.
fn media_fault(e: &MediaError) -> Fault {
    if e.is_bad_input() {
        Fault::BadInput
    } else if e.is_stuck() {
        Fault::Crash
    } else {
        match e {
            MediaError::Output { source, .. } => io_fault(source),
            // GStreamer's sinks report a full disk as a write error in words.
            MediaError::Pipeline {
                fault: stemfeed_media::Fault::Output,
                message,
                debug,
                ..
            } if (message.contains("space") || debug.contains("space")) => Fault::Infrastructure,
            _ => Fault::Transient,
        }
    }
}

/// Builds stage errors for one job: messages name the upload, not the
/// local path the stage read.
struct Errors<'a> {
    job: &'a JobSpec,
}

impl Errors<'_> {
    fn error(&self, stage: Stage, fault: Fault, message: String) -> StageError {
        let input = format!("{}: ", self.job.input.display());
        let message = message.strip_prefix(&input).unwrap_or(&message);
        let message = message
            .strip_prefix(&format!("{stage}: "))
            .unwrap_or(message);
        StageError::new(&self.job.display_name, stage, fault, message)
    }

    fn media(&self, stage: Stage) -> impl Fn(MediaError) -> StageError + '_ {
        move |e| self.error(stage, media_fault(&e), e.to_string())
    }

    fn io(&self, stage: Stage, what: String) -> impl Fn(std::io::Error) -> StageError + '_ {
        move |e| self.error(stage, io_fault(&e), format!("{what}: {e}"))
    }
}

fn relative(out: &Path, path: &Path) -> String {
    path.strip_prefix(out)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn still_output(s: &stemfeed_media::stills::Still) -> StillOutput {
    StillOutput {
        path: s.path.clone(),
        width: s.width,
        height: s.height,
        time_s: s.time_s,
    }
}

/// Probe, validate, measure loudness and transcode.
pub fn prepare(
    job: &JobSpec,
    settings: &StageSettings,
    progress: Progress,
) -> Result<Prepared, StageError> {
    let errors = Errors { job };
    let started = Instant::now();
    progress(Stage::Probe, 0.0);
    let info = stemfeed_media::probe::probe(&job.input, PROBE_TIMEOUT)
        .map_err(|e| errors.error(Stage::Probe, Fault::BadInput, e.to_string()))?;
    let probe_s = started.elapsed().as_secs_f64();
    let accepted = media_info::validate(&info, &job.profile).map_err(|reason| {
        errors.error(Stage::Probe, Fault::BadInput, format!("validate: {reason}"))
    })?;

    // Fail before transcoding if captions cannot run.
    let model_file = if job.captions && accepted.has_audio {
        let installed = installed_model(job, settings)?;
        // Per-language models are checked now too, not after the transcode.
        captioning::language_models(settings)
            .map_err(|e| errors.error(Stage::Captions, Fault::Transient, e))?;
        Some(installed)
    } else {
        None
    };
    std::fs::create_dir_all(&job.out)
        .map_err(errors.io(Stage::Transcode, format!("creating {}", job.out.display())))?;
    std::fs::create_dir_all(&job.scratch).map_err(errors.io(
        Stage::Transcode,
        format!("creating {}", job.scratch.display()),
    ))?;
    // Outputs of an earlier run are replaced: the manifest that described
    // them goes first, and old caption tracks would mislead tagging.
    let _ = std::fs::remove_file(job.out.join("manifest.json"));
    let _ = std::fs::remove_dir_all(job.out.join("captions"));

    progress(Stage::Transcode, 0.0);
    let t = Instant::now();
    let loudness = if accepted.has_audio {
        let a = &job.profile.audio;
        let l = stemfeed_media::loudness::measure(
            &job.input,
            a.sample_rate,
            a.channels,
            a.loudness_target_lufs,
            a.true_peak_max_dbtp,
            DecodeLimit::for_declared(info.duration_s),
            Watchdog::new(transcode_timeout(info.duration_s)),
        )
        .map_err(errors.media(Stage::Transcode))?;
        Some(l)
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
        loudness.as_ref().map_or_else(Default::default, Gain::from),
        DecodeLimit::for_declared(info.duration_s),
        asr_sample_cap(job.profile.limits.max_duration_s),
        Watchdog::new(transcode_timeout(info.duration_s)),
        &mut |fraction| progress(Stage::Transcode, fraction),
    )
    .map_err(errors.media(Stage::Transcode))?;
    let transcode_s = t.elapsed().as_secs_f64();

    let asr_samples = output.asr_pcm.len();
    let asr_pcm = if accepted.has_audio {
        let path = job.scratch.join(ASR_PCM);
        let bytes: Vec<u8> = output
            .asr_pcm
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        std::fs::write(&path, bytes)
            .map_err(errors.io(Stage::Transcode, format!("writing {}", path.display())))?;
        Some(path)
    } else {
        None
    };
    Ok(Prepared {
        renditions: output
            .renditions
            .iter()
            .map(|r| RenditionOutput {
                name: r.name.clone(),
                mp4: r.mp4.clone(),
                hls_playlist: r.hls_playlist.clone(),
                width: r.width,
                height: r.height,
                video_kbps: r.video_kbps,
                audio_kbps: r.audio_kbps,
                fps: r.fps,
                codecs: r.codecs.clone(),
            })
            .collect(),
        poster: output.poster.as_ref().map(still_output),
        thumbnails: output.thumbnails.iter().map(still_output).collect(),
        info,
        accepted,
        loudness: loudness.map(|l| Loudness {
            measured_lufs: l.measured_lufs,
            measured_true_peak_dbtp: l.measured_true_peak_dbtp,
            target_lufs: l.target_lufs,
            true_peak_max_dbtp: l.true_peak_max_dbtp,
            applied_gain_db: l.applied_gain_db,
            expected_lufs: l.expected_lufs,
            limited_by: l.limited_by,
            limiter_max_reduction_db: l.limiter_max_reduction_db,
            output_true_peak_dbtp: l.output_true_peak_dbtp,
        }),
        asr_pcm,
        asr_samples,
        model_file,
        times: StageTimes {
            probe_s,
            loudness_s,
            transcode_s,
            total_s: started.elapsed().as_secs_f64(),
            ..StageTimes::default()
        },
    })
}

/// The ASR audio file the first half leaves in the scratch directory.
const ASR_PCM: &str = "asr.f32";

/// The configured Whisper model, installed.
fn installed_model(
    job: &JobSpec,
    settings: &StageSettings,
) -> Result<std::path::PathBuf, StageError> {
    let errors = Errors { job };
    let store = stemfeed_models::ModelStore::new(&settings.models_dir);
    let name = &settings.asr.model;
    store
        .get(name)
        .map_err(|e| errors.error(Stage::Captions, Fault::Transient, e.to_string()))?
        .map(|m| m.file)
        .ok_or_else(|| errors.error(Stage::Captions, Fault::Transient, format!(
            "model {name} is not installed; run `stemfeed models install default` (or pass --no-captions)"
        )))
}

/// Reads the ASR audio the first half wrote.
fn read_pcm(path: &Path) -> std::io::Result<Vec<f32>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Captions, tags, playlists and `manifest.json` (written last).
pub fn finish(
    job: &JobSpec,
    settings: &StageSettings,
    tagger: &Tagger,
    p: Prepared,
    progress: Progress,
) -> Result<Manifest, StageError> {
    let errors = Errors { job };
    let started = Instant::now();
    progress(Stage::Captions, 0.0);
    let fps = p.renditions.first().map_or(30, |r| r.fps);
    // The first half says whether captions run; where the model and the
    // audio are comes from this process's own settings and job, not from
    // the first half's answer (a taken-over first half could point them
    // anywhere).
    let model = match &p.model_file {
        Some(_) => Some(installed_model(job, settings)?),
        None => None,
    };
    let pcm_path = job.scratch.join(ASR_PCM);
    let captions = match (&model, p.asr_pcm.is_some()) {
        (Some(file), true) => {
            let pcm = read_pcm(&pcm_path)
                .map_err(errors.io(Stage::Captions, format!("reading {}", pcm_path.display())))?;
            Some(
                captioning::run(
                    file,
                    &pcm,
                    &job.profile,
                    settings,
                    tagger,
                    fps,
                    &captioning::Hints {
                        language: job.language.clone(),
                        title: job.title.clone(),
                        description: job.description.clone(),
                    },
                    &job.out,
                    p.info.duration_s,
                )
                .map_err(|e| errors.error(Stage::Captions, e.fault(), e.to_string()))?,
            )
        }
        _ => None,
    };
    let captions_s = started.elapsed().as_secs_f64();

    progress(Stage::Tagging, 0.0);
    let t = Instant::now();
    let meta = Metadata {
        title: job.title.clone(),
        description: job.description.clone(),
        grade: job.grade,
    };
    let tags = tag::tag_output(tagger, &job.out, &meta, job.language.as_deref()).map_err(|e| {
        let fault = match &e {
            tag::TagError::Write { source, .. } | tag::TagError::Read { source, .. } => {
                io_fault(source)
            }
            tag::TagError::Parse { .. } => Fault::Transient,
        };
        errors.error(Stage::Tagging, fault, e.to_string())
    })?;
    let tagging_s = t.elapsed().as_secs_f64();

    let out = &job.out;
    let subtitles = captions
        .as_ref()
        .map(|c| c.subtitles.clone())
        .unwrap_or_default();
    let renditions: Vec<stemfeed_media::transcode::Rendition> = p
        .renditions
        .iter()
        .map(|r| stemfeed_media::transcode::Rendition {
            name: r.name.clone(),
            mp4: r.mp4.clone(),
            hls_playlist: r.hls_playlist.clone(),
            width: r.width,
            height: r.height,
            video_kbps: r.video_kbps,
            audio_kbps: r.audio_kbps,
            fps: r.fps,
            codecs: r.codecs.clone(),
        })
        .collect();
    let master = stemfeed_media::transcode::write_master_playlist(out, &renditions, &subtitles)
        .map_err(errors.io(Stage::Transcode, "writing hls/master.m3u8".to_owned()))?;
    let still = |s: &StillOutput| StillEntry {
        path: relative(out, &s.path),
        width: s.width,
        height: s.height,
        time_s: s.time_s,
    };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        source: Source {
            file: job.display_name.clone(),
            media: p.info.clone(),
            language_hint: job.language.clone(),
            title: job.title.clone(),
            description: job.description.clone(),
            grade_hint: job.grade,
        },
        profile: job.profile.name.clone(),
        validation: p.accepted.clone(),
        captions: match (captions, job.captions, p.accepted.has_audio) {
            (Some(c), _, _) => Some(CaptionsEntry::Made(c.summary)),
            (None, false, _) => Some(CaptionsEntry::Skipped {
                skipped: "captions disabled".to_owned(),
            }),
            (None, _, false) => Some(CaptionsEntry::Skipped {
                skipped: "no audio stream".to_owned(),
            }),
            (None, _, _) => None,
        },
        tags: TagsEntry::from(&tags),
        loudness: p.loudness.clone(),
        renditions: p
            .renditions
            .iter()
            .map(|r| RenditionEntry {
                name: r.name.clone(),
                path: relative(out, &r.mp4),
                hls_playlist: relative(out, &r.hls_playlist),
                width: r.width,
                height: r.height,
                fps: r.fps,
                video_kbps: r.video_kbps,
                audio_kbps: r.audio_kbps,
                codecs: r.codecs.clone(),
                bytes: std::fs::metadata(&r.mp4).map(|m| m.len()).unwrap_or(0),
                duration_s: p.info.duration_s,
            })
            .collect(),
        hls: Hls {
            master: relative(out, &master),
        },
        poster: p.poster.as_ref().map(still),
        thumbnails: p.thumbnails.iter().map(still).collect(),
        asr_audio: AsrAudio {
            samples_16k: p.asr_samples,
            seconds: p.asr_samples as f64 / 16_000.0,
        },
        stages: StageTimes {
            captions_s,
            tagging_s,
            total_s: p.times.total_s + started.elapsed().as_secs_f64(),
            ..p.times
        },
        base: None,
        video_id: None,
    };
    manifest
        .write(out)
        .map_err(errors.io(Stage::Tagging, "writing manifest.json".to_owned()))?;
    Ok(manifest)
}
