//! Media for players: files of a published run from the local store
//! through tower-http's `ServeFile` (HEAD, byte ranges, Last-Modified), with
//! the validators it lacks added here (a strong ETag, If-None-Match,
//! If-Match, If-Range), or a redirect to a presigned URL on S3; and caption
//! files rendered from the newest caption version. Approved videos are
//! public; anything else needs a curator. The review UI's embedded script
//! and style sheet ([`Embedded`]) use the same validators.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use httpdate::HttpDate;
use serde::Serialize;
use sha2::Digest;
use stemfeed_captions::{Cue, Track};
use stemfeed_pipeline::Manifest;
use stemfeed_queue::{CaptionVersion, Job, JobState, Role};
use tower_http::services::ServeFile;

use crate::{ApiError, App, view};

/// Public files of a run: a run never changes once written.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Generated for the public (a rewritten playlist, an approved caption
/// file): it changes when a curator decides, so caches revalidate each use,
/// which the ETag makes a 304.
const REVALIDATE: &str = "public, no-cache";
/// What only a curator may see: never kept by a shared cache, which could
/// hand it to the public under the same URL.
const PRIVATE: &str = "private, no-cache";

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

/// The one byte range of a `Range` header (`bytes=a-b`, `bytes=a-`,
/// `bytes=-n`) within an object of `size` bytes, end exclusive; `None` when
/// it cannot be satisfied. Several ranges are not served (none of our
/// players asks for them): the first is.
fn byte_range(header: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = header
        .trim()
        .strip_prefix("bytes=")?
        .split(',')
        .next()?
        .trim();
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            (b >= a).then_some(())?;
            (a, b.saturating_add(1).min(size))
        }
    };
    (start < end).then_some(start..end)
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

pub async fn media(
    State(app): State<Arc<App>>,
    Path((video, path)): Path<(String, String)>,
    method: Method,
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
    // What the public may fetch of this run as it is stored; the master
    // playlist is public only rewritten, so a curator's raw copy is not.
    let public = job.state == JobState::Approved
        && published(manifest, &path)
        && path != manifest.hls.master;
    if !curator {
        // Subtitle playlists point at the approved version, never the
        // recogniser's file; only approved tracks have one.
        if let Some(track) = path
            .strip_prefix("hls/subs/")
            .and_then(|t| t.strip_suffix(".m3u8"))
        {
            if !public_tracks(&app, &job).await?.iter().any(|t| t == track) {
                return Err(ApiError::not_found());
            }
            let body = subtitle_playlist(&video, track, manifest.duration_s());
            return Ok(generated(&headers, content_type(&path), REVALIDATE, body));
        }
        if !published(manifest, &path) {
            return Err(ApiError::not_found());
        }
        if path == manifest.hls.master {
            let bytes = app.store.get_bytes(&key).await?;
            let text = String::from_utf8_lossy(&bytes);
            let tracks = public_tracks(&app, &job).await?;
            let body = public_master(&text, &tracks);
            return Ok(generated(&headers, content_type(&path), REVALIDATE, body));
        }
        // Public media only, and short-lived.
        if let Some(url) = app.store.presign_get(&key, PRESIGN_TTL).await? {
            return Ok(Redirect::temporary(&url).into_response());
        }
    }
    let cache = if public { IMMUTABLE } else { PRIVATE };
    let Some(file_path) = app.store.local_path(&key) else {
        // A store that neither presigns nor has files (S3 for a curator):
        // send the bytes, or the one range a player asks for (HLS segments
        // are byte ranges of the rendition).
        if let Some(asked) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            let info = app
                .store
                .head(&key)
                .await?
                .ok_or_else(ApiError::not_found)?;
            return Ok(match byte_range(asked, info.size) {
                Some(range) => {
                    let bytes = app.store.get_range(&key, range.clone()).await?;
                    (
                        StatusCode::PARTIAL_CONTENT,
                        [
                            (header::CONTENT_TYPE, content_type(&path).to_owned()),
                            (header::CACHE_CONTROL, cache.to_owned()),
                            (header::ACCEPT_RANGES, "bytes".to_owned()),
                            (
                                header::CONTENT_RANGE,
                                format!("bytes {}-{}/{}", range.start, range.end - 1, info.size),
                            ),
                        ],
                        bytes,
                    )
                        .into_response()
                }
                None => (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{}", info.size))],
                )
                    .into_response(),
            });
        }
        let bytes = app.store.get_bytes(&key).await?;
        return Ok((
            [
                (header::CONTENT_TYPE, content_type(&path)),
                (header::CACHE_CONTROL, cache),
            ],
            bytes,
        )
            .into_response());
    };
    serve_file(
        method,
        &headers,
        &key,
        file_path,
        content_type(&path),
        cache,
    )
    .await
}

