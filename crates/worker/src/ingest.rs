//! Uploads into the system: the in-process submit function (the server's
//! tus uploads and `stemfeed jobs submit` use it) and the bucket watcher
//! that turns objects under `incoming/` into jobs exactly once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use stemfeed_queue::{Catalog, NewVideo, Submitted, source_key};
use stemfeed_store::ObjectStore;

/// Objects (key, version) a watcher has settled, and when.
pub type Seen = std::collections::HashMap<(String, String), std::time::Instant>;

/// Prefix the watcher turns into jobs.
pub const INCOMING: &str = "incoming/";

/// What the submitter says about an upload.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadMeta {
    /// Original file name (display only; keys are content hashes).
    pub filename: String,
    pub title: String,
    pub description: String,
    pub creator: String,
    pub language: Option<String>,
    pub grade: Option<u8>,
}

/// An ISO 639-1 code, as a submitter's language hint must be.
pub fn check_language(lang: &str) -> anyhow::Result<()> {
    if lang.len() != 2 || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
        anyhow::bail!("language {lang:?}: use an ISO 639-1 code such as ur, en, pa, sd, ps");
    }
    Ok(())
}

/// A display name from whatever a client sent: the last path component, no
/// control characters, at most 200 characters. Never used as a path.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "upload".to_owned()
    } else {
        cleaned
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let n = std::io::copy(&mut file, &mut hasher)?;
    let digest = hasher.finalize();
    Ok((digest.iter().map(|b| format!("{b:02x}")).collect(), n))
}

/// Stores `file` as a new upload (named by its content) and queues its job.
/// The same content twice is one video: the second call queues nothing.
pub async fn submit_file(
    store: &dyn ObjectStore,
    catalog: &Arc<Catalog>,
    file: &Path,
    original_name: &str,
    meta: &UploadMeta,
    max_attempts: u32,
) -> anyhow::Result<Submitted> {
    if let Some(lang) = &meta.language {
        check_language(lang)?;
    }
    let path = file.to_path_buf();
    let (sha256, size) = tokio::task::spawn_blocking(move || sha256_file(&path))
        .await?
        .with_context(|| format!("{}: reading the upload", file.display()))?;
    let video = NewVideo {
        sha256,
        size_bytes: size,
        original_name: original_name.to_owned(),
        title: meta.title.clone(),
        description: meta.description.clone(),
        creator: meta.creator.clone(),
        language_hint: meta.language.clone(),
        grade_hint: meta.grade.filter(|g| (1..=12).contains(g)),
    };
    let key = source_key(&video.video_id());
    // The original is written once and never replaced or deleted.
    if store.head(&key).await?.is_none() {
        store.put_file(&key, file).await?;
    }
    let c = Arc::clone(catalog);
    Ok(tokio::task::spawn_blocking(move || c.submit(&video, max_attempts)).await??)
}

/// One pass over `incoming/`: every object not yet ingested becomes a video
/// and a job. Watchers on many machines may run this at once; the catalog's
/// ingest claim lets exactly one of them take each object. A sidecar
/// `<name>.json` ([`UploadMeta`]) supplies title, description and hints.
pub async fn scan_incoming(
    store: &dyn ObjectStore,
    catalog: &Arc<Catalog>,
    owner: &str,
    work: &Path,
    max_attempts: u32,
    lease: Duration,
    seen: &mut Seen,
) -> anyhow::Result<usize> {
    let objects = store.list(INCOMING).await?;
    let mut ingested = 0;
    // An ingest claimed by a watcher that stopped renewing is taken over on
    // the job lease clock; forget settled objects on the same clock.
    seen.retain(|_, at| at.elapsed() < lease);
    for object in &objects {
        if object.key.ends_with(".json") {
            continue;
        }
        // Objects this watcher already settled are not asked about again
        // (until a stale claim elsewhere could need taking over).
        let id = (object.key.clone(), object.etag.clone());
        if seen.contains_key(&id) {
            continue;
        }
        seen.insert(id, std::time::Instant::now());
        let (c, key, etag, who) = (
            Arc::clone(catalog),
            object.key.clone(),
            object.etag.clone(),
            owner.to_owned(),
        );
        let won =
            tokio::task::spawn_blocking(move || c.claim_ingest(&key, &etag, &who, lease)).await??;
        if !won {
            continue;
        }
        let name = object
            .key
            .rsplit('/')
            .next()
            .unwrap_or(&object.key)
            .to_owned();
        let meta = match store.get_bytes(&format!("{}.json", object.key)).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                // The video still counts; its metadata can be fixed in review.
                tracing::warn!(key = %object.key, "{}.json: invalid upload metadata, ignored: {e}", object.key);
                UploadMeta::default()
            }),
            Err(e) if e.is_not_found() => UploadMeta::default(),
            Err(e) => return Err(e.into()),
        };
        tokio::fs::create_dir_all(work).await?;
        let local = work.join(format!("ingest-{}", std::process::id()));
        store.get_file(&object.key, &local).await?;
        let submitted = submit_file(store, catalog, &local, &name, &meta, max_attempts).await;
        let _ = tokio::fs::remove_file(&local).await;
        let submitted = submitted.with_context(|| format!("ingesting {}", object.key))?;
        let (c, key, etag, video) = (
            Arc::clone(catalog),
            object.key.clone(),
            object.etag.clone(),
            submitted.video_id().to_owned(),
        );
        tokio::task::spawn_blocking(move || c.finish_ingest(&key, &etag, &video)).await??;
        tracing::info!(key = %object.key, video = submitted.video_id(), new = matches!(submitted, Submitted::Created { .. }), "ingested");
        ingested += 1;
    }
    Ok(ingested)
}
