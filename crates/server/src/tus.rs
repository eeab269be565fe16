//! Resumable uploads, tus 1.0.0 core with the creation and expiration
//! extensions: `POST /api/uploads` (Upload-Length, Upload-Metadata) creates
//! an upload, `HEAD` tells how much arrived, `PATCH` writes at
//! `Upload-Offset`. The bytes stream to a partial file on the server's
//! disk; the size cap is checked before anything is stored and again while
//! bytes arrive. When the last byte arrives the file is sniffed (it must be
//! a video container), stored under its content hash, and its job is queued.
//!
//! One writer per upload: a PATCH holds the upload for its whole life, in
//! this process (a set of busy ids) and across processes sharing the data
//! directory (an exclusive `flock` on the partial file); a second PATCH
//! meanwhile gets 423, and one at a stale offset 409. The offset is checked
//! under that lock, bytes are written at it (`pwrite`), and progress is
//! fsynced and recorded while the body streams, so a broken connection
//! leaves the offset at what is really on disk. The file and its lock are
//! owned by each blocking write, so a cancelled request cannot have a write
//! land after the next writer took over.
//!
//! Unfinished uploads expire (`Upload-Expires`, moved on by each PATCH) and
//! [`sweep`] deletes them with their partial files. Each submitter may have
//! a limited number of unfinished uploads and declared bytes, and nothing
//! is accepted while the disk holding partial uploads is under a floor.

use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt as _;
use nix::fcntl::{Flock, FlockArg};
use stemfeed_queue::{Role, Submitted, Upload, UploadQuota};

use crate::{ApiError, App, auth};
use stemfeed_worker::ingest::{UploadMeta, clean_name, submit_file};

const TUS_VERSION: &str = "1.0.0";
/// Bytes at the start of a file that content sniffing looks at.
const SNIFF_LEN: usize = 8192;
/// A streaming PATCH records its progress at least this often…
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// …and after this many bytes.
const PERSIST_BYTES: u64 = 8 * 1024 * 1024;
/// A PATCH whose body sends nothing for this long ends, keeping what came.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Limits on unfinished uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// An unfinished upload is deleted this long after its last byte (or
    /// its creation).
    pub expiry: Duration,
    /// Unfinished uploads one submitter may have at once.
    pub max_open_per_submitter: u64,
    /// Declared bytes of one submitter's unfinished uploads, together.
    pub max_bytes_per_submitter: u64,
    /// Creates and PATCHes are refused (507) unless the disk holding
    /// partial uploads keeps this many MiB free after the upload's
    /// remaining bytes.
    pub min_free_mib: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            expiry: Duration::from_secs(24 * 3600),
            max_open_per_submitter: 10,
            max_bytes_per_submitter: 8 * 1024 * 1024 * 1024,
            min_free_mib: 1024,
        }
    }
}

/// The server's upload settings and the uploads being written right now.
#[derive(Debug, Default)]
pub struct Uploads {
    pub limits: UploadLimits,
    busy: Arc<Mutex<HashSet<String>>>,
}

impl Uploads {
    pub fn new(limits: UploadLimits) -> Self {
        Self {
            limits,
            busy: Arc::default(),
        }
    }

    /// Marks upload `id` busy in this process; None if it already is.
    fn claim(&self, id: &str) -> Option<Busy> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.insert(id.to_owned()).then(|| Busy {
            busy: Arc::clone(&self.busy),
            id: id.to_owned(),
        })
    }
}

/// An upload marked busy in this process, until dropped.
#[derive(Debug)]
struct Busy {
    busy: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// The one writer of an upload: its partial file under an exclusive flock,
/// and its mark in this process. Dropping it releases both.
#[derive(Debug)]
struct Writer {
    file: Flock<std::fs::File>,
    _busy: Busy,
}

/// Why an upload could not be locked.
enum LockError {
    /// Another request (here or in another process) is writing it.
    Busy,
    /// Its partial file is gone.
    Missing(Busy),
    Io(std::io::Error),
}

/// Locks upload `id` whose partial file is `path`, without waiting.
async fn lock(uploads: &Uploads, id: &str, path: PathBuf) -> Result<Writer, LockError> {
    let busy = uploads.claim(id).ok_or(LockError::Busy)?;
    tokio::task::spawn_blocking(move || {
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LockError::Missing(busy));
            }
            Err(e) => return Err(LockError::Io(e)),
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(Writer { file, _busy: busy }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Busy),
            Err((_, e)) => Err(LockError::Io(e.into())),
        }
    })
    .await
    .unwrap_or_else(|e| Err(LockError::Io(std::io::Error::other(e))))
}

