//! Migrations, run by [refinery] and recorded in its `refinery_schema_history`
//! table; the same statements on both backends apart from the auto-increment
//! key.
//!
//! Every start runs them under a database-wide lock, so workers and CLI
//! commands starting at the same instant on an empty database take turns
//! instead of racing to create the same tables (PostgreSQL's `CREATE TABLE
//! IF NOT EXISTS` is not safe against a concurrent one: the loser fails on
//! `pg_type_typname_nsp_index`). On PostgreSQL the lock is a transaction-
//! scoped advisory lock, on SQLite an exclusive transaction; all pending
//! migrations and their history rows commit together or not at all.
//!
//! refinery's drivers open a transaction per migration, which cannot run
//! inside the locked one, so refinery drives our own connection ([`Locked`])
//! through its `Migrate` trait instead (the driver traits live in
//! `refinery-core`, which is why that is the crate we depend on; the
//! `refinery` facade only adds the `embed_migrations!` macro): it decides
//! what is pending, checks applied migrations against their checksums and
//! writes the history; the statements run inside the lock.
//!
//! Catalogs created before refinery recorded versions 1–3 in
//! `schema_migrations (version, applied_ms)`. The first start of this code
//! copies those rows into refinery's history (same names and checksums as
//! a fresh catalog gets) and leaves `schema_migrations` in place, unused.

use refinery_core::traits::sync::{Migrate, Query, Transaction};
use refinery_core::{Migration, Runner};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::QueueError;
use crate::db::{Conn, Dialect};

/// refinery's history table.
pub const HISTORY: &str = "refinery_schema_history";

/// The advisory lock key migrations hold on PostgreSQL ("stemfeed" in ASCII).
const LOCK_KEY: i64 = 0x7374_656d_6665_6564;

/// (version, name, statements). Append; never edit a released migration or
/// its name: the history table keeps a checksum of both, and a catalog whose
/// applied migrations differ from these refuses to open.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "videos_jobs_events_ingest",
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
        "accounts_uploads_reviews",
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
        "claim_indexes",
        // Claims look for the oldest queued job and for expired leases;
        // partial indexes keep both lookups from scanning finished jobs.
        "CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued';
    CREATE INDEX jobs_leased ON jobs (lease_expires_ms) WHERE state IN ('probing', 'transcoding', 'captioning', 'tagging');",
    ),
    (
        4,
        "crashes_infra_ingest_leases",
        // Crash and infrastructure failures are counted per job; ingest
        // claims hold a lease that expires on the database clock (rows
        // claimed before get the fixed ten minutes claims had then); and
        // jobs handed back with a cancel pending, which no claim takes,
        // end cancelled.
        "ALTER TABLE jobs ADD COLUMN crash_count BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN infra_failures BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE ingested ADD COLUMN lease_expires_ms BIGINT;
    UPDATE ingested SET lease_expires_ms = claimed_ms + 600000 WHERE done = 0;
    UPDATE jobs SET state = 'cancelled' WHERE state = 'queued' AND cancel_requested = 1;",
    ),
    (
        5,
        "account_lifecycle",
        // Users can be disabled; sessions end on an absolute expiry
        // (`expires_ms`) or after `last_seen_ms` grows too old; API tokens
        // may expire, may belong to a person (and stop with them), and
        // record when they were last used. Sessions from before carry no
        // start or last use, so they end: everyone logs in again once.
        "ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
    DELETE FROM sessions;
    ALTER TABLE sessions ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN last_seen_ms BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX sessions_user ON sessions (user_name);
    ALTER TABLE api_tokens ADD COLUMN expires_ms BIGINT;
    ALTER TABLE api_tokens ADD COLUMN last_used_ms BIGINT;
    ALTER TABLE api_tokens ADD COLUMN owner TEXT;",
    ),
    (
        6,
        "upload_expiry",
        // Unfinished uploads expire (`expires_ms`, moved on with each
        // PATCH) and are swept; open uploads are counted per submitter.
        // Uploads open before this get a day from when they were made.
        "ALTER TABLE uploads ADD COLUMN expires_ms BIGINT NOT NULL DEFAULT 0;
    UPDATE uploads SET expires_ms = created_ms + 86400000 WHERE video_id IS NULL;
    CREATE INDEX uploads_open_expiry ON uploads (expires_ms) WHERE video_id IS NULL;
    CREATE INDEX uploads_open_owner ON uploads (owner) WHERE video_id IS NULL;",
    ),
    (
        7,
        "job_phases",
        // A job's stages can be claimed by different workers: `phase` is
        // the part a claim takes next (`transcode`, then `captions` once a
        // transcode-only worker hands the job on), `handoff` the run prefix
        // in the object store holding the first part's outputs.
        "ALTER TABLE jobs ADD COLUMN phase TEXT NOT NULL DEFAULT 'transcode';
    ALTER TABLE jobs ADD COLUMN handoff TEXT;
    CREATE INDEX jobs_queued_phase ON jobs (phase, id) WHERE state = 'queued';",
    ),
    (
        8,
        "glossary",
        // Curators' preferred spellings of terms per caption language, and
        // the spellings (Whisper's, or other writers') to replace with them.
        "CREATE TABLE glossary (
        id {SERIAL},
        language TEXT NOT NULL,
        term TEXT NOT NULL,
        variants TEXT NOT NULL,
        author TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        UNIQUE (language, term)
    );",
    ),
    (
        9,
        "curator_accuracy",
        // What curators changed in Whisper's transcripts, pooled per
        // language and model (kept by the server from approved tracks; read
        // by workers to judge new tracks).
        "CREATE TABLE curator_accuracy (
        language TEXT NOT NULL,
        model TEXT NOT NULL,
        tracks BIGINT NOT NULL,
        words BIGINT NOT NULL,
        words_changed BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (language, model)
    );",
    ),
    (
        10,
        "video_priority",
        // Curators' priority for a video (1 high, 0 normal, -1 low): what a
        // size-budgeted export (an offline bundle) takes first.
        "ALTER TABLE videos ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;",
    ),
];

