//! The curator's web UI: server-rendered HTML with a little JavaScript, no
//! build step. Login (session cookie + CSRF token on every form), the review
//! queue (weakest captions first), and the video page: player, caption
//! tracks with the cue list beside it (low-confidence words marked, Urdu
//! right-to-left in a Nastaliq font), inline editing of text and timing,
//! approve/reject per track and per video, tag editing. Every edit is a new
//! version (who, when) and is re-exported to WebVTT/SRT/JSON in the store.
//! The handlers here check and load; the markup is in `ui/pages.rs`, maud
//! templates that escape every value they interpolate.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;
use stemfeed_captions::{Cue, bidi};
use stemfeed_queue::{JobState, Role};
use stemfeed_tagging::{
    GradeEstimate, OffTopicFlag, SubjectTag, TAGS_VERSION, Tags, Taxonomy, TopicTag,
};

use crate::view::{self, TrackView};
use crate::{ApiError, App, Caller, auth};

mod pages;

type FormData = Form<HashMap<String, String>>;

/// The subject choice that files a video as not STEM.
const OFF_TOPIC: &str = "off-topic";

/// The signed-in curator, or the response that sends a browser to log in.
async fn curator(app: &App, headers: &HeaderMap) -> Result<Caller, Response> {
    match app.caller(headers).await {
        Ok(Some(c)) if c.role.allows(Role::Curator) => Ok(c),
        Ok(Some(c)) => Err((StatusCode::FORBIDDEN, pages::forbidden(&c)).into_response()),
        Ok(None) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(e.into_response()),
    }
}

/// A curator whose form carries the session's CSRF token.
async fn curator_form(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Caller, Response> {
    let c = curator(app, headers).await?;
    let sent = form.get("csrf").map(String::as_str).unwrap_or_default();
    match &c.csrf {
        Some(expected) if auth::same(expected, sent) => Ok(c),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token; reload the page",
        )
        .into_response()),
        // API tokens are not sent by browsers on their own: no CSRF risk.
        None => Ok(c),
    }
}

pub async fn login_page() -> Markup {
    pages::login_form()
}

pub async fn login(
    State(app): State<Arc<App>>,
    extensions: Extensions,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    // Login CSRF: browsers send Origin with every form POST; a cross-site
    // post carries another one, and a missing or opaque (`null`) Origin is
    // not proof of this site either. It must be the public URL's origin or
    // the origin of the host the browser addressed.
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    let public = app.server.public_url.trim_end_matches('/');
    let same_site = origin.is_some_and(|o| {
        o != "null" && (o == public || host.is_some_and(|h| o.ends_with(&format!("//{h}"))))
    });
    if !same_site {
        tracing::warn!(origin = ?origin, "login refused: not from this site");
        return ApiError::new(StatusCode::FORBIDDEN, "cross-site login refused").into_response();
    }
    let name = form.get("name").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let ip = client_ip(&extensions);
    let from = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    // Locked out: refused before any work, whatever the password.
    if let Some(wait) = app.guard.locked_out(&name, ip) {
        tracing::warn!(user = ?name, ip = %from, "login refused: too many failures");
        let secs = wait.as_secs().max(1);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            pages::login_refused(
                &format!(
                    "Too many failed logins. Try again in {} minutes.",
                    secs.div_ceil(60)
                ),
                false,
            ),
        )
            .into_response();
    }
    let n = name.clone();
    let user = match app.db(move |c| c.user(&n)).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // An unknown name is checked against a dummy hash: the same work, so
    // the time taken does not tell which names exist. So is a disabled one.
    let usable = user.as_ref().is_some_and(|u| !u.disabled);
    let role = user.as_ref().map(|u| u.role);
    let ok = match app
        .guard
        .verify(password, user.map(|u| u.password_hash))
        .await
    {
        Ok(ok) => ok && usable,
        Err(auth::Busy::Saturated) => {
            tracing::warn!(user = ?name, ip = %from, "login refused: every password hasher busy");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "5")],
                pages::login_refused("The server is busy. Try again in a moment.", false),
            )
                .into_response();
        }
    };
    if !ok {
        app.guard.failed(&name, ip);
        tracing::warn!(user = ?name, ip = %from, "login failed");
        return (
            StatusCode::UNAUTHORIZED,
            pages::login_refused("Wrong name or password.", true),
        )
            .into_response();
    }
    app.guard.succeeded(&name);
    let token = auth::random_token();
    let (h, csrf, n) = (auth::token_hash(&token), auth::random_token(), name.clone());
    let absolute = app.guard.session_absolute;
    // A new login ends the user's other sessions.
    if let Err(e) = app
        .db(move |c| c.create_session(&h, &n, &csrf, absolute))
        .await
    {
        return e.into_response();
    }
    tracing::info!(user = %name, ip = %from, role = role.map_or("", |r| r.as_str()), "logged in");
    (
        StatusCode::SEE_OTHER,
        [
            ("location", "/review".to_owned()),
            (
                "set-cookie",
                auth::set_session_cookie(app.secure_cookies(), &token, absolute),
            ),
        ],
    )
        .into_response()
}

