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
use stemfeed_pipeline::Manifest;
use stemfeed_queue::{CaptionVersion, Job, JobState, Role};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{ApiError, App, view};

/// Whether the caller is a curator (full access to everything).
async fn is_curator(app: &App, headers: &HeaderMap) -> Result<bool, ApiError> {
    Ok(matches!(app.caller(headers).await?, Some(c) if c.role.allows(Role::Curator)))
}

/// How long a presigned URL for public media lives.
const PRESIGN_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Whether one caption version (the newest of its track) is public: the
/// video is approved, and a curator approved this version, either on the
/// track itself or by approving the video after it was made. A rejected
/// track, and an edit made after the approval, are not public until a
/// curator approves them.
pub fn version_public(job: &Job, v: &CaptionVersion) -> bool {
    job.state == JobState::Approved
        && (v.status == "approved" || (v.status != "rejected" && v.created_ms <= job.updated_ms))
}

/// Whether the newest version of `track` in `history` is public.
pub fn track_public(job: &Job, history: &[CaptionVersion], track: &str, version: i64) -> bool {
    history
        .iter()
        .find(|h| h.track == track && h.version == version)
        .is_some_and(|h| version_public(job, h))
}

/// The names of a video's public caption tracks (see [`version_public`]).
/// A track with no versions yet is not public.
pub async fn public_tracks(app: &App, job: &Job) -> Result<Vec<String>, ApiError> {
    let vid = job.video_id.clone();
    let history = app.db(move |c| c.caption_versions(&vid)).await?;
    Ok(CaptionVersion::latest_of(&history)
        .into_iter()
        .filter(|v| version_public(job, v))
        .map(|v| v.track)
        .collect())
}

/// What an approved video publishes, by path relative to its run: the
/// renditions, HLS playlists and segments, the poster and thumbnails.
/// Caption files of the run (the recogniser's raw output) are not in it.
fn published(m: &Manifest, path: &str) -> bool {
    let exact = m
        .renditions
        .iter()
        .flat_map(|r| [r.path.as_str(), r.hls_playlist.as_str()])
        .chain([m.hls.master.as_str()])
        .chain(m.poster.iter().map(|p| p.path.as_str()))
        .chain(m.thumbnails.iter().map(|t| t.path.as_str()));
    if exact.into_iter().any(|p| p == path) {
        return true;
    }
    // A segment next to a rendition's playlist.
    let Some((dir, name)) = path.rsplit_once('/') else {
        return false;
    };
    let segment = (name.ends_with(".ts") || name.ends_with(".m4s"))
        && !name.starts_with('.')
        && !name.contains("..");
    segment
        && m.renditions
            .iter()
            .any(|r| r.hls_playlist.rsplit_once('/').map(|(d, _)| d) == Some(dir))
}

