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
    let mut candidates: Vec<_> = v
        .public_tracks()
        .filter(|t| t.language == language)
        .collect();
    candidates.sort_by_key(|t| t.kind != "transcript");
    let track = candidates.first().ok_or_else(|| {
        let public: Vec<&str> = v.public_tracks().map(|t| t.track.as_str()).collect();
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
    let rendition = v.manifest.largest_rendition().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("video {video} has no rendition"),
        )
    })?;
    Ok(PlatformSource {
        title: v.title().to_owned(),
        track: track.track.clone(),
        version: track.version,
        cues: track.cues.clone(),
        rendition_key: v.key(&rendition.path),
        width: rendition.width,
        height: rendition.height,
        duration_s: v.duration_s(),
    })
}

/// One caption track a bundle carries.
#[derive(Debug, Clone)]
pub struct BundleTrack {
    /// `<lang>.<kind>`.
    pub name: String,
    pub language: String,
    pub cues: Vec<Cue>,
    /// The approved version as WebVTT.
    pub vtt: String,
}

/// One approved video as an offline bundle carries it.
#[derive(Debug, Clone)]
pub struct BundleVideo {
    pub id: String,
    /// Curators' priority (1 high, 0 normal, -1 low).
    pub priority: i8,
    pub title: String,
    pub language: Option<String>,
    pub duration_s: f64,
    /// (id, English label, Urdu label)
    pub subject: Option<(String, String, String)>,
    /// (id, label)
    pub grade: Option<(String, String)>,
    pub rendition_key: String,
    pub rendition_bytes: u64,
    pub poster_key: Option<String>,
    pub tracks: Vec<BundleTrack>,
}

/// Approved videos matching `filter`, the most recently approved first (a
/// bundle with a size budget takes them in this order).
pub async fn bundle_videos(
    app: &App,
    filter: &crate::feed::Filter,
    smallest: bool,
) -> Result<Vec<BundleVideo>, ApiError> {
    let mut rows = app.db(|c| c.videos_in(&[JobState::Approved])).await?;
    // Curators' priority first, then the newest approval.
    rows.sort_by(|(a, ja), (b, jb)| {
        b.priority
            .cmp(&a.priority)
            .then(jb.updated_ms.cmp(&ja.updated_ms))
            .then(a.id.cmp(&b.id))
    });
    let mut out = Vec::new();
    for (video, _) in rows {
        let v = match view::load(app, &video.id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(video = %video.id, "left out of the bundle: {}", e.1);
                continue;
            }
        };
        if !filter.matches(&v) {
            continue;
        }
        let rendition = if smallest {
            v.manifest.smallest_rendition()
        } else {
            v.manifest.largest_rendition()
        };
        let Some(rendition) = rendition else {
            continue;
        };
        let tags = v.tags.as_ref();
        out.push(BundleVideo {
            id: v.video.id.clone(),
            priority: v.video.priority,
            title: v.title().to_owned(),
            language: v.language().map(str::to_owned),
            duration_s: v.duration_s(),
            subject: tags
                .and_then(stemfeed_tagging::Tags::subject)
                .map(|s| (s.id.clone(), s.label.clone(), s.label_ur.clone())),
            grade: tags
                .and_then(|t| t.grade_band.as_ref())
                .map(|g| (g.id.clone(), g.label.clone())),
            rendition_key: v.key(&rendition.path),
            rendition_bytes: rendition.bytes,
            poster_key: v.manifest.poster.as_ref().map(|p| v.key(&p.path)),
            tracks: v
                .public_tracks()
                .map(|t| BundleTrack {
                    name: t.track.clone(),
                    language: t.language.clone(),
                    cues: t.cues.clone(),
                    vtt: media::render(t, "vtt").unwrap_or_default(),
                })
                .collect(),
        });
    }
    Ok(out)
}

/// A language's name in itself, for the track menu.
fn language_name(code: &str) -> &str {
    match code {
        "en" => "English",
        "ur" => "اردو",
        "pa" => "پنجابی",
        "sd" => "سنڌي",
        "ps" => "پښتو",
        other => other,
    }
}

/// The bundle's shared style sheet, with the Nastaliq web font inlined: a
/// page opened from `file://` may not load a font file beside it.
pub fn bundle_css() -> String {
    use base64::Engine;
    let font = base64::engine::general_purpose::STANDARD.encode(crate::NASTALIQ_WOFF2);
    format!(
        "@font-face {{ font-family: \"Noto Nastaliq Urdu Web\"; font-style: normal; font-weight: 400; font-display: swap; src: url(\"data:font/woff2;base64,{font}\") format(\"woff2\"); }}\n{}",
        include_str!("../static/bundle.css")
    )
}