/// The peer's address, when the server was started with connection info.
fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Ends the session named by the cookie, whatever the form says: logging
/// out must never leave a live session behind, and ending one's own
/// session is nothing a forged request could abuse.
pub async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(cookie) = auth::session_cookie(&headers, app.secure_cookies()) {
        let h = auth::token_hash(&cookie);
        if let Err(e) = app.db(move |c| c.delete_session(&h)).await {
            return e.into_response();
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            ("location", "/login".to_owned()),
            (
                "set-cookie",
                auth::clear_session_cookie(app.secure_cookies()),
            ),
        ],
    )
        .into_response()
}

fn state_filter(s: &str) -> Vec<JobState> {
    match s {
        "approved" => vec![JobState::Approved],
        "rejected" => vec![JobState::Rejected],
        "all" => vec![JobState::InReview, JobState::Approved, JobState::Rejected],
        _ => vec![JobState::InReview],
    }
}

/// `GET /review/stats`: what curators change, by language, model and week.
pub async fn edit_stats(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let caller = match curator(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match crate::stats::collect(&app).await {
        Ok(stats) => pages::edit_stats(&caller, &stats).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn queue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = match curator(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let status = q
        .get("status")
        .map_or("in-review", String::as_str)
        .to_owned();
    let language = q.get("language").cloned().unwrap_or_default();
    let subject = q.get("subject").cloned().unwrap_or_default();
    let states = state_filter(&status);
    let videos = match app.db(move |c| c.videos_in(&states)).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let mut views = Vec::new();
    for (video, _) in videos {
        if let Ok(v) = view::load(&app, &video.id).await {
            let lang_ok = language.is_empty() || v.language() == Some(language.as_str());
            let subject_ok = subject.is_empty() || v.subject() == Some(subject.as_str());
            if lang_ok && subject_ok {
                views.push(v);
            }
        }
    }
    // Videos with a track the caption stage could not call ok (a draft, or
    // one a person must caption) first, then the weakest captions: they
    // need a curator most.
    let doubtful = |v: &view::VideoView| doubtful(v.tracks.iter().map(|t| t.status.as_str()));
    views.sort_by(|a, b| {
        doubtful(b)
            .cmp(&doubtful(a))
            .then(a.weakest_confidence().total_cmp(&b.weakest_confidence()))
            .then(a.video.id.cmp(&b.video.id))
    });
    let rows: Vec<pages::QueueRow<'_>> = views
        .iter()
        .map(|v| pages::QueueRow {
            id: &v.video.id,
            title: v.title(),
            language: v.language().unwrap_or_default(),
            subject: v.tags.as_ref().map_or(OFF_TOPIC, Tags::primary_subject),
            tracks: &v.tracks,
            weakest: v.weakest_confidence(),
            state: v.job.state.as_str(),
            duration_s: v.duration_s(),
            poster: v.manifest.poster.as_ref().map(|p| p.path.as_str()),
        })
        .collect();
    let subjects: Vec<&str> = app
        .tagger
        .taxonomy()
        .subjects
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    let filters = pages::Filters {
        status: &status,
        language: &language,
        subject: &subject,
        subjects: &subjects,
    };
    pages::queue(&caller, &rows, &filters).into_response()
}

pub async fn video_page(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match curator(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let v = match view::load(&app, &id).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let languages: std::collections::BTreeSet<String> =
        v.tracks.iter().map(|t| t.language.clone()).collect();
    let glossaries = match app
        .db(move |c| {
            languages
                .into_iter()
                .map(|l| Ok((l.clone(), c.glossary(&l)?)))
                .collect::<Result<std::collections::BTreeMap<_, _>, _>>()
        })
        .await
    {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let rules = v.rules();
    let exports = match platform_exports(&app, &v).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let page = pages::VideoPage {
        id: &v.video.id,
        title: v.title(),
        file: &v.video.original_name,
        duration_s: v.duration_s(),
        state: v.job.state.as_str(),
        language: v.language().unwrap_or_default(),
        hls_master: &v.manifest.hls.master,
        mp4: v.smallest_mp4(),
        poster: v.manifest.poster.as_ref().map(|p| p.path.as_str()),
        waveform: v.waveform(),
        fps: v.fps(),
        rules: &rules,
        tracks: &v.tracks,
        history: &v.history,
        glossaries: &glossaries,
        exports: &exports,
        priority: v.video.priority,
        tags: v.tags.as_ref(),
        tags_version: v.tags_version,
        subject: v.tags.as_ref().map_or(OFF_TOPIC, Tags::primary_subject),
        taxonomy: app.tagger.taxonomy(),
    };
    pages::video(&caller, &page).into_response()
}

/// Writes a track version's exports next to the video's outputs.
async fn export(app: &App, video: &str, t: &TrackView) -> Result<(), ApiError> {
    for ext in ["vtt", "srt", "json"] {
        let body = crate::media::render(t, ext).unwrap_or_default();
        app.store
            .put_bytes(
                &format!("videos/{video}/edits/{}.v{}.{ext}", t.track, t.version),
                body.into_bytes(),
            )
            .await?;
    }
    Ok(())
}

fn parse_cues(form: &HashMap<String, String>, old: &[Cue], rtl: bool) -> Result<Vec<Cue>, String> {
    let n: usize = form
        .get("n")
        .and_then(|n| n.parse().ok())
        .ok_or("missing cue count")?;
    if n > 5000 {
        return Err("too many cues".into());
    }
    let mut cues = Vec::with_capacity(n);
    for i in 0..n {
        let num = |k: &str| -> Result<f64, String> {
            form.get(&format!("{k}_{i}"))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("cue {}: {k} is not a time in seconds", i + 1))
        };
        let (start, end) = (num("start")?, num("end")?);
        if end <= start {
            return Err(format!(
                "cue {}: ends ({end:.3}) before it starts ({start:.3})",
                i + 1
            ));
        }
        let text = form
            .get(&format!("text_{i}"))
            .map(|t| t.replace("\r\n", "\n"))
            .unwrap_or_default();
        let text = text.trim();
        if text.is_empty() {
            continue; // an emptied cue is deleted
        }
        let text = if rtl {
            bidi::mark_rtl_text(&bidi::strip_marks(text))
        } else {
            text.to_owned()
        };
        let mut cue = Cue::new(start, end, text.clone());
        // Unchanged cues keep their recognition detail, wherever a split or
        // merge before them moved them in the list; edited ones were
        // checked by a person.
        let same = |o: &&Cue| {
            o.start == start
                && o.end == end
                && bidi::strip_marks(&o.text).trim() == bidi::strip_marks(&text).trim()
        };
        if let Some(o) = old.get(i).filter(same).or_else(|| old.iter().find(same)) {
            cue = o.clone();
        }
        cues.push(cue);
    }
    cues.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(cues)
}

pub async fn save_captions(
    State(app): State<Arc<App>>,
    Path((id, track)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let caller = match curator_form(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = async {
        let v = view::load(&app, &id).await?;
        let t = v.tracks.iter().find(|t| t.track == track).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("no caption track {track}"))
        })?;
        let cues = parse_cues(&form, &t.cues, bidi::is_rtl_language(&t.language))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
        let json = serde_json::to_string(&cues).map_err(ApiError::internal)?;
        let (vid, tr, who) = (id.clone(), track.clone(), caller.name.clone());
        let version = app
            .db(move |c| c.add_caption_version(&vid, &tr, &who, "edited", None, &json))
            .await?;
        let edited = TrackView {
            cues,
            version,
            status: "edited".into(),
            reason: None,
            author: caller.name.clone(),
            ..t.clone()
        };
        export(&app, &id, &edited).await?;
        tracing::info!(video = %id, track = %track, version, by = %caller.name, "captions edited");
        Ok::<_, ApiError>(())
    }
    .await;
    back_to_video(&id, result)
}

/// After a form post: back to the video page, or the error.
fn back_to_video(id: &str, result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/review/{id}")).into_response(),
        Err(e) => e.into_response(),
    }
}

fn decision(form: &HashMap<String, String>) -> Result<(bool, Option<String>), ApiError> {
    let approve = match form.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("reject") => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "decision must be approve or reject",
            ));
        }
    };
    let reason = form
        .get("reason")
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if !approve && reason.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a rejection needs a reason",
        ));
    }
    Ok((approve, reason))
}

