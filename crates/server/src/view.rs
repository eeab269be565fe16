//! One video as the review UI and the feed see it: the published manifest,
//! the newest version of each caption track (the recognised tracks are
//! imported as version 1 the first time anyone looks), and the newest tags.

use axum::http::StatusCode;
use serde_json::Value;
use stemfeed_captions::Cue;
use stemfeed_queue::{Job, Video};

use crate::{ApiError, App};

#[derive(Debug, Clone)]
pub struct TrackView {
    /// `<lang>.<kind>`
    pub track: String,
    pub language: String,
    pub kind: String,
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
    pub manifest: Value,
    pub tracks: Vec<TrackView>,
    pub tags: Value,
    pub tags_version: i64,
    /// Every caption version of every track, oldest first (who, when, status).
    pub history: Vec<stemfeed_queue::CaptionVersion>,
}

impl VideoView {
    pub fn duration_s(&self) -> f64 {
        self.manifest["source"]["media"]["duration_s"]
            .as_f64()
            .unwrap_or(0.0)
    }

    /// The smallest rendition (plays on every phone and loads fastest).
    pub fn smallest_mp4(&self) -> Option<String> {
        self.manifest["renditions"]
            .as_array()?
            .iter()
            .min_by_key(|r| {
                r["height"]
                    .as_u64()
                    .unwrap_or(u64::MAX)
                    .min(r["width"].as_u64().unwrap_or(u64::MAX))
            })
            .and_then(|r| r["path"].as_str().map(str::to_owned))
    }

    pub fn weakest_confidence(&self) -> f32 {
        self.tracks
            .iter()
            .filter_map(TrackView::confidence)
            .fold(1.0, f32::min)
    }

    pub fn subject(&self) -> Option<String> {
        self.tags["subjects"][0]["id"]
            .as_str()
            .filter(|_| self.tags["stem"].as_bool() != Some(false))
            .map(str::to_owned)
    }

    pub fn language(&self) -> Option<String> {
        self.manifest["captions"]["language"]["language"]
            .as_str()
            .map(str::to_owned)
    }
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
    let bytes = app
        .store
        .get_bytes(&format!("{prefix}/manifest.json"))
        .await?;
    let manifest: Value = serde_json::from_slice(&bytes).map_err(ApiError::internal)?;
    let base = format!("{prefix}/{}", manifest["base"].as_str().unwrap_or_default());

    let vid = id.to_owned();
    let mut history = app.db(move |c| c.caption_versions(&vid)).await?;
    if history.is_empty() {
        // First look: the recognised tracks become version 1.
        for t in manifest["captions"]["tracks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let Some(file) = t["files"]["json"].as_str() else {
                continue;
            };
            let detail: Value =
                serde_json::from_slice(&app.store.get_bytes(&format!("{base}{file}")).await?)
                    .map_err(ApiError::internal)?;
            let track = format!(
                "{}.{}",
                t["language"].as_str().unwrap_or("und"),
                t["kind"].as_str().unwrap_or("transcript")
            );
            let status = t["status"].as_str().unwrap_or("draft").to_owned();
            let reason = t["reason"].as_str().map(str::to_owned);
            let cues = detail["cues"].to_string();
            let vid = id.to_owned();
            app.db(move |c| {
                c.add_caption_version(&vid, &track, "whisper", &status, reason.as_deref(), &cues)
            })
            .await?;
        }
        let vid = id.to_owned();
        history = app.db(move |c| c.caption_versions(&vid)).await?;
    }
    let mut tracks = stemfeed_queue::CaptionVersion::latest_of(&history)
        .into_iter()
        .map(|v| {
            let (language, kind) = v
                .track
                .split_once('.')
                .map_or((v.track.clone(), String::new()), |(l, k)| {
                    (l.to_owned(), k.to_owned())
                });
            TrackView {
                cues: serde_json::from_str(&v.cues).unwrap_or_default(),
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
        Some((version, _, json)) => (serde_json::from_str(&json).unwrap_or(Value::Null), version),
        None => match app.store.get_bytes(&format!("{base}tags.json")).await {
            Ok(b) => (serde_json::from_slice(&b).unwrap_or(Value::Null), 0),
            Err(_) => (Value::Null, 0),
        },
    };
    Ok(VideoView {
        video,
        job,
        manifest,
        tracks,
        tags,
        tags_version,
        history,
    })
}