/// Runs `f` on the writer on a blocking thread; the writer (and so the
/// lock) lives in that thread until `f` is done, even if the request that
/// asked is dropped meanwhile.
async fn on_writer<T: Send + 'static>(
    writer: Writer,
    f: impl FnOnce(&std::fs::File) -> std::io::Result<T> + Send + 'static,
) -> Result<(Writer, T), ApiError> {
    tokio::task::spawn_blocking(move || {
        let out = f(&writer.file)?;
        Ok::<_, std::io::Error>((writer, out))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

fn tus_headers(extra: &[(&'static str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    h
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `ms` since the epoch as an HTTP date, as tus's `Upload-Expires` wants.
fn http_date(ms: i64) -> String {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    httpdate::fmt_http_date(at)
}

fn mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

/// 507 unless the disk under `dir` keeps the floor free after `remaining`
/// more bytes.
async fn check_free_space(app: &App, remaining: u64) -> Result<(), ApiError> {
    let dir = app.upload_dir.clone();
    let free = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        stemfeed_worker::wiring::free_mib(&dir)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let need = app.uploads.limits.min_free_mib + mib_ceil(remaining);
    if free < need {
        tracing::warn!(
            free_mib = free,
            need_mib = need,
            "upload refused: disk nearly full"
        );
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "the server is short of disk space for uploads; try again later",
        ));
    }
    Ok(())
}

/// tus `Upload-Metadata`: comma-separated `key base64value` pairs.
fn parse_metadata(raw: &str) -> Result<UploadMeta, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, format!("Upload-Metadata: {m}"));
    let mut meta = UploadMeta::default();
    let mut filename = None;
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| bad(format!("{key}: {e}")))?;
        let value = String::from_utf8(bytes).map_err(|_| bad(format!("{key}: not UTF-8")))?;
        match key {
            "filename" => filename = Some(value),
            "title" => meta.title = value.chars().take(300).collect(),
            "description" => meta.description = value.chars().take(5000).collect(),
            "creator" => meta.creator = value.chars().take(200).collect(),
            "language" => {
                stemfeed_worker::ingest::check_language(&value).map_err(|e| bad(e.to_string()))?;
                meta.language = Some(value);
            }
            "grade" => {
                let g: u8 = value
                    .parse()
                    .map_err(|_| bad(format!("grade {value:?} is not 1–12")))?;
                if !(1..=12).contains(&g) {
                    return Err(bad(format!("grade {g} is not 1–12")));
                }
                meta.grade = Some(g);
            }
            _ => {}
        }
    }
    meta.filename = clean_name(filename.as_deref().unwrap_or("upload"));
    Ok(meta)
}

pub async fn options(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        StatusCode::NO_CONTENT,
        tus_headers(&[
            ("tus-version", TUS_VERSION.to_owned()),
            ("tus-extension", "creation,expiration".to_owned()),
            ("tus-max-size", app.max_upload_bytes.to_string()),
        ]),
    )
}

pub async fn create(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = app.require(&headers, Role::Submitter).await?;
    let length: u64 = header(&headers, "upload-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Upload-Length header missing or not a number",
            )
        })?;
    if length > app.max_upload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "upload of {length} bytes is over the limit of {} bytes",
                app.max_upload_bytes
            ),
        ));
    }
    if length == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "an empty file is not a video",
        ));
    }
    let meta = parse_metadata(header(&headers, "upload-metadata").unwrap_or_default())?;
    check_free_space(&app, length).await?;
    let id = auth::random_token()[..32].to_owned();
    let path = app.upload_dir.join(&id);
    tokio::fs::File::create(&path)
        .await
        .map_err(ApiError::internal)?;
    let metadata = serde_json::to_string(&meta).map_err(ApiError::internal)?;
    let limits = app.uploads.limits;
    let quota = UploadQuota {
        max_open: limits.max_open_per_submitter,
        max_bytes: limits.max_bytes_per_submitter,
    };
    let (uid, owner) = (id.clone(), caller.name.clone());
    let created = app
        .db(move |c| c.create_upload(&uid, &owner, length, &metadata, limits.expiry, quota))
        .await;
    let upload = match created {
        Ok(Ok(upload)) => upload,
        Ok(Err(open)) => {
            let _ = tokio::fs::remove_file(&path).await;
            tracing::info!(by = %caller.name, open = open.count, bytes = open.bytes, "upload refused: over the per-submitter limit");
            let why = if open.count >= quota.max_open {
                format!(
                    "{} has {} unfinished uploads, the most allowed at once; finish or abandon one (unfinished uploads expire {} s after their last byte)",
                    caller.name,
                    open.count,
                    limits.expiry.as_secs()
                )
            } else {
                format!(
                    "{} has {} bytes in unfinished uploads; with {length} more that is over the limit of {} bytes at once",
                    caller.name, open.bytes, quota.max_bytes
                )
            };
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, why));
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
    };
    tracing::info!(upload = %id, by = %caller.name, length, file = %meta.filename, "upload created");
    Ok((
        StatusCode::CREATED,
        tus_headers(&[
            ("location", format!("/api/uploads/{id}")),
            ("upload-offset", "0".into()),
            ("upload-expires", http_date(upload.expires_ms)),
        ]),
    )
        .into_response())
}

