//! One behavioural suite for the queue and catalog, run against both
//! backends: SQLite (a temporary file) and PostgreSQL (a server started on
//! loopback for the test).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::services::Postgres;
use stemfeed_queue::{Catalog, Failure, Heartbeat, JobState, NewVideo, Submitted};

const LEASE: Duration = Duration::from_secs(30);
const NO_BACKOFF: Duration = Duration::ZERO;

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

fn behaviour(c: &Catalog) {
    // Submission: the same content twice is one video and one job.
    let job = created(c.submit(&upload(1), 3).unwrap());
    let again = c.submit(&upload(1), 3).unwrap();
    assert_eq!(
        again,
        Submitted::Duplicate {
            video_id: upload(1).video_id()
        }
    );
    assert_eq!(c.jobs(None).unwrap().len(), 1);
    assert!(
        c.submit(
            &NewVideo {
                sha256: "zz".into(),
                ..upload(9)
            },
            3
        )
        .is_err()
    );

    // Claim, heartbeat through the stages, complete once.
    let claim = c.claim("w1", LEASE).unwrap().expect("a queued job");
    assert_eq!(claim.job.id, job);
    assert_eq!(claim.job.attempts, 1);
    assert_eq!(
        claim.video.source_key,
        format!("uploads/{}/source", upload(1).video_id())
    );
    assert!(
        c.claim("w2", LEASE).unwrap().is_none(),
        "a held job was claimed twice"
    );
    for state in [
        JobState::Transcoding,
        JobState::Captioning,
        JobState::Tagging,
    ] {
        assert_eq!(
            c.heartbeat(job, &claim.token, state, 0.5, LEASE).unwrap(),
            Heartbeat::Held
        );
        assert_eq!(c.job(job).unwrap().unwrap().state, state);
    }
    assert!(!c.complete(job, "not-the-token", "w2", "videos/x").unwrap());
    assert!(c.complete(job, &claim.token, "w1", "videos/v1").unwrap());
    assert!(
        !c.complete(job, &claim.token, "w1", "videos/v1").unwrap(),
        "completed twice"
    );
    let j = c.job(job).unwrap().unwrap();
    assert_eq!(j.state, JobState::InReview);
    assert_eq!(
        c.video(&j.video_id)
            .unwrap()
            .unwrap()
            .output_prefix
            .as_deref(),
        Some("videos/v1")
    );

    // An expired lease: another worker takes over; the first can no longer
    // heartbeat or complete.
    let job2 = created(c.submit(&upload(2), 3).unwrap());
    let first = c.claim("w1", Duration::from_millis(200)).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let second = c
        .claim("w2", LEASE)
        .unwrap()
        .expect("expired lease is claimable");
    assert_eq!(second.job.id, job2);
    assert_eq!(second.job.attempts, 2);
    assert!(
        second
            .job
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("lease of worker w1 expired")
    );
    assert_eq!(
        c.heartbeat(job2, &first.token, JobState::Transcoding, 0.1, LEASE)
            .unwrap(),
        Heartbeat::Lost
    );
    assert!(!c.complete(job2, &first.token, "w1", "videos/a").unwrap());
    assert!(c.complete(job2, &second.token, "w2", "videos/b").unwrap());
    let completions = c
        .events(job2)
        .unwrap()
        .iter()
        .filter(|e| e.kind == "completed")
        .count();
    assert_eq!(completions, 1);

    // Transient failures retry with backoff, then dead-letter with the reason.
    let job3 = created(c.submit(&upload(3), 2).unwrap());
    let cl = c.claim("w1", LEASE).unwrap().unwrap();
    assert_eq!(
        c.fail(
            job3,
            &cl.token,
            "w1",
            "store: timeout",
            Failure::Transient,
            Duration::from_secs(60)
        )
        .unwrap(),
        Some(JobState::Queued)
    );
    assert!(
        c.claim("w1", LEASE).unwrap().is_none(),
        "backoff not respected"
    );
    let j = c.job(job3).unwrap().unwrap();
    assert_eq!(
        (j.state, j.last_error.as_deref()),
        (JobState::Queued, Some("store: timeout"))
    );

    let job4 = created(c.submit(&upload(4), 2).unwrap());
    for attempt in 1..=2 {
        let cl = c
            .claim("w1", LEASE)
            .unwrap()
            .expect("retry is claimable without backoff");
        assert_eq!((cl.job.id, cl.job.attempts), (job4, attempt));
        let next = c
            .fail(
                job4,
                &cl.token,
                "w1",
                &format!("transcode crashed ({attempt})"),
                Failure::Transient,
                NO_BACKOFF,
            )
            .unwrap();
        assert_eq!(
            next,
            Some(if attempt == 2 {
                JobState::Dead
            } else {
                JobState::Queued
            })
        );
    }
    let j = c.job(job4).unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempts, j.last_error.as_deref()),
        (JobState::Dead, 2, Some("transcode crashed (2)"))
    );

    // Bad input is not retried.
    let job5 = created(c.submit(&upload(5), 3).unwrap());
    let cl = c.claim("w1", LEASE).unwrap().unwrap();
    assert_eq!(cl.job.id, job5);
    assert_eq!(
        c.fail(
            job5,
            &cl.token,
            "w1",
            "probe: not a video",
            Failure::BadInput,
            NO_BACKOFF
        )
        .unwrap(),
        Some(JobState::Failed)
    );
    assert!(c.claim("w1", LEASE).unwrap().is_none());

    // Release on shutdown gives the attempt back.
    let job6 = created(c.submit(&upload(6), 3).unwrap());
    let cl = c.claim("w1", LEASE).unwrap().unwrap();
    assert!(c.release(job6, &cl.token, "w1").unwrap());
    let cl = c.claim("w2", LEASE).unwrap().unwrap();
    assert_eq!((cl.job.id, cl.job.attempts), (job6, 1));

    // Cancellation: running jobs see it on their next heartbeat.
    assert_eq!(c.cancel(job6).unwrap(), Some(JobState::Probing));
    assert_eq!(
        c.heartbeat(job6, &cl.token, JobState::Transcoding, 0.2, LEASE)
            .unwrap(),
        Heartbeat::CancelRequested
    );
    assert!(c.cancelled(job6, &cl.token, "w2").unwrap());
    let job7 = created(c.submit(&upload(7), 3).unwrap());
    assert_eq!(c.cancel(job7).unwrap(), Some(JobState::Cancelled));
    assert!(
        c.claim("w1", LEASE).unwrap().is_none(),
        "a cancelled job was claimed"
    );

    // Queue depth by state.
    let counts = c.counts().unwrap();
    assert_eq!(counts[&JobState::InReview], 2);
    assert_eq!(counts[&JobState::Dead], 1);
    assert_eq!(counts[&JobState::Failed], 1);
    assert_eq!(counts[&JobState::Cancelled], 2);
    assert_eq!(counts[&JobState::Queued], 1);

    // Ingest of one object is claimed by exactly one watcher.
    assert!(
        c.claim_ingest("incoming/a.mp4", "e1", "watcher-1", LEASE)
            .unwrap()
    );
    assert!(
        !c.claim_ingest("incoming/a.mp4", "e1", "watcher-2", LEASE)
            .unwrap()
    );
    c.finish_ingest("incoming/a.mp4", "e1", "v1").unwrap();
    assert!(
        !c.claim_ingest("incoming/a.mp4", "e1", "watcher-2", Duration::ZERO)
            .unwrap(),
        "finished ingest taken over"
    );
    assert!(
        c.claim_ingest("incoming/b.mp4", "e1", "watcher-1", LEASE)
            .unwrap()
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        c.claim_ingest(
            "incoming/b.mp4",
            "e1",
            "watcher-2",
            Duration::from_millis(10)
        )
        .unwrap(),
        "stale ingest not taken over"
    );
}

