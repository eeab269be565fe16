//! People and their work: accounts (users with hashed passwords, sessions,
//! API tokens), resumable uploads in progress, caption and tag versions, and
//! curators' decisions. The server hashes secrets; this module only stores.

use std::time::Duration;

use serde::Serialize;

use crate::db::{Conn, Dialect, Row};
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

/// A person's account as login sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
}

/// An API token as `stemfeed tokens list` shows it (the secret is only
/// ever stored as a hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    /// The person it belongs to, if any.
    pub owner: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
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
    /// When an unfinished upload may be swept (ms since the epoch, the
    /// database's clock).
    pub expires_ms: i64,
}

/// Why [`Catalog::create_upload`] refused: what the submitter already has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenUploads {
    pub count: u64,
    pub bytes: u64,
}

/// Per-submitter limits on unfinished uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQuota {
    pub max_open: u64,
    pub max_bytes: u64,
}

/// A recognised track as a finished run delivers it: it becomes version 1
/// (author `whisper`) of a track that has none.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstCaption {
    /// `<language>.<kind>`, e.g. `ur.transcript`.
    pub track: String,
    /// The run's verdict on the track (`ok`, `needs-review`, ...).
    pub status: String,
    pub reason: Option<String>,
    /// The cues as JSON.
    pub cues: String,
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

/// A curator's preferred spelling of a term in one caption language, and
/// the spellings to replace with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlossaryEntry {
    pub language: String,
    pub term: String,
    pub variants: Vec<String>,
    pub author: String,
    pub created_ms: i64,
}

/// Curators' changes to Whisper's transcripts of one language from one
/// model, over every approved track.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CuratorAccuracy {
    pub language: String,
    pub model: String,
    pub tracks: i64,
    pub words: i64,
    pub words_changed: i64,
    pub updated_ms: i64,
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

const UPLOAD_COLS: &str = "id, owner, length, received, metadata, video_id, expires_ms";

