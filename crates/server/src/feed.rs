//! The published side: a JSON Feed 1.1 of approved videos at `/feed.json`,
//! the same items as plain JSON at `/api/feed`, and upload status.
//!
//! Both feeds are paginated, newest first: `?limit=N` (default
//! [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]) and `?before=<cursor>`, an
//! opaque cursor naming the last item of the previous page (its
//! publication time and id, which never change). A page with more after it
//! carries `next_url`. Responses have a strong `ETag` (a hash of the body),
//! answer `If-None-Match` with 304, and may be cached for a minute.
//!
//! Filters (any combination; `next_url` keeps them): `?language=ur` (the
//! spoken language, or an approved caption track in it), `?subject=physics`
//! (a subject id of the taxonomy; the curator's tags when edited),
//! `?grade=9` (1–12: the video's grade band covers it). An unknown subject,
//! a malformed language or a grade out of range is a 400 naming the
//! parameter.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use stemfeed_queue::{Job, JobState, Role, Video};
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
    /// The next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<String>,
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

/// Items on a page unless `?limit=` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// The most items one page has.
pub const MAX_LIMIT: usize = 200;

/// The query of both feeds; other parameters are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    before: Option<String>,
    language: Option<String>,
    subject: Option<String>,
    grade: Option<String>,
}

/// What a page (or an offline bundle) is filtered by, checked.
#[derive(Debug, Default)]
pub struct Filter {
    language: Option<String>,
    subject: Option<String>,
    grade: Option<u8>,
}

impl Filter {
    /// The filter of `language`, `subject` and `grade` as the feed's query
    /// parameters name them (checked the same way).
    pub fn parse(
        app: &App,
        language: Option<&str>,
        subject: Option<&str>,
        grade: Option<&str>,
    ) -> Result<Self, ApiError> {
        let q = PageQuery {
            language: language.map(str::to_owned),
            subject: subject.map(str::to_owned),
            grade: grade.map(str::to_owned),
            ..PageQuery::default()
        };
        Self::from_query(&q, app)
    }

    fn from_query(q: &PageQuery, app: &App) -> Result<Self, ApiError> {
        let language = match q.language.as_deref().filter(|l| !l.is_empty()) {
            None => None,
            Some(l) if view::is_language_code(l) => Some(l.to_owned()),
            Some(_) => {
                return Err(bad_request(
                    "language is an ISO 639 code in lower case, like ur or en",
                ));
            }
        };
        let subject = match q.subject.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let known = &app.tagger.taxonomy().subjects;
                if !known.iter().any(|k| k.id == s) {
                    let ids: Vec<&str> = known.iter().map(|k| k.id.as_str()).collect();
                    return Err(bad_request(&format!(
                        "subject is one of: {}",
                        ids.join(", ")
                    )));
                }
                Some(s.to_owned())
            }
        };
        let grade = match q.grade.as_deref().filter(|g| !g.is_empty()) {
            None => None,
            Some(g) => match g.parse::<u8>() {
                Ok(n) if (1..=12).contains(&n) => Some(n),
                _ => return Err(bad_request("grade is a school grade from 1 to 12")),
            },
        };
        Ok(Self {
            language,
            subject,
            grade,
        })
    }

    fn is_empty(&self) -> bool {
        self.language.is_none() && self.subject.is_none() && self.grade.is_none()
    }

    /// The filter as query parameters (`&k=v…`), for `next_url`.
    fn query(&self) -> String {
        let mut out = String::new();
        if let Some(l) = &self.language {
            out.push_str(&format!("&language={l}"));
        }
        if let Some(s) = &self.subject {
            out.push_str(&format!("&subject={s}"));
        }
        if let Some(g) = self.grade {
            out.push_str(&format!("&grade={g}"));
        }
        out
    }

    pub fn matches(&self, v: &view::VideoView) -> bool {
        let language = self.language.as_deref().is_none_or(|l| {
            v.language() == Some(l)
                || v.tracks.iter().any(|t| {
                    t.language == l
                        && crate::media::track_public(&v.job, &v.history, &t.track, t.version)
                })
        });
        let subject = self
            .subject
            .as_deref()
            .is_none_or(|s| v.subject() == Some(s));
        let grade = self.grade.is_none_or(|g| {
            v.tags
                .as_ref()
                .and_then(|t| t.grade_band.as_ref())
                .is_some_and(|b| (b.grades[0]..=b.grades[1]).contains(&g))
        });
        language && subject && grade
    }
}

/// Where a page starts: after the video published at `ms` with id `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    ms: i64,
    id: String,
}

impl Cursor {
    fn of(v: &Video) -> Self {
        Self {
            ms: v.created_ms,
            id: v.id.clone(),
        }
    }

