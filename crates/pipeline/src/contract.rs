//! What the stages hand each other and what readers of an output see,
//! defined once. `manifest.json` is [`Manifest`]; a caption track file is
//! [`stemfeed_captions::CaptionFile`]; `tags.json` is [`stemfeed_tagging::Tags`].
//! A stage that runs in a child process takes a [`StageRequest`] and answers
//! with [`ChildMessage`]s, all of them serde types.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stemfeed_captions::{LanguageChoice, Status};
use stemfeed_core::config::{AsrConfig, TaggingConfig};
use stemfeed_core::media_info::Accepted;
use stemfeed_core::{MediaInfo, Profile};
use stemfeed_tagging::Tags;

use crate::error::{Stage, StageError};

/// Manifest format version; bump on incompatible changes.
pub const MANIFEST_VERSION: u32 = 1;

/// `manifest.json`: the index of one run's outputs, written last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub source: Source,
    /// The profile's name.
    pub profile: String,
    pub validation: Accepted,
    /// `None` only in manifests of runs that never reached captions.
    pub captions: Option<CaptionsEntry>,
    pub tags: TagsEntry,
    pub loudness: Option<Loudness>,
    pub renditions: Vec<RenditionEntry>,
    pub hls: Hls,
    pub poster: Option<StillEntry>,
    pub thumbnails: Vec<StillEntry>,
    pub asr_audio: AsrAudio,
    pub stages: StageTimes,
    /// In `videos/<id>/manifest.json` only: the run directory the paths
    /// are relative to (`runs/<job>-<attempt>/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_id: Option<String>,
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<Self, std::io::Error> {
        let bytes = std::fs::read(path)?;
        Self::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let m: Self = serde_json::from_slice(bytes)?;
        if m.version != MANIFEST_VERSION {
            return Err(serde::de::Error::custom(format!(
                "manifest version {} (this stemfeed reads {MANIFEST_VERSION})",
                m.version
            )));
        }
        Ok(m)
    }

    /// Pretty JSON with keys sorted at every level (stable bytes: golden
    /// files and diffs between runs stay readable).
    pub fn to_json(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("a manifest is plain data");
        serde_json::to_vec_pretty(&value).expect("a JSON value serialises")
    }

    /// Writes `out/manifest.json` through a temporary file, so a reader
    /// never sees half of it.
    pub fn write(&self, out: &Path) -> std::io::Result<()> {
        write_atomic(&out.join("manifest.json"), &self.to_json())
    }

    pub fn duration_s(&self) -> f64 {
        self.source.media.duration_s
    }

    /// The spoken language the captions were made in.
    pub fn language(&self) -> Option<&str> {
        match &self.captions {
            Some(CaptionsEntry::Made(c)) => c.language.as_ref().map(|l| l.language.as_str()),
            _ => None,
        }
    }

    /// Caption tracks the run produced.
    pub fn tracks(&self) -> &[TrackEntry] {
        match &self.captions {
            Some(CaptionsEntry::Made(c)) => &c.tracks,
            _ => &[],
        }
    }

    /// The smallest rendition (plays on every phone and loads fastest).
    pub fn smallest_rendition(&self) -> Option<&RenditionEntry> {
        self.renditions.iter().min_by_key(|r| r.height.min(r.width))
    }

    /// The rendition with the most pixels.
    pub fn largest_rendition(&self) -> Option<&RenditionEntry> {
        self.renditions.iter().max_by_key(|r| r.width * r.height)
    }
}

/// Writes `path` via a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.partial"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// What was uploaded and what the submitter said about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Display name (the upload's original name).
    pub file: String,
    pub media: MediaInfo,
    pub language_hint: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub grade_hint: Option<u8>,
}

/// The caption stage's summary, or why it did not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CaptionsEntry {
    Made(CaptionsSummary),
    Skipped { skipped: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionsSummary {
    /// The default model's name (a per-language model may have replaced it).
    pub model: String,
    pub language: Option<LanguageChoice>,
    pub speech_seconds: f64,
    pub note: Option<String>,
    pub tracks: Vec<TrackEntry>,
    /// The style rules the cues were cut to (the profile's): the caption
    /// editor checks curators' edits against them. Older runs have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Box<stemfeed_captions::segment::Rules>>,
}

/// One caption track in the manifest; the cues are in `files.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackEntry {
    pub language: String,
    pub kind: String,
    pub status: Status,
    pub reason: Option<String>,
    /// Number of cues.
    pub cues: usize,
    pub mean_confidence: Option<f32>,
    pub min_cue_confidence: Option<f32>,
    pub files: TrackFiles,
}

