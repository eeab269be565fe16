//! The stage code: one video in two halves, so a worker can run them under
//! separate limits, in separate child processes, at the same time or on
//! different machines: [`prepare`] (probe, validate, loudness and the ASR
//! audio, then transcode: CPU) and [`captions`] (captions and tags: ASR),
//! which can start as soon as [`prepare`] reports the audio ready. The
//! manifest is composed from both results ([`crate::compose`]). Links
//! GStreamer and whisper.cpp; only the `stages` feature builds it.

use std::path::Path;
use std::time::{Duration, Instant};

use stemfeed_core::media_info;
use stemfeed_media::MediaError;
use stemfeed_media::limits::{DecodeLimit, Watchdog, asr_sample_cap};
use stemfeed_media::transcode::Gain;
use stemfeed_tagging::Tagger;

use crate::captioning;
use crate::contract::{
    AudioReady, Captioned, JobSpec, Loudness, Prepared, RenditionOutput, StageSettings, StageTimes,
    StillOutput, TagsEntry,
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

fn still_output(s: &stemfeed_media::stills::Still) -> StillOutput {
    StillOutput {
        path: s.path.clone(),
        width: s.width,
        height: s.height,
        time_s: s.time_s,
    }
}

/// Probe, validate, measure loudness and write the ASR audio (then
/// `audio_ready` hears of it, when captions will run), transcode.
pub fn prepare(
    job: &JobSpec,
    settings: &StageSettings,
    progress: Progress,
    audio_ready: &mut dyn FnMut(AudioReady),
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
    let model_file = if job.captions && accepted.has_audio && !job.captions_elsewhere {
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
    // One pass over the audio: the loudness plan and the ASR audio, before
    // any video is encoded.
    let pass = if accepted.has_audio {
        let a = &job.profile.audio;
        // Every audio bitrate a rung may use: the encoded true peak is
        // checked at each.
        let mut codec_kbps: Vec<u32> = job.profile.rungs.iter().map(|r| r.audio_kbps).collect();
        codec_kbps.sort_unstable();
        codec_kbps.dedup();
        let pass = stemfeed_media::loudness::measure(
            &job.input,
            a.sample_rate,
            a.channels,
            a.loudness_target_lufs,
            a.true_peak_max_dbtp,
            &codec_kbps,
            DecodeLimit::for_declared(info.duration_s),
            asr_sample_cap(job.profile.limits.max_duration_s),
            Watchdog::new(transcode_timeout(info.duration_s)),
        )
        .map_err(errors.media(Stage::Transcode))?;
        Some(pass)
    } else {
        None
    };
    let loudness_s = t.elapsed().as_secs_f64();
    let asr_samples = pass.as_ref().map_or(0, |p| p.asr_pcm.len());
    let asr_pcm = match &pass {
        Some(pass) => {
            let path = job.scratch.join(ASR_PCM);
            let bytes: Vec<u8> = pass.asr_pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
            std::fs::write(&path, bytes)
                .map_err(errors.io(Stage::Transcode, format!("writing {}", path.display())))?;
            Some(path)
        }
        None => None,
    };
    if asr_pcm.is_some() && job.captions {
        audio_ready(AudioReady {
            duration_s: info.duration_s,
            fps: stemfeed_media::transcode::output_fps(&info, &job.profile),
            samples: asr_samples,
        });
    }
    let waveform = match &pass {
        Some(pass) => {
            let path = job.out.join(WAVEFORM);
            let w = stemfeed_media::waveform::Waveform::of(&pass.asr_pcm, 16_000);
            let json = serde_json::to_vec(&w)
                .map_err(|e| errors.error(Stage::Transcode, Fault::Transient, e.to_string()))?;
            std::fs::write(&path, json)
                .map_err(errors.io(Stage::Transcode, format!("writing {}", path.display())))?;
            Some(path)
        }
        None => None,
    };
    let loudness = pass.map(|p| p.loudness);

    let t = Instant::now();
    let output = stemfeed_media::transcode::transcode(
        &job.input,
        &info,
        &job.profile,
        &job.out,
        loudness.as_ref().map_or_else(Default::default, Gain::from),
        DecodeLimit::for_declared(info.duration_s),
        Watchdog::new(transcode_timeout(info.duration_s)),
        &mut |fraction| progress(Stage::Transcode, fraction),
    )
    .map_err(errors.media(Stage::Transcode))?;
    let transcode_s = t.elapsed().as_secs_f64();

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
                bytes: std::fs::metadata(&r.mp4).map(|m| m.len()).unwrap_or(0),
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
            codec_headroom_db: l.codec_headroom_db,
            encoded_true_peak_dbtp: l.encoded_true_peak_dbtp,
        }),
        asr_pcm,
        asr_samples,
        waveform,
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
/// The caption editor's waveform, in the outputs.
const WAVEFORM: &str = "waveform.json";

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

/// Captions from the ASR audio [`prepare`] wrote (none without `audio`),
/// then tags from the tracks and the job's metadata. Writes `captions/`
/// and `tags.json` into `job.out`.
pub fn captions(
    job: &JobSpec,
    settings: &StageSettings,
    tagger: &Tagger,
    audio: Option<AudioReady>,
    progress: Progress,
) -> Result<Captioned, StageError> {
    let errors = Errors { job };
    let started = Instant::now();
    progress(Stage::Captions, 0.0);
    std::fs::create_dir_all(&job.out)
        .map_err(errors.io(Stage::Captions, format!("creating {}", job.out.display())))?;
    // Where the model and the audio are comes from this process's own
    // settings and job, not from the first half's word.
    let made = match audio {
        Some(audio) => {
            let model = installed_model(job, settings)?;
            let pcm_path = job.scratch.join(ASR_PCM);
            let pcm = read_pcm(&pcm_path)
                .map_err(errors.io(Stage::Captions, format!("reading {}", pcm_path.display())))?;
            Some(
                captioning::run(
                    &model,
                    &pcm,
                    &job.profile,
                    settings,
                    tagger,
                    audio.fps,
                    &captioning::Hints {
                        language: job.language.clone(),
                        title: job.title.clone(),
                        description: job.description.clone(),
                    },
                    &job.out,
                    audio.duration_s,
                )
                .map_err(|e| errors.error(Stage::Captions, e.fault(), e.to_string()))?,
            )
        }
        None => None,
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
    let (summary, subtitles) = match made {
        Some(c) => (Some(c.summary), c.subtitles),
        None => (None, Vec::new()),
    };
    Ok(Captioned {
        summary,
        subtitles,
        tags: TagsEntry::from(&tags),
        captions_s,
        tagging_s: t.elapsed().as_secs_f64(),
    })
}