/// A run's file through tower-http's `ServeFile`, which answers HEAD, one
/// byte range (416 for several), Last-Modified, If-Modified-Since and
/// If-Unmodified-Since. It has no entity tags, so what needs one is decided
/// here first (RFC 9110 section 13.2.2): If-Match (412), If-None-Match (304;
/// it overrides If-Modified-Since) and If-Range (a stale validator gets the
/// whole file).
async fn serve_file(
    method: Method,
    headers: &HeaderMap,
    key: &str,
    file: PathBuf,
    content_type: &'static str,
    cache: &'static str,
) -> Result<Response, ApiError> {
    let meta = tokio::fs::metadata(&file)
        .await
        .ok()
        .filter(std::fs::Metadata::is_file)
        .ok_or_else(ApiError::not_found)?;
    let tag = file_etag(key, &meta);
    let modified = meta.modified().ok().map(HttpDate::from);
    let validators = |status: StatusCode| {
        let mut resp = status.into_response();
        set_validators(resp.headers_mut(), &tag, cache);
        resp
    };
    let mut ask = Request::new(Body::empty());
    *ask.method_mut() = method;
    let forward = ask.headers_mut();
    match if_match(headers, &tag) {
        Some(false) => return Ok(validators(StatusCode::PRECONDITION_FAILED)),
        Some(true) => {}
        None => copy(headers, forward, header::IF_UNMODIFIED_SINCE),
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        if none_match(headers, &tag) {
            return Ok(validators(StatusCode::NOT_MODIFIED));
        }
    } else {
        copy(headers, forward, header::IF_MODIFIED_SINCE);
    }
    if range_applies(headers, &tag, modified) {
        copy(headers, forward, header::RANGE);
    }
    let resp = ServeFile::new(&file)
        .try_call(ask)
        .await
        .map_err(ApiError::internal)?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::not_found());
    }
    let (mut parts, body) = resp.into_parts();
    // Ours, not a guess from the extension; a 416's body is ServeFile's text.
    if parts.status.is_success() {
        parts
            .headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    set_validators(&mut parts.headers, &tag, cache);
    Ok(Response::from_parts(parts, Body::new(body)))
}

fn copy(from: &HeaderMap, to: &mut HeaderMap, name: header::HeaderName) {
    if let Some(v) = from.get(&name) {
        to.insert(name, v.clone());
    }
}

