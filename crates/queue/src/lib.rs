//! The queue and catalog: videos, their processing jobs, and ingest records,
//! on SQLite (embedded, WAL) or PostgreSQL (scale-out) with one schema and
//! one set of semantics.
//!
//! A job moves `queued → probing → transcoding → captioning → tagging →
//! in-review → approved | rejected`; off that path it ends `failed` (bad
//! input, never retried), `dead` (attempts used up; the last error kept) or
//! `cancelled`. A worker owns a job through a lease (owner, random token,
//! expiry on the database's clock) that it renews with heartbeats; a lease
//! that expires makes the job claimable again and counts as an attempt. Every
//! write by a worker names its token, so a worker that lost its lease can
//! neither move nor complete the job: no job completes twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub mod db;
mod review;
mod schema;

pub use review::{
    ApiToken, CaptionVersion, CuratorAccuracy, Decision, FirstCaption, GlossaryEntry, OpenUploads,
    Role, Session, Upload, UploadQuota, User,
};

use db::{Conn, Dialect, PgTarget, Pool, Row, Target};

/// What kind of database failure an error is, and so whether trying again
/// can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// The database could not be reached or used: connection refused or
    /// lost, server shutting down or restarting, too many connections, disk
    /// full or I/O failure. Transient.
    Unavailable,
    /// A time limit ran out: statement or lock timeout, SQLite's busy
    /// timeout, the connect timeout. Transient.
    Timeout,
    /// The transaction lost a serialization conflict or a deadlock; running
    /// it again can succeed. Transient.
    Conflict,
    /// A constraint rejected the data (unique, foreign key, not null).
    Constraint,
    /// Anything else: a statement the database rejects, a type mismatch; a
    /// bug, not a moment's trouble.
    Other,
}

impl DbErrorKind {
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            DbErrorKind::Unavailable | DbErrorKind::Timeout | DbErrorKind::Conflict
        )
    }
}

impl std::fmt::Display for DbErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbErrorKind::Unavailable => "database unavailable, transient",
            DbErrorKind::Timeout => "timed out, transient",
            DbErrorKind::Conflict => "conflict with a concurrent transaction, transient",
            DbErrorKind::Constraint => "constraint violated, not transient",
            DbErrorKind::Other => "rejected, not transient",
        })
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("catalog database: {context}: {message} [{kind}]")]
    Db {
        context: String,
        message: String,
        kind: DbErrorKind,
    },
    #[error(
        "catalog database: no connection within {waited:?} ({message}) [database unavailable, transient]"
    )]
    Pool { waited: Duration, message: String },
    #[error("catalog migrations: {0}")]
    Migration(String),
    #[error("catalog: a lock was poisoned by a panic")]
    Poisoned,
    #[error("catalog URL {0:?}: use sqlite:PATH or postgres://…")]
    Url(String),
    #[error("catalog: {0}")]
    Invalid(String),
}

impl QueueError {
    /// A database error with its whole cause chain (postgres' own Display
    /// says only "db error"), of kind [`DbErrorKind::Other`].
    pub fn db(context: &str, e: impl std::error::Error) -> Self {
        Self::db_kind(context, e, DbErrorKind::Other)
    }

    /// A database error of a known kind, with its whole cause chain.
    pub fn db_kind(context: &str, e: impl std::error::Error, kind: DbErrorKind) -> Self {
        let context: String = context.chars().take(120).collect();
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        QueueError::Db {
            context,
            message,
            kind,
        }
    }

    /// The kind of database failure, for errors that came from the database.
    pub fn kind(&self) -> Option<DbErrorKind> {
        match self {
            QueueError::Db { kind, .. } => Some(*kind),
            QueueError::Pool { .. } => Some(DbErrorKind::Unavailable),
            _ => None,
        }
    }

    /// Whether the same call can succeed later without anything being fixed:
    /// the database was unreachable or restarting, a timeout ran out, or a
    /// concurrent transaction won a conflict. False for constraint
    /// violations, statements the database rejects, bad URLs and data.
    pub fn is_transient(&self) -> bool {
        self.kind().is_some_and(DbErrorKind::is_transient)
    }
}