pub async fn track_decision(
    State(app): State<Arc<App>>,
    Path((id, track)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let caller = match curator_form(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = async {
        let (approve, reason) = decision(&form)?;
        let v = view::load(&app, &id).await?;
        let t = v.tracks.iter().find(|t| t.track == track).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("no caption track {track}"))
        })?;
        let status = if approve { "approved" } else { "rejected" };
        let json = serde_json::to_string(&t.cues).map_err(ApiError::internal)?;
        let (vid, tr, who, r) = (
            id.clone(),
            track.clone(),
            caller.name.clone(),
            reason.clone(),
        );
        let version = app
            .db(move |c| c.add_caption_version(&vid, &tr, &who, status, r.as_deref(), &json))
            .await?;
        export(
            &app,
            &id,
            &TrackView {
                version,
                status: status.into(),
                reason,
                author: caller.name.clone(),
                ..t.clone()
            },
        )
        .await?;
        crate::stats::refresh_soon(&app);
        Ok::<_, ApiError>(())
    }
    .await;
    back_to_video(&id, result)
}

/// The tags a curator's form makes of the current ones: the subject (or
/// off-topic), its topic, the grade band and the hashtags are the curator's;
/// the classifier's evidence and keywords are kept.
fn edited_tags(
    current: Option<&Tags>,
    tax: &Taxonomy,
    form: &HashMap<String, String>,
    who: &str,
) -> Result<Tags, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let mut tags = current.cloned().unwrap_or_else(|| Tags {
        version: TAGS_VERSION,
        taxonomy_version: tax.version,
        stem: false,
        off_topic: None,
        subjects: Vec::new(),
        grade_band: None,
        hashtags: Vec::new(),
        keywords: Vec::new(),
        evidence: Vec::new(),
        undetermined: None,
        classifier: None,
        edited_by: None,
    });
    tags.version = TAGS_VERSION;
    tags.taxonomy_version = tax.version;
    // A curator's choice settles what the text could not.
    tags.undetermined = None;
    let subject = form.get("subject").map_or("", |s| s.trim());
    if subject == OFF_TOPIC {
        let category = tags.off_topic.take().and_then(|o| o.category);
        tags.stem = false;
        tags.subjects = Vec::new();
        tags.off_topic = Some(OffTopicFlag {
            category,
            confidence: 1.0,
            reason: format!("set by {who}"),
        });
    } else {
        let s = tax
            .subject(subject)
            .ok_or_else(|| bad(format!("unknown subject {subject:?}")))?;
        let topic_id = form.get("topic").map_or("", |t| t.trim());
        let topic = s.topics.iter().find(|t| t.id == topic_id);
        if !topic_id.is_empty() && topic.is_none() {
            return Err(bad(format!("{topic_id:?} is not a topic of {}", s.id)));
        }
        // Scores stay what the classifier measured (0 where it found nothing).
        let old = tags.subjects.iter().find(|o| o.id == s.id);
        let topics = topic
            .map(|t| TopicTag {
                id: t.id.clone(),
                label: t.label.clone(),
                score: old
                    .and_then(|o| o.topics.iter().find(|o| o.id == t.id))
                    .map_or(0.0, |o| o.score),
            })
            .into_iter()
            .collect();
        let chosen = SubjectTag {
            id: s.id.clone(),
            label: s.label.clone(),
            label_ur: s.label_ur.clone(),
            score: old.map_or(0.0, |o| o.score),
            confidence: 1.0,
            topics,
        };
        tags.stem = true;
        tags.off_topic = None;
        tags.subjects = vec![chosen];
    }
    let band = form.get("grade_band").map_or("", |b| b.trim());
    tags.grade_band = tax.grade_band(band).map(|b| GradeEstimate {
        id: b.id.clone(),
        label: b.label.clone(),
        grades: b.grades,
        confidence: 1.0,
        basis: "curator".into(),
        named_by: None,
    });
    tags.hashtags = form
        .get("hashtags")
        .map(|h| {
            h.split([' ', ','])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    if t.starts_with('#') {
                        t.to_owned()
                    } else {
                        format!("#{t}")
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    tags.edited_by = Some(who.to_owned());
    Ok(tags)
}

pub async fn save_tags(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let caller = match curator_form(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = async {
        let v = view::load(&app, &id).await?;
        let tags = edited_tags(v.tags.as_ref(), app.tagger.taxonomy(), &form, &caller.name)?;
        let text = serde_json::to_string_pretty(&tags).map_err(ApiError::internal)?;
        let (vid, who, t2) = (id.clone(), caller.name.clone(), text.clone());
        let version = app.db(move |c| c.add_tag_version(&vid, &who, &t2)).await?;
        app.store
            .put_bytes(
                &format!("videos/{id}/edits/tags.v{version}.json"),
                text.into_bytes(),
            )
            .await?;
        tracing::info!(video = %id, version, subject = tags.primary_subject(), by = %caller.name, "tags edited");
        Ok::<_, ApiError>(())
    }
    .await;
    back_to_video(&id, result)
}

pub async fn video_decision(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let caller = match curator_form(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = async {
        view::check_video_id(&id)?;
        let (approve, reason) = decision(&form)?;
        let (vid, who) = (id.clone(), caller.name.clone());
        if !app
            .db(move |c| c.decide(&vid, approve, reason.as_deref(), &who))
            .await?
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "only a processed video (in review, approved or rejected) can be decided",
            ));
        }
        tracing::info!(video = %id, approve, by = %caller.name, "video decided");
        crate::stats::refresh_soon(&app);
        if approve {
            crate::export::after_approval(&app, &id).await;
        }
        Ok(())
    }
    .await;
    back_to_video(&id, result)
}

/// `POST /review/bulk-approve`: approves each chosen video (form fields
/// `video_<id>`) that is in review or rejected and whose caption tracks a
/// curator has all approved; says for each why it was not.
pub async fn bulk_approve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let caller = match curator_form(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut chosen: Vec<&str> = form
        .keys()
        .filter_map(|k| k.strip_prefix("video_"))
        .collect();
    chosen.sort_unstable();
    if chosen.is_empty() {
        return ApiError::new(StatusCode::BAD_REQUEST, "no video was selected").into_response();
    }
    if chosen.len() > 500 {
        return ApiError::new(StatusCode::BAD_REQUEST, "at most 500 videos at once")
            .into_response();
    }
    let mut results = Vec::with_capacity(chosen.len());
    for id in chosen {
        let outcome = async {
            let v = view::load(&app, id).await.map_err(|e| e.1)?;
            if v.tracks.is_empty() {
                return Err("it has no caption track".to_owned());
            }
            if let Some(t) = v.tracks.iter().find(|t| t.status != "approved") {
                return Err(format!("track {} is {}, not approved", t.track, t.status));
            }
            let (vid, who) = (id.to_owned(), caller.name.clone());
            let decided = app
                .db(move |c| c.decide(&vid, true, None, &who))
                .await
                .map_err(|e| e.1)?;
            if !decided {
                return Err(format!("it is {}, not processed", v.job.state.as_str()));
            }
            tracing::info!(video = %id, by = %caller.name, "video approved in bulk");
            crate::export::after_approval(&app, id).await;
            Ok(())
        }
        .await;
        results.push((id.to_owned(), outcome));
    }
    crate::stats::refresh_soon(&app);
    pages::bulk_result(&caller, &results).into_response()
}

/// A glossary or export language as the tracks name them.
fn glossary_language(language: &str) -> Result<(), ApiError> {
    if view::is_language_code(language) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no language {language:?}"),
        ))
    }
}

