//! The published side: a JSON Feed 1.1 of approved videos at `/feed.json`,
//! the same items as plain JSON at `/api/feed`, and upload status.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use stemfeed_queue::{JobState, Role};

use crate::{ApiError, App, rfc3339, view};

/// `http://host` as the client addressed us.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn item(v: &view::VideoView, origin: &str) -> Value {
    let id = &v.video.id;
    let media = |rel: &str| format!("{origin}/media/{id}/{rel}");
    let m = &v.manifest;
    let renditions: Vec<Value> = m["renditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            json!({
                "url": media(r["path"].as_str().unwrap_or_default()),
                "width": r["width"], "height": r["height"], "bytes": r["bytes"],
                "video_kbps": r["video_kbps"], "audio_kbps": r["audio_kbps"], "codecs": r["codecs"],
            })
        })
        .collect();
    let hls = m["hls"]["master"].as_str().map(media);
    let captions: Vec<Value> = v
        .tracks
        .iter()
        .map(|t| {
            json!({
                "language": t.language, "kind": t.kind, "status": t.status, "version": t.version,
                "rtl": stemfeed_captions::bidi::is_rtl_language(&t.language),
                "vtt": format!("{origin}/captions/{id}/{}.vtt", t.track),
                "srt": format!("{origin}/captions/{id}/{}.srt", t.track),
            })
        })
        .collect();
    let tags = &v.tags;
    let hashtags: Vec<Value> = tags["hashtags"].as_array().cloned().unwrap_or_default();
    let smallest = v.smallest_mp4();
    let title = if v.video.title.is_empty() {
        v.video.original_name.clone()
    } else {
        v.video.title.clone()
    };
    let mut attachments = Vec::new();
    if let Some(h) = &hls {
        attachments.push(json!({"url": h, "mime_type": "application/vnd.apple.mpegurl", "duration_in_seconds": v.duration_s()}));
    }
    if let Some(mp4) = &smallest {
        attachments.push(json!({"url": media(mp4), "mime_type": "video/mp4", "duration_in_seconds": v.duration_s()}));
    }
    json!({
        "id": id,
        "url": format!("{origin}/review/{id}"),
        "title": title,
        "content_text": if v.video.description.is_empty() { title.clone() } else { v.video.description.clone() },
        "image": m["poster"]["path"].as_str().map(media),
        "date_published": rfc3339(v.video.created_ms),
        "authors": if v.video.creator.is_empty() { json!([]) } else { json!([{"name": v.video.creator}]) },
        "tags": hashtags,
        "attachments": attachments,
        "_stemfeed": {
            "duration_s": v.duration_s(),
            "hls": hls,
            "renditions": renditions,
            "captions": captions,
            "subject": tags["subjects"][0]["id"],
            "topic": tags["subjects"][0]["topics"][0]["id"],
            "grade_band": tags["grade_band"]["id"],
            "hashtags": tags["hashtags"],
            "language": m["captions"]["language"]["language"],
        },
    })
}

async fn approved_items(app: &App, origin: &str) -> Result<Vec<Value>, ApiError> {
    let videos = app.db(|c| c.videos_in(&[JobState::Approved])).await?;
    let mut items = Vec::new();
    for (video, _) in videos {
        match view::load(app, &video.id).await {
            Ok(v) => items.push(item(&v, origin)),
            Err(e) => tracing::warn!(video = %video.id, "left out of the feed: {}", e.1),
        }
    }
    Ok(items)
}

pub async fn json_feed(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<([(&'static str, &'static str); 1], String), ApiError> {
    let origin = origin(&headers);
    let feed = json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "stemfeed — STEM in Pakistani languages",
        "home_page_url": origin,
        "feed_url": format!("{origin}/feed.json"),
        "language": "ur",
        "items": approved_items(&app, &origin).await?,
    });
    Ok((
        [("content-type", "application/feed+json")],
        feed.to_string(),
    ))
}

pub async fn api_feed(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let origin = origin(&headers);
    Ok(Json(
        json!({ "videos": approved_items(&app, &origin).await? }),
    ))
}

/// Status of a video for its submitter (or a curator).
pub async fn status(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = app
        .require(&headers, Role::Submitter)
        .await
        .or(app.require(&headers, Role::Curator).await)?;
    view::check_video_id(&id)?;
    let vid = id.clone();
    let (video, jobs) = app
        .db(move |c| Ok((c.video(&vid)?, c.jobs(Some(&vid))?)))
        .await?;
    let video =
        video.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no video {id}")))?;
    let job = jobs.last();
    Ok(Json(json!({
        "video": video.id,
        "file": video.original_name,
        "title": video.title,
        "state": job.map(|j| j.state.as_str()),
        "progress": job.map(|j| j.progress),
        "attempts": job.map(|j| j.attempts),
        "error": job.and_then(|j| j.last_error.clone()),
        "asked_by": caller.name,
    })))
}