impl TrackEntry {
    /// `<lang>.<kind>`, the track's name in the catalog and the UI.
    pub fn name(&self) -> String {
        format!("{}.{}", self.language, self.kind)
    }

    /// The cues of this track as the catalog stores them (a JSON array),
    /// from the bytes of its `files.json`: parsed as a caption file and
    /// written again, so only well-formed cues reach the catalog.
    pub fn cues_json(&self, file: &[u8]) -> Result<String, String> {
        let file: stemfeed_captions::CaptionFile = serde_json::from_slice(file)
            .map_err(|e| format!("{}: not a caption file: {e}", self.files.json))?;
        serde_json::to_string(&file.cues).map_err(|e| format!("{}: {e}", self.files.json))
    }
}

impl TrackFiles {
    /// `json` when it is a relative path inside the run (it comes from a
    /// stage that handled untrusted bytes: never a path that leaves it).
    pub fn json_path(&self) -> Result<&std::path::Path, String> {
        let path = std::path::Path::new(&self.json);
        let inside = !self.json.is_empty()
            && !self.json.contains('\\')
            && path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if inside {
            Ok(path)
        } else {
            Err(format!(
                "caption file {:?} is not a path inside the run",
                self.json
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackFiles {
    pub vtt: String,
    pub srt: String,
    pub json: String,
}

/// The manifest's summary of `tags.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagsEntry {
    pub file: String,
    pub stem: bool,
    pub subject: Option<String>,
    pub topic: Option<String>,
    pub grade_band: Option<String>,
    pub off_topic: Option<String>,
    /// Why the tagger could not tell (too little usable text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undetermined: Option<String>,
}

impl From<&Tags> for TagsEntry {
    fn from(tags: &Tags) -> Self {
        Self {
            file: "tags.json".to_owned(),
            stem: tags.stem,
            subject: tags.subject().map(|s| s.id.clone()),
            topic: tags.topic().map(|t| t.id.clone()),
            grade_band: tags.grade_band.as_ref().map(|g| g.id.clone()),
            off_topic: tags.off_topic.as_ref().map(|o| o.reason.clone()),
            undetermined: tags.undetermined.clone(),
        }
    }
}

/// EBU R128 measurement and the one gain applied to every rendition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// Integrated loudness of the input, LUFS; `None` for silence.
    pub measured_lufs: Option<f64>,
    /// Highest true peak of the input over all channels, dBTP; `None` for silence.
    pub measured_true_peak_dbtp: Option<f64>,
    pub target_lufs: f64,
    pub true_peak_max_dbtp: f64,
    /// Gain applied to every rendition, dB.
    pub applied_gain_db: f64,
    /// Loudness the renditions should have after the gain and the limiter.
    pub expected_lufs: Option<f64>,
    /// Why the gain differs from `target - measured`, if it does.
    pub limited_by: Option<String>,
    /// Largest reduction the true-peak limiter applied, dB (0: it did not run).
    #[serde(default)]
    pub limiter_max_reduction_db: f64,
    /// True peak after the gain and the limiter, dBTP.
    #[serde(default)]
    pub output_true_peak_dbtp: Option<f64>,
    /// How far under the ceiling the limiter aimed, for what AAC encoding
    /// adds to the peaks, dB.
    #[serde(default)]
    pub codec_headroom_db: f64,
    /// True peak once AAC-encoded at the profile's audio bitrates and
    /// decoded (the highest), dBTP: what the renditions measure.
    #[serde(default)]
    pub encoded_true_peak_dbtp: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionEntry {
    pub name: String,
    /// Relative to the run directory.
    pub path: String,
    pub hls_playlist: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub video_kbps: u32,
    pub audio_kbps: Option<u32>,
    /// RFC 6381 codec string.
    pub codecs: String,
    pub bytes: u64,
    pub duration_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hls {
    pub master: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StillEntry {
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub time_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsrAudio {
    pub samples_16k: usize,
    pub seconds: f64,
    /// Peak levels of this audio for the caption editor's waveform
    /// (`stemfeed_media::waveform::Waveform` as JSON), a path in the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waveform: Option<String>,
}

/// Seconds each stage took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    pub probe_s: f64,
    pub loudness_s: f64,
    pub transcode_s: f64,
    pub captions_s: f64,
    pub tagging_s: f64,
    pub total_s: f64,
}

/// One video to process, as every stage sees it. Paths only: a stage in a
/// child process never sees the object store or the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The upload, read only.
    pub input: PathBuf,
    /// Name shown in errors (the upload's original name for worker jobs).
    pub display_name: String,
    /// Where the outputs go (the run's tree).
    pub out: PathBuf,
    /// Scratch space beside `out` (the ASR audio between the halves).
    pub scratch: PathBuf,
    pub profile: Profile,
    pub language: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub grade: Option<u8>,
    pub captions: bool,
    /// Captions run on another worker (a transcode-only worker): the
    /// first half still writes the ASR audio, but does not need the model.
    #[serde(default)]
    pub captions_elsewhere: bool,
}

/// The part of the configuration a stage needs: no store, catalog or
/// credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSettings {
    pub models_dir: PathBuf,
    pub asr: AsrConfig,
    pub tagging: TaggingConfig,
    /// What curators changed in approved transcripts, per language and
    /// model (the worker reads it from the catalog; see `stats.rs` in the
    /// server, which keeps it there).
    #[serde(default)]
    pub curator_accuracy: Vec<CuratorAccuracy>,
}

/// Curators' edits to Whisper's transcripts of one language from one model:
/// approved tracks, Whisper's words, and how many curators changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CuratorAccuracy {
    pub language: String,
    pub model: String,
    pub tracks: usize,
    pub words: usize,
    pub words_changed: usize,
}

impl StageSettings {
    /// The settings for captions that run beside a video encode on the same
    /// machine: half the ASR threads (at least one). whisper.cpp's threads
    /// spin while they wait, so a full set competing with x264 for the
    /// same cores wastes CPU: on 2 cores, 1 thread beside the encode made
    /// the whole job 15% faster and 17% cheaper than 2 (benches/results/job.md).
    pub fn beside_encode(&self) -> Self {
        let mut s = self.clone();
        s.asr.threads = (s.asr.threads / 2).max(1);
        s
    }
}

impl From<&stemfeed_core::Config> for StageSettings {
    fn from(c: &stemfeed_core::Config) -> Self {
        Self {
            models_dir: c.models_dir.clone(),
            asr: c.asr.clone(),
            tagging: c.tagging.clone(),
            curator_accuracy: Vec::new(),
        }
    }
}

/// One finished rendition, with paths under the job's `out`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionOutput {
    pub name: String,
    pub mp4: PathBuf,
    pub hls_playlist: PathBuf,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub audio_kbps: Option<u32>,
    pub fps: u32,
    pub codecs: String,
    /// The file's size (the manifest lists it; a captions worker on another
    /// machine does not have the file).
    #[serde(default)]
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StillOutput {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub time_s: f64,
}

/// The first half's result (probe, validate, loudness, transcode), input of
/// the second half.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    pub info: MediaInfo,
    pub accepted: Accepted,
    pub loudness: Option<Loudness>,
    pub renditions: Vec<RenditionOutput>,
    pub poster: Option<StillOutput>,
    pub thumbnails: Vec<StillOutput>,
    /// 16 kHz mono f32 (little-endian) for ASR; `None` without audio.
    pub asr_pcm: Option<PathBuf>,
    pub asr_samples: usize,
    /// `waveform.json` in the outputs, for the caption editor; `None`
    /// without audio (and from workers that did not make one).
    #[serde(default)]
    pub waveform: Option<PathBuf>,
    /// The Whisper model to caption with, checked before transcoding.
    pub model_file: Option<PathBuf>,
    pub times: StageTimes,
}

impl Prepared {
    /// The same result with every path under `from` moved under `to`: the
    /// hand-off between workers stores it relative to the job directory.
    pub fn rebase(mut self, from: &Path, to: &Path) -> Self {
        let moved = |p: &mut PathBuf| {
            if let Ok(rest) = p.strip_prefix(from) {
                *p = to.join(rest);
            }
        };
        for r in &mut self.renditions {
            moved(&mut r.mp4);
            moved(&mut r.hls_playlist);
        }
        for s in self.poster.iter_mut().chain(&mut self.thumbnails) {
            moved(&mut s.path);
        }
        if let Some(p) = &mut self.asr_pcm {
            moved(p);
        }
        if let Some(p) = &mut self.waveform {
            moved(p);
        }
        self
    }
}

/// The first half's word, sent before the video encode starts, that the
/// ASR audio is in `scratch/asr.f32`: captions may run beside the encode.
/// Sent only when captions will run (enabled, an audio stream, the model
/// installed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AudioReady {
    /// The probed duration, seconds: no cue ends after it.
    pub duration_s: f64,
    /// The renditions' frame rate: cue times snap to its frames.
    pub fps: u32,
    /// 16 kHz mono samples in the file.
    pub samples: usize,
}

/// An HLS subtitle rendition the master playlist lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubtitleTrack {
    pub language: String,
    /// Shown in the player's menu.
    pub name: String,
    /// Media playlist, relative to `hls/`.
    pub playlist: String,
}