/// Back to the video page the glossary form was on, or to the queue.
fn back_from_glossary(form: &HashMap<String, String>, result: Result<(), ApiError>) -> Response {
    match form.get("video") {
        Some(id) if view::check_video_id(id).is_ok() => back_to_video(id, result),
        _ => match result {
            Ok(()) => Redirect::to("/review").into_response(),
            Err(e) => e.into_response(),
        },
    }
}

/// `POST /review/glossary/{language}`: adds a preferred spelling (`term`)
/// and the spellings it replaces (`variants`, comma-separated), or changes
/// the variants of a term already there.
pub async fn glossary_add(
    State(app): State<Arc<App>>,
    Path(language): Path<String>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let caller = match curator_form(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = async {
        glossary_language(&language)?;
        let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, m.to_owned());
        let term = form.get("term").map_or("", |t| t.trim()).to_owned();
        let mut variants: Vec<String> = form
            .get("variants")
            .map_or("", String::as_str)
            .split([',', '\n', '،'])
            .map(str::trim)
            .filter(|v| !v.is_empty() && *v != term)
            .map(str::to_owned)
            .collect();
        variants.dedup();
        if term.is_empty() || term.chars().count() > 80 || term.contains('\n') {
            return Err(bad("a glossary term is one line of 1 to 80 characters"));
        }
        if variants.is_empty() || variants.len() > 20 || variants.iter().any(|v| v.chars().count() > 80) {
            return Err(bad("give 1 to 20 spellings to replace, each at most 80 characters, separated by commas"));
        }
        let (lang, who) = (language.clone(), caller.name.clone());
        let t = term.clone();
        app.db(move |c| c.set_glossary_term(&lang, &t, &variants, &who))
            .await?;
        tracing::info!(language = %language, term = %term, by = %caller.name, "glossary term set");
        Ok(())
    }
    .await;
    back_from_glossary(&form, result)
}