/// Our migrations for `dialect`, as refinery sees them.
fn migrations(dialect: Dialect) -> Result<Vec<Migration>, QueueError> {
    MIGRATIONS
        .iter()
        .map(|&(version, name, sql)| {
            Migration::unapplied(
                &format!("V{version}__{name}"),
                &sql.replace("{SERIAL}", dialect.serial_key()),
            )
            .map_err(|e| QueueError::Migration(format!("migration {version} ({name}): {e}")))
        })
        .collect()
}

/// Brings the schema up to date on `c`, under the lock.
pub fn migrate(c: &mut dyn Conn, dialect: Dialect) -> Result<(), QueueError> {
    match dialect {
        Dialect::Postgres => {
            // No statement timeout while waiting for another migrator, nor
            // for the migrations themselves.
            c.batch("BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")?;
            if let Err(e) = c.exec("SELECT pg_advisory_xact_lock($1)", &[LOCK_KEY.into()]) {
                let _ = c.batch("ROLLBACK");
                return Err(e);
            }
        }
        Dialect::Sqlite => c.batch("BEGIN EXCLUSIVE")?,
    }
    let result = migrate_locked(c, dialect);
    match result {
        Ok(()) => c.batch("COMMIT"),
        Err(e) => {
            let _ = c.batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_locked(c: &mut dyn Conn, dialect: Dialect) -> Result<(), QueueError> {
    let all = migrations(dialect)?;
    let mut locked = Locked(c);
    carry_over_legacy(&mut locked, dialect, &all)?;
    let mut runner = Runner::new(&all)
        .set_grouped(true)
        .set_abort_divergent(true)
        .set_abort_missing(true);
    runner.set_migration_table_name(HISTORY);
    runner.run(&mut locked).map(drop).map_err(from_refinery)
}

/// The database's own error when refinery failed on one of our statements
/// (so a lost connection stays transient), else refinery's reason.
fn from_refinery(e: refinery_core::Error) -> QueueError {
    if let refinery_core::error::Kind::Connection(_, source) = e.kind()
        && let Some(q) = source.downcast_ref::<QueueError>()
    {
        return q.clone();
    }
    QueueError::Migration(e.to_string())
}

/// Copies the pre-refinery `schema_migrations` rows into refinery's history
/// the first time this code meets such a catalog.
fn carry_over_legacy(
    locked: &mut Locked<'_>,
    dialect: Dialect,
    all: &[Migration],
) -> Result<(), QueueError> {
    let legacy_exists = match dialect {
        Dialect::Sqlite => locked.0.query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            &[],
        )?,
        Dialect::Postgres => locked.0.query(
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations'",
            &[],
        )?,
    };
    if legacy_exists.is_empty() {
        return Ok(());
    }
    locked
        .0
        .batch(&<Locked<'_> as Migrate>::assert_migrations_table_query(
            HISTORY,
        ))?;
    let recorded = locked
        .0
        .query(&format!("SELECT COUNT(*) FROM {HISTORY}"), &[])?
        .first()
        .map_or(0, |r| r.i64(0));
    if recorded > 0 {
        return Ok(());
    }
    let legacy = locked.0.query(
        "SELECT version, applied_ms FROM schema_migrations ORDER BY version",
        &[],
    )?;
    for row in legacy {
        let (version, applied_ms) = (row.i64(0), row.i64(1));
        let m = all
            .iter()
            .find(|m| i64::from(m.version()) == version)
            .ok_or_else(|| {
                QueueError::Migration(format!(
                    "schema_migrations records version {version}, which this build does not know: the catalog is newer than this program"
                ))
            })?;
        let applied_on =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(applied_ms) * 1_000_000)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .ok_or_else(|| {
                    QueueError::Migration(format!(
                        "schema_migrations version {version}: applied_ms {applied_ms} is not a time"
                    ))
                })?;
        // Every value is ours (a number, a fixed name, a formatted time, a
        // checksum), as in refinery's own history inserts.
        locked.0.batch(&format!(
            "INSERT INTO {HISTORY} (version, name, applied_on, checksum) VALUES ({}, '{}', '{applied_on}', '{}')",
            m.version(),
            m.name(),
            m.checksum()
        ))?;
    }
    Ok(())
}