fn upload_of(r: &Row) -> Upload {
    Upload {
        id: r.text(0),
        owner: r.text(1),
        length: r.i64(2).max(0) as u64,
        received: r.i64(3).max(0) as u64,
        metadata: r.text(4),
        video_id: r.opt_text(5),
        expires_ms: r.i64(6),
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

    /// Sets a new password and ends every session of the user (whoever
    /// held the old password may hold one); false if there is no such user.
    pub fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, QueueError> {
        self.pool.tx(|c| {
            let n = c.exec(
                "UPDATE users SET password_hash = $1 WHERE name = $2",
                &[password_hash.into(), name.into()],
            )?;
            c.exec("DELETE FROM sessions WHERE user_name = $1", &[name.into()])?;
            Ok(n > 0)
        })
    }

    /// Disables (or enables again) a user. A disabled user cannot log in;
    /// their sessions end now and the API tokens they own stop working.
    /// False if there is no such user.
    pub fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool, QueueError> {
        self.pool.tx(|c| {
            let n = c.exec(
                "UPDATE users SET disabled = $1 WHERE name = $2",
                &[i64::from(disabled).into(), name.into()],
            )?;
            if disabled {
                c.exec("DELETE FROM sessions WHERE user_name = $1", &[name.into()])?;
            }
            Ok(n > 0)
        })
    }

    /// A user by name, disabled or not.
    pub fn user(&self, name: &str) -> Result<Option<User>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query(
                "SELECT password_hash, role, disabled FROM users WHERE name = $1",
                &[name.into()],
            )?
            .first()
            .and_then(|r| {
                Some(User {
                    password_hash: r.text(0),
                    role: Role::parse(&r.text(1))?,
                    disabled: r.i64(2) != 0,
                })
            }))
        })
    }

    /// Starts a session that ends `absolute` from now at the latest, and
    /// ends every other session of the user: one login, one live session.
    pub fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf: &str,
        absolute: Duration,
    ) -> Result<(), QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            c.exec(&format!("DELETE FROM sessions WHERE expires_ms < {now}"), &[])?;
            c.exec("DELETE FROM sessions WHERE user_name = $1", &[user.into()])?;
            c.exec(
                &format!("INSERT INTO sessions (token_hash, user_name, csrf, expires_ms, created_ms, last_seen_ms) VALUES ($1, $2, $3, {now} + $4, {now}, {now})"),
                &[token_hash.into(), user.into(), csrf.into(), ms(absolute).into()],
            )
            .map(drop)
        })
    }

    /// The live session behind `token_hash`: before its absolute expiry,
    /// used within `idle`, its user not disabled. Using it renews the idle
    /// clock; the write happens at most once a minute (or a quarter of
    /// `idle`) per session, so a busy page does not write on every request.
    pub fn session(&self, token_hash: &str, idle: Duration) -> Result<Option<Session>, QueueError> {
        let now = self.now();
        let idle = ms(idle);
        let renew = (idle / 4).min(60_000);
        self.pool.with(|c| {
            let found = c.query(
                &format!("SELECT s.user_name, u.role, s.csrf FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.token_hash = $1 AND s.expires_ms > {now} AND s.last_seen_ms > {now} - $2 AND u.disabled = 0"),
                &[token_hash.into(), idle.into()],
            )?
            .first()
            .and_then(|r| Some(Session { user: r.text(0), role: Role::parse(&r.text(1))?, csrf: r.text(2) }));
            if found.is_some() {
                c.exec(
                    &format!("UPDATE sessions SET last_seen_ms = {now} WHERE token_hash = $1 AND last_seen_ms < {now} - $2"),
                    &[token_hash.into(), renew.into()],
                )?;
            }
            Ok(found)
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

    /// Adds a machine token; false if the name is taken. A token may expire
    /// (`ttl`) and may belong to a person (`owner`, who must exist): it
    /// stops working while they are disabled. Either way the token is its
    /// own principal, named apart from every user.
    pub fn create_api_token(
        &self,
        token_hash: &str,
        name: &str,
        role: Role,
        owner: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<bool, QueueError> {
        let now = self.now();
        let expires = match ttl {
            Some(ttl) => format!("{now} + {}", ms(ttl)),
            None => "NULL".to_owned(),
        };
        self.pool.with(|c| {
            Ok(c.exec(
                &format!("INSERT INTO api_tokens (token_hash, name, role, created_ms, owner, expires_ms) VALUES ($1, $2, $3, {now}, $4, {expires}) ON CONFLICT (name) DO NOTHING"),
                &[token_hash.into(), name.into(), role.as_str().into(), owner.into()],
            )? > 0)
        })
    }

    /// (token name, role) of a working API token: not expired, its owner
    /// (if any) not disabled. Records the use, at most once a minute per
    /// token, so a busy client does not write on every request.
    pub fn api_token(&self, token_hash: &str) -> Result<Option<(String, Role)>, QueueError> {
        let now = self.now();
        self.pool.with(|c| {
            let found = c
                .query(
                    &format!("SELECT t.name, t.role FROM api_tokens t LEFT JOIN users u ON u.name = t.owner WHERE t.token_hash = $1 AND (t.expires_ms IS NULL OR t.expires_ms > {now}) AND (t.owner IS NULL OR u.disabled = 0)"),
                    &[token_hash.into()],
                )?
                .first()
                .and_then(|r| Some((r.text(0), Role::parse(&r.text(1))?)));
            if found.is_some() {
                c.exec(
                    &format!("UPDATE api_tokens SET last_used_ms = {now} WHERE token_hash = $1 AND (last_used_ms IS NULL OR last_used_ms < {now} - 60000)"),
                    &[token_hash.into()],
                )?;
            }
            Ok(found)
        })
    }

    /// Every API token (never the secret), by name.
    pub fn api_tokens(&self) -> Result<Vec<ApiToken>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query(
                "SELECT name, role, owner, created_ms, expires_ms, last_used_ms FROM api_tokens ORDER BY name",
                &[],
            )?
            .iter()
            .filter_map(|r| {
                Some(ApiToken {
                    name: r.text(0),
                    role: Role::parse(&r.text(1))?,
                    owner: r.opt_text(2),
                    created_ms: r.i64(3),
                    expires_ms: r.opt_i64(4),
                    last_used_ms: r.opt_i64(5),
                })
            })
            .collect())
        })
    }

    /// Deletes an API token; false if there is none by that name.
    pub fn revoke_api_token(&self, name: &str) -> Result<bool, QueueError> {
        self.pool
            .with(|c| Ok(c.exec("DELETE FROM api_tokens WHERE name = $1", &[name.into()])? > 0))
    }

    /// Adds an upload that expires `ttl` from now, unless its owner would
    /// then have more unfinished uploads or declared bytes than `quota`
    /// allows: then nothing is added and the owner's open uploads are
    /// returned. One statement, so concurrent creates on SQLite cannot
    /// both slip under the limit.
    pub fn create_upload(
        &self,
        id: &str,
        owner: &str,
        length: u64,
        metadata: &str,
        ttl: Duration,
        quota: UploadQuota,
    ) -> Result<Result<Upload, OpenUploads>, QueueError> {
        let now = self.now();
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.pool.with(|c| {
            let added = c.exec(
                &format!(
                    "INSERT INTO uploads (id, owner, length, received, metadata, created_ms, video_id, expires_ms) \
                     SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT), 0, CAST($4 AS TEXT), {now}, NULL, {now} + CAST($5 AS BIGINT) \
                     WHERE (SELECT COUNT(*) FROM uploads WHERE owner = $2 AND video_id IS NULL) < CAST($6 AS BIGINT) \
                       AND (SELECT CAST(COALESCE(SUM(length), 0) AS BIGINT) FROM uploads WHERE owner = $2 AND video_id IS NULL) + CAST($3 AS BIGINT) <= CAST($7 AS BIGINT)"
                ),
                &[
                    id.into(),
                    owner.into(),
                    clamp(length).into(),
                    metadata.into(),
                    ms(ttl).into(),
                    clamp(quota.max_open).into(),
                    clamp(quota.max_bytes).into(),
                ],
            )?;
            if added > 0 {
                let row = c.query(
                    &format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = $1"),
                    &[id.into()],
                )?;
                if let Some(r) = row.first() {
                    return Ok(Ok(upload_of(r)));
                }
            }
            let open = c.query(
                "SELECT COUNT(*), CAST(COALESCE(SUM(length), 0) AS BIGINT) FROM uploads WHERE owner = $1 AND video_id IS NULL",
                &[owner.into()],
            )?;
            Ok(Err(open.first().map_or(OpenUploads { count: 0, bytes: 0 }, |r| OpenUploads {
                count: r.i64(0).max(0) as u64,
                bytes: r.i64(1).max(0) as u64,
            })))
        })
    }

    pub fn upload(&self, id: &str) -> Result<Option<Upload>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query(
                &format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = $1"),
                &[id.into()],
            )?
            .first()
            .map(upload_of))
        })
    }

    /// Moves an unfinished upload's offset from `from` to `to` and its
    /// expiry to `ttl` from now; the new expiry, or None if another request
    /// moved the offset first (or the upload is gone).
    pub fn advance_upload(
        &self,
        id: &str,
        from: u64,
        to: u64,
        ttl: Duration,
    ) -> Result<Option<i64>, QueueError> {
        let now = self.now();
        self.pool.with(|c| {
            Ok(c.query(
                &format!("UPDATE uploads SET received = $1, expires_ms = {now} + $4 WHERE id = $2 AND received = $3 AND video_id IS NULL RETURNING expires_ms"),
                &[(to as i64).into(), id.into(), (from as i64).into(), ms(ttl).into()],
            )?
            .first()
            .map(|r| r.i64(0)))
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

    /// Forgets an unfinished upload (its bytes were refused); false if
    /// there was none.
    pub fn delete_upload(&self, id: &str) -> Result<bool, QueueError> {
        self.pool.with(|c| {
            Ok(c.exec(
                "DELETE FROM uploads WHERE id = $1 AND video_id IS NULL",
                &[id.into()],
            )? > 0)
        })
    }

    /// Ids of unfinished uploads past their expiry, oldest first.
    pub fn expired_uploads(&self, limit: u32) -> Result<Vec<String>, QueueError> {
        let now = self.now();
        self.pool.with(|c| {
            Ok(c.query(
                &format!("SELECT id FROM uploads WHERE video_id IS NULL AND expires_ms < {now} ORDER BY expires_ms LIMIT {limit}"),
                &[],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect())
        })
    }

    /// Deletes an unfinished upload if it is still past its expiry (a
    /// PATCH may have moved it on since it was listed); whether it did.
    pub fn delete_expired_upload(&self, id: &str) -> Result<bool, QueueError> {
        let now = self.now();
        self.pool.with(|c| {
            Ok(c.exec(
                &format!(
                    "DELETE FROM uploads WHERE id = $1 AND video_id IS NULL AND expires_ms < {now}"
                ),
                &[id.into()],
            )? > 0)
        })
    }

    /// Videos whose latest job is in one of `states`, newest first.
    pub fn videos_in(&self, states: &[JobState]) -> Result<Vec<(Video, Job)>, QueueError> {
        let list = states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let prefixed = |cols: &str, p: &str| {
            cols.split(", ")
                .map(|c| format!("{p}.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (video_cols, job_cols) = (
            prefixed(crate::VIDEO_COLS, "v"),
            prefixed(crate::JOB_COLS, "j"),
        );
        self.pool.with(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {video_cols}, {job_cols} \
                     FROM videos v JOIN jobs j ON j.video_id = v.id \
                     WHERE j.id = (SELECT MAX(id) FROM jobs WHERE video_id = v.id) AND j.state IN ({list}) ORDER BY v.created_ms DESC, v.id"
                ),
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let video = video_of(&Row(r.0[..crate::VIDEO_WIDTH].to_vec()));
                    let job = job_of(&Row(r.0[crate::VIDEO_WIDTH..].to_vec()))?;
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
            self.lock_video(c, video)?;
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

    /// Serialises version numbering per video: two curators saving at once
    /// both get a version (the later one newer), never a duplicate-key
    /// error. SQLite transactions already take the write lock at BEGIN.
    pub(crate) fn lock_video(&self, c: &mut dyn Conn, video: &str) -> Result<(), QueueError> {
        if self.pool.dialect == Dialect::Postgres {
            c.query(
                "SELECT id FROM videos WHERE id = $1 FOR UPDATE",
                &[video.into()],
            )?;
        }
        Ok(())
    }

    /// Stores the recognised tracks of a finished run as version 1 of each
    /// track that has no version yet (tracks curators already edited keep
    /// their history); returns how many were added. Idempotent, and safe to
    /// run from several places at once.
    pub fn import_first_captions(
        &self,
        video: &str,
        tracks: &[FirstCaption],
    ) -> Result<usize, QueueError> {
        self.pool.tx(|c| {
            self.lock_video(c, video)?;
            self.insert_first_captions(c, video, tracks)
        })
    }

    pub(crate) fn insert_first_captions(
        &self,
        c: &mut dyn Conn,
        video: &str,
        tracks: &[FirstCaption],
    ) -> Result<usize, QueueError> {
        let now = self.now();
        let mut added = 0u64;
        for t in tracks {
            added += c.exec(
                &format!(
                    "INSERT INTO caption_versions ({CAPTION_COLS}) \
                     SELECT $1, $2, 1, 'whisper', {now}, $3, $4, $5 \
                     WHERE NOT EXISTS (SELECT 1 FROM caption_versions WHERE video_id = $1 AND track = $2)"
                ),
                &[video.into(), t.track.as_str().into(), t.status.as_str().into(), t.reason.as_deref().into(), t.cues.as_str().into()],
            )?;
        }
        Ok(usize::try_from(added).unwrap_or(usize::MAX))
    }

    /// Videos with outputs but no caption versions at all: runs finished
    /// by workers older than [`Catalog::import_first_captions`].
    pub fn videos_without_captions(&self) -> Result<Vec<(String, String)>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query(
                "SELECT id, output_prefix FROM videos v WHERE output_prefix IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM caption_versions cv WHERE cv.video_id = v.id) ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| (r.text(0), r.text(1)))
            .collect())
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
            self.lock_video(c, video)?;
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

    /// The glossary of one language, by term.
    pub fn glossary(&self, language: &str) -> Result<Vec<GlossaryEntry>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query("SELECT language, term, variants, author, created_ms FROM glossary WHERE language = $1 ORDER BY term", &[language.into()])?
                .iter()
                .map(|r| GlossaryEntry {
                    language: r.text(0),
                    term: r.text(1),
                    // Stored one per line: a variant may hold spaces or commas.
                    variants: r.text(2).lines().map(str::to_owned).collect(),
                    author: r.text(3),
                    created_ms: r.i64(4),
                })
                .collect())
        })
    }

    /// Sets a video's curator priority (clamped to -1..=1, see
    /// [`crate::Video::priority`]); whether the video exists.
    pub fn set_priority(&self, video: &str, priority: i8) -> Result<bool, QueueError> {
        let priority = i64::from(priority.clamp(-1, 1));
        self.pool.with(|c| {
            Ok(c.exec(
                "UPDATE videos SET priority = $1 WHERE id = $2",
                &[priority.into(), video.into()],
            )? > 0)
        })
    }

    /// Adds `term` to the glossary of `language`, or replaces its variants.
    pub fn set_glossary_term(
        &self,
        language: &str,
        term: &str,
        variants: &[String],
        author: &str,
    ) -> Result<(), QueueError> {
        let now = self.now();
        let variants = variants.join("\n");
        self.pool.with(|c| {
            c.exec(
                &format!("INSERT INTO glossary (language, term, variants, author, created_ms) VALUES ($1, $2, $3, $4, {now}) ON CONFLICT (language, term) DO UPDATE SET variants = excluded.variants, author = excluded.author, created_ms = excluded.created_ms"),
                &[language.into(), term.into(), variants.as_str().into(), author.into()],
            )?;
            Ok(())
        })
    }

    /// Removes `term` from the glossary of `language`; whether it was there.
    pub fn remove_glossary_term(&self, language: &str, term: &str) -> Result<bool, QueueError> {
        self.pool.with(|c| {
            Ok(c.exec(
                "DELETE FROM glossary WHERE language = $1 AND term = $2",
                &[language.into(), term.into()],
            )? > 0)
        })
    }

    /// Replaces the curators' accuracy table with `rows` (one per language
    /// and model).
    pub fn set_curator_accuracy(&self, rows: &[CuratorAccuracy]) -> Result<(), QueueError> {
        let now = self.now();
        self.pool.tx(|c| {
            c.exec("DELETE FROM curator_accuracy", &[])?;
            for r in rows {
                c.exec(
                    &format!("INSERT INTO curator_accuracy (language, model, tracks, words, words_changed, updated_ms) VALUES ($1, $2, $3, $4, $5, {now})"),
                    &[r.language.as_str().into(), r.model.as_str().into(), r.tracks.into(), r.words.into(), r.words_changed.into()],
                )?;
            }
            Ok(())
        })
    }

    pub fn curator_accuracy(&self) -> Result<Vec<CuratorAccuracy>, QueueError> {
        self.pool.with(|c| {
            Ok(c.query("SELECT language, model, tracks, words, words_changed, updated_ms FROM curator_accuracy ORDER BY language, model", &[])?
                .iter()
                .map(|r| CuratorAccuracy {
                    language: r.text(0),
                    model: r.text(1),
                    tracks: r.i64(2),
                    words: r.i64(3),
                    words_changed: r.i64(4),
                    updated_ms: r.i64(5),
                })
                .collect())
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