/// The upload `id`, if it belongs to the caller (admins see all).
async fn owned(app: &App, headers: &HeaderMap, id: &str) -> Result<Upload, ApiError> {
    let caller = app.require(headers, Role::Submitter).await?;
    // Ids are 32 hex digits; anything else never reaches the filesystem.
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such upload"));
    }
    let uid = id.to_owned();
    let upload = app
        .db(move |c| c.upload(&uid))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such upload"))?;
    if upload.owner != caller.name && caller.role != Role::Admin {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such upload"));
    }
    Ok(upload)
}

pub async fn head(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let u = owned(&app, &headers, &id).await?;
    let mut extra = vec![
        ("upload-offset", u.received.to_string()),
        ("upload-length", u.length.to_string()),
    ];
    match &u.video_id {
        Some(v) => extra.push(("stemfeed-video", v.clone())),
        None => extra.push(("upload-expires", http_date(u.expires_ms))),
    }
    Ok((StatusCode::OK, tus_headers(&extra)).into_response())
}

/// Whether `head` (a file's first bytes) starts like a video container
/// stemfeed can read: MP4/MOV, WebM/Matroska, AVI or MPEG-TS, as `infer`
/// tells (MPEG-TS, which it does not know, by its sync bytes).
fn sniff(head: &[u8]) -> Result<&'static str, String> {
    const ACCEPTED: &[&str] = &[
        "video/mp4",
        "video/x-m4v",
        "video/quicktime",
        "video/x-matroska",
        "video/webm",
        "video/x-msvideo",
        "video/mp2t",
    ];
    fn is_mpeg_ts(buf: &[u8]) -> bool {
        // A 188-byte packet stream: the sync byte at every packet start.
        buf.len() > 188 && buf.iter().step_by(188).take(3).all(|&b| b == 0x47)
    }
    let mut kinds = infer::Infer::new();
    kinds.add("video/mp2t", "ts", is_mpeg_ts);
    match kinds.get(head) {
        Some(t) if ACCEPTED.contains(&t.mime_type()) => Ok(t.mime_type()),
        Some(t) => Err(format!(
            "{} is not a video container stemfeed reads (MP4/MOV, WebM/Matroska, AVI or MPEG-TS expected)",
            t.mime_type()
        )),
        None => {
            Err("not a video container (MP4/MOV, WebM/Matroska, AVI or MPEG-TS expected)".into())
        }
    }
}

/// Forgets an upload whose content was refused: row and partial file,
/// under its writer's lock.
async fn discard(app: &App, writer: Writer, id: &str, path: PathBuf) -> Result<(), ApiError> {
    let uid = id.to_owned();
    app.db(move |c| c.delete_upload(&uid)).await?;
    on_writer(writer, move |_| remove_if_there(&path))
        .await
        .map(drop)
}

fn remove_if_there(path: &FsPath) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes what was written up to `to` durable, then records it (offset from
/// `from` to `to`, expiry moved on) while still holding the writer, so no
/// later writer can see the file before its offset is recorded. The new
/// expiry; 409 if the offset was moved under us.
async fn record(
    app: &App,
    writer: Writer,
    id: &str,
    from: u64,
    to: u64,
) -> Result<(Writer, i64), ApiError> {
    let catalog = Arc::clone(&app.catalog);
    let (uid, ttl) = (id.to_owned(), app.uploads.limits.expiry);
    let (writer, moved) = on_writer(writer, move |f| {
        f.sync_data()?;
        catalog
            .advance_upload(&uid, from, to, ttl)
            .map_err(std::io::Error::other)
    })
    .await?;
    let expires = moved.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "another request moved this upload's offset; ask HEAD for it",
        )
    })?;
    Ok((writer, expires))
}

/// How a PATCH body ended.
enum End {
    /// All of it arrived.
    Done,
    /// More bytes than Upload-Length.
    Over,
    /// The connection broke.
    Broken(String),
    /// The client sent nothing for [`IDLE_LIMIT`].
    Idle,
    /// The first bytes are not a video.
    NotVideo(String),
}