/// `POST /review/glossary/{language}/remove`: removes `term`.
pub async fn glossary_remove(
    State(app): State<Arc<App>>,
    Path(language): Path<String>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let caller = match curator_form(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = async {
        glossary_language(&language)?;
        let term = form.get("term").cloned().unwrap_or_default();
        let (lang, t) = (language.clone(), term.clone());
        if !app.db(move |c| c.remove_glossary_term(&lang, &t)).await? {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no glossary term {term:?} in {language}"),
            ));
        }
        tracing::info!(language = %language, term = %term, by = %caller.name, "glossary term removed");
        Ok(())
    }
    .await;
    back_from_glossary(&form, result)
}

/// For an approved video: each language with an approved track, and where
/// its platform export stands.
async fn platform_exports(
    app: &App,
    v: &view::VideoView,
) -> Result<Vec<pages::ExportRow>, ApiError> {
    if v.job.state != JobState::Approved {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    for language in v.public_languages() {
        let state = match app.exports.state(&v.video.id, &language) {
            Some(crate::export::ExportState::Running) => pages::ExportState::Running,
            other => {
                let stored = app
                    .store
                    .head(&crate::export::export_key(&v.video.id, &language))
                    .await?
                    .is_some();
                match other {
                    _ if stored => pages::ExportState::Ready,
                    Some(crate::export::ExportState::Failed(why)) => {
                        pages::ExportState::Failed(why)
                    }
                    _ => pages::ExportState::None,
                }
            }
        };
        rows.push(pages::ExportRow { language, state });
    }
    Ok(rows)
}

/// `POST /review/{video}/export`: starts a platform export (`language`).
pub async fn start_export(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let caller = match curator_form(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let language = form.get("language").cloned().unwrap_or_default();
    let result = async {
        view::check_video_id(&id)?;
        glossary_language(&language)?;
        crate::export::start(&app, &id, &language).await?;
        tracing::info!(video = %id, language = %language, by = %caller.name, "platform export started");
        Ok(())
    }
    .await;
    back_to_video(&id, result)
}

/// `POST /review/{video}/priority`: sets the video's curator priority
/// (`priority` 1, 0 or -1), which size-budgeted offline bundles follow.
pub async fn set_priority(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let caller = match curator_form(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = async {
        view::check_video_id(&id)?;
        let priority = form
            .get("priority")
            .and_then(|p| p.trim().parse::<i8>().ok())
            .filter(|p| (-1..=1).contains(p))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "priority must be 1 (high), 0 (normal) or -1 (low)",
                )
            })?;
        let vid = id.clone();
        if !app.db(move |c| c.set_priority(&vid, priority)).await? {
            return Err(ApiError::not_found());
        }
        tracing::info!(video = %id, priority, by = %caller.name, "priority set");
        Ok(())
    }
    .await;
    back_to_video(&id, result)
}