/// The captions half's result: tracks written under `captions/` and
/// `tags.json`, and what the manifest says of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Captioned {
    /// `None` when captions did not run (disabled, or no audio).
    pub summary: Option<CaptionsSummary>,
    pub subtitles: Vec<SubtitleTrack>,
    pub tags: TagsEntry,
    pub captions_s: f64,
    pub tagging_s: f64,
}

/// What a stage child is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageRequest {
    /// Probe, validate, loudness and ASR audio, transcode.
    Prepare {
        job: JobSpec,
        settings: StageSettings,
    },
    /// Captions from the ASR audio in the job's scratch directory (none
    /// without `audio`), then tags.
    Captions {
        job: JobSpec,
        settings: StageSettings,
        audio: Option<AudioReady>,
    },
}

impl StageRequest {
    pub fn job(&self) -> &JobSpec {
        match self {
            StageRequest::Prepare { job, .. } | StageRequest::Captions { job, .. } => job,
        }
    }

    pub fn settings(&self) -> &StageSettings {
        match self {
            StageRequest::Prepare { settings, .. } | StageRequest::Captions { settings, .. } => {
                settings
            }
        }
    }

    /// The stage the request starts in (named when the child dies).
    pub fn first_stage(&self) -> Stage {
        match self {
            StageRequest::Prepare { .. } => Stage::Probe,
            StageRequest::Captions { .. } => Stage::Captions,
        }
    }
}

/// One line a stage child writes on its standard output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildMessage {
    /// The stage now running and its fraction done.
    Progress {
        stage: Stage,
        fraction: f64,
    },
    /// From the first half, before its answer.
    AudioReady(AudioReady),
    Prepared(Box<Prepared>),
    Captioned(Box<Captioned>),
    Failed(StageError),
}

/// What [`SandboxReport::filesystem`] says when every restriction holds.
pub const FULLY_CONFINED: &str = "confined (landlock)";

/// What this machine lets a stage process give up, as `stemfeed stage
/// --check` reports it; the worker refuses to start without all of it
/// unless `worker.require_sandbox = false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxReport {
    pub network: String,
    pub filesystem: String,
    /// Whether the stage process could still signal its parent (the worker).
    pub can_signal_parent: bool,
}

impl SandboxReport {
    pub fn complete(&self) -> bool {
        self.network.starts_with("none")
            && self.filesystem == FULLY_CONFINED
            && !self.can_signal_parent
    }
}

impl std::fmt::Display for SandboxReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "network: {}; files: {}; signals to the worker: {}",
            self.network,
            self.filesystem,
            if self.can_signal_parent {
                "possible"
            } else {
                "blocked"
            }
        )
    }
}
