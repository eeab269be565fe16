//! The catalog against a real PostgreSQL server on loopback, for what only
//! a server can do: many processes starting on an empty database at once, a
//! server restarted under a running worker, a pooled connection that must
//! survive an SQL error, a catalog created before refinery, and TLS.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::services::Postgres;
use stemfeed_queue::{
    Catalog, CatalogOptions, DbErrorKind, Heartbeat, JobState, NewVideo, QueueError, Submitted,
};

const LEASE: Duration = Duration::from_secs(60);

fn upload(n: u32) -> NewVideo {
    NewVideo {
        sha256: format!("{:016x}", u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15)).repeat(4),
        size_bytes: 1000 + u64::from(n),
        original_name: format!("clip-{n}.mp4"),
        title: format!("clip {n}"),
        ..NewVideo::default()
    }
}

fn created(s: Submitted) -> i64 {
    match s {
        Submitted::Created { job_id, .. } => job_id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

/// A superuser connection to one database of the test server.
fn admin(pg: &Postgres, db: &str) -> postgres::Client {
    postgres::Client::connect(
        &format!("postgres://stemfeed@127.0.0.1:{}/{db}", pg.port),
        postgres::NoTls,
    )
    .expect("connecting to the test PostgreSQL as its superuser")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL tool as the server's owner (`postgres` when we are root).
fn as_server_owner(tool: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    }
}

/// Stops and starts the test server the way an operator would.
struct PgCtl {
    pg_ctl: PathBuf,
    data: PathBuf,
    port: u16,
}

impl PgCtl {
    fn of(pg: &Postgres) -> Self {
        let data: String = admin(pg, "postgres")
            .query_one("SHOW data_directory", &[])
            .unwrap()
            .get(0);
        let out = Command::new("pg_config").arg("--bindir").output();
        let bindir = out
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|d| d.join("pg_ctl").exists())
            .or_else(|| {
                let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path().join("bin"))
                    .filter(|p| p.join("pg_ctl").exists())
                    .collect();
                found.sort();
                found.pop()
            })
            .expect("pg_ctl not found: run scripts/setup.sh (Debian package postgresql)");
        Self {
            pg_ctl: bindir.join("pg_ctl"),
            data: PathBuf::from(data),
            port: pg.port,
        }
    }

    fn run(&self, args: &[&str]) {
        let out = as_server_owner(&self.pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .output()
            .expect("running pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        self.run(&["-m", "fast", "-w", "stop"]);
    }

    fn start(&self) {
        // The same settings tests/common/services.rs started it with.
        let dir = self.data.parent().unwrap();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            dir.display()
        );
        let log = dir.join("log-restarted");
        self.run(&[
            "-l",
            log.to_str().unwrap(),
            "-o",
            &opts,
            "-w",
            "-t",
            "60",
            "start",
        ]);
    }
}

/// Three workers (separate connections) open the catalog at the same
/// instant on an empty database, on twenty fresh databases: every open
/// succeeds, and so do their first calls (`stemfeed jobs list`).
#[test]
fn concurrent_first_opens_on_empty_databases() {
    let pg = Postgres::start();
    for round in 0..20 {
        let url = pg.database(&format!("empty{round}"));
        let barrier = Arc::new(Barrier::new(3));
        let handles: Vec<_> = (0..3)
            .map(|w| {
                let (url, barrier) = (url.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    let c = Catalog::open(&url)?;
                    if w == 0 {
                        c.submit(&upload(round), 3)?;
                    }
                    c.jobs(None).map(|j| j.len())
                })
            })
            .collect();
        for (w, h) in handles.into_iter().enumerate() {
            match h.join().unwrap() {
                Ok(n) => assert!(n <= 1),
                Err(e) => panic!("round {round}, worker {w}: {e}"),
            }
        }
        // Each migration ran once.
        let history: i64 = admin(&pg, &format!("empty{round}"))
            .query_one("SELECT COUNT(*) FROM refinery_schema_history", &[])
            .unwrap()
            .get(0);
        assert_eq!(history, MIGRATION_COUNT, "round {round}");
    }
}

/// Migrations a new catalog records (1–9 today).
const MIGRATION_COUNT: i64 = 10;

