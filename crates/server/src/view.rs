//! One video as the review UI and the feed see it: the published manifest,
//! the newest version of each caption track (the recognised tracks are
//! imported as version 1 the first time anyone looks), and the newest tags.
//! Everything read here is a typed contract: [`Manifest`], [`CaptionFile`]
//! and [`Tags`].

use axum::http::StatusCode;
use stemfeed_captions::Cue;
use stemfeed_pipeline::Manifest;
use stemfeed_queue::{FirstCaption, Job, Video};
use stemfeed_tagging::Tags;

use crate::{ApiError, App};

#[derive(Debug, Clone)]
pub struct TrackView {
    /// `<lang>.<kind>`
    pub track: String,
    pub language: String,
    pub kind: String,
    /// The version's status in the catalog: the recogniser's (`ok`, `draft`,
    /// `needs-human`) or a curator's (`edited`, `approved`, `rejected`).
    pub status: String,
    pub reason: Option<String>,
    pub version: i64,
    pub author: String,
    pub cues: Vec<Cue>,
}

impl TrackView {
    /// Mean word confidence, the weakest-first sort key.
    pub fn confidence(&self) -> Option<f32> {
        let c: Vec<f32> = self.cues.iter().filter_map(|c| c.confidence).collect();
        (!c.is_empty()).then(|| c.iter().sum::<f32>() / c.len() as f32)
    }
}

#[derive(Debug, Clone)]
pub struct VideoView {
    pub video: Video,
    pub job: Job,
    pub manifest: Manifest,
    /// The key prefix the manifest's paths are relative to (see
    /// [`read_manifest`]).
    pub base: String,
    pub tracks: Vec<TrackView>,
    /// The newest tags; `None` when there are none, or when the stored
    /// version is not a valid [`Tags`] (logged).
    pub tags: Option<Tags>,
    pub tags_version: i64,
    /// Every caption version of every track, oldest first (who, when, status).
    pub history: Vec<stemfeed_queue::CaptionVersion>,
}

impl VideoView {
    pub fn duration_s(&self) -> f64 {
        self.manifest.duration_s()
    }

    /// The smallest rendition's path (plays on every phone and loads fastest).
    pub fn smallest_mp4(&self) -> Option<&str> {
        self.manifest.smallest_rendition().map(|r| r.path.as_str())
    }

    pub fn weakest_confidence(&self) -> f32 {
        self.tracks
            .iter()
            .filter_map(TrackView::confidence)
            .fold(1.0, f32::min)
    }

    /// The subject the video is filed under (`None`: off-topic or untagged).
    pub fn subject(&self) -> Option<&str> {
        self.tags
            .as_ref()
            .and_then(Tags::subject)
            .map(|s| s.id.as_str())
    }

    pub fn language(&self) -> Option<&str> {
        self.manifest.language()
    }

    /// The renditions' frame rate (25 when the manifest names none).
    pub fn fps(&self) -> u32 {
        self.manifest
            .renditions
            .iter()
            .map(|r| r.fps)
            .find(|&f| f > 0)
            .unwrap_or(25)
    }

    /// The style rules the run cut its cues to; the defaults for runs that
    /// did not record them.
    pub fn rules(&self) -> stemfeed_captions::segment::Rules {
        match &self.manifest.captions {
            Some(stemfeed_pipeline::contract::CaptionsEntry::Made(s)) => {
                s.rules.as_deref().cloned().unwrap_or_default()
            }
            _ => stemfeed_captions::segment::Rules::default(),
        }
    }

    /// The caption editor's waveform, a path in the video's media.
    pub fn waveform(&self) -> Option<&str> {
        self.manifest.asr_audio.waveform.as_deref()
    }

    /// The title the submitter gave, else the upload's file name.
    pub fn title(&self) -> &str {
        if self.video.title.is_empty() {
            &self.video.original_name
        } else {
            &self.video.title
        }
    }