/// The bundle's script: caption tracks from the page itself (a `<track>`
/// file is refused on `file://`), transcript lines that seek.
pub const BUNDLE_JS: &str = include_str!("../static/bundle.js");

fn bundle_page(title: &str, root: &str, body: maud::Markup) -> String {
    use maud::{DOCTYPE, html};
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href={ (root) "assets/style.css" };
            }
            body {
                main { (body) }
                script src={ (root) "assets/player.js" } {}
            }
        }
    }
    .into_string()
}

/// `index.html`: the videos by subject and grade band, in English and Urdu.
pub fn index_html(videos: &[&BundleVideo]) -> String {
    use maud::html;
    let mut groups: std::collections::BTreeMap<(String, String), Vec<&BundleVideo>> =
        std::collections::BTreeMap::new();
    for v in videos {
        let subject = v
            .subject
            .as_ref()
            .map_or_else(|| "Other videos".to_owned(), |s| s.1.clone());
        let grade = v.grade.as_ref().map_or_else(String::new, |g| g.1.clone());
        groups.entry((subject, grade)).or_default().push(v);
    }
    let body = html! {
        h1 { "STEM videos " span lang="ur" dir="rtl" { "سائنس کی ویڈیوز" } }
        p.note { (videos.len()) " videos · works without internet · " span lang="ur" dir="rtl" { "انٹرنیٹ کے بغیر چلتی ہیں" } }
        @for ((subject, grade), vs) in &groups {
            section.group {
                h2 {
                    (subject)
                    " · "
                    span lang="ur" dir="rtl" {
                        (vs[0].subject.as_ref().map_or("دیگر ویڈیوز", |s| s.2.as_str()))
                    }
                    @if !grade.is_empty() { " — " (grade) }
                }
                ul.videos {
                    @for v in vs {
                        li.video data-video=(v.id) {
                            a href={ "videos/" (v.id) "/index.html" } {
                                @if v.poster_key.is_some() {
                                    img src={ "videos/" (v.id) "/poster.jpg" } alt="" width="90" height="160" loading="lazy";
                                }
                                span.title dir="auto" lang=[v.language.as_deref()] { (v.title) }
                            }
                            span.meta {
                                (view::minutes(v.duration_s))
                                @for t in &v.tracks { " · " span lang=(t.language) { (language_name(&t.language)) } }
                            }
                        }
                    }
                }
            }
        }
    };
    bundle_page("STEM videos · سائنس کی ویڈیوز", "", body)
}

/// `videos/<id>/index.html`: the player, its caption tracks, the transcript.
pub fn video_html(v: &BundleVideo) -> String {
    use maud::html;
    let body = html! {
        p { a href="../../index.html" { "← All videos · " span lang="ur" dir="rtl" { "تمام ویڈیوز" } } }
        h1 dir="auto" lang=[v.language.as_deref()] { (v.title) }
        p.meta {
            @if let Some(s) = &v.subject { (s.1) " · " span lang="ur" dir="rtl" { (s.2) } " · " }
            @if let Some(g) = &v.grade { (g.1) " · " }
            (view::minutes(v.duration_s))
        }
        video #player controls playsinline preload="metadata" src="video.mp4"
            poster=[v.poster_key.as_ref().map(|_| "poster.jpg")] {}
        @for (i, t) in v.tracks.iter().enumerate() {
            @let cues: Vec<(f64, f64, String)> = t.cues.iter().map(|c| (c.start, c.end, stemfeed_captions::bidi::strip_marks(&c.text))).collect();
            div.captions hidden data-label=(language_name(&t.language)) data-srclang=(t.language)
                data-default=[(i == 0).then_some("1")]
                data-cues=(serde_json::to_string(&cues).unwrap_or_else(|_| "[]".to_owned())) {}
        }
        @for t in &v.tracks {
            @let rtl = stemfeed_captions::bidi::is_rtl_language(&t.language);
            section.transcript lang=(t.language) dir=(if rtl { "rtl" } else { "ltr" }) class=[rtl.then_some("rtl")] {
                h2 { (language_name(&t.language)) }
                ol {
                    @for c in &t.cues {
                        li {
                            button.seek type="button" data-start=(format!("{:.3}", c.start)) dir="ltr" { (view::minutes(c.start)) }
                            " "
                            span.text { (stemfeed_captions::bidi::strip_marks(&c.text)) }
                        }
                    }
                }
                p { a href={ (t.name) ".vtt" } download { "WebVTT" } }
            }
        }
    };
    bundle_page(&v.title, "../../", body)
}