/// PostgreSQL stopped and started again under a running process: calls
/// while it is down fail with a transient error that says so; afterwards
/// the same catalog works on new pooled connections, the held lease is
/// still good and no job is lost.
#[test]
fn catalog_recovers_after_postgres_restart() {
    let pg = Postgres::start();
    let url = pg.database("restart");
    let ctl = PgCtl::of(&pg);
    let options = CatalogOptions {
        connect_timeout: Duration::from_secs(2),
        ..CatalogOptions::default()
    };
    let c = Catalog::open_with(&url, &options).unwrap();
    let jobs: Vec<i64> = (1..=3)
        .map(|n| created(c.submit(&upload(n), 3).unwrap()))
        .collect();
    let held = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert_eq!(held.job.id, jobs[0]);
    // Several connections in the pool, all of which the restart will close.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    c.jobs(None).unwrap();
                }
            });
        }
    });

    ctl.stop();
    let down = c
        .jobs(None)
        .expect_err("the catalog answered with its server stopped");
    assert!(down.is_transient(), "not transient: {down}");
    assert_eq!(down.kind(), Some(DbErrorKind::Unavailable), "{down}");
    let text = down.to_string();
    assert!(
        text.starts_with("catalog database") && text.contains("transient"),
        "{text}"
    );
    ctl.start();

    // The first call after the restart may still fail once; then it works.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failures: Vec<QueueError> = Vec::new();
    let listed = loop {
        match c.jobs(None) {
            Ok(list) => break list,
            Err(e) => {
                assert!(e.is_transient(), "not transient after restart: {e}");
                failures.push(e);
                assert!(
                    Instant::now() < deadline,
                    "the catalog did not recover after {} failures, the last: {}",
                    failures.len(),
                    failures[failures.len() - 1]
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert!(
        failures.len() <= 1,
        "more than one failure after the server was back: {failures:?}"
    );
    assert_eq!(listed.len(), 3, "a job was lost across the restart");
    for _ in 0..20 {
        c.jobs(None)
            .expect("a call after recovery failed: a stale connection was reused");
    }

    // The worker that held a lease goes on with it.
    assert_eq!(
        c.heartbeat(held.job.id, &held.token, JobState::Transcoding, 0.5, LEASE)
            .unwrap(),
        Heartbeat::Held
    );
    assert!(
        c.complete(held.job.id, &held.token, "w1", "videos/a", &[])
            .unwrap()
    );
    // New work is accepted and the queued jobs are still claimable.
    let fourth = created(c.submit(&upload(4), 3).unwrap());
    let mut claimed = Vec::new();
    while let Some(cl) = c.claim("w2", LEASE, &stemfeed_queue::Phase::ALL).unwrap() {
        assert!(
            c.complete(cl.job.id, &cl.token, "w2", "videos/b", &[])
                .unwrap()
        );
        claimed.push(cl.job.id);
    }
    assert_eq!(claimed, [jobs[1], jobs[2], fourth]);
    assert_eq!(c.counts().unwrap()[&JobState::InReview], 4);
}

/// An SQL error (here a foreign key violation) is not transient and does
/// not cost the pooled connection: the same server backend serves the next
/// call.
#[test]
fn sql_errors_keep_the_connection_and_are_not_transient() {
    let pg = Postgres::start();
    let url = pg.database("sqlerr");
    let c = Catalog::open(&url).unwrap();
    let mut a = admin(&pg, "postgres");
    let backends = |a: &mut postgres::Client| -> Vec<i32> {
        a.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = 'sqlerr' AND application_name = 'stemfeed' ORDER BY pid",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    c.jobs(None).unwrap();
    // The migration's own connection goes away shortly after the open.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backends(&mut a).len() != 1 {
        assert!(Instant::now() < deadline, "{:?}", backends(&mut a));
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = backends(&mut a);

    let e = c
        .add_caption_version("vnope", "en.transcript", "tester", "ok", None, "[]")
        .expect_err("a caption for a video that does not exist");
    assert_eq!(e.kind(), Some(DbErrorKind::Constraint), "{e}");
    assert!(!e.is_transient(), "{e}");
    assert!(e.to_string().contains("foreign key"), "{e}");
    c.jobs(None).unwrap();
    assert_eq!(backends(&mut a), before, "the connection was dropped");
}

/// A database made by the runner before refinery (`schema_migrations`,
/// versions 1–3) opens with its data, gets migrations 4–7, and ends with the
/// same history a new database has.
#[test]
fn legacy_postgres_catalog_is_carried_over() {
    let pg = Postgres::start();
    let fresh = pg.database("fresh");
    Catalog::open(&fresh).unwrap();
    let url = pg.database("legacy");
    let c = Catalog::open(&url).unwrap();
    let kept = created(c.submit(&upload(1), 3).unwrap());
    let stranded = created(c.submit(&upload(2), 3).unwrap());
    assert!(
        c.claim_ingest("incoming/x.mp4", "e1", "watcher-1", LEASE)
            .unwrap()
    );
    drop(c);
    // Undo what this code's first start did, as the old runner left it.
    admin(&pg, "legacy")
        .batch_execute(&format!(
            "DROP TABLE refinery_schema_history;
             CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 1700000000000), (2, 1700000000000), (3, 1700000000000);
             ALTER TABLE jobs DROP COLUMN crash_count, DROP COLUMN infra_failures;
             ALTER TABLE ingested DROP COLUMN lease_expires_ms;
             ALTER TABLE users DROP COLUMN disabled;
             ALTER TABLE sessions DROP COLUMN created_ms, DROP COLUMN last_seen_ms;
             DROP INDEX sessions_user;
             ALTER TABLE api_tokens DROP COLUMN expires_ms, DROP COLUMN last_used_ms, DROP COLUMN owner;
             DROP INDEX uploads_open_expiry;
             DROP INDEX uploads_open_owner;
             ALTER TABLE uploads DROP COLUMN expires_ms;
             DROP INDEX jobs_queued_phase;
             ALTER TABLE jobs DROP COLUMN phase, DROP COLUMN handoff;
             DROP TABLE glossary;
             DROP TABLE curator_accuracy;
             ALTER TABLE videos DROP COLUMN priority;
             UPDATE jobs SET cancel_requested = 1 WHERE id = {stranded};"
        ))
        .unwrap();

    let c = Catalog::open(&url).unwrap();
    let history = |db: &str| -> Vec<(i32, String, String)> {
        admin(&pg, db)
            .query(
                "SELECT version, name, checksum FROM refinery_schema_history ORDER BY version",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    assert_eq!(history("legacy"), history("fresh"));
    // Every migration since (4 on) ran too: the same history as a fresh catalog.
    assert!(history("legacy").len() >= 4);
    let jobs = c.jobs(None).unwrap();
    assert_eq!(
        jobs.iter().map(|j| (j.id, j.state)).collect::<Vec<_>>(),
        [(kept, JobState::Queued), (stranded, JobState::Cancelled)]
    );
    // The old claim got the ten minutes claims had: not taken over.
    assert!(
        !c.claim_ingest("incoming/x.mp4", "e1", "watcher-2", Duration::ZERO)
            .unwrap()
    );
    drop(c);
    Catalog::open(&url).unwrap();
    assert_eq!(history("legacy"), history("fresh"));
}

/// Writes a CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.pem"));
    let key = dir.join(format!("{name}-server.key"));
    let csr = dir.join(format!("{name}-server.csr"));
    let crt = dir.join(format!("{name}-server.crt"));
    let ext = dir.join(format!("{name}-server.ext"));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    // Distinct names: a verifier looks an issuer up by name.
    let subject = format!("/CN=stemfeed test CA {name}");
    let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subject];
    args.extend(ec);
    let (ca_key_s, ca_s) = (p(&ca_key), p(&ca));
    args.extend([
        "-keyout",
        &ca_key_s,
        "-out",
        &ca_s,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&args);
    let (key_s, csr_s, crt_s, ext_s) = (p(&key), p(&csr), p(&crt), p(&ext));
    let mut args = vec![
        "req",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key_s,
        "-out",
        &csr_s,
    ];
    args.extend(ec);
    openssl(&args);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr_s,
        "-CA",
        &ca_s,
        "-CAkey",
        &ca_key_s,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext_s,
        "-out",
        &crt_s,
    ]);
    (ca, crt, key)
}

/// `sslmode=require` connects over TLS (rustls) and verifies the server's
/// certificate against the CA named by `sslrootcert` or the options; a
/// server whose certificate another CA signed is refused, and the error
/// says why and is not transient.
#[test]
fn tls_to_postgres_verifies_the_server() {
    let pg = Postgres::start();
    let ctl = PgCtl::of(&pg);
    let certs = tempfile::tempdir().unwrap();
    let (ca, crt, key) = certificates(certs.path(), "good");
    let (other_ca, _, _) = certificates(certs.path(), "other");
    // The server reads its certificate and key from its data directory.
    for (from, to) in [(&crt, "server.crt"), (&key, "server.key")] {
        let dest = ctl.data.join(to);
        std::fs::copy(from, &dest).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dest)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {}", dest.display());
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut a = admin(&pg, "postgres");
    // ALTER SYSTEM refuses to run inside a transaction: one statement each.
    a.batch_execute("ALTER SYSTEM SET ssl = on").unwrap();
    a.batch_execute("SELECT pg_reload_conf()").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let on: String = admin(&pg, "postgres")
            .query_one("SHOW ssl", &[])
            .unwrap()
            .get(0);
        if on == "on" {
            break;
        }
        assert!(Instant::now() < deadline, "PostgreSQL did not turn TLS on");
        std::thread::sleep(Duration::from_millis(100));
    }

    let base = pg.database("tls");
    let url = format!("{base}?sslmode=require&sslrootcert={}", ca.display());
    let c = Catalog::open(&url).unwrap();
    created(c.submit(&upload(1), 3).unwrap());
    assert_eq!(c.jobs(None).unwrap().len(), 1);
    let encrypted: i64 = a
        .query_one(
            "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
             WHERE a.datname = 'tls' AND a.application_name = 'stemfeed' AND s.ssl",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "the catalog's connection is not encrypted");
    drop(c);

    // The CA from the options; libpq's verify-full is accepted.
    let with_options = CatalogOptions {
        tls_root_cert: Some(ca.clone()),
        ..CatalogOptions::default()
    };
    let c = Catalog::open_with(&format!("{base}?sslmode=verify-full"), &with_options).unwrap();
    assert_eq!(c.jobs(None).unwrap().len(), 1);
    drop(c);

    // Signed by a CA we do not trust, or by none of the web's: refused.
    for url in [
        format!("{base}?sslmode=require&sslrootcert={}", other_ca.display()),
        format!("{base}?sslmode=require"),
    ] {
        let e = Catalog::open(&url).expect_err("an untrusted server certificate was accepted");
        let text = e.to_string();
        assert!(
            text.contains("TLS handshake")
                && text.contains("invalid peer certificate: UnknownIssuer"),
            "{url}: {text}"
        );
        assert!(!e.is_transient(), "{text}");
    }
}