    /// The store key of `path`, a path in the run as the manifest names it.
    pub fn key(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The tracks whose newest version the public may see (see
    /// [`crate::media::version_public`]), from the history already loaded.
    pub fn public_tracks(&self) -> impl Iterator<Item = &TrackView> {
        self.tracks
            .iter()
            .filter(|t| crate::media::track_public(&self.job, &self.history, &t.track, t.version))
    }

    /// The languages of [`Self::public_tracks`], each once, in track order.
    pub fn public_languages(&self) -> Vec<String> {
        let mut languages: Vec<String> = Vec::new();
        for t in self.public_tracks() {
            if !languages.contains(&t.language) {
                languages.push(t.language.clone());
            }
        }
        languages
    }
}

/// `m:ss`, as the queue and the offline bundle show durations.
pub fn minutes(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Whether `code` looks like the ISO 639 codes track and feed languages
/// use: two or three lower-case letters.
pub fn is_language_code(code: &str) -> bool {
    (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase())
}

/// A video id as the catalog makes them: 'v' and 20 hex digits.
pub fn check_video_id(id: &str) -> Result<(), ApiError> {
    let ok =
        id.len() == 21 && id.starts_with('v') && id[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no video {id:?}"),
        ))
    }
}

/// The manifest under a video's `output_prefix`, and the key prefix its
/// paths are relative to. The prefix names either `videos/<id>` (whose
/// manifest carries `base: "runs/<run>/"`) or a run directory itself (no
/// `base`: the paths are relative to it).
pub async fn read_manifest(app: &App, prefix: &str) -> Result<(Manifest, String), ApiError> {
    let key = format!("{prefix}/manifest.json");
    let bytes = app.store.get_bytes(&key).await?;
    let manifest =
        Manifest::from_slice(&bytes).map_err(|e| ApiError::internal(format!("{key}: {e}")))?;
    let base = format!("{prefix}/{}", manifest.base.as_deref().unwrap_or_default());
    Ok((manifest, base))
}

/// Stores the recognised tracks of runs that completed before workers did
/// so themselves (version 1 of each track, author `whisper`). Run once when
/// the server starts; idempotent. Returns how many videos got tracks.
pub async fn import_old_runs(app: &App) -> Result<usize, ApiError> {
    let pending = app.db(|c| c.videos_without_captions()).await?;
    let mut done = 0;
    for (video, prefix) in pending {
        let result: Result<(), ApiError> = async {
            let (manifest, base) = read_manifest(app, &prefix).await?;
            let mut first = Vec::new();
            for t in manifest.tracks() {
                let path = t.files.json_path().map_err(ApiError::internal)?;
                let key = format!("{base}{}", path.display());
                let bytes = app.store.get_bytes(&key).await?;
                first.push(FirstCaption {
                    track: t.name(),
                    status: t.status.as_str().to_owned(),
                    reason: t.reason.clone(),
                    cues: t.cues_json(&bytes).map_err(ApiError::internal)?,
                });
            }
            let vid = video.clone();
            app.db(move |c| c.import_first_captions(&vid, &first))
                .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => done += 1,
            Err(e) => {
                tracing::warn!(video = %video, "importing the tracks of an older run: {}", e.1)
            }
        }
    }
    Ok(done)
}

/// A stored tags version, or `None` (with a warning) when it is not a valid
/// [`Tags`], as versions written by older servers may not be.
fn parse_tags(bytes: &[u8], id: &str, what: &str) -> Option<Tags> {
    serde_json::from_slice(bytes)
        .inspect_err(
            |e| tracing::warn!(video = %id, "{what} is not valid tags, shown as none: {e}"),
        )
        .ok()
}

pub async fn load(app: &App, id: &str) -> Result<VideoView, ApiError> {
    check_video_id(id)?;
    let vid = id.to_owned();
    let (video, job) = app
        .db(move |c| Ok(c.video(&vid)?.zip(c.latest_job(&vid)?)))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no video {id}")))?;
    let prefix = video.output_prefix.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "video {id} is {} and has no outputs yet",
                job.state.as_str()
            ),
        )
    })?;
    let (manifest, base) = read_manifest(app, &prefix).await?;

    // The run's tracks were stored as version 1 when its job completed
    // (or by `import_old_runs` for older runs): a GET only reads.
    let vid = id.to_owned();
    let history = app.db(move |c| c.caption_versions(&vid)).await?;
    let mut tracks = stemfeed_queue::CaptionVersion::latest_of(&history)
        .into_iter()
        .map(|v| {
            let (language, kind) = v
                .track
                .split_once('.')
                .map_or((v.track.clone(), String::new()), |(l, k)| {
                    (l.to_owned(), k.to_owned())
                });
            let cues = serde_json::from_str(&v.cues).unwrap_or_else(|e| {
                tracing::warn!(video = %id, track = %v.track, version = v.version, "stored cues unreadable, shown as none: {e}");
                Vec::new()
            });
            TrackView {
                cues,
                track: v.track,
                language,
                kind,
                status: v.status,
                reason: v.reason,
                version: v.version,
                author: v.author,
            }
        })
        .collect::<Vec<TrackView>>();
    // The transcript in the spoken language first, translations after.
    tracks.sort_by_key(|t| (t.kind != "transcript", t.track.clone()));
    let vid = id.to_owned();
    let (tags, tags_version) = match app.db(move |c| c.latest_tags(&vid)).await? {
        Some((version, _, json)) => (
            parse_tags(json.as_bytes(), id, &format!("tags version {version}")),
            version,
        ),
        None => match app.store.get_bytes(&format!("{base}tags.json")).await {
            Ok(b) => (parse_tags(&b, id, "tags.json"), 0),
            Err(_) => (None, 0),
        },
    };
    Ok(VideoView {
        video,
        job,
        manifest,
        base,
        tracks,
        tags,
        tags_version,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_tags;

    #[test]
    fn tags_from_older_servers_read_as_none() {
        // What the curator's form wrote before tags were typed: no score,
        // no evidence.
        let old = br##"{"stem": true, "off_topic": null, "subjects": [{"id": "physics", "label": "Physics",
            "label_ur": "x", "score": null, "confidence": 1.0, "topics": []}],
            "grade_band": null, "hashtags": ["#physics"], "edited_by": "ayesha"}"##;
        assert!(parse_tags(old, "v00000000000000000000", "tags version 2").is_none());
        assert!(parse_tags(b"null", "v00000000000000000000", "tags.json").is_none());
    }
}