    /// The feed's order, newest first, then by id: the smaller key first.
    fn key(&self) -> (std::cmp::Reverse<i64>, &str) {
        (std::cmp::Reverse(self.ms), &self.id)
    }

    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}.{}", self.ms, self.id))
    }

    fn decode(s: &str) -> Option<Self> {
        if s.len() > 64 {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (ms, id) = text.split_once('.')?;
        view::check_video_id(id).ok()?;
        Some(Self {
            ms: ms.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

fn bad_request(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// A page of the feed: its videos and the URL of the next page, if any.
struct Page {
    views: Vec<view::VideoView>,
    next_url: Option<String>,
}

/// One page of approved videos; `path` is the feed's own path, for
/// `next_url` (on `[server] public_url`, never the request's `Host`).
async fn page(app: &App, query: &PageQuery, path: &str) -> Result<Page, ApiError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad_request(&format!(
                    "limit is a number from 1 to {MAX_LIMIT}"
                )));
            }
        },
    };
    let after = query
        .before
        .as_deref()
        .map(|c| Cursor::decode(c).ok_or_else(|| bad_request("before is not a feed cursor")))
        .transpose()?;
    let filter = Filter::from_query(query, app)?;
    let mut rows: Vec<(Video, Job)> = app.db(|c| c.videos_in(&[JobState::Approved])).await?;
    // Newest first, then by id: the order of [`Cursor::key`].
    rows.sort_by(|(a, _), (b, _)| {
        b.created_ms
            .cmp(&a.created_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    let rest: Vec<Video> = rows
        .into_iter()
        .map(|(v, _)| v)
        .filter(|v| after.as_ref().is_none_or(|c| Cursor::of(v).key() > c.key()))
        .collect();
    // Each video is read (manifest, tracks, tags) until the page is full;
    // with a filter, until one more match shows there is a next page.
    let mut views = Vec::new();
    let mut more = false;
    for video in &rest {
        if filter.is_empty() && views.len() == limit {
            more = true;
            break;
        }
        match view::load(app, &video.id).await {
            Ok(v) if filter.matches(&v) => {
                if views.len() == limit {
                    more = true;
                    break;
                }
                views.push(v);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(video = %video.id, "left out of the feed: {}", e.1),
        }
    }
    let next_url = views.last().filter(|_| more).map(|last| {
        format!(
            "{}{path}?limit={limit}{}&before={}",
            app.server.public_url,
            filter.query(),
            Cursor::of(&last.video).encode()
        )
    });
    Ok(Page { views, next_url })
}

/// A strong validator: a hash of the body.
fn etag(body: &[u8]) -> String {
    let digest = sha2::Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether `If-None-Match` names `tag` (weak comparison, as RFC 9110 asks
/// for this header) or is `*`.
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

/// The feed's body with its validator, or 304 when the caller has it.
fn cacheable(
    headers: &HeaderMap,
    content_type: &'static str,
    body: String,
) -> Result<Response, ApiError> {
    let tag = etag(body.as_bytes());
    let fresh = not_modified(headers, &tag);
    let resp = Response::builder()
        .header(header::ETAG, &tag)
        .header(header::CACHE_CONTROL, "public, max-age=60");
    if fresh {
        resp.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        resp.status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
    }
    .map_err(ApiError::internal)
}

/// Feed URLs come from `[server] public_url`, never from the request's
/// `Host`: a forged one must not end up in what players and crawlers fetch.
pub async fn json_feed(
    State(app): State<Arc<App>>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let origin = app.server.public_url.clone();
    let page = page(&app, &query, "/feed.json").await?;
    let feed = Feed {
        version: "https://jsonfeed.org/version/1.1",
        title: "stemfeed — STEM in Pakistani languages",
        home_page_url: &origin,
        feed_url: format!("{origin}/feed.json"),
        next_url: page.next_url.clone(),
        language: "ur",
        items: page.views.iter().map(|v| item(v, &origin)).collect(),
    };
    let body = serde_json::to_string(&feed).map_err(ApiError::internal)?;
    cacheable(&headers, "application/feed+json", body)
}

/// The feed's items as plain JSON.
#[derive(Debug, Serialize)]
struct Videos<'a> {
    videos: Vec<Item<'a>>,
    /// The next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<String>,
}

pub async fn api_feed(
    State(app): State<Arc<App>>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let origin = app.server.public_url.clone();
    let page = page(&app, &query, "/api/feed").await?;
    let videos = Videos {
        videos: page.views.iter().map(|v| item(v, &origin)).collect(),
        next_url: page.next_url.clone(),
    };
    let body = serde_json::to_string(&videos).map_err(ApiError::internal)?;
    cacheable(&headers, "application/json", body)
}

/// `/api/videos/<id>`: where an upload is, for its submitter.
#[derive(Debug, Serialize)]
pub struct UploadStatus {
    video: String,
    file: String,
    title: String,
    /// The latest job's; `None` before one exists.
    state: Option<&'static str>,
    /// The part of the job it is at or waiting for: `transcode` or
    /// `captions`. Where transcode and caption workers are separate pools,
    /// `queued` with `captions` means transcoded and waiting for a caption
    /// worker.
    phase: Option<&'static str>,
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
        phase: job.map(|j| j.phase.as_str()),
        progress: job.map(|j| j.progress),
        attempts: job.map(|j| j.attempts),
        error: job.and_then(|j| j.last_error.clone()),
        asked_by: caller.name,
    }))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::{Cursor, etag, not_modified};

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = Cursor {
            ms: 1_795_000_000_000,
            id: "v0123456789abcdef0123".to_owned(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for junk in ["", "x", "MTIz", "bm90LWEtY3Vyc29y", &"A".repeat(100)] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }

    #[test]
    fn if_none_match() {
        let tag = etag(b"{}");
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("if-none-match", HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(not_modified(&with(&tag), &tag));
        assert!(not_modified(&with(&format!("\"x\", W/{tag}")), &tag));
        assert!(not_modified(&with("*"), &tag));
        assert!(!not_modified(&with("\"x\""), &tag));
        assert!(!not_modified(&HeaderMap::new(), &tag));
    }
}
