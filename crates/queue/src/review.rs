//! People and their work: accounts (users with hashed passwords, sessions,
//! API tokens), resumable uploads in progress, caption and tag versions, and
//! curators' decisions. The server hashes secrets; this module only stores.

use std::time::Duration;

use serde::Serialize;

use crate::db::Row;
use crate::{Catalog, Job, JobState, QueueError, Video, job_of, ms, video_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Submitter,
    Curator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Curator => "curator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Role::Submitter, Role::Curator, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// Whether this role may do what `needed` may. Admins may do everything;
    /// curators review; submitters only submit.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upload {
    pub id: String,
    pub owner: String,
    pub length: u64,
    pub received: u64,
    /// JSON object of what the submitter said (title, description, …).
    pub metadata: String,
    pub video_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptionVersion {
    pub video_id: String,
    /// `<lang>.<kind>`, e.g. `ur.transcript`.
    pub track: String,
    pub version: i64,
    pub author: String,
    pub created_ms: i64,
    /// ok | draft | needs-human | approved | rejected
    pub status: String,
    pub reason: Option<String>,
    /// The cues as caption JSON.
    pub cues: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub decision: String,
    pub reason: Option<String>,
    pub author: String,
    pub created_ms: i64,
}

impl CaptionVersion {
    /// The newest version of each track in `all`, by track name.
    pub fn latest_of(all: &[CaptionVersion]) -> Vec<CaptionVersion> {
        let mut latest: std::collections::BTreeMap<&str, &CaptionVersion> = Default::default();
        for v in all {
            let slot = latest.entry(v.track.as_str()).or_insert(v);
            if v.version > slot.version {
                *slot = v;
            }
        }
        latest.into_values().cloned().collect()
    }
}

fn caption_of(r: &Row) -> CaptionVersion {
    CaptionVersion {
        video_id: r.text(0),
        track: r.text(1),
        version: r.i64(2),
        author: r.text(3),
        created_ms: r.i64(4),
        status: r.text(5),
        reason: r.opt_text(6),
        cues: r.text(7),
    }
}

const CAPTION_COLS: &str = "video_id, track, version, author, created_ms, status, reason, cues";

impl Catalog {
    pub fn user_count(&self) -> Result<i64, QueueError> {
        self.pool.with(|c| {
            Ok(c.query("SELECT COUNT(*) FROM users", &[])?
                .first()
                .map_or(0, |r| r.i64(0)))
        })
    }

    /// Adds a user; false if the name is taken.
    pub fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool.with(|c| {
            Ok(c.exec(
                &format!("INSERT INTO users (name, password_hash, role, created_ms) VALUES ($1, $2, $3, {now}) ON CONFLICT (name) DO NOTHING"),
                &[name.into(), password_hash.into(), role.as_str().into()],
            )? > 0)
        })
    }

    pub fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, QueueError> {
        self.pool.with(|c| {
            Ok(c.exec(
                "UPDATE users SET password_hash = $1 WHERE name = $2",
                &[password_hash.into(), name.into()],
            )? > 0)
        })
    }

    /// (password hash, role) of a user.
    pub fn user(&self, name: &str) -> Result<Option<(String, Role)>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query(
                "SELECT password_hash, role FROM users WHERE name = $1",
                &[name.into()],
            )?
            .first()
            .and_then(|r| Some((r.text(0), Role::parse(&r.text(1))?))))
        })
    }

    pub fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf: &str,
        ttl: Duration,
    ) -> Result<(), QueueError> {
        let now = self.now();
        self.pool.with(|c| {
            c.exec(&format!("DELETE FROM sessions WHERE expires_ms < {now}"), &[])?;
            c.exec(
                &format!("INSERT INTO sessions (token_hash, user_name, csrf, expires_ms) VALUES ($1, $2, $3, {now} + $4)"),
                &[token_hash.into(), user.into(), csrf.into(), ms(ttl).into()],
            )
            .map(drop)
        })
    }

    pub fn session(&self, token_hash: &str) -> Result<Option<Session>, QueueError> {
        let now = self.now();
        self.pool.with(|c| {
            Ok(c.query(
                &format!("SELECT s.user_name, u.role, s.csrf FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.token_hash = $1 AND s.expires_ms > {now}"),
                &[token_hash.into()],
            )?
            .first()
            .and_then(|r| Some(Session { user: r.text(0), role: Role::parse(&r.text(1))?, csrf: r.text(2) })))
        })
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<(), QueueError> {
        self.pool.with(|c| {
            c.exec(
                "DELETE FROM sessions WHERE token_hash = $1",
                &[token_hash.into()],
            )
            .map(drop)
        })
    }

    /// Adds a machine token; false if the name is taken.
    pub fn create_api_token(
        &self,
        token_hash: &str,
        name: &str,
        role: Role,
    ) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool.with(|c| {
            Ok(c.exec(
                &format!("INSERT INTO api_tokens (token_hash, name, role, created_ms) VALUES ($1, $2, $3, {now}) ON CONFLICT (name) DO NOTHING"),
                &[token_hash.into(), name.into(), role.as_str().into()],
            )? > 0)
        })
    }

    /// (token name, role) of an API token.
    pub fn api_token(&self, token_hash: &str) -> Result<Option<(String, Role)>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query(
                "SELECT name, role FROM api_tokens WHERE token_hash = $1",
                &[token_hash.into()],
            )?
            .first()
            .and_then(|r| Some((r.text(0), Role::parse(&r.text(1))?))))
        })
    }

    pub fn create_upload(
        &self,
        id: &str,
        owner: &str,
        length: u64,
        metadata: &str,
    ) -> Result<(), QueueError> {
        let now = self.now();
        self.pool.with(|c| {
            c.exec(
                &format!("INSERT INTO uploads (id, owner, length, received, metadata, created_ms, video_id) VALUES ($1, $2, $3, 0, $4, {now}, NULL)"),
                &[id.into(), owner.into(), (length as i64).into(), metadata.into()],
            )
            .map(drop)
        })
    }

    pub fn upload(&self, id: &str) -> Result<Option<Upload>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query(
                "SELECT id, owner, length, received, metadata, video_id FROM uploads WHERE id = $1",
                &[id.into()],
            )?
            .first()
            .map(|r| Upload {
                id: r.text(0),
                owner: r.text(1),
                length: r.i64(2).max(0) as u64,
                received: r.i64(3).max(0) as u64,
                metadata: r.text(4),
                video_id: r.opt_text(5),
            }))
        })
    }

    /// Moves an upload's offset from `from` to `to`; false if another
    /// request moved it first.
    pub fn advance_upload(&self, id: &str, from: u64, to: u64) -> Result<bool, QueueError> {
        self.pool.with(|c| {
            Ok(c.exec(
                "UPDATE uploads SET received = $1 WHERE id = $2 AND received = $3",
                &[(to as i64).into(), id.into(), (from as i64).into()],
            )? > 0)
        })
    }

    pub fn finish_upload(&self, id: &str, video_id: &str) -> Result<(), QueueError> {
        self.pool.with(|c| {
            c.exec(
                "UPDATE uploads SET video_id = $1 WHERE id = $2",
                &[video_id.into(), id.into()],
            )
            .map(drop)
        })
    }

    /// Videos whose latest job is in one of `states`, newest first.
    pub fn videos_in(&self, states: &[JobState]) -> Result<Vec<(Video, Job)>, QueueError> {
        let list = states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        self.pool.with(|c| {
            let rows = c.query(
                &format!(
                    "SELECT v.id, v.sha256, v.source_key, v.original_name, v.title, v.description, v.creator, v.language_hint, v.grade_hint, v.size_bytes, v.created_ms, v.output_prefix, \
                            j.id, j.video_id, j.state, j.attempts, j.max_attempts, j.lease_owner, j.progress, j.last_error, j.cancel_requested, j.created_ms, j.updated_ms, j.crash_count \
                     FROM videos v JOIN jobs j ON j.video_id = v.id \
                     WHERE j.id = (SELECT MAX(id) FROM jobs WHERE video_id = v.id) AND j.state IN ({list}) ORDER BY v.created_ms DESC, v.id"
                ),
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let video = video_of(&Row(r.0[..12].to_vec()));
                    let job = job_of(&Row(r.0[12..].to_vec()))?;
                    Ok((video, job))
                })
                .collect()
        })
    }

    /// The latest job of a video.
    pub fn latest_job(&self, video: &str) -> Result<Option<Job>, QueueError> {
        Ok(self.jobs(Some(video))?.pop())
    }

    /// Adds a caption version (the next number for the track) and returns it.
    pub fn add_caption_version(
        &self,
        video: &str,
        track: &str,
        author: &str,
        status: &str,
        reason: Option<&str>,
        cues: &str,
    ) -> Result<i64, QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            let next = c
                .query("SELECT COALESCE(MAX(version), 0) + 1 FROM caption_versions WHERE video_id = $1 AND track = $2", &[video.into(), track.into()])?
                .first()
                .map_or(1, |r| r.i64(0));
            c.exec(
                &format!("INSERT INTO caption_versions ({CAPTION_COLS}) VALUES ($1, $2, $3, $4, {now}, $5, $6, $7)"),
                &[video.into(), track.into(), next.into(), author.into(), status.into(), reason.into(), cues.into()],
            )?;
            Ok(next)
        })
    }

    /// Every version of every track of a video, oldest first.
    pub fn caption_versions(&self, video: &str) -> Result<Vec<CaptionVersion>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query(&format!("SELECT {CAPTION_COLS} FROM caption_versions WHERE video_id = $1 ORDER BY track, version"), &[video.into()])?
                .iter()
                .map(caption_of)
                .collect())
        })
    }

    /// The newest version of each track.
    pub fn latest_captions(&self, video: &str) -> Result<Vec<CaptionVersion>, QueueError> {
        Ok(CaptionVersion::latest_of(&self.caption_versions(video)?))
    }

    pub fn add_tag_version(
        &self,
        video: &str,
        author: &str,
        tags: &str,
    ) -> Result<i64, QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            let next = c
                .query("SELECT COALESCE(MAX(version), 0) + 1 FROM tag_versions WHERE video_id = $1", &[video.into()])?
                .first()
                .map_or(1, |r| r.i64(0));
            c.exec(
                &format!("INSERT INTO tag_versions (video_id, version, author, created_ms, tags) VALUES ($1, $2, $3, {now}, $4)"),
                &[video.into(), next.into(), author.into(), tags.into()],
            )?;
            Ok(next)
        })
    }

    /// (version, author, tags JSON) of the newest tag version.
    pub fn latest_tags(&self, video: &str) -> Result<Option<(i64, String, String)>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query("SELECT version, author, tags FROM tag_versions WHERE video_id = $1 ORDER BY version DESC LIMIT 1", &[video.into()])?
                .first()
                .map(|r| (r.i64(0), r.text(1), r.text(2))))
        })
    }

    /// A curator approves or rejects a reviewed video: its latest job moves
    /// to `approved` or `rejected` (from in-review, or between the two).
    pub fn decide(
        &self,
        video: &str,
        approve: bool,
        reason: Option<&str>,
        author: &str,
    ) -> Result<bool, QueueError> {
        let now = self.now();
        let (state, word) = if approve {
            (JobState::Approved, "approved")
        } else {
            (JobState::Rejected, "rejected")
        };
        self.pool.tx(|c| {
            let n = c.exec(
                &format!(
                    "UPDATE jobs SET state = $1, updated_ms = {now} WHERE id = (SELECT MAX(id) FROM jobs WHERE video_id = $2) AND state IN ('in-review', 'approved', 'rejected')"
                ),
                &[state.as_str().into(), video.into()],
            )?;
            if n == 0 {
                return Ok(false);
            }
            c.exec(
                &format!("INSERT INTO decisions (video_id, decision, reason, author, created_ms) VALUES ($1, $2, $3, $4, {now})"),
                &[video.into(), word.into(), reason.into(), author.into()],
            )?;
            Ok(true)
        })
    }

    pub fn decisions(&self, video: &str) -> Result<Vec<Decision>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query("SELECT decision, reason, author, created_ms FROM decisions WHERE video_id = $1 ORDER BY id", &[video.into()])?
                .iter()
                .map(|r| Decision { decision: r.text(0), reason: r.opt_text(1), author: r.text(2), created_ms: r.i64(3) })
                .collect())
        })
    }
}
