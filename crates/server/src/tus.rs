//! Resumable uploads, tus 1.0.0 core with the creation extension:
//! `POST /api/uploads` (Upload-Length, Upload-Metadata) creates an upload,
//! `HEAD` tells how much arrived, `PATCH` appends at `Upload-Offset`. The
//! bytes stream to a partial file on the server's disk; the size cap is
//! checked before anything is stored and again while bytes arrive. When the
//! last byte arrives the file is sniffed (it must be a video container),
//! stored under its content hash, and its job is queued.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use stemfeed_queue::{Role, Submitted};
use tokio::io::AsyncWriteExt;

use crate::{ApiError, App, auth};
use stemfeed_worker::ingest::{UploadMeta, clean_name, submit_file};

const TUS_VERSION: &str = "1.0.0";

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
            ("tus-extension", "creation".to_owned()),
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
    let id = auth::random_token()[..32].to_owned();
    tokio::fs::create_dir_all(&app.upload_dir)
        .await
        .map_err(ApiError::internal)?;
    tokio::fs::File::create(app.upload_dir.join(&id))
        .await
        .map_err(ApiError::internal)?;
    let metadata = serde_json::to_string(&meta).map_err(ApiError::internal)?;
    let (uid, owner) = (id.clone(), caller.name.clone());
    app.db(move |c| c.create_upload(&uid, &owner, length, &metadata))
        .await?;
    tracing::info!(upload = %id, by = %caller.name, length, file = %meta.filename, "upload created");
    Ok((
        StatusCode::CREATED,
        tus_headers(&[
            ("location", format!("/api/uploads/{id}")),
            ("upload-offset", "0".into()),
        ]),
    )
        .into_response())
}

/// The upload `id`, if it belongs to the caller (admins see all).
async fn owned(
    app: &App,
    headers: &HeaderMap,
    id: &str,
) -> Result<stemfeed_queue::Upload, ApiError> {
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
    if let Some(v) = &u.video_id {
        extra.push(("stemfeed-video", v.clone()));
    }
    Ok((StatusCode::OK, tus_headers(&extra)).into_response())
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
    if offset != u.received {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Upload-Offset {offset} but the server has {}", u.received),
        ));
    }
    if u.video_id.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "upload already complete",
        ));
    }
    let path = app.upload_dir.join(&u.id);
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await
        .map_err(ApiError::internal)?;
    // Bytes past the offset a crashed request left behind are discarded.
    file.set_len(offset).await.map_err(ApiError::internal)?;
    let mut received = offset;
    let mut stream = body.into_data_stream();
    use futures_util::StreamExt as _;
    let mut over = false;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break }; // client went away: keep what arrived
        if received + chunk.len() as u64 > u.length {
            over = true;
            break;
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
        received += chunk.len() as u64;
    }
    file.flush().await.map_err(ApiError::internal)?;
    file.sync_data().await.map_err(ApiError::internal)?;
    drop(file);
    let uid = u.id.clone();
    if !app
        .db(move |c| c.advance_upload(&uid, offset, received))
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "another request is writing this upload",
        ));
    }
    if over {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("more bytes than the declared Upload-Length {}", u.length),
        ));
    }
    let mut extra = vec![("upload-offset", received.to_string())];
    if received == u.length {
        let meta: UploadMeta = serde_json::from_str(&u.metadata).map_err(ApiError::internal)?;
        if let Err(reason) = sniff(&path).await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{}: {reason}", meta.filename),
            ));
        }
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
        let _ = tokio::fs::remove_file(&path).await;
        extra.push(("stemfeed-video", submitted.video_id().to_owned()));
        if let Submitted::Created { job_id, .. } = submitted {
            extra.push(("stemfeed-job", job_id.to_string()));
        }
        tracing::info!(upload = %u.id, video = submitted.video_id(), "upload complete");
    }
    Ok((StatusCode::NO_CONTENT, tus_headers(&extra)).into_response())
}

/// Whether the file starts like a video container stemfeed can read.
async fn sniff(path: &std::path::Path) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 16];
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let n = f.read(&mut head).await.map_err(|e| e.to_string())?;
    let h = &head[..n];
    let mp4 = n >= 8
        && matches!(
            &h[4..8],
            b"ftyp" | b"moov" | b"mdat" | b"wide" | b"free" | b"skip"
        );
    let matroska = h.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]);
    let avi = n >= 12 && &h[..4] == b"RIFF" && &h[8..12] == b"AVI ";
    let ts = h.first() == Some(&0x47);
    if mp4 || matroska || avi || ts {
        Ok(())
    } else {
        Err("not a video container (MP4/MOV, WebM/Matroska, AVI or MPEG-TS expected)".into())
    }
}
