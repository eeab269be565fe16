//! The published side: a JSON Feed 1.1 of approved videos at `/feed.json`,
//! the same items as plain JSON at `/api/feed`, and upload status.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stemfeed_queue::{JobState, Role};
use stemfeed_tagging::Tags;

use crate::{ApiError, App, rfc3339, view};

/// JSON Feed 1.1 (<https://jsonfeed.org/version/1.1>), with stemfeed's
/// own fields under the `_stemfeed` extension key.
#[derive(Debug, Serialize)]
struct Feed<'a> {
    version: &'static str,
    title: &'static str,
    home_page_url: &'a str,
    feed_url: String,
    language: &'static str,
    items: Vec<Item<'a>>,
}

#[derive(Debug, Serialize)]
struct Item<'a> {
    id: &'a str,
    url: String,
    title: &'a str,
    content_text: &'a str,
    image: Option<String>,
    date_published: String,
    authors: Vec<Author<'a>>,
    tags: &'a [String],
    attachments: Vec<Attachment>,
    #[serde(rename = "_stemfeed")]
    stemfeed: Extension<'a>,
}

#[derive(Debug, Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct Attachment {
    url: String,
    mime_type: &'static str,
    duration_in_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Extension<'a> {
    duration_s: f64,
    hls: String,
    renditions: Vec<Rendition<'a>>,
    captions: Vec<Captions<'a>>,
    subject: Option<&'a str>,
    topic: Option<&'a str>,
    grade_band: Option<&'a str>,
    /// `null` for a video without tags.
    hashtags: Option<&'a [String]>,
    language: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Rendition<'a> {
    url: String,
    width: u32,
    height: u32,
    bytes: u64,
    video_kbps: u32,
    audio_kbps: Option<u32>,
    codecs: &'a str,
}

#[derive(Debug, Serialize)]
struct Captions<'a> {
    language: &'a str,
    kind: &'a str,
    status: &'a str,
    version: i64,
    rtl: bool,
    vtt: String,
    srt: String,
}

fn item<'a>(v: &'a view::VideoView, origin: &str) -> Item<'a> {
    let id = &v.video.id;
    let media = |rel: &str| format!("{origin}/media/{id}/{rel}");
    let m = &v.manifest;
    let renditions = m
        .renditions
        .iter()
        .map(|r| Rendition {
            url: media(&r.path),
            width: r.width,
            height: r.height,
            bytes: r.bytes,
            video_kbps: r.video_kbps,
            audio_kbps: r.audio_kbps,
            codecs: &r.codecs,
        })
        .collect();
    let hls = media(&m.hls.master);
    // Only approved tracks are public; an edit after approval waits for
    // re-approval (see `media::version_public`).
    let captions = v
        .tracks
        .iter()
        .filter(|t| crate::media::track_public(&v.job, &v.history, &t.track, t.version))
        .map(|t| Captions {
            language: &t.language,
            kind: &t.kind,
            status: &t.status,
            version: t.version,
            rtl: stemfeed_captions::bidi::is_rtl_language(&t.language),
            vtt: format!("{origin}/captions/{id}/{}.vtt", t.track),
            srt: format!("{origin}/captions/{id}/{}.srt", t.track),
        })
        .collect();
    let tags = v.tags.as_ref();
    let title = if v.video.title.is_empty() {
        &v.video.original_name
    } else {
        &v.video.title
    };
    let mut attachments = vec![Attachment {
        url: hls.clone(),
        mime_type: "application/vnd.apple.mpegurl",
        duration_in_seconds: v.duration_s(),
    }];
    if let Some(mp4) = v.smallest_mp4() {
        attachments.push(Attachment {
            url: media(mp4),
            mime_type: "video/mp4",
            duration_in_seconds: v.duration_s(),
        });
    }
    Item {
        id,
        url: format!("{origin}/review/{id}"),
        title,
        content_text: if v.video.description.is_empty() {
            title
        } else {
            &v.video.description
        },
        image: m.poster.as_ref().map(|p| media(&p.path)),
        date_published: rfc3339(v.video.created_ms),
        authors: if v.video.creator.is_empty() {
            Vec::new()
        } else {
            vec![Author {
                name: &v.video.creator,
            }]
        },
        tags: tags.map_or(&[], |t| &t.hashtags),
        attachments,
        stemfeed: Extension {
            duration_s: v.duration_s(),
            hls,
            renditions,
            captions,
            subject: v.subject(),
            topic: tags.and_then(Tags::topic).map(|t| t.id.as_str()),
            grade_band: tags
                .and_then(|t| t.grade_band.as_ref())
                .map(|g| g.id.as_str()),
            hashtags: tags.map(|t| t.hashtags.as_slice()),
            language: m.language(),
        },
    }
}

async fn approved(app: &App) -> Result<Vec<view::VideoView>, ApiError> {
    let videos = app.db(|c| c.videos_in(&[JobState::Approved])).await?;
    let mut views = Vec::new();
    for (video, _) in videos {
        match view::load(app, &video.id).await {
            Ok(v) => views.push(v),
            Err(e) => tracing::warn!(video = %video.id, "left out of the feed: {}", e.1),
        }
    }
    Ok(views)
}

/// Feed URLs come from `[server] public_url`, never from the request's
/// `Host`: a forged one must not end up in what players and crawlers fetch.
pub async fn json_feed(
    State(app): State<Arc<App>>,
) -> Result<([(&'static str, &'static str); 1], String), ApiError> {
    let origin = app.server.public_url.clone();
    let views = approved(&app).await?;
    let feed = Feed {
        version: "https://jsonfeed.org/version/1.1",
        title: "stemfeed — STEM in Pakistani languages",
        home_page_url: &origin,
        feed_url: format!("{origin}/feed.json"),
        language: "ur",
        items: views.iter().map(|v| item(v, &origin)).collect(),
    };
    Ok((
        [("content-type", "application/feed+json")],
        serde_json::to_string(&feed).map_err(ApiError::internal)?,
    ))
}

/// The feed's items as plain JSON.
#[derive(Debug, Serialize)]
struct Videos<'a> {
    videos: Vec<Item<'a>>,
}

pub async fn api_feed(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let origin = app.server.public_url.clone();
    let views = approved(&app).await?;
    let videos = Videos {
        videos: views.iter().map(|v| item(v, &origin)).collect(),
    };
    Ok(Json(videos).into_response())
}

/// `/api/videos/<id>`: where an upload is, for its submitter.
#[derive(Debug, Serialize)]
pub struct UploadStatus {
    video: String,
    file: String,
    title: String,
    /// The latest job's; `None` before one exists.
    state: Option<&'static str>,
    progress: Option<f64>,
    attempts: Option<u32>,
    error: Option<String>,
    asked_by: String,
}

/// Status of a video for its submitter (or a curator).
pub async fn status(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<UploadStatus>, ApiError> {
    let caller = app
        .require(&headers, Role::Submitter)
        .await
        .or(app.require(&headers, Role::Curator).await)?;
    view::check_video_id(&id)?;
    let vid = id.clone();
    let (video, jobs) = app
        .db(move |c| Ok((c.video(&vid)?, c.jobs(Some(&vid))?)))
        .await?;
    let video = video.ok_or_else(ApiError::not_found)?;
    let job = jobs.last();
    Ok(Json(UploadStatus {
        video: video.id,
        file: video.original_name,
        title: video.title,
        state: job.map(|j| j.state.as_str()),
        progress: job.map(|j| j.progress),
        attempts: job.map(|j| j.attempts),
        error: job.and_then(|j| j.last_error.clone()),
        asked_by: caller.name,
    }))
}