fn set_validators(headers: &mut HeaderMap, tag: &str, cache: &'static str) {
    if let Ok(v) = HeaderValue::from_str(tag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
}

/// A strong validator: a hash of the bytes (never the bytes or a key
/// themselves: keys are internal).
fn etag(bytes: &[u8]) -> String {
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// A strong validator of a stored file without reading it: its key names
/// the run, whose files never change once written; size and modification
/// time also tell apart a file rewritten under a key that is not a run's.
fn file_etag(key: &str, meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    etag(format!("{key}\n{}\n{mtime}", meta.len()).as_bytes())
}

/// The entity tags a conditional header lists (`*` included as itself).
fn listed<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Whether `If-None-Match` names `tag` (weak comparison, as RFC 9110 asks
/// for this header) or is `*`.
fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    listed(headers, &header::IF_NONE_MATCH)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

/// Whether `If-Match` holds (strong comparison), or `None` without one.
fn if_match(headers: &HeaderMap, tag: &str) -> Option<bool> {
    headers
        .contains_key(header::IF_MATCH)
        .then(|| listed(headers, &header::IF_MATCH).any(|t| t == "*" || t == tag))
}

/// Whether a `Range` is served as a range: with no `If-Range`, or one whose
/// validator is still current by strong comparison (our ETag, or exactly
/// the Last-Modified date). A stale one gets the whole file.
fn range_applies(headers: &HeaderMap, tag: &str, modified: Option<HttpDate>) -> bool {
    let Some(v) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(v) = v.to_str().map(str::trim) else {
        return false;
    };
    if v.starts_with('"') || v.starts_with("W/") {
        return v == tag;
    }
    v.parse::<HttpDate>()
        .ok()
        .is_some_and(|d| Some(d) == modified)
}

/// A body with its validator and caching rule, or 304 when the caller has it.
fn validated(
    headers: &HeaderMap,
    tag: &str,
    content_type: &'static str,
    cache: &'static str,
    body: Body,
) -> Response {
    let mut resp = if none_match(headers, tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut resp = Response::new(body);
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp
    };
    set_validators(resp.headers_mut(), tag, cache);
    resp
}

/// Generated content (a rewritten playlist, a rendered caption file),
/// validated by a hash of itself.
fn generated(
    headers: &HeaderMap,
    content_type: &'static str,
    cache: &'static str,
    body: String,
) -> Response {
    validated(
        headers,
        &etag(body.as_bytes()),
        content_type,
        cache,
        Body::from(body),
    )
}

/// A file compiled into the binary (the review UI's script and style
/// sheet). Its URL is not versioned, so caches revalidate each use; the
/// ETag, a hash of the content computed once, makes that a 304.
#[derive(Debug)]
pub struct Embedded {
    content_type: &'static str,
    body: &'static [u8],
    tag: OnceLock<String>,
}

impl Embedded {
    pub const fn new(content_type: &'static str, body: &'static [u8]) -> Self {
        Self {
            content_type,
            body,
            tag: OnceLock::new(),
        }
    }

    pub fn respond(&self, headers: &HeaderMap) -> Response {
        let tag = self.tag.get_or_init(|| etag(self.body));
        validated(
            headers,
            tag,
            self.content_type,
            "public, no-cache",
            Body::from(self.body),
        )
    }
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
    let public = track_public(&v.job, &v.history, &t.track, t.version);
    if !curator && !public {
        return Err(ApiError::not_found());
    }
    let body = render(t, ext)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "name a .vtt, .srt or .json file"))?;
    let cache = if public { REVALIDATE } else { PRIVATE };
    Ok(generated(&headers, content_type(&file), cache, body))
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
    use super::*;

    #[test]
    fn byte_ranges_as_players_ask_for_them() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some(0..100));
        assert_eq!(byte_range("bytes=900-", 1000), Some(900..1000));
        assert_eq!(byte_range("bytes=-10", 1000), Some(990..1000));
        assert_eq!(byte_range("bytes=990-5000", 1000), Some(990..1000));
        assert_eq!(byte_range("bytes=5-9, 20-29", 1000), Some(5..10));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=9-5", 1000), None);
        assert_eq!(byte_range("items=0-5", 1000), None);
        assert_eq!(byte_range("bytes=-0", 1000), None);
    }

    use axum::http::{HeaderMap, HeaderValue};
    use httpdate::HttpDate;

    use super::{etag, if_match, none_match, range_applies};

    fn with(name: &'static str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn entity_tags() {
        let tag = etag(b"run output");
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        assert!(none_match(&with("if-none-match", &tag), &tag));
        assert!(none_match(
            &with("if-none-match", &format!("\"x\", W/{tag}")),
            &tag
        ));
        assert!(none_match(&with("if-none-match", "*"), &tag));
        assert!(!none_match(&with("if-none-match", "\"x\""), &tag));
        assert!(!none_match(&HeaderMap::new(), &tag));
        assert_eq!(if_match(&HeaderMap::new(), &tag), None);
        assert_eq!(if_match(&with("if-match", &tag), &tag), Some(true));
        assert_eq!(if_match(&with("if-match", "*"), &tag), Some(true));
        // If-Match compares strongly: a weak tag never matches.
        assert_eq!(
            if_match(&with("if-match", &format!("W/{tag}")), &tag),
            Some(false)
        );
    }

    #[test]
    fn if_range() {
        let tag = etag(b"run output");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let modified = Some(HttpDate::from(t));
        let date = httpdate::fmt_http_date(t);
        assert!(range_applies(&HeaderMap::new(), &tag, modified));
        assert!(range_applies(&with("if-range", &tag), &tag, modified));
        assert!(range_applies(&with("if-range", &date), &tag, modified));
        assert!(!range_applies(
            &with("if-range", "\"stale\""),
            &tag,
            modified
        ));
        assert!(!range_applies(
            &with("if-range", &format!("W/{tag}")),
            &tag,
            modified
        ));
        let earlier = httpdate::fmt_http_date(t - std::time::Duration::from_secs(1));
        assert!(!range_applies(&with("if-range", &earlier), &tag, modified));
        assert!(!range_applies(&with("if-range", &date), &tag, None));
        assert!(!range_applies(&with("if-range", "junk"), &tag, modified));
    }
}
