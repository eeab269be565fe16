//! Media for players: files of a published run, with HTTP range requests
//! from the local store, or a redirect to a presigned URL on S3; and caption
//! files rendered from the newest caption version. Approved videos are
//! public; anything else needs a curator.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use stemfeed_captions::{Cue, Track};
use stemfeed_queue::{JobState, Role};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{ApiError, App, view};

/// Approved videos are public; anything else is for curators, and to
/// anyone else it does not exist: the same 404 as a missing video, so an
/// anonymous caller cannot learn which unapproved ids exist.
async fn allowed(app: &App, headers: &HeaderMap, state: JobState) -> Result<(), ApiError> {
    if state == JobState::Approved {
        return Ok(());
    }
    match app.caller(headers).await? {
        Some(c) if c.role.allows(Role::Curator) => Ok(()),
        _ => Err(ApiError::not_found()),
    }
}

/// The state of a video's latest job, or 404 for an unknown or malformed id.
async fn latest_state(app: &App, video: &str) -> Result<JobState, ApiError> {
    view::check_video_id(video).map_err(|_| ApiError::not_found())?;
    let vid = video.to_owned();
    app.db(move |c| c.latest_job(&vid))
        .await?
        .map(|j| j.state)
        .ok_or_else(ApiError::not_found)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "mp4" => "video/mp4",
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        "jpg" | "jpeg" => "image/jpeg",
        "vtt" => "text/vtt; charset=utf-8",
        "srt" => "application/x-subrip; charset=utf-8",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// A single `bytes=` range against a file of `len` bytes: (start, end inclusive).
pub fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?.trim();
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

pub async fn media(
    State(app): State<Arc<App>>,
    Path((video, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    view::check_video_id(&video).map_err(|_| ApiError::not_found())?;
    let vid = video.clone();
    let (v, job) = app
        .db(move |c| Ok(c.video(&vid)?.zip(c.latest_job(&vid)?)))
        .await?
        .ok_or_else(ApiError::not_found)?;
    allowed(&app, &headers, job.state).await?;
    // 404s here say nothing more: object keys and run ids are internal.
    let prefix = v.output_prefix.ok_or_else(ApiError::not_found)?;
    let (_, base) = view::read_manifest(&app, &prefix).await?;
    let key = format!("{base}{path}");
    stemfeed_store::check_key(&key).map_err(|e| {
        tracing::debug!(video = %video, "media path refused: {e}");
        ApiError::not_found()
    })?;
    if let Some(url) = app
        .store
        .presign_get(&key, std::time::Duration::from_secs(3600))
        .await?
    {
        return Ok(Redirect::temporary(&url).into_response());
    }
    let Some(file_path) = app.store.local_path(&key) else {
        // A store that neither presigns nor has files: send the bytes.
        let bytes = app.store.get_bytes(&key).await?;
        return Ok(([("content-type", content_type(&path))], bytes).into_response());
    };
    let mut file = tokio::fs::File::open(&file_path)
        .await
        .map_err(|_| ApiError::not_found())?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let range = headers.get("range").and_then(|v| v.to_str().ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(r) => match parse_range(r, len) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            None => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [("content-range", format!("bytes */{len}"))],
                )
                    .into_response());
            }
        },
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(ApiError::internal)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(count)));
    let mut resp = Response::builder()
        .status(status)
        .header("content-type", content_type(&path))
        .header("accept-ranges", "bytes")
        .header("content-length", count.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header("content-range", format!("bytes {start}-{end}/{len}"));
    }
    resp.body(body).map_err(ApiError::internal)
}

/// `/captions/<video>/<lang>.<kind>.<vtt|srt|json>`: the newest version.
pub async fn captions(
    State(app): State<Arc<App>>,
    Path((video, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Who may see it is decided before anything about the video is read.
    let state = latest_state(&app, &video).await?;
    allowed(&app, &headers, state).await?;
    let v = view::load(&app, &video).await.map_err(|e| {
        if e.0 == StatusCode::NOT_FOUND {
            ApiError::not_found()
        } else {
            e
        }
    })?;
    let (track, ext) = file
        .rsplit_once('.')
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "name a .vtt, .srt or .json file"))?;
    let t =
        v.tracks.iter().find(|t| t.track == track).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("no caption track {track}"))
        })?;
    let body = render(t, ext)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "name a .vtt, .srt or .json file"))?;
    Ok((
        [
            ("content-type", content_type(&file)),
            ("cache-control", "no-cache"),
        ],
        body,
    )
        .into_response())
}

/// `/captions/<video>/<track>.json` and the exported `edits/<track>.v<n>.json`:
/// one caption version with who made it.
#[derive(Serialize)]
struct TrackJson<'a> {
    language: &'a str,
    kind: &'a str,
    status: &'a str,
    reason: Option<&'a str>,
    version: i64,
    author: &'a str,
    cues: &'a [Cue],
}

/// A track version as WebVTT, SRT or caption JSON.
pub fn render(t: &view::TrackView, ext: &str) -> Option<String> {
    let track = Track {
        language: t.language.clone(),
        kind: t.kind.clone(),
        cues: t.cues.clone(),
        regions: Vec::new(),
    };
    Some(match ext {
        "vtt" => stemfeed_captions::webvtt::write(&track),
        "srt" => stemfeed_captions::srt::write(&track),
        "json" => serde_json::to_string(&TrackJson {
            language: &t.language,
            kind: &t.kind,
            status: &t.status,
            reason: t.reason.as_deref(),
            version: t.version,
            author: &t.author,
            cues: &t.cues,
        })
        .expect("a caption version is plain data"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=10-19", 100), Some((10, 19)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
