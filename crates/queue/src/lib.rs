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
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

pub mod db;
mod review;
mod schema;

pub use review::{CaptionVersion, Decision, Role, Session, Upload};

use db::{Conn, Dialect, PgConn, Pool, Row, SqliteConn};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("catalog database: {context}: {message}")]
    Db { context: String, message: String },
    #[error("catalog: a lock was poisoned by a panic")]
    Poisoned,
    #[error("catalog URL {0:?}: use sqlite:PATH or postgres://…")]
    Url(String),
    #[error("catalog: {0}")]
    Invalid(String),
}

impl QueueError {
    /// A database error with its whole cause chain (postgres' own Display
    /// says only "db error").
    pub fn db(context: &str, e: impl std::error::Error) -> Self {
        let context: String = context.chars().take(120).collect();
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        QueueError::Db { context, message }
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
    /// Worth retrying (network, store, a crash).
    Transient,
    /// The upload itself is bad; retrying cannot help.
    BadInput,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub job_id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub worker: Option<String>,
    pub detail: Option<String>,
}

const VIDEO_COLS: &str = "id, sha256, source_key, original_name, title, description, creator, language_hint, grade_hint, size_bytes, created_ms, output_prefix";
const JOB_COLS: &str = "id, video_id, state, attempts, max_attempts, lease_owner, progress, last_error, cancel_requested, created_ms, updated_ms";

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
    /// `sqlite:PATH` (or a bare path) or `postgres://user@host:port/db`.
    /// Runs the migrations.
    pub fn open(url: &str) -> Result<Self, QueueError> {
        let catalog = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let u = url.to_owned();
            Catalog {
                pool: Pool::new(Dialect::Postgres, move || {
                    Ok(Box::new(PgConn::connect(&u)?) as Box<dyn Conn>)
                }),
                url: redact(url),
            }
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
                std::fs::create_dir_all(dir)
                    .map_err(|e| QueueError::db(&format!("creating {}", dir.display()), e))?;
            }
            Catalog {
                url: format!("sqlite:{}", path.display()),
                pool: Pool::new(Dialect::Sqlite, move || {
                    Ok(Box::new(SqliteConn::open(&path)?) as Box<dyn Conn>)
                }),
            }
        };
        catalog
            .pool
            .with(|c| schema::migrate(c, catalog.pool.dialect))?;
        Ok(catalog)
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
                    "INSERT INTO videos ({VIDEO_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {now}, NULL) ON CONFLICT (sha256) DO NOTHING"
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

    /// Takes the oldest runnable job (queued and due, or holding an expired
    /// lease) for `worker`. A job whose lease expired on its last attempt is
    /// dead-lettered instead, and the next one is tried.
    pub fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Claim>, QueueError> {
        let now = self.now();
        let active = JobState::ACTIVE
            .map(|s| format!("'{}'", s.as_str()))
            .join(", ");
        let sql = format!(
            "UPDATE jobs SET state = 'probing', attempts = attempts + 1, \
               last_error = CASE WHEN state = 'queued' THEN last_error ELSE 'lease of worker ' || COALESCE(lease_owner, '?') || ' expired in ' || state END, \
               lease_owner = $1, lease_token = $2, lease_expires_ms = {now} + $3, progress = 0, updated_ms = {now} \
             WHERE id = COALESCE( \
               (SELECT id FROM jobs WHERE state IN ({active}) AND lease_expires_ms < {now} AND cancel_requested = 0 ORDER BY id LIMIT 1 {skip}), \
               (SELECT id FROM jobs WHERE state = 'queued' AND run_after_ms <= {now} AND cancel_requested = 0 ORDER BY id LIMIT 1 {skip})) \
             RETURNING {JOB_COLS}",
            skip = self.pool.dialect.skip_locked()
        );
        // PostgreSQL: claim, log and read the video in one statement (one
        // round trip, atomic on its own).
        let pg_sql = format!(
            "WITH claimed AS ({sql}), \
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
                let job = job_of(&Row(row.0[..11].to_vec()))?;
                let video = video_of(&Row(row.0[11..].to_vec()));
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

    /// Finishes a job whose outputs are published under `output_prefix`.
    /// Returns false (and changes nothing) when `token` no longer holds it.
    pub fn complete(
        &self,
        job: i64,
        token: &str,
        worker: &str,
        output_prefix: &str,
    ) -> Result<bool, QueueError> {
        let now = self.now();
        let update = format!(
            "UPDATE jobs SET state = 'in-review', progress = 1, lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL, last_error = NULL, updated_ms = {now}, completed_ms = {now} \
             WHERE id = $1 AND lease_token = $2 RETURNING id, video_id"
        );
        if self.pool.dialect == Dialect::Postgres {
            // One statement: finish the job, point the video at its outputs, log.
            let sql = format!(
                "WITH done AS ({update}), \
                 v AS (UPDATE videos SET output_prefix = $3 WHERE id IN (SELECT video_id FROM done)), \
                 e AS (INSERT INTO job_events (job_id, at_ms, kind, worker, detail) SELECT id, {now}, 'completed', $4, $3 FROM done) \
                 SELECT id FROM done"
            );
            let rows = self.pool.with(|c| {
                c.query(
                    &sql,
                    &[
                        job.into(),
                        token.into(),
                        output_prefix.into(),
                        worker.into(),
                    ],
                )
            })?;
            return Ok(!rows.is_empty());
        }
        self.pool.tx(|c| {
            let rows = c.query(&update, &[job.into(), token.into()])?;
            let Some(video) = rows.first().map(|r| r.text(1)) else {
                return Ok(false);
            };
            c.exec(
                "UPDATE videos SET output_prefix = $1 WHERE id = $2",
                &[output_prefix.into(), video.into()],
            )?;
            self.event(c, job, "completed", Some(worker), Some(output_prefix))?;
            Ok(true)
        })
    }

    /// Records a failed attempt: bad input ends the job `failed`; a transient
    /// error requeues it after `backoff × 2^(attempts−1)`, or dead-letters it
    /// once the attempts are used up. Returns the new state (None: lease lost).
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
        self.pool.tx(|c| {
            let rows = c.query(
                &format!("SELECT attempts, max_attempts FROM jobs WHERE id = $1 AND lease_token = $2 {}", self.pool.dialect.skip_locked().replace(" SKIP LOCKED", "")),
                &[job.into(), token.into()],
            )?;
            let Some(r) = rows.first() else { return Ok(None) };
            let (attempts, max) = (r.i64(0), r.i64(1));
            let state = match kind {
                Failure::BadInput => JobState::Failed,
                Failure::Transient if attempts >= max => JobState::Dead,
                Failure::Transient => JobState::Queued,
            };
            let delay = ms(backoff).saturating_mul(1i64 << (attempts - 1).clamp(0, 20));
            c.exec(
                &format!(
                    "UPDATE jobs SET state = $1, last_error = $2, run_after_ms = {now} + $3, lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL, updated_ms = {now} WHERE id = $4"
                ),
                &[state.as_str().into(), error.into(), delay.into(), job.into()],
            )?;
            let kind_name = match state {
                JobState::Queued => "retry",
                JobState::Dead => "dead",
                _ => "failed",
            };
            self.event(c, job, kind_name, Some(worker), Some(error))?;
            Ok(Some(state))
        })
    }

    /// Gives a job back without using an attempt (graceful shutdown).
    pub fn release(&self, job: i64, token: &str, worker: &str) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            let n = c.exec(
                &format!(
                    "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL, run_after_ms = {now}, progress = 0, updated_ms = {now} WHERE id = $1 AND lease_token = $2"
                ),
                &[job.into(), token.into()],
            )?;
            if n > 0 {
                self.event(c, job, "released", Some(worker), None)?;
            }
            Ok(n > 0)
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

    /// Claims the ingest of object `key` (at version `etag`) for `owner`.
    /// Exactly one caller wins per key and version; a claim older than
    /// `stale` whose owner never finished can be taken over.
    pub fn claim_ingest(
        &self,
        key: &str,
        etag: &str,
        owner: &str,
        stale: Duration,
    ) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            let inserted = c.exec(
                &format!("INSERT INTO ingested (key, etag, owner, claimed_ms, video_id, done) VALUES ($1, $2, $3, {now}, NULL, 0) ON CONFLICT (key, etag) DO NOTHING"),
                &[key.into(), etag.into(), owner.into()],
            )?;
            if inserted > 0 {
                return Ok(true);
            }
            let taken = c.exec(
                &format!("UPDATE ingested SET owner = $1, claimed_ms = {now} WHERE key = $2 AND etag = $3 AND done = 0 AND claimed_ms < {now} - $4"),
                &[owner.into(), key.into(), etag.into(), ms(stale).into()],
            )?;
            Ok(taken > 0)
        })
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