/// Platform exports a curator starts from the review page. Each runs as a
/// separate `stemfeed export platform` process (the web server stays up
/// whatever the decode does; it decodes stemfeed's own rendition, never
/// the upload), under a time limit; the MP4 is stored at
/// [`export_key`] and served to curators.
#[derive(Debug)]
pub struct Exports {
    /// The data directory the export process is given (its configuration
    /// is otherwise the server's environment).
    pub data_dir: std::path::PathBuf,
    states: std::sync::Mutex<std::collections::HashMap<(String, String), ExportState>>,
    /// One export encodes at a time: the web server's box is not a worker.
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// The jobs' profile file (`[worker] profile`), handed to the export
    /// process for its `[platform]` settings; the built-in one when `None`.
    profile: Option<std::path::PathBuf>,
    /// The profile's `platform.on_approval`: export each approved track
    /// when its video is approved.
    on_approval: bool,
}

/// An export that has not (yet) produced its file.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportState {
    Running,
    Failed(String),
}

/// The longest a platform export may run.
const EXPORT_LIMIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Where a finished platform export is stored.
pub fn export_key(video: &str, language: &str) -> String {
    format!("videos/{video}/exports/{language}.platform.mp4")
}

impl Exports {
    pub fn new(
        data_dir: std::path::PathBuf,
        profile: Option<std::path::PathBuf>,
        on_approval: bool,
    ) -> Self {
        Self {
            data_dir,
            states: Default::default(),
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
            profile,
            on_approval,
        }
    }

    pub fn state(&self, video: &str, language: &str) -> Option<ExportState> {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(video.to_owned(), language.to_owned()))
            .cloned()
    }

    fn set(&self, video: &str, language: &str, state: Option<ExportState>) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let key = (video.to_owned(), language.to_owned());
        match state {
            Some(s) => states.insert(key, s),
            None => states.remove(&key),
        };
    }
}

/// Starts a platform export of `video`'s approved `language` track in the
/// background; refused at once when the video or track cannot be exported
/// or one is already running.
pub async fn start(app: &std::sync::Arc<App>, video: &str, language: &str) -> Result<(), ApiError> {
    platform_source(app, video, language).await?;
    {
        let mut states = app.exports.states.lock().unwrap_or_else(|p| p.into_inner());
        let key = (video.to_owned(), language.to_owned());
        if states.get(&key) == Some(&ExportState::Running) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("a {language} export of {video} is already running"),
            ));
        }
        states.insert(key, ExportState::Running);
    }
    let (app, video, language) = (
        std::sync::Arc::clone(app),
        video.to_owned(),
        language.to_owned(),
    );
    tokio::spawn(async move {
        let slot = std::sync::Arc::clone(&app.exports.slots)
            .acquire_owned()
            .await;
        let result = run_export(&app, &video, &language).await;
        drop(slot);
        match &result {
            Ok(()) => {
                tracing::info!(video = %video, language = %language, "platform export stored")
            }
            Err(e) => {
                tracing::warn!(video = %video, language = %language, "platform export failed: {e}")
            }
        }
        app.exports
            .set(&video, &language, result.err().map(ExportState::Failed));
    });
    Ok(())
}

/// After `video` was approved: where the profile asks for it
/// (`platform.on_approval`), starts the platform export of each language
/// with an approved track. A failure to start is logged, never the
/// decision's failure.
pub async fn after_approval(app: &std::sync::Arc<App>, video: &str) {
    if !app.exports.on_approval {
        return;
    }
    let v = match crate::view::load(app, video).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(video = %video, "no platform export on approval: {}", e.1);
            return;
        }
    };
    for language in v.public_languages() {
        if let Err(e) = start(app, video, &language).await {
            tracing::warn!(video = %video, language = %language, "no platform export on approval: {}", e.1);
        }
    }
}

/// What a failed export process said last: its last non-empty line.
pub fn last_message(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
}

async fn run_export(app: &App, video: &str, language: &str) -> Result<(), String> {
    let dir = app.exports.data_dir.join("exports-partial").join(format!(
        "{video}-{language}-{}",
        &crate::auth::random_token()[..8]
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let out = dir.join("platform.mp4");
    let result = async {
        let exe = std::env::current_exe().map_err(|e| format!("finding stemfeed: {e}"))?;
        let mut command = tokio::process::Command::new(exe);
        command.args(["export", "platform", video, "--language", language]);
        if let Some(profile) = &app.exports.profile {
            command.arg("--profile").arg(profile);
        }
        let child = command
            .args(["--force", "--out"])
            .arg(&out)
            .env("STEMFEED_DATA_DIR", &app.exports.data_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(EXPORT_LIMIT, child)
            .await
            .map_err(|_| format!("took longer than {} minutes", EXPORT_LIMIT.as_secs() / 60))?
            .map_err(|e| format!("starting the export: {e}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(last_message(&stderr).chars().take(400).collect());
        }
        app.store
            .put_file(&export_key(video, language), &out)
            .await
            .map_err(|e| format!("storing the export: {e}"))
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