/// `GET /review/{video}/exports/{language}.mp4`: a finished platform export,
/// for curators.
pub async fn get_export(
    State(app): State<Arc<App>>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = curator(&app, &headers).await {
        return r;
    }
    let result = async {
        view::check_video_id(&id)?;
        let language = file.strip_suffix(".mp4").ok_or_else(ApiError::not_found)?;
        glossary_language(language)?;
        let bytes = app
            .store
            .get_bytes(&crate::export::export_key(&id, language))
            .await?;
        Ok::<_, ApiError>(
            (
                [
                    (axum::http::header::CONTENT_TYPE, "video/mp4".to_owned()),
                    (
                        axum::http::header::CACHE_CONTROL,
                        "private, no-cache".to_owned(),
                    ),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{id}-{language}-platform.mp4\""),
                    ),
                ],
                bytes,
            )
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Whether any of these track statuses asks a curator to check every line.
fn doubtful<'a>(mut statuses: impl Iterator<Item = &'a str>) -> bool {
    statuses.any(|s| s == "draft" || s == "needs-human")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn drafts_and_tracks_for_a_person_come_first() {
        assert!(super::doubtful(["ok", "draft"].into_iter()));
        assert!(super::doubtful(["needs-human"].into_iter()));
        assert!(!super::doubtful(["ok", "approved", "edited"].into_iter()));
        assert!(!super::doubtful(std::iter::empty()));
    }

    use stemfeed_tagging::{Document, Tagger, Tags, Taxonomy};

    use super::edited_tags;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn classified() -> Tags {
        let tagger = Tagger::new(Taxonomy::built_in());
        tagger.tag(&Document {
            title: "Why does the ball fall? Gravity and force".into(),
            description: "Newton's laws of motion, force and acceleration".into(),
            language: Some("en".into()),
            ..Document::default()
        })
    }

    /// What the edit writes reads back as the same `Tags`.
    fn round_trip(tags: &Tags) -> Tags {
        let text = serde_json::to_string_pretty(tags).unwrap();
        let back: Tags = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, tags);
        back
    }

    #[test]
    fn a_curator_files_a_video_under_a_subject_and_topic() {
        let tax = Taxonomy::built_in();
        let before = classified();
        let f = form(&[
            ("subject", "physics"),
            ("topic", "energy-and-work"),
            ("grade_band", "middle"),
            ("hashtags", "#physics, energy  work"),
        ]);
        let tags = round_trip(&edited_tags(Some(&before), &tax, &f, "ayesha").unwrap());
        assert!(tags.stem);
        assert!(tags.off_topic.is_none());
        assert_eq!(tags.primary_subject(), "physics");
        assert_eq!(tags.topic().unwrap().id, "energy-and-work");
        let band = tags.grade_band.as_ref().unwrap();
        assert_eq!(
            (band.id.as_str(), band.basis.as_str()),
            ("middle", "curator")
        );
        assert_eq!(tags.hashtags, ["#physics", "#energy", "#work"]);
        assert_eq!(tags.edited_by.as_deref(), Some("ayesha"));
        // The classifier's evidence stays.
        assert_eq!(tags.evidence, before.evidence);
        assert_eq!(tags.keywords, before.keywords);
    }

    #[test]
    fn off_topic_has_no_subject() {
        let tax = Taxonomy::built_in();
        let f = form(&[("subject", "off-topic"), ("topic", "force-and-motion")]);
        let tags = round_trip(&edited_tags(Some(&classified()), &tax, &f, "bilal").unwrap());
        assert!(!tags.stem);
        assert!(tags.subject().is_none() && tags.topic().is_none());
        assert_eq!(tags.primary_subject(), "off-topic");
        assert_eq!(tags.off_topic.as_ref().unwrap().reason, "set by bilal");
        assert!(tags.grade_band.is_none());
    }

    #[test]
    fn tags_can_be_set_on_a_video_without_any() {
        let tax = Taxonomy::built_in();
        let f = form(&[("subject", "chemistry"), ("grade_band", "")]);
        let tags = round_trip(&edited_tags(None, &tax, &f, "ayesha").unwrap());
        assert_eq!(tags.primary_subject(), "chemistry");
        assert_eq!(tags.subject().unwrap().score, 0.0);
        assert!(tags.topic().is_none() && tags.grade_band.is_none());
        assert_eq!(tags.taxonomy_version, tax.version);
    }

    #[test]
    fn unknown_subjects_and_foreign_topics_are_refused() {
        let tax = Taxonomy::built_in();
        for f in [
            form(&[("subject", "astrology")]),
            form(&[("subject", "chemistry"), ("topic", "force-and-motion")]),
        ] {
            let e = edited_tags(None, &tax, &f, "ayesha").unwrap_err();
            assert_eq!(e.0, axum::http::StatusCode::BAD_REQUEST, "{}", e.1);
        }
    }
}
