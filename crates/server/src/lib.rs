//! The service side of stemfeed, without GStreamer or whisper.cpp: ingest
//! (content-addressed uploads, the `incoming/` watcher), the HTTP server
//! (tus 1.0 resumable uploads, status, the curator review UI, media with
//! HTTP ranges, and the published JSON Feed), and accounts.

pub mod auth;
pub mod cache;
pub mod export;

pub mod feed;
mod media;
mod stats;
pub mod tus;
mod ui;
mod view;

pub use stats::{keep_accuracy, refresh_accuracy};
pub use view::import_old_runs;

mod perimeter;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use stemfeed_queue::{Catalog, Role};
use stemfeed_store::ObjectStore;
use stemfeed_tagging::Tagger;

pub use auth::Caller;

/// Noto Nastaliq Urdu (Arabic-script subset, regular) as WOFF2, vendored
/// from npm, unmodified: static/vendor/noto-nastaliq-urdu/SOURCE.md. The
/// review UI and offline bundles ship it: curators' and schools' machines
/// rarely have a Nastaliq font.
pub const NASTALIQ_WOFF2: &[u8] = include_bytes!(
    "../static/vendor/noto-nastaliq-urdu/noto-nastaliq-urdu-arabic-400-normal.woff2"
);
/// Its licence (SIL Open Font License 1.1), shipped beside it.
pub const NASTALIQ_LICENSE: &str = include_str!("../static/vendor/noto-nastaliq-urdu/LICENSE");
pub use perimeter::{ServerSettings, serve, tls_acceptor};

/// Shared state of the server.
#[derive(Debug)]
pub struct App {
    pub catalog: Arc<Catalog>,
    pub store: Arc<dyn ObjectStore>,
    pub tagger: Tagger,
    /// Where partial uploads are kept until complete.
    pub upload_dir: PathBuf,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Attempts a submitted job gets.
    pub max_attempts: u32,
    /// The public URL and the perimeter's limits (`[server]`).
    pub server: ServerSettings,
    /// Login rate limits, bounded Argon2 and session lifetimes.
    pub guard: auth::Guard,
    /// Upload limits and the uploads being written now (one writer each).
    pub uploads: tus::Uploads,
    /// Manifests of published runs, so media requests do not re-read them.
    pub manifests: cache::ManifestCache,
    /// Platform exports started from the review page.
    pub exports: export::Exports,
    /// Refreshes of the curators' accuracy that decisions ask for.
    pub accuracy_refresh: stats::Refresh,
}

/// An error response: status and a message for the caller. A 500's message
/// is for the log only: the caller gets a generic body with a request id
/// (see [`perimeter`]), never SQL, paths or object keys.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    }
    /// The 404 of anything a caller may not know exists.
    pub fn not_found() -> Self {
        Self(StatusCode::NOT_FOUND, "not found".to_owned())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0 == StatusCode::INTERNAL_SERVER_ERROR {
            // The perimeter logs the detail under the request id and
            // answers the generic body.
            let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            resp.extensions_mut()
                .insert(perimeter::InternalDetail(self.1));
            return resp;
        }
        let body = serde_json::json!({ "error": self.1 });
        (
            self.0,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl From<stemfeed_queue::QueueError> for ApiError {
    fn from(e: stemfeed_queue::QueueError) -> Self {
        ApiError::internal(e)
    }
}

impl From<stemfeed_store::StoreError> for ApiError {
    fn from(e: stemfeed_store::StoreError) -> Self {
        if e.is_not_found() {
            // The message names the object key: internal, not for callers.
            tracing::debug!("not found: {e}");
            ApiError::not_found()
        } else {
            ApiError::internal(e)
        }
    }
}

impl App {
    /// Cookies are `Secure` (and `__Host-` prefixed) when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.server.public_url.starts_with("https://")
    }

    /// Runs a catalog call on a blocking thread (the PostgreSQL client blocks).
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Catalog) -> Result<T, stemfeed_queue::QueueError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let c = Arc::clone(&self.catalog);
        tokio::task::spawn_blocking(move || f(&c))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }

    /// The caller behind a bearer token or a session cookie.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
        if let Some(token) = auth::bearer(headers) {
            let h = auth::token_hash(&token);
            return Ok(self
                .db(move |c| c.api_token(&h))
                .await?
                .map(|(name, role)| Caller {
                    name: format!("{}{name}", auth::TOKEN_PREFIX),
                    role,
                    csrf: None,
                }));
        }
        if let Some(cookie) = auth::session_cookie(headers, self.secure_cookies()) {
            let h = auth::token_hash(&cookie);
            let idle = self.guard.session_idle;
            return Ok(self
                .db(move |c| c.session(&h, idle))
                .await?
                .map(|s| Caller {
                    name: s.user,
                    role: s.role,
                    csrf: Some(s.csrf),
                }));
        }
        Ok(None)
    }

    /// The caller, if allowed `role`: 401 without credentials, 403 with the wrong role.
    pub async fn require(&self, headers: &HeaderMap, role: Role) -> Result<Caller, ApiError> {
        match self.caller(headers).await? {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "log in or send an API token",
            )),
            Some(c) if c.role.allows(role) => Ok(c),
            Some(c) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is a {} and this needs a {}",
                    c.name,
                    c.role.as_str(),
                    role.as_str()
                ),
            )),
        }
    }
}

