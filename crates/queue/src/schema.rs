//! Migrations, applied in order and recorded in `schema_migrations`; the same
//! statements on both backends apart from the auto-increment key.

use crate::QueueError;
use crate::db::{Conn, Dialect};

/// (version, statements). Append; never edit a released migration.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE videos (
        id TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        source_key TEXT NOT NULL,
        original_name TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        creator TEXT NOT NULL DEFAULT '',
        language_hint TEXT,
        grade_hint BIGINT,
        size_bytes BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        output_prefix TEXT
    );
    CREATE TABLE jobs (
        id {SERIAL},
        video_id TEXT NOT NULL REFERENCES videos (id),
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        max_attempts BIGINT NOT NULL,
        run_after_ms BIGINT NOT NULL,
        lease_owner TEXT,
        lease_token TEXT,
        lease_expires_ms BIGINT,
        progress DOUBLE PRECISION NOT NULL,
        last_error TEXT,
        cancel_requested BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        completed_ms BIGINT
    );
    CREATE INDEX jobs_runnable ON jobs (state, run_after_ms);
    CREATE INDEX jobs_video ON jobs (video_id);
    CREATE TABLE job_events (
        id {SERIAL},
        job_id BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        kind TEXT NOT NULL,
        worker TEXT,
        detail TEXT
    );
    CREATE INDEX job_events_job ON job_events (job_id);
    CREATE TABLE ingested (
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        owner TEXT NOT NULL,
        claimed_ms BIGINT NOT NULL,
        video_id TEXT,
        done BIGINT NOT NULL,
        PRIMARY KEY (key, etag)
    );",
    ),
    (
        2,
        "CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users (name),
        csrf TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
    );
    CREATE TABLE api_tokens (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        length BIGINT NOT NULL,
        received BIGINT NOT NULL,
        metadata TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        video_id TEXT
    );
    CREATE TABLE caption_versions (
        id {SERIAL},
        video_id TEXT NOT NULL REFERENCES videos (id),
        track TEXT NOT NULL,
        version BIGINT NOT NULL,
        author TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        cues TEXT NOT NULL,
        UNIQUE (video_id, track, version)
    );
    CREATE TABLE tag_versions (
        id {SERIAL},
        video_id TEXT NOT NULL REFERENCES videos (id),
        version BIGINT NOT NULL,
        author TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        tags TEXT NOT NULL,
        UNIQUE (video_id, version)
    );
    CREATE TABLE decisions (
        id {SERIAL},
        video_id TEXT NOT NULL REFERENCES videos (id),
        decision TEXT NOT NULL,
        reason TEXT,
        author TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );",
    ),
    (
        3,
        // Claims look for the oldest queued job and for expired leases;
        // partial indexes keep both lookups from scanning finished jobs.
        "CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued';
    CREATE INDEX jobs_leased ON jobs (lease_expires_ms) WHERE state IN ('probing', 'transcoding', 'captioning', 'tagging');",
    ),
];

pub fn migrate(c: &mut dyn Conn, dialect: Dialect) -> Result<(), QueueError> {
    c.batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)")?;
    for &(version, sql) in MIGRATIONS {
        c.begin()?;
        let result = (|| {
            // Another process may have applied it while we waited for the lock.
            if !c
                .query(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    &[version.into()],
                )?
                .is_empty()
            {
                return Ok(());
            }
            if dialect == Dialect::Postgres {
                // Concurrent first starts on Postgres: one migrator at a time.
                c.batch("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")?;
                if !c
                    .query(
                        "SELECT version FROM schema_migrations WHERE version = $1",
                        &[version.into()],
                    )?
                    .is_empty()
                {
                    return Ok(());
                }
            }
            c.batch(&sql.replace("{SERIAL}", dialect.serial_key()))?;
            c.exec(
                &format!(
                    "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, {})",
                    dialect.now_ms()
                ),
                &[version.into()],
            )
            .map(drop)
        })();
        match result {
            Ok(()) => c.batch("COMMIT")?,
            Err(e) => {
                let _ = c.batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(())
}