/// How the catalog connects. [`Default`] suits a worker or server process.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogOptions {
    /// Most connections open at once.
    pub max_connections: u32,
    /// Longest wait to connect to PostgreSQL, and for a pooled connection
    /// when all are busy or the database is down.
    pub connect_timeout: Duration,
    /// Longest a statement may run (PostgreSQL's `statement_timeout`) or
    /// wait for another writer's lock (SQLite's busy timeout); `None`: no
    /// limit. Migrations are exempt on PostgreSQL.
    pub statement_timeout: Option<Duration>,
    /// Idle time of a PostgreSQL connection before TCP keepalive probes
    /// start (then every third of it, three times), so a dead server or
    /// network path is noticed.
    pub keepalive_idle: Duration,
    /// Pooled connections idle this long are closed.
    pub idle_timeout: Option<Duration>,
    /// PEM file of the CA certificate(s) that signed the PostgreSQL server's
    /// certificate, for `sslmode=require` URLs (the URL's `sslrootcert`
    /// wins). Without either, the web PKI roots are trusted.
    pub tls_root_cert: Option<PathBuf>,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
            keepalive_idle: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
            tls_root_cert: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Queued,
    Probing,
    Transcoding,
    Captioning,
    Tagging,
    InReview,
    Approved,
    Rejected,
    Failed,
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 11] = [
        JobState::Queued,
        JobState::Probing,
        JobState::Transcoding,
        JobState::Captioning,
        JobState::Tagging,
        JobState::InReview,
        JobState::Approved,
        JobState::Rejected,
        JobState::Failed,
        JobState::Dead,
        JobState::Cancelled,
    ];
    /// States a worker holds under a lease.
    pub const ACTIVE: [JobState; 4] = [
        JobState::Probing,
        JobState::Transcoding,
        JobState::Captioning,
        JobState::Tagging,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Probing => "probing",
            JobState::Transcoding => "transcoding",
            JobState::Captioning => "captioning",
            JobState::Tagging => "tagging",
            JobState::InReview => "in-review",
            JobState::Approved => "approved",
            JobState::Rejected => "rejected",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.as_str() == s)
    }

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

/// What a submitter says about an upload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewVideo {
    pub sha256: String,
    pub size_bytes: u64,
    pub original_name: String,
    pub title: String,
    pub description: String,
    pub creator: String,
    pub language_hint: Option<String>,
    pub grade_hint: Option<u8>,
}

impl NewVideo {
    /// Videos are named by their content, so one upload twice is one video.
    pub fn video_id(&self) -> String {
        format!("v{}", &self.sha256[..self.sha256.len().min(20)])
    }
}

/// The object key of a video's original upload.
pub fn source_key(video_id: &str) -> String {
    format!("uploads/{video_id}/source")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    Created { video_id: String, job_id: i64 },
    Duplicate { video_id: String },
}