/// A connection inside the migration lock, for refinery to drive.
struct Locked<'a>(&'a mut dyn Conn);

impl Transaction for Locked<'_> {
    type Error = QueueError;

    /// Runs the statements in the transaction that holds the lock (refinery
    /// asks for a transaction of their own; the outer one is it).
    fn execute<'a, T: Iterator<Item = &'a str>>(
        &mut self,
        queries: T,
    ) -> Result<usize, QueueError> {
        let mut n = 0;
        for q in queries {
            self.0.batch(q)?;
            n += 1;
        }
        Ok(n)
    }
}

impl Query<Vec<Migration>> for Locked<'_> {
    fn query(&mut self, sql: &str) -> Result<Vec<Migration>, QueueError> {
        self.0
            .query(sql, &[])?
            .iter()
            .map(|r| {
                let version = r.i64(0);
                let bad = |what: &str| {
                    QueueError::Migration(format!("{HISTORY} row for version {version}: {what}"))
                };
                let applied_on = OffsetDateTime::parse(&r.text(2), &Rfc3339)
                    .map_err(|e| bad(&format!("applied_on {:?}: {e}", r.text(2))))?;
                let checksum = r
                    .text(3)
                    .parse::<u64>()
                    .map_err(|e| bad(&format!("checksum {:?}: {e}", r.text(3))))?;
                let version = i32::try_from(version).map_err(|_| bad("version out of range"))?;
                Ok(Migration::applied(version, r.text(1), applied_on, checksum))
            })
            .collect()
    }
}

