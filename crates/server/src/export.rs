//! What an export takes from a video: its approved caption track in one
//! language and the rendition to draw it on. Only an approved video, and
//! only a track whose newest version the public may see (see
//! [`crate::media::version_public`]), is ever exported.

use axum::http::StatusCode;
use stemfeed_captions::Cue;
use stemfeed_queue::JobState;

use crate::{ApiError, App, media, view};

/// The approved track and the largest rendition of one video.
#[derive(Debug, Clone)]
pub struct PlatformSource {
    pub title: String,
    /// `<lang>.<kind>`.
    pub track: String,
    pub version: i64,
    pub cues: Vec<Cue>,
    /// The rendition's key in the object store.
    pub rendition_key: String,
    pub width: u32,
    pub height: u32,
    pub duration_s: f64,
}

/// The approved `language` track of `video` (its transcript when the video
/// is spoken in it, else its translation) and its largest rendition.
pub async fn platform_source(
    app: &App,
    video: &str,
    language: &str,
) -> Result<PlatformSource, ApiError> {
    let v = view::load(app, video).await?;
    if v.job.state != JobState::Approved {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "video {video} is {}: only approved videos are exported",
                v.job.state.as_str()
            ),
        ));
    }
    let public = media::public_tracks(app, &v.job).await?;
    let mut candidates: Vec<_> = v
        .tracks
        .iter()
        .filter(|t| t.language == language && public.contains(&t.track))
        .collect();
    candidates.sort_by_key(|t| t.kind != "transcript");
    let track = candidates.first().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "video {video} has no approved {language} caption track (approved: {})",
                if public.is_empty() {
                    "none".to_owned()
                } else {
                    public.join(", ")
                }
            ),
        )
    })?;
    let rendition = v
        .manifest
        .renditions
        .iter()
        .max_by_key(|r| r.width * r.height)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!("video {video} has no rendition"),
            )
        })?;
    let prefix = v.video.output_prefix.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("video {video} has no outputs"),
        )
    })?;
    let base = format!(
        "{prefix}/{}",
        v.manifest.base.as_deref().unwrap_or_default()
    );
    Ok(PlatformSource {
        title: if v.video.title.is_empty() {
            v.video.original_name.clone()
        } else {
            v.video.title.clone()
        },
        track: track.track.clone(),
        version: track.version,
        cues: track.cues.clone(),
        rendition_key: format!("{base}{}", rendition.path),
        width: rendition.width,
        height: rendition.height,
        duration_s: v.duration_s(),
    })
}