pub async fn patch(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let u = owned(&app, &headers, &id).await?;
    if header(&headers, "content-type") != Some("application/offset+octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "PATCH needs Content-Type: application/offset+octet-stream",
        ));
    }
    let offset: u64 = header(&headers, "upload-offset")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "Upload-Offset header missing"))?;
    if u.video_id.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "upload already complete",
        ));
    }
    let path = app.upload_dir.join(&u.id);
    let writer = match lock(&app.uploads, &u.id, path.clone()).await {
        Ok(w) => w,
        Err(LockError::Busy) => {
            tracing::info!(upload = %u.id, "PATCH refused: another request is writing this upload");
            return Err(ApiError::new(
                StatusCode::LOCKED,
                "another request is writing this upload; ask HEAD for the offset and try again",
            ));
        }
        Err(LockError::Missing(_)) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "no such upload"));
        }
        Err(LockError::Io(e)) => return Err(ApiError::internal(e)),
    };
    // Under the lock, the offset the catalog holds is the truth.
    let uid = u.id.clone();
    let u = app
        .db(move |c| c.upload(&uid))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such upload"))?;
    if u.video_id.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "upload already complete",
        ));
    }
    if offset != u.received {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Upload-Offset {offset} but the server has {}", u.received),
        ));
    }
    check_free_space(&app, u.length - offset).await?;
    // Bytes past the offset that a broken request wrote but never recorded
    // are dropped; the first bytes are kept for sniffing.
    let (mut writer, mut head) = on_writer(writer, move |f| {
        if f.metadata()?.len() < offset {
            return Err(std::io::Error::other(
                "partial file is shorter than its recorded offset",
            ));
        }
        f.set_len(offset)?;
        let mut head = vec![0; usize::try_from(offset).unwrap_or(SNIFF_LEN).min(SNIFF_LEN)];
        std::os::unix::fs::FileExt::read_exact_at(f, &mut head, 0)?;
        Ok(head)
    })
    .await?;
    let sniff_at = usize::try_from(u.length)
        .unwrap_or(SNIFF_LEN)
        .min(SNIFF_LEN);
    let mut written = offset;
    let mut recorded = offset;
    let mut expires_ms = u.expires_ms;
    let mut last_record = Instant::now();
    let mut stream = body.into_data_stream();
    let end = loop {
        let quiet_for = if written > recorded {
            (last_record + PERSIST_EVERY).saturating_duration_since(Instant::now())
        } else {
            IDLE_LIMIT
        };
        match tokio::time::timeout(quiet_for, stream.next()).await {
            Err(_) if written == recorded => break End::Idle,
            Err(_) => {} // quiet for now: record what came
            Ok(None) => break End::Done,
            Ok(Some(Err(e))) => break End::Broken(e.to_string()),
            Ok(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                if written + n > u.length {
                    break End::Over;
                }
                if head.len() < sniff_at {
                    let take = (sniff_at - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                    if head.len() == sniff_at
                        && let Err(reason) = sniff(&head)
                    {
                        break End::NotVideo(reason);
                    }
                }
                let at = written;
                (writer, ()) = on_writer(writer, move |f| {
                    std::os::unix::fs::FileExt::write_all_at(f, &chunk, at)
                })
                .await?;
                written += n;
            }
        }
        if written > recorded
            && (written - recorded >= PERSIST_BYTES || last_record.elapsed() >= PERSIST_EVERY)
        {
            (writer, expires_ms) = record(&app, writer, &u.id, recorded, written).await?;
            recorded = written;
            last_record = Instant::now();
        }
    };
    // Whatever comes next, what arrived is on disk and recorded.
    if written > recorded {
        (writer, expires_ms) = record(&app, writer, &u.id, recorded, written).await?;
    }
    let meta: UploadMeta = serde_json::from_str(&u.metadata).map_err(ApiError::internal)?;
    match end {
        End::Done => {}
        End::NotVideo(reason) => {
            discard(&app, writer, &u.id, path).await?;
            tracing::info!(upload = %u.id, %reason, "upload refused: not a video");
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{}: {reason}", meta.filename),
            ));
        }
        End::Over => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("more bytes than the declared Upload-Length {}", u.length),
            ));
        }
        End::Broken(why) => {
            tracing::info!(upload = %u.id, written, %why, "upload body broke off");
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body broke off at byte {written} ({why}); resume from there"),
            ));
        }
        End::Idle => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "no bytes for {} s; resume from byte {written}",
                    IDLE_LIMIT.as_secs()
                ),
            ));
        }
    }
    let mut extra = vec![("upload-offset", written.to_string())];
    if written < u.length {
        extra.push(("upload-expires", http_date(expires_ms)));
        return Ok((StatusCode::NO_CONTENT, tus_headers(&extra)).into_response());
    }
    // Complete. An upload from before the early check is sniffed here.
    if let Err(reason) = sniff(&head) {
        discard(&app, writer, &u.id, path).await?;
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{}: {reason}", meta.filename),
        ));
    }
    // If storing fails, the row and file stay: a PATCH with no bytes at
    // this offset tries again.
    let submitted = submit_file(
        &*app.store,
        &app.catalog,
        &path,
        &meta.filename,
        &meta,
        app.max_attempts,
    )
    .await
    .map_err(ApiError::internal)?;
    let (uid, vid) = (u.id.clone(), submitted.video_id().to_owned());
    app.db(move |c| c.finish_upload(&uid, &vid)).await?;
    on_writer(writer, move |_| remove_if_there(&path)).await?;
    extra.push(("stemfeed-video", submitted.video_id().to_owned()));
    if let Submitted::Created { job_id, .. } = submitted {
        extra.push(("stemfeed-job", job_id.to_string()));
    }
    tracing::info!(upload = %u.id, video = submitted.video_id(), "upload complete");
    Ok((StatusCode::NO_CONTENT, tus_headers(&extra)).into_response())
}