impl Migrate for Locked<'_> {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{HISTORY, MIGRATIONS};
    use crate::Catalog;
    use crate::db::{Conn, Dialect, SqliteConn};

    /// (version, name, checksum) rows of the history table.
    fn history(path: &std::path::Path) -> Vec<(i64, String, String)> {
        let c = rusqlite::Connection::open(path).unwrap();
        let mut stmt = c
            .prepare(&format!(
                "SELECT version, name, checksum FROM {HISTORY} ORDER BY version"
            ))
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A catalog as the runner before refinery left it: versions 1–3 in
    /// `schema_migrations`, some data.
    fn legacy_catalog(path: &std::path::Path, versions: &[i64]) {
        let mut c = SqliteConn::open(path, Duration::from_secs(5)).unwrap();
        c.batch("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)")
            .unwrap();
        for &(_, _, sql) in &MIGRATIONS[..3] {
            c.batch(&sql.replace("{SERIAL}", Dialect::Sqlite.serial_key()))
                .unwrap();
        }
        for &v in versions {
            c.exec(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, 1700000000000)",
                &[v.into()],
            )
            .unwrap();
        }
        c.batch(&format!(
            "INSERT INTO videos (id, sha256, source_key, original_name, size_bytes, created_ms) VALUES ('v1', '{}', 'uploads/v1/source', 'a.mp4', 1, 0);
             INSERT INTO jobs (video_id, state, attempts, max_attempts, run_after_ms, progress, cancel_requested, created_ms, updated_ms) VALUES ('v1', 'queued', 1, 3, 0, 0, 1, 0, 0);
             INSERT INTO jobs (video_id, state, attempts, max_attempts, run_after_ms, progress, cancel_requested, created_ms, updated_ms) VALUES ('v1', 'queued', 0, 3, 0, 0, 0, 0, 0);",
            "a".repeat(64)
        ))
        .unwrap();
    }

    #[test]
    fn legacy_schema_migrations_are_carried_into_refinery_history() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        let old = dir.path().join("old.db");
        Catalog::open(fresh.to_str().unwrap()).unwrap();
        legacy_catalog(&old, &[1, 2, 3]);

        let catalog = Catalog::open(old.to_str().unwrap()).unwrap();
        // Same history as a catalog created by this code: names and checksums.
        assert_eq!(history(&old), history(&fresh));
        assert_eq!(history(&old).len(), MIGRATIONS.len());
        // The data is kept, migration 4 ran: the job handed back with a
        // cancel pending (which no claim would take) ended cancelled.
        let jobs = catalog.jobs(None).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].state, crate::JobState::Cancelled);
        assert_eq!(jobs[1].state, crate::JobState::Queued);
        assert_eq!(jobs[1].crashes, 0);
        drop(catalog);
        // Reopening changes nothing.
        Catalog::open(old.to_str().unwrap()).unwrap();
        assert_eq!(history(&old), history(&fresh));
    }

    #[test]
    fn partly_migrated_legacy_catalog_gets_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        legacy_catalog(&old, &[1, 2, 3]);
        // Version 3 not yet applied by the old runner: drop its indexes.
        {
            let c = rusqlite::Connection::open(&old).unwrap();
            c.execute_batch("DROP INDEX jobs_queued; DROP INDEX jobs_leased; DELETE FROM schema_migrations WHERE version = 3")
                .unwrap();
        }
        Catalog::open(old.to_str().unwrap()).unwrap();
        let versions: Vec<i64> = history(&old).into_iter().map(|h| h.0).collect();
        let all: Vec<i64> = MIGRATIONS.iter().map(|m| i64::from(m.0)).collect();
        assert_eq!(versions, all);
    }

    #[test]
    fn a_catalog_from_a_newer_program_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        legacy_catalog(&old, &[1, 2, 3, 99]);
        let e = Catalog::open(old.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("schema_migrations records version 99") && e.contains("newer"),
            "{e}"
        );
    }

    #[test]
    fn an_edited_migration_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        Catalog::open(path.to_str().unwrap()).unwrap();
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute(
                &format!("UPDATE {HISTORY} SET checksum = '12345' WHERE version = 2"),
                [],
            )
            .unwrap();
        }
        let e = Catalog::open(path.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, crate::QueueError::Migration(_)), "{e:?}");
        assert!(e.to_string().contains("different"), "{e}");
        assert!(!e.is_transient());
    }

    #[test]
    fn concurrent_first_opens_of_one_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.db");
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Catalog::open(path.to_str().unwrap()).and_then(|c| c.jobs(None))
                    })
                })
                .collect();
            for h in handles {
                if let Err(e) = h.join().unwrap() {
                    panic!("a concurrent first open failed: {e}");
                }
            }
        });
        assert_eq!(history(&path).len(), MIGRATIONS.len());
    }
}