impl Submitted {
    pub fn video_id(&self) -> &str {
        match self {
            Submitted::Created { video_id, .. } | Submitted::Duplicate { video_id } => video_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Video {
    pub id: String,
    pub sha256: String,
    pub source_key: String,
    pub original_name: String,
    pub title: String,
    pub description: String,
    pub creator: String,
    pub language_hint: Option<String>,
    pub grade_hint: Option<u8>,
    pub size_bytes: u64,
    pub created_ms: i64,
    /// Where the published outputs are (`videos/<id>`), once a job completed.
    pub output_prefix: Option<String>,
    /// Curators' priority: 1 high, 0 normal, -1 low. Size-budgeted exports
    /// take higher first.
    pub priority: i8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub video_id: String,
    pub state: JobState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub lease_owner: Option<String>,
    pub progress: f64,
    pub last_error: Option<String>,
    pub cancel_requested: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Attempts that ended in a [`Failure::Crash`].
    pub crashes: u32,
    /// The part of the job a claim takes next.
    pub phase: Phase,
    /// Where the finished first part's outputs are (a run prefix in the
    /// object store), once a transcode-only worker handed the job on.
    pub handoff: Option<String>,
}

/// The parts of a job that different workers can claim: a CPU box takes
/// `transcode` (probe, validate, loudness, ASR audio, renditions), a GPU
/// box `captions` (captions, tags, manifest). A worker with both runs a
/// job whole, its captions beside its encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Transcode,
    Captions,
}

impl Phase {
    pub const ALL: [Phase; 2] = [Phase::Transcode, Phase::Captions];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Transcode => "transcode",
            Phase::Captions => "captions",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A job this worker now holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub job: Job,
    pub token: String,
    pub video: Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Lease renewed.
    Held,
    /// The lease expired and the job moved on; stop working on it.
    Lost,
    /// Someone asked to cancel; stop and call [`Catalog::cancelled`].
    CancelRequested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying (network, store): requeued after a backoff, using an
    /// attempt.
    Transient,
    /// The upload itself is bad; retrying cannot help.
    BadInput,
    /// The worker's side failed, not the job: disk full, the object store or
    /// the catalog out. Requeued after a backoff without using an attempt.
    Infrastructure,
    /// The stage's child process was killed by a signal or timed out. The
    /// first crash of a job is retried like a transient failure; a second
    /// ends it `failed`, as bad input (an input that crashes the stage twice
    /// would crash it again).
    Crash,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub job_id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub worker: Option<String>,
    pub detail: Option<String>,
}

const VIDEO_COLS: &str = "id, sha256, source_key, original_name, title, description, creator, language_hint, grade_hint, size_bytes, created_ms, output_prefix, priority";
const JOB_COLS: &str = "id, video_id, state, attempts, max_attempts, lease_owner, progress, last_error, cancel_requested, created_ms, updated_ms, crash_count, phase, handoff";
/// Columns in [`JOB_COLS`] and [`VIDEO_COLS`].
const JOB_WIDTH: usize = 14;
const VIDEO_WIDTH: usize = 13;

fn video_of(r: &Row) -> Video {
    Video {
        id: r.text(0),
        sha256: r.text(1),
        source_key: r.text(2),
        original_name: r.text(3),
        title: r.text(4),
        description: r.text(5),
        creator: r.text(6),
        language_hint: r.opt_text(7),
        grade_hint: r.opt_i64(8).and_then(|g| u8::try_from(g).ok()),
        size_bytes: r.i64(9).max(0) as u64,
        created_ms: r.i64(10),
        output_prefix: r.opt_text(11),
        priority: r.i64(12).clamp(-1, 1) as i8,
    }
}

fn job_of(r: &Row) -> Result<Job, QueueError> {
    let state = r.text(2);
    Ok(Job {
        id: r.i64(0),
        video_id: r.text(1),
        state: JobState::parse(&state)
            .ok_or_else(|| QueueError::Invalid(format!("unknown job state {state:?}")))?,
        attempts: r.i64(3).max(0) as u32,
        max_attempts: r.i64(4).max(0) as u32,
        lease_owner: r.opt_text(5),
        progress: r.f64(6),
        last_error: r.opt_text(7),
        cancel_requested: r.i64(8) != 0,
        created_ms: r.i64(9),
        updated_ms: r.i64(10),
        crashes: r.i64(11).max(0) as u32,
        phase: Phase::parse(&r.text(12))
            .ok_or_else(|| QueueError::Invalid(format!("unknown job phase {:?}", r.text(12))))?,
        handoff: r.opt_text(13),
    })
}

fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The catalog, on either backend.
#[derive(Debug)]
pub struct Catalog {
    pool: Pool,
    url: String,
}

impl Catalog {
    /// `sqlite:PATH` (or a bare path) or `postgres://user@host:port/db`,
    /// with the default [`CatalogOptions`]. Runs the migrations.
    pub fn open(url: &str) -> Result<Self, QueueError> {
        Self::open_with(url, &CatalogOptions::default())
    }

    /// Opens the catalog with these pool and connection settings. The
    /// migrations run first, under a database lock, on a connection of
    /// their own: a wrong URL, host or password fails here at once.
    pub fn open_with(url: &str, options: &CatalogOptions) -> Result<Self, QueueError> {
        let (target, shown) = if url.starts_with("postgres://") || url.starts_with("postgresql://")
        {
            (
                Target::Postgres(Box::new(PgTarget::parse(url, options)?)),
                redact(url),
            )
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or(url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            if path.is_empty() {
                return Err(QueueError::Url(url.to_owned()));
            }
            let path = Path::new(path).to_path_buf();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    QueueError::db_kind(
                        &format!("creating the catalog's directory {}", dir.display()),
                        e,
                        DbErrorKind::Unavailable,
                    )
                })?;
            }
            let shown = format!("sqlite:{}", path.display());
            let busy = options
                .statement_timeout
                .unwrap_or(Duration::from_secs(86_400));
            (Target::Sqlite { path, busy }, shown)
        };
        let dialect = target.dialect();
        let mut conn = target.connect()?;
        let migrated = schema::migrate(conn.as_mut(), dialect);
        drop(conn);
        migrated?;
        Ok(Catalog {
            pool: Pool::new(target, options),
            url: shown,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.pool.dialect
    }

    /// The URL without a password, for logs.
    pub fn describe(&self) -> &str {
        &self.url
    }

    fn now(&self) -> &'static str {
        self.pool.dialect.now_ms()
    }

    fn event(
        &self,
        c: &mut dyn Conn,
        job: i64,
        kind: &str,
        worker: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), QueueError> {
        c.exec(
            &format!("INSERT INTO job_events (job_id, at_ms, kind, worker, detail) VALUES ($1, {}, $2, $3, $4)", self.now()),
            &[job.into(), kind.into(), worker.into(), detail.into()],
        )
        .map(drop)
    }

    /// Registers an upload whose bytes are already at [`source_key`]: a new
    /// video gets one job; the same content again is the same video and no
    /// new job.
    pub fn submit(&self, v: &NewVideo, max_attempts: u32) -> Result<Submitted, QueueError> {
        if v.sha256.len() != 64 || !v.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(QueueError::Invalid(format!(
                "sha256 {:?} is not 64 hex digits",
                v.sha256
            )));
        }
        let id = v.video_id();
        let now = self.now();
        self.pool.tx(|c| {
            let inserted = c.exec(
                &format!(
                    "INSERT INTO videos ({VIDEO_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {now}, NULL, 0) ON CONFLICT (sha256) DO NOTHING"
                ),
                &[
                    id.clone().into(),
                    v.sha256.to_ascii_lowercase().into(),
                    source_key(&id).into(),
                    v.original_name.clone().into(),
                    v.title.clone().into(),
                    v.description.clone().into(),
                    v.creator.clone().into(),
                    v.language_hint.clone().into(),
                    v.grade_hint.map(i64::from).into(),
                    (v.size_bytes as i64).into(),
                ],
            )?;
            if inserted == 0 {
                self.merge_metadata(c, &id, v)?;
                return Ok(Submitted::Duplicate { video_id: id.clone() });
            }
            let rows = c.query(
                &format!(
                    "INSERT INTO jobs (video_id, state, attempts, max_attempts, run_after_ms, progress, cancel_requested, created_ms, updated_ms) VALUES ($1, 'queued', 0, $2, {now}, 0, 0, {now}, {now}) RETURNING id"
                ),
                &[id.clone().into(), i64::from(max_attempts.max(1)).into()],
            )?;
            let job_id = rows.first().map(|r| r.i64(0)).ok_or_else(|| QueueError::Invalid("insert returned no id".into()))?;
            self.event(c, job_id, "submitted", None, Some(&v.original_name))?;
            Ok(Submitted::Created { video_id: id.clone(), job_id })
        })
    }