/// The master playlist as the public sees it: only the subtitle groups of
/// approved tracks (each pointing at [`subtitle_playlist`]).
fn public_master(text: &str, public: &[String]) -> String {
    let mut out = String::new();
    let mut kept = 0;
    for line in text.lines() {
        if line.starts_with("#EXT-X-MEDIA:TYPE=SUBTITLES") {
            let keep = line
                .split("URI=\"")
                .nth(1)
                .and_then(|u| u.split('"').next())
                .and_then(|u| u.strip_prefix("subs/"))
                .and_then(|u| u.strip_suffix(".m3u8"))
                .is_some_and(|t| public.iter().any(|p| p == t));
            if !keep {
                continue;
            }
            kept += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if kept == 0 {
        out = out.replace(",SUBTITLES=\"subs\"", "");
    }
    out
}

/// A subtitle playlist whose one segment is the approved version of `track`.
fn subtitle_playlist(video: &str, track: &str, duration_s: f64) -> String {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:{duration_s:.3},\n/captions/{video}/{track}.vtt\n#EXT-X-ENDLIST\n",
        duration_s.ceil().max(1.0) as u64
    )
}

/// The manifest a video's job published, and the key prefix its paths are
/// relative to, read once and kept (see [`crate::cache`]) so a player's
/// segment requests do not re-read it. A run (`videos/<id>/runs/<run>`, what
/// the catalog points at) never changes once published; an older
/// `videos/<id>` pointer is repointed by new runs, so it is kept only for
/// an approved job, whose run is final.
async fn manifest(app: &App, prefix: &str, job: &Job) -> Result<crate::cache::Cached, ApiError> {
    let cacheable = job.state == JobState::Approved || prefix.contains("/runs/");
    if cacheable && let Some(hit) = app.manifests.get(prefix, job.id) {
        return Ok(hit);
    }
    let read = Arc::new(view::read_manifest(app, prefix).await?);
    if cacheable {
        app.manifests.insert(prefix, job.id, Arc::clone(&read));
    }
    Ok(read)
}

/// A video's latest job, or 404 for an unknown or malformed id.
async fn latest_job(app: &App, video: &str) -> Result<Job, ApiError> {
    view::check_video_id(video).map_err(|_| ApiError::not_found())?;
    let vid = video.to_owned();
    app.db(move |c| c.latest_job(&vid))
        .await?
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
    // The public sees only what an approved video publishes; curators
    // see everything. Anything else is the same 404 as a missing video.
    let curator = is_curator(&app, &headers).await?;
    if !curator && job.state != JobState::Approved {
        return Err(ApiError::not_found());
    }
    // 404s here say nothing more: object keys and run ids are internal.
    let prefix = v.output_prefix.ok_or_else(ApiError::not_found)?;
    let cached = manifest(&app, &prefix, &job).await?;
    let (manifest, base) = (&cached.0, &cached.1);
    let key = format!("{base}{path}");
    stemfeed_store::check_key(&key).map_err(|e| {
        tracing::debug!(video = %video, "media path refused: {e}");
        ApiError::not_found()
    })?;
    if !curator {
        let playlist = |body: String| {
            (
                [
                    ("content-type", content_type(&path)),
                    ("cache-control", "no-cache"),
                ],
                body,
            )
                .into_response()
        };
        // Subtitle playlists point at the approved version, never the
        // recogniser's file; only approved tracks have one.
        if let Some(track) = path
            .strip_prefix("hls/subs/")
            .and_then(|t| t.strip_suffix(".m3u8"))
        {
            if !public_tracks(&app, &job).await?.iter().any(|t| t == track) {
                return Err(ApiError::not_found());
            }
            return Ok(playlist(subtitle_playlist(
                &video,
                track,
                manifest.duration_s(),
            )));
        }
        if !published(manifest, &path) {
            return Err(ApiError::not_found());
        }
        if path == manifest.hls.master {
            let bytes = app.store.get_bytes(&key).await?;
            let text = String::from_utf8_lossy(&bytes);
            let public = public_tracks(&app, &job).await?;
            return Ok(playlist(public_master(&text, &public)));
        }
        // Public media only, and short-lived.
        if let Some(url) = app.store.presign_get(&key, PRESIGN_TTL).await? {
            return Ok(Redirect::temporary(&url).into_response());
        }
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
    // Who may see it is decided before anything about the video is read:
    // the public gets only approved tracks of approved videos.
    let job = latest_job(&app, &video).await?;
    let curator = is_curator(&app, &headers).await?;
    if !curator {
        let track = file.rsplit_once('.').map_or("", |(t, _)| t);
        if job.state != JobState::Approved
            || !public_tracks(&app, &job).await?.iter().any(|t| t == track)
        {
            return Err(ApiError::not_found());
        }
    }
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
    let t = v
        .tracks
        .iter()
        .find(|t| t.track == track)
        .ok_or_else(ApiError::not_found)?;
    // Checked again on what is served: an edit may have landed since.
    if !curator && !track_public(&v.job, &v.history, &t.track, t.version) {
        return Err(ApiError::not_found());
    }
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