/// Eight threads race for forty jobs: each is claimed and completed once.
fn concurrent_claims(c: Arc<Catalog>) {
    for n in 100..140 {
        c.submit(&upload(n), 3).unwrap();
    }
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                while let Some(cl) = c.claim(&format!("t{w}"), LEASE).unwrap() {
                    assert!(
                        c.complete(cl.job.id, &cl.token, &format!("t{w}"), "videos/x")
                            .unwrap()
                    );
                    mine.push(cl.job.id);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), 40, "jobs claimed: {all:?}");
    assert_eq!(unique.len(), 40, "a job was claimed twice");
}

#[test]
fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("catalog.db").display());
    behaviour(&Catalog::open(&url).unwrap());
    // Reopening runs no migration twice and keeps the data.
    let again = Catalog::open(&url).unwrap();
    assert_eq!(again.jobs(None).unwrap().len(), 7);
    let dir2 = tempfile::tempdir().unwrap();
    concurrent_claims(Arc::new(
        Catalog::open(&format!("sqlite:{}", dir2.path().join("c.db").display())).unwrap(),
    ));
}

#[test]
fn postgres_backend() {
    let pg = Postgres::start();
    let url = pg.database("behaviour");
    behaviour(&Catalog::open(&url).unwrap());
    assert_eq!(Catalog::open(&url).unwrap().jobs(None).unwrap().len(), 7);
    concurrent_claims(Arc::new(Catalog::open(&pg.database("race")).unwrap()));
}