    /// The same content submitted again: what the submitter says now fills
    /// the video's empty title, description, creator, language and grade
    /// hints; nothing already set is overwritten. The fields filled are
    /// logged on the video's latest job.
    fn merge_metadata(&self, c: &mut dyn Conn, id: &str, v: &NewVideo) -> Result<(), QueueError> {
        let lock = self.pool.dialect.for_update();
        let Some(old) = c
            .query(
                &format!("SELECT {VIDEO_COLS} FROM videos WHERE id = $1 {lock}"),
                &[id.into()],
            )?
            .first()
            .map(video_of)
        else {
            return Ok(());
        };
        let empty = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
        let mut merged = old.clone();
        let mut filled = Vec::new();
        if old.title.is_empty() && !v.title.is_empty() {
            merged.title.clone_from(&v.title);
            filled.push("title");
        }
        if old.description.is_empty() && !v.description.is_empty() {
            merged.description.clone_from(&v.description);
            filled.push("description");
        }
        if old.creator.is_empty() && !v.creator.is_empty() {
            merged.creator.clone_from(&v.creator);
            filled.push("creator");
        }
        if empty(&old.language_hint) && !empty(&v.language_hint) {
            merged.language_hint.clone_from(&v.language_hint);
            filled.push("language hint");
        }
        if old.grade_hint.is_none() && v.grade_hint.is_some() {
            merged.grade_hint = v.grade_hint;
            filled.push("grade hint");
        }
        if filled.is_empty() {
            return Ok(());
        }
        c.exec(
            "UPDATE videos SET title = $1, description = $2, creator = $3, language_hint = $4, grade_hint = $5 WHERE id = $6",
            &[
                merged.title.into(),
                merged.description.into(),
                merged.creator.into(),
                merged.language_hint.into(),
                merged.grade_hint.map(i64::from).into(),
                id.into(),
            ],
        )?;
        let latest = c
            .query("SELECT MAX(id) FROM jobs WHERE video_id = $1", &[id.into()])?
            .first()
            .and_then(|r| r.opt_i64(0));
        if let Some(job) = latest {
            let detail = format!(
                "{} filled from a second upload of the same content ({})",
                filled.join(", "),
                v.original_name
            );
            self.event(c, job, "metadata", None, Some(&detail))?;
        }
        Ok(())
    }