/// Every route, each group behind its own body limit, the whole behind the
/// perimeter's layers ([`perimeter::layers`]).
pub fn router(app: Arc<App>) -> Router {
    let limits = perimeter::Limits::new(&app.server.limits);
    // The tus PATCH alone streams large bodies; tus.rs enforces the
    // declared Upload-Length and the largest upload itself.
    let uploads = Router::new()
        .route(
            "/api/uploads/{id}",
            axum::routing::head(tus::head).patch(tus::patch),
        )
        .layer(limits.streaming());
    // Caption and tag edits post every cue of a track at once.
    let edits = Router::new()
        .route("/review/{video}/captions/{track}", post(ui::save_captions))
        .route("/review/{video}/tags", post(ui::save_tags))
        .layer(limits.bounded(limits.edit_body));
    let rest = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/feed.json", get(feed::json_feed))
        .route("/api/feed", get(feed::api_feed))
        .route("/api/uploads", post(tus::create).options(tus::options))
        .route("/api/videos/{id}", get(feed::status))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/review") }),
        )
        .route("/login", get(ui::login_page).post(ui::login))
        .route("/logout", post(ui::logout))
        .route("/review", get(ui::queue))
        .route("/review/stats", get(ui::edit_stats))
        .route("/api/stats/edits", get(stats::json))
        .route("/metrics", get(stats::metrics))
        .route("/review/{video}", get(ui::video_page))
        .route(
            "/review/{video}/captions/{track}/decision",
            post(ui::track_decision),
        )
        .route("/review/{video}/decision", post(ui::video_decision))
        .route("/review/bulk-approve", post(ui::bulk_approve))
        .route("/review/{video}/export", post(ui::start_export))
        .route("/review/{video}/priority", post(ui::set_priority))
        .route("/review/{video}/exports/{file}", get(ui::get_export))
        .route("/review/glossary/{language}", post(ui::glossary_add))
        .route(
            "/review/glossary/{language}/remove",
            post(ui::glossary_remove),
        )
        .route("/media/{video}/{*path}", get(media::media))
        .route("/captions/{video}/{file}", get(media::captions))
        .route(
            "/static/review.js",
            get(|headers: HeaderMap| async move {
                static JS: media::Embedded =
                    media::Embedded::new("text/javascript", include_bytes!("../static/review.js"));
                JS.respond(&headers)
            }),
        )
        .route(
            "/static/hls.light.min.js",
            get(|headers: HeaderMap| async move {
                // Vendored from npm, unmodified: static/vendor/hls.js/SOURCE.md.
                static HLS: media::Embedded = media::Embedded::new(
                    "text/javascript",
                    include_bytes!("../static/vendor/hls.js/hls.light.min.js"),
                );
                HLS.respond(&headers)
            }),
        )
        .route(
            "/static/review.css",
            get(|headers: HeaderMap| async move {
                static CSS: media::Embedded =
                    media::Embedded::new("text/css", include_bytes!("../static/review.css"));
                CSS.respond(&headers)
            }),
        )
        .route(
            "/static/fonts/noto-nastaliq-urdu-arabic-400.woff2",
            get(|headers: HeaderMap| async move {
                static FONT: media::Embedded = media::Embedded::new("font/woff2", NASTALIQ_WOFF2);
                FONT.respond(&headers)
            }),
        )
        .fallback(|| async { ApiError::not_found() })
        .layer(limits.bounded(limits.form_body));
    let router = Router::new()
        .merge(uploads)
        .merge(edits)
        .merge(rest)
        .with_state(app);
    perimeter::layers(router, &limits)
}

/// `ms` since the epoch as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000_000), "2026-11-18T11:06:40Z");
    }
}