fn is_upload_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Deletes abandoned uploads every so often, forever: unfinished uploads
/// past their expiry (row and partial file) and partial files that have
/// had no row for as long. Safe to run in every server sharing a data
/// directory: an upload being written is skipped, and a row is deleted
/// only if still expired.
pub async fn sweep(app: Arc<App>) {
    let every =
        (app.uploads.limits.expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep_once(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "expired uploads deleted"),
            Err(e) => tracing::warn!("sweeping expired uploads: {}", e.1),
        }
    }
}

/// One pass of [`sweep`]; how many uploads and stray files it deleted.
pub async fn sweep_once(app: &App) -> Result<usize, ApiError> {
    let mut swept = 0;
    let ids = app.db(|c| c.expired_uploads(500)).await?;
    for id in ids.into_iter().filter(|id| is_upload_id(id)) {
        let path = app.upload_dir.join(&id);
        let (writer, _busy) = match lock(&app.uploads, &id, path.clone()).await {
            Ok(w) => (Some(w), None),
            Err(LockError::Missing(busy)) => (None, Some(busy)),
            Err(LockError::Busy) => continue, // being written: its expiry moves on
            Err(LockError::Io(e)) => {
                tracing::warn!(upload = %id, "cannot lock an expired upload: {e}");
                continue;
            }
        };
        let uid = id.clone();
        if !app.db(move |c| c.delete_expired_upload(&uid)).await? {
            continue;
        }
        if let Some(w) = writer {
            on_writer(w, move |_| remove_if_there(&path)).await?;
        }
        tracing::info!(upload = %id, "expired upload deleted");
        swept += 1;
    }
    // Partial files without a row: a crash between creating the file and
    // its row, or a row deleted by an older version. Only old ones, so a
    // file being created right now is left alone.
    let (dir, age) = (app.upload_dir.clone(), app.uploads.limits.expiry);
    let old = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut old = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let modified = entry.metadata()?.modified()?;
            if is_upload_id(&name) && modified.elapsed().is_ok_and(|e| e > age) {
                old.push(name);
            }
        }
        Ok(old)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    for id in old {
        let uid = id.clone();
        if app.db(move |c| c.upload(&uid)).await?.is_some() {
            continue;
        }
        let path = app.upload_dir.join(&id);
        if let Ok(w) = lock(&app.uploads, &id, path.clone()).await {
            on_writer(w, move |_| remove_if_there(&path)).await?;
            tracing::info!(upload = %id, "stray partial upload deleted");
            swept += 1;
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn sniffing_accepts_video_containers_only() {
        let mut mp4 = vec![0, 0, 0, 0x20];
        mp4.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2avc1mp41");
        assert_eq!(sniff(&mp4), Ok("video/mp4"));
        let mut ts = vec![0u8; 188 * 3];
        for p in ts.chunks_mut(188) {
            p[0] = 0x47;
        }
        assert_eq!(sniff(&ts), Ok("video/mp2t"));
        assert!(sniff(b"this is a text file, not a video at all").is_err());
        // A PNG is a file infer knows, but not a video.
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
        assert!(sniff(png).unwrap_err().contains("image/png"));
    }
}