    /// Takes the oldest runnable job (queued and due, or holding an expired
    /// lease) for `worker`. A job whose lease expired on its last attempt is
    /// dead-lettered instead, and the next one is tried. A job whose lease
    /// expired after a cancel was requested ends `cancelled` (its worker
    /// died before it could acknowledge) and is never run again.
    ///
    /// Only jobs whose next part is one of `phases` are taken.
    pub fn claim(
        &self,
        worker: &str,
        lease: Duration,
        phases: &[Phase],
    ) -> Result<Option<Claim>, QueueError> {
        if phases.is_empty() {
            return Ok(None);
        }
        let now = self.now();
        let active = JobState::ACTIVE
            .map(|s| format!("'{}'", s.as_str()))
            .join(", ");
        let phases = phases
            .iter()
            .map(|p| format!("'{}'", p.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let skip = self.pool.dialect.skip_locked();
        let sql = format!(
            "UPDATE jobs SET state = 'probing', attempts = attempts + 1, \
               last_error = CASE WHEN state = 'queued' THEN last_error ELSE 'lease of worker ' || COALESCE(lease_owner, '?') || ' expired in ' || state END, \
               lease_owner = $1, lease_token = $2, lease_expires_ms = {now} + $3, progress = 0, updated_ms = {now} \
             WHERE id = COALESCE( \
               (SELECT id FROM jobs WHERE state IN ({active}) AND phase IN ({phases}) AND lease_expires_ms < {now} AND cancel_requested = 0 ORDER BY id LIMIT 1 {skip}), \
               (SELECT id FROM jobs WHERE state = 'queued' AND phase IN ({phases}) AND run_after_ms <= {now} AND cancel_requested = 0 ORDER BY id LIMIT 1 {skip})) \
             RETURNING {JOB_COLS}"
        );
        // Expired leases with a cancel pending: (id, state, owner).
        let doomed = format!(
            "SELECT id, state, lease_owner FROM jobs WHERE state IN ({active}) AND lease_expires_ms < {now} AND cancel_requested = 1 ORDER BY id LIMIT 100 {skip}"
        );
        let cancel_set = format!(
            "state = 'cancelled', lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL, updated_ms = {now}"
        );
        // PostgreSQL: sweep, claim, log and read the video in one statement
        // (one round trip, atomic on its own).
        let pg_sql = format!(
            "WITH doomed AS ({doomed}), \
             swept AS (UPDATE jobs SET {cancel_set} FROM doomed WHERE jobs.id = doomed.id \
                       RETURNING jobs.id, doomed.state AS was, doomed.lease_owner AS owner), \
             swept_ev AS (INSERT INTO job_events (job_id, at_ms, kind, worker, detail) \
                    SELECT id, {now}, 'cancelled', $1, 'cancel requested; lease of worker ' || COALESCE(owner, '?') || ' expired in ' || was FROM swept), \
             claimed AS ({sql}), \
             ev AS (INSERT INTO job_events (job_id, at_ms, kind, worker, detail) \
                    SELECT id, {now}, 'claimed', $1, 'attempt ' || attempts FROM claimed) \
             SELECT {}, {} FROM claimed c JOIN videos v ON v.id = c.video_id",
            JOB_COLS
                .split(", ")
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            VIDEO_COLS
                .split(", ")
                .map(|c| format!("v.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        loop {
            let tok = token();
            if self.pool.dialect == Dialect::Postgres {
                let rows = self.pool.with(|c| {
                    c.query(
                        &pg_sql,
                        &[worker.into(), tok.clone().into(), ms(lease).into()],
                    )
                })?;
                let Some(row) = rows.first() else {
                    return Ok(None);
                };
                let job = job_of(&Row(row.0[..JOB_WIDTH].to_vec()))?;
                let video = video_of(&Row(row.0[JOB_WIDTH..JOB_WIDTH + VIDEO_WIDTH].to_vec()));
                if job.attempts > job.max_attempts {
                    self.dead_letter(&job, worker)?;
                    continue;
                }
                return Ok(Some(Claim {
                    job,
                    token: tok,
                    video,
                }));
            }
            let claimed = self.pool.tx(|c| {
                for r in c.query(&doomed, &[])? {
                    let (id, was, owner) = (r.i64(0), r.text(1), r.opt_text(2));
                    c.exec(&format!("UPDATE jobs SET {cancel_set} WHERE id = $1"), &[id.into()])?;
                    let detail = format!(
                        "cancel requested; lease of worker {} expired in {was}",
                        owner.as_deref().unwrap_or("?")
                    );
                    self.event(c, id, "cancelled", Some(worker), Some(&detail))?;
                }
                let rows = c.query(&sql, &[worker.into(), tok.clone().into(), ms(lease).into()])?;
                let Some(row) = rows.first() else { return Ok(None) };
                let job = job_of(row)?;
                if job.attempts > job.max_attempts {
                    let reason = job.last_error.clone().unwrap_or_else(|| "lease expired".into());
                    c.exec(
                        &format!("UPDATE jobs SET state = 'dead', lease_owner = NULL, lease_token = NULL, attempts = max_attempts, updated_ms = {now} WHERE id = $1"),
                        &[job.id.into()],
                    )?;
                    self.event(c, job.id, "dead", Some(worker), Some(&reason))?;
                    return Ok(Some(Err(job.id)));
                }
                self.event(c, job.id, "claimed", Some(worker), Some(&format!("attempt {}", job.attempts)))?;
                let video = c
                    .query(&format!("SELECT {VIDEO_COLS} FROM videos WHERE id = $1"), &[job.video_id.clone().into()])?
                    .first()
                    .map(video_of)
                    .ok_or_else(|| QueueError::Invalid(format!("job {} has no video {}", job.id, job.video_id)))?;
                Ok(Some(Ok(Claim { job, token: tok.clone(), video })))
            })?;
            match claimed {
                None => return Ok(None),
                Some(Ok(claim)) => return Ok(Some(claim)),
                Some(Err(_dead)) => continue,
            }
        }
    }

    /// Ends a job whose lease expired on its last attempt.
    fn dead_letter(&self, job: &Job, worker: &str) -> Result<(), QueueError> {
        let now = self.now();
        let reason = job
            .last_error
            .clone()
            .unwrap_or_else(|| "lease expired".into());
        self.pool.tx(|c| {
            c.exec(
                &format!("UPDATE jobs SET state = 'dead', lease_owner = NULL, lease_token = NULL, attempts = max_attempts, updated_ms = {now} WHERE id = $1"),
                &[job.id.into()],
            )?;
            self.event(c, job.id, "dead", Some(worker), Some(&reason))
        })
    }

    /// Renews the lease and records the stage and progress.
    pub fn heartbeat(
        &self,
        job: i64,
        token: &str,
        state: JobState,
        progress: f64,
        lease: Duration,
    ) -> Result<Heartbeat, QueueError> {
        if !state.is_active() {
            return Err(QueueError::Invalid(format!(
                "heartbeat with state {}",
                state.as_str()
            )));
        }
        let now = self.now();
        self.pool.with(|c| {
            let rows = c.query(
                &format!(
                    "UPDATE jobs SET state = $1, progress = $2, lease_expires_ms = {now} + $3, updated_ms = {now} \
                     WHERE id = $4 AND lease_token = $5 RETURNING cancel_requested"
                ),
                &[state.as_str().into(), progress.clamp(0.0, 1.0).into(), ms(lease).into(), job.into(), token.into()],
            )?;
            Ok(match rows.first() {
                None => Heartbeat::Lost,
                Some(r) if r.i64(0) != 0 => Heartbeat::CancelRequested,
                Some(_) => Heartbeat::Held,
            })
        })
    }

    /// Finishes a job whose outputs are published under `output_prefix`,
    /// and in the same transaction stores the run's recognised tracks as
    /// version 1 of each track that has no version yet
    /// ([`Catalog::import_first_captions`]). Returns false (and changes
    /// nothing) when `token` no longer holds it.
    pub fn complete(
        &self,
        job: i64,
        token: &str,
        worker: &str,
        output_prefix: &str,
        captions: &[FirstCaption],
    ) -> Result<bool, QueueError> {
        let now = self.now();
        let update = format!(
            "UPDATE jobs SET state = 'in-review', progress = 1, lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL, last_error = NULL, updated_ms = {now}, completed_ms = {now} \
             WHERE id = $1 AND lease_token = $2 RETURNING id, video_id"
        );
        self.pool.tx(|c| {
            let rows = c.query(&update, &[job.into(), token.into()])?;
            let Some(video) = rows.first().map(|r| r.text(1)) else {
                return Ok(false);
            };
            c.exec(
                "UPDATE videos SET output_prefix = $1 WHERE id = $2",
                &[output_prefix.into(), video.as_str().into()],
            )?;
            if !captions.is_empty() {
                self.lock_video(c, &video)?;
                self.insert_first_captions(c, &video, captions)?;
            }
            self.event(c, job, "completed", Some(worker), Some(output_prefix))?;
            Ok(true)
        })
    }

    /// Hands a job whose transcode part is done (its outputs uploaded under
    /// `run_prefix`) on to a captions worker: queued again in the
    /// `captions` phase with its attempt and crash counts fresh, the lease
    /// released. Returns false (and changes nothing) when `token` no longer
    /// holds it. A job with a cancel pending ends `cancelled` instead.
    pub fn hand_off(
        &self,
        job: i64,
        token: &str,
        worker: &str,
        run_prefix: &str,
    ) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            let rows = c.query(
                &format!(
                    "UPDATE jobs SET \
                       state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END, \
                       phase = 'captions', handoff = $1, attempts = 0, crash_count = 0, infra_failures = 0, \
                       lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL, run_after_ms = {now}, progress = 0, updated_ms = {now} \
                     WHERE id = $2 AND lease_token = $3 AND phase = 'transcode' RETURNING state"
                ),
                &[run_prefix.into(), job.into(), token.into()],
            )?;
            let Some(r) = rows.first() else { return Ok(false) };
            if r.text(0) == JobState::Cancelled.as_str() {
                self.event(c, job, "cancelled", Some(worker), Some("cancel requested; transcode done"))?;
            } else {
                self.event(c, job, "handed-off", Some(worker), Some(run_prefix))?;
            }
            Ok(true)
        })
    }

    /// Runnable jobs waiting per phase (queued and due, or holding an
    /// expired lease): what an autoscaler sizes each worker pool by.
    pub fn queue_depth(&self) -> Result<BTreeMap<Phase, i64>, QueueError> {
        let now = self.now();
        let active = JobState::ACTIVE
            .map(|s| format!("'{}'", s.as_str()))
            .join(", ");
        let mut out: BTreeMap<Phase, i64> = Phase::ALL.iter().map(|p| (*p, 0)).collect();
        let rows = self.pool.with(|c| {
            c.query(
                &format!(
                    "SELECT phase, COUNT(*) FROM jobs WHERE cancel_requested = 0 AND \
                       ((state = 'queued' AND run_after_ms <= {now}) OR (state IN ({active}) AND lease_expires_ms < {now})) \
                     GROUP BY phase"
                ),
                &[],
            )
        })?;
        for r in rows {
            if let Some(p) = Phase::parse(&r.text(0)) {
                out.insert(p, r.i64(1));
            }
        }
        Ok(out)
    }

    /// Records a failed attempt (None: `token` no longer holds the job) and
    /// returns the job's new state:
    /// - [`Failure::BadInput`]: `failed`, never retried;
    /// - [`Failure::Transient`]: `queued` again after `backoff × 2^(attempts−1)`,
    ///   or `dead` once the attempts are used up;
    /// - [`Failure::Infrastructure`]: `queued` after `backoff × 2^n` (n: the
    ///   job's earlier infrastructure failures, at most 6), the attempt given
    ///   back;
    /// - [`Failure::Crash`]: like a transient failure the first time; the
    ///   second crash of the job ends it `failed`.
    ///
    /// A job that would be requeued while a cancel is pending ends
    /// `cancelled` instead. `error` becomes the job's `last_error`.
    pub fn fail(
        &self,
        job: i64,
        token: &str,
        worker: &str,
        error: &str,
        kind: Failure,
        backoff: Duration,
    ) -> Result<Option<JobState>, QueueError> {
        let now = self.now();
        let lock = self.pool.dialect.for_update();
        self.pool.tx(|c| {
            let rows = c.query(
                &format!("SELECT attempts, max_attempts, cancel_requested, crash_count, infra_failures FROM jobs WHERE id = $1 AND lease_token = $2 {lock}"),
                &[job.into(), token.into()],
            )?;
            let Some(r) = rows.first() else { return Ok(None) };
            let (attempts, max, cancel, crashes, infra) = (r.i64(0), r.i64(1), r.i64(2) != 0, r.i64(3), r.i64(4));
            let retry_delay = ms(backoff).saturating_mul(1i64 << (attempts - 1).clamp(0, 20));
            let (mut state, mut event, mut detail) = (JobState::Queued, "retry", error.to_owned());
            let (mut attempts_after, mut crashes_after, mut infra_after, mut delay) =
                (attempts, crashes, infra, retry_delay);
            match kind {
                Failure::BadInput => (state, event) = (JobState::Failed, "failed"),
                Failure::Transient if attempts >= max => (state, event) = (JobState::Dead, "dead"),
                Failure::Transient => {}
                Failure::Infrastructure => {
                    attempts_after = (attempts - 1).max(0);
                    infra_after = infra + 1;
                    delay = ms(backoff).saturating_mul(1i64 << infra.clamp(0, 6));
                    detail = format!("infrastructure failure, attempt not counted: {error}");
                }
                Failure::Crash => {
                    crashes_after = crashes + 1;
                    if crashes_after >= 2 {
                        (state, event) = (JobState::Failed, "failed");
                        detail = format!("crashed on {crashes_after} attempts, treated as bad input: {error}");
                    } else if attempts >= max {
                        (state, event) = (JobState::Dead, "dead");
                    } else {
                        detail = format!("crashed, retrying: {error}");
                    }
                }
            }
            if cancel && state == JobState::Queued {
                (state, event) = (JobState::Cancelled, "cancelled");
                detail = format!("cancel requested; the attempt ended: {error}");
            }
            c.exec(
                &format!(
                    "UPDATE jobs SET state = $1, last_error = $2, run_after_ms = {now} + $3, attempts = $4, crash_count = $5, infra_failures = $6, \
                     lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL, updated_ms = {now} WHERE id = $7"
                ),
                &[
                    state.as_str().into(),
                    error.into(),
                    delay.into(),
                    attempts_after.into(),
                    crashes_after.into(),
                    infra_after.into(),
                    job.into(),
                ],
            )?;
            self.event(c, job, event, Some(worker), Some(&detail))?;
            Ok(Some(state))
        })
    }

    /// Gives a job back without using an attempt (graceful shutdown). A job
    /// with a cancel pending ends `cancelled` instead of waiting for a claim
    /// that would never take it.
    pub fn release(&self, job: i64, token: &str, worker: &str) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            let rows = c.query(
                &format!(
                    "UPDATE jobs SET \
                       state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END, \
                       attempts = CASE WHEN cancel_requested = 1 THEN attempts ELSE attempts - 1 END, \
                       lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL, run_after_ms = {now}, progress = 0, updated_ms = {now} \
                     WHERE id = $1 AND lease_token = $2 RETURNING state"
                ),
                &[job.into(), token.into()],
            )?;
            let Some(r) = rows.first() else { return Ok(false) };
            if r.text(0) == JobState::Cancelled.as_str() {
                self.event(c, job, "cancelled", Some(worker), Some("released with a cancel requested"))?;
            } else {
                self.event(c, job, "released", Some(worker), None)?;
            }
            Ok(true)
        })
    }

    /// Asks for a job to stop: a queued job is cancelled at once; a running
    /// one when its worker's next heartbeat sees the request.
    pub fn cancel(&self, job: i64) -> Result<Option<JobState>, QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            let n = c.exec(
                &format!("UPDATE jobs SET state = 'cancelled', updated_ms = {now} WHERE id = $1 AND state IN ('queued')"),
                &[job.into()],
            )?;
            if n == 0 {
                c.exec(
                    &format!("UPDATE jobs SET cancel_requested = 1, updated_ms = {now} WHERE id = $1 AND state IN ('probing', 'transcoding', 'captioning', 'tagging')"),
                    &[job.into()],
                )?;
            }
            self.event(c, job, "cancel", None, None)?;
            let rows = c.query("SELECT state FROM jobs WHERE id = $1", &[job.into()])?;
            Ok(rows.first().and_then(|r| JobState::parse(&r.text(0))))
        })
    }

    /// The worker acknowledges a cancellation request.
    pub fn cancelled(&self, job: i64, token: &str, worker: &str) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            let n = c.exec(
                &format!("UPDATE jobs SET state = 'cancelled', lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL, updated_ms = {now} WHERE id = $1 AND lease_token = $2"),
                &[job.into(), token.into()],
            )?;
            if n > 0 {
                self.event(c, job, "cancelled", Some(worker), None)?;
            }
            Ok(n > 0)
        })
    }

    pub fn job(&self, id: i64) -> Result<Option<Job>, QueueError> {
        self.pool.with(|c| {
            c.query(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"),
                &[id.into()],
            )?
            .first()
            .map(job_of)
            .transpose()
        })
    }

    /// All jobs, oldest first (optionally of one video).
    pub fn jobs(&self, video: Option<&str>) -> Result<Vec<Job>, QueueError> {
        self.pool.with(|c| {
            let rows = match video {
                Some(v) => c.query(
                    &format!("SELECT {JOB_COLS} FROM jobs WHERE video_id = $1 ORDER BY id"),
                    &[v.into()],
                )?,
                None => c.query(&format!("SELECT {JOB_COLS} FROM jobs ORDER BY id"), &[])?,
            };
            rows.iter().map(job_of).collect()
        })
    }

    pub fn video(&self, id: &str) -> Result<Option<Video>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query(
                &format!("SELECT {VIDEO_COLS} FROM videos WHERE id = $1"),
                &[id.into()],
            )?
            .first()
            .map(video_of))
        })
    }

    pub fn events(&self, job: i64) -> Result<Vec<Event>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query("SELECT job_id, at_ms, kind, worker, detail FROM job_events WHERE job_id = $1 ORDER BY id", &[job.into()])?
                .iter()
                .map(|r| Event {
                    job_id: r.i64(0),
                    at_ms: r.i64(1),
                    kind: r.text(2),
                    worker: r.opt_text(3),
                    detail: r.opt_text(4),
                })
                .collect())
        })
    }

    /// Number of jobs in each state (every state present, zeros included).
    pub fn counts(&self) -> Result<BTreeMap<JobState, i64>, QueueError> {
        let mut out: BTreeMap<JobState, i64> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        let rows = self
            .pool
            .with(|c| c.query("SELECT state, COUNT(*) FROM jobs GROUP BY state", &[]))?;
        for r in rows {
            if let Some(s) = JobState::parse(&r.text(0)) {
                out.insert(s, r.i64(1));
            }
        }
        Ok(out)
    }

    /// Claims the ingest of object `key` (at version `etag`) for `owner`,
    /// holding it for `lease` on the database clock, as job leases are held.
    /// Exactly one caller wins per key and version; once a claim's lease has
    /// expired without the ingest finished (its watcher died), the next
    /// caller takes it over. A long ingest keeps its claim with
    /// [`Catalog::renew_ingest`].
    pub fn claim_ingest(
        &self,
        key: &str,
        etag: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            let inserted = c.exec(
                &format!("INSERT INTO ingested (key, etag, owner, claimed_ms, video_id, done, lease_expires_ms) VALUES ($1, $2, $3, {now}, NULL, 0, {now} + $4) ON CONFLICT (key, etag) DO NOTHING"),
                &[key.into(), etag.into(), owner.into(), ms(lease).into()],
            )?;
            if inserted > 0 {
                return Ok(true);
            }
            let taken = c.exec(
                &format!("UPDATE ingested SET owner = $1, claimed_ms = {now}, lease_expires_ms = {now} + $4 WHERE key = $2 AND etag = $3 AND done = 0 AND COALESCE(lease_expires_ms, claimed_ms + 600000) < {now}"),
                &[owner.into(), key.into(), etag.into(), ms(lease).into()],
            )?;
            Ok(taken > 0)
        })
    }

    /// Extends `owner`'s claim on an ingest to `lease` from now. False when
    /// the claim is no longer `owner`'s (it expired and was taken over) or
    /// the ingest is finished.
    pub fn renew_ingest(
        &self,
        key: &str,
        etag: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool
            .with(|c| {
                c.exec(
                    &format!("UPDATE ingested SET lease_expires_ms = {now} + $1 WHERE key = $2 AND etag = $3 AND owner = $4 AND done = 0"),
                    &[ms(lease).into(), key.into(), etag.into(), owner.into()],
                )
            })
            .map(|n| n > 0)
    }

    /// Marks an ingest finished (the video exists and has its job).
    pub fn finish_ingest(&self, key: &str, etag: &str, video_id: &str) -> Result<(), QueueError> {
        self.pool
            .with(|c| {
                c.exec(
                    "UPDATE ingested SET done = 1, video_id = $1 WHERE key = $2 AND etag = $3",
                    &[video_id.into(), key.into(), etag.into()],
                )
            })
            .map(drop)
    }
}

fn redact(url: &str) -> String {
    // postgres://user:secret@host → postgres://user:***@host
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &creds[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:pw@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
