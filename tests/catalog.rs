//! One behavioural suite for the queue and catalog, run against both
//! backends: SQLite (a temporary file) and PostgreSQL (a server started on
//! loopback for the test). Each scenario after the first gets a fresh
//! catalog, so no scenario's jobs are claimed by another's. PostgreSQL-only
//! behaviour (restarts, concurrent first starts, TLS) is in
//! `catalog_postgres.rs`.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::services::Postgres;
use stemfeed_queue::{Catalog, Failure, FirstCaption, Heartbeat, JobState, NewVideo, Submitted};

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
    let claim = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .expect("a queued job");
    assert_eq!(claim.job.id, job);
    assert_eq!(claim.job.attempts, 1);
    assert_eq!(
        claim.video.source_key,
        format!("uploads/{}/source", upload(1).video_id())
    );
    assert!(
        c.claim("w2", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .is_none(),
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
    assert!(
        !c.complete(job, "not-the-token", "w2", "videos/x", &[])
            .unwrap()
    );
    assert!(
        c.complete(job, &claim.token, "w1", "videos/v1", &[])
            .unwrap()
    );
    assert!(
        !c.complete(job, &claim.token, "w1", "videos/v1", &[])
            .unwrap(),
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
    let first = c
        .claim(
            "w1",
            Duration::from_millis(200),
            &stemfeed_queue::Phase::ALL,
        )
        .unwrap()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let second = c
        .claim("w2", LEASE, &stemfeed_queue::Phase::ALL)
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
    assert!(
        !c.complete(job2, &first.token, "w1", "videos/a", &[])
            .unwrap()
    );
    assert!(
        c.complete(job2, &second.token, "w2", "videos/b", &[])
            .unwrap()
    );
    let completions = c
        .events(job2)
        .unwrap()
        .iter()
        .filter(|e| e.kind == "completed")
        .count();
    assert_eq!(completions, 1);

    // Transient failures retry with backoff, then dead-letter with the reason.
    let job3 = created(c.submit(&upload(3), 2).unwrap());
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
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
        c.claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .is_none(),
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
            .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
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
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
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
    assert!(
        c.claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .is_none()
    );

    // Release on shutdown gives the attempt back.
    let job6 = created(c.submit(&upload(6), 3).unwrap());
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert!(c.release(job6, &cl.token, "w1").unwrap());
    let cl = c
        .claim("w2", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
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
        c.claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .is_none(),
        "a cancelled job was claimed"
    );

    // Queue depth by state.
    let counts = c.counts().unwrap();
    assert_eq!(counts[&JobState::InReview], 2);
    assert_eq!(counts[&JobState::Dead], 1);
    assert_eq!(counts[&JobState::Failed], 1);
    assert_eq!(counts[&JobState::Cancelled], 2);
    assert_eq!(counts[&JobState::Queued], 1);
}

/// Ingest claims are leases on the database clock: exactly one watcher
/// wins an object; a claim whose lease ran out (its watcher died) is taken
/// over, one that is renewed is not, and a finished one never is.
fn ingest_leases(c: &Catalog) {
    let short = Duration::from_secs(1);
    assert!(
        c.claim_ingest("incoming/a.mp4", "e1", "watcher-1", LEASE)
            .unwrap()
    );
    assert!(
        !c.claim_ingest("incoming/a.mp4", "e1", "watcher-2", Duration::ZERO)
            .unwrap(),
        "a held claim was taken over"
    );
    c.finish_ingest("incoming/a.mp4", "e1", "v1").unwrap();
    assert!(
        !c.claim_ingest("incoming/a.mp4", "e1", "watcher-2", LEASE)
            .unwrap(),
        "finished ingest taken over"
    );
    assert!(
        c.claim_ingest("incoming/a.mp4", "e2", "watcher-2", LEASE)
            .unwrap(),
        "a new version of the object is a new ingest"
    );

    // watcher-1 dies holding a short lease: watcher-2 takes over once it
    // runs out, not before, whatever lease watcher-2 asks for.
    assert!(
        c.claim_ingest("incoming/b.mp4", "e1", "watcher-1", short)
            .unwrap()
    );
    assert!(
        !c.claim_ingest("incoming/b.mp4", "e1", "watcher-2", Duration::ZERO)
            .unwrap()
    );
    std::thread::sleep(short + Duration::from_millis(200));
    assert!(
        c.claim_ingest("incoming/b.mp4", "e1", "watcher-2", LEASE)
            .unwrap(),
        "expired ingest claim not taken over"
    );
    assert!(
        !c.renew_ingest("incoming/b.mp4", "e1", "watcher-1", LEASE)
            .unwrap(),
        "the dead watcher renewed a claim it lost"
    );
    assert!(
        !c.claim_ingest("incoming/b.mp4", "e1", "watcher-1", LEASE)
            .unwrap()
    );

    // A live watcher renews its lease and keeps the claim past the first one.
    assert!(
        c.claim_ingest("incoming/c.mp4", "e1", "watcher-1", short)
            .unwrap()
    );
    assert!(
        c.renew_ingest("incoming/c.mp4", "e1", "watcher-1", LEASE)
            .unwrap()
    );
    std::thread::sleep(short + Duration::from_millis(200));
    assert!(
        !c.claim_ingest("incoming/c.mp4", "e1", "watcher-2", LEASE)
            .unwrap(),
        "a renewed ingest claim was taken over"
    );
    c.finish_ingest("incoming/c.mp4", "e1", "v3").unwrap();
    assert!(
        !c.renew_ingest("incoming/c.mp4", "e1", "watcher-1", short)
            .unwrap()
    );
}

/// Infrastructure failures give the attempt back; a crash is retried once,
/// the second crash of a job fails it as bad input.
fn failure_kinds(c: &Catalog) {
    // Infrastructure: requeued with backoff, the attempt not consumed, even
    // more times than the job has attempts.
    let job = created(c.submit(&upload(20), 2).unwrap());
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert_eq!((cl.job.id, cl.job.attempts), (job, 1));
    assert_eq!(
        c.fail(
            job,
            &cl.token,
            "w1",
            "store: disk full",
            Failure::Infrastructure,
            Duration::from_secs(60)
        )
        .unwrap(),
        Some(JobState::Queued)
    );
    let j = c.job(job).unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempts, j.last_error.as_deref()),
        (JobState::Queued, 0, Some("store: disk full"))
    );
    assert!(
        c.claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .is_none(),
        "backoff not respected"
    );

    let job = created(c.submit(&upload(21), 2).unwrap());
    for _ in 0..4 {
        let cl = c
            .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .expect("requeued without backoff");
        assert_eq!((cl.job.id, cl.job.attempts), (job, 1));
        assert_eq!(
            c.fail(
                job,
                &cl.token,
                "w1",
                "catalog outage",
                Failure::Infrastructure,
                NO_BACKOFF
            )
            .unwrap(),
            Some(JobState::Queued)
        );
    }
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert_eq!((cl.job.id, cl.job.attempts), (job, 1));
    assert!(c.complete(job, &cl.token, "w1", "videos/x", &[]).unwrap());
    // Each attempt ends with a "retry" event that says it was not counted.
    let retries = c.events(job).unwrap();
    let retries: Vec<_> = retries.iter().filter(|e| e.kind == "retry").collect();
    assert_eq!(retries.len(), 4);
    assert!(
        retries.iter().all(|e| e.detail.as_deref()
            == Some("infrastructure failure, attempt not counted: catalog outage")),
        "{retries:?}"
    );

    // Crash: the first is retried (using the attempt), the second fails the
    // job for good with its message, even with attempts left.
    let job = created(c.submit(&upload(22), 5).unwrap());
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert_eq!(
        c.fail(
            job,
            &cl.token,
            "w1",
            "transcode: killed by signal 9 (SIGKILL)",
            Failure::Crash,
            NO_BACKOFF
        )
        .unwrap(),
        Some(JobState::Queued)
    );
    let j = c.job(job).unwrap().unwrap();
    assert_eq!((j.state, j.attempts, j.crashes), (JobState::Queued, 1, 1));
    // A transient failure in between does not reset the count.
    let cl = c
        .claim("w2", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert_eq!((cl.job.id, cl.job.attempts), (job, 2));
    assert_eq!(
        c.fail(
            job,
            &cl.token,
            "w2",
            "store: timeout",
            Failure::Transient,
            NO_BACKOFF
        )
        .unwrap(),
        Some(JobState::Queued)
    );
    let cl = c
        .claim("w2", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert_eq!((cl.job.id, cl.job.attempts), (job, 3));
    let msg = "asr: timed out after 600 s";
    assert_eq!(
        c.fail(job, &cl.token, "w2", msg, Failure::Crash, NO_BACKOFF)
            .unwrap(),
        Some(JobState::Failed)
    );
    let j = c.job(job).unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempts, j.crashes, j.last_error.as_deref()),
        (JobState::Failed, 3, 2, Some(msg))
    );
    assert!(
        c.claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .is_none(),
        "a job that crashed twice was retried"
    );
    let last = c.events(job).unwrap().pop().unwrap();
    assert_eq!(last.kind, "failed");
    assert!(
        last.detail
            .as_deref()
            .unwrap_or_default()
            .contains("crashed on 2 attempts, treated as bad input"),
        "{last:?}"
    );

    // A first crash on the last attempt is dead, as a transient failure is.
    let job = created(c.submit(&upload(23), 1).unwrap());
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert_eq!(
        c.fail(job, &cl.token, "w1", "killed", Failure::Crash, NO_BACKOFF)
            .unwrap(),
        Some(JobState::Dead)
    );
    // A lost lease records nothing.
    assert_eq!(
        c.fail(job, &cl.token, "w1", "late", Failure::Crash, NO_BACKOFF)
            .unwrap(),
        None
    );
}

/// A cancel requested of a job whose worker is gone, or hands it back, or
/// fails it for a retry, ends the job cancelled; it is never run again.
fn cancellation_edges(c: &Catalog) {
    // The worker dies after the cancel was requested: its lease expires and
    // the next claim sweeps the job to cancelled instead of running it.
    let job = created(c.submit(&upload(30), 3).unwrap());
    let dead = c
        .claim(
            "w1",
            Duration::from_millis(200),
            &stemfeed_queue::Phase::ALL,
        )
        .unwrap()
        .unwrap();
    assert_eq!(c.cancel(job).unwrap(), Some(JobState::Probing));
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        c.claim("w2", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .is_none(),
        "a cancelled job was run again"
    );
    let j = c.job(job).unwrap().unwrap();
    assert_eq!((j.state, j.lease_owner), (JobState::Cancelled, None));
    let last = c.events(job).unwrap().pop().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.worker.as_deref()),
        ("cancelled", Some("w2"))
    );
    assert!(
        last.detail
            .as_deref()
            .unwrap_or_default()
            .contains("lease of worker w1 expired in probing"),
        "{last:?}"
    );
    assert_eq!(
        c.heartbeat(job, &dead.token, JobState::Transcoding, 0.5, LEASE)
            .unwrap(),
        Heartbeat::Lost
    );
    assert!(!c.complete(job, &dead.token, "w1", "videos/x", &[]).unwrap());

    // Handed back on shutdown with a cancel pending: cancelled, not stranded.
    let job = created(c.submit(&upload(31), 3).unwrap());
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert_eq!(c.cancel(job).unwrap(), Some(JobState::Probing));
    assert!(c.release(job, &cl.token, "w1").unwrap());
    assert_eq!(c.job(job).unwrap().unwrap().state, JobState::Cancelled);
    assert_eq!(c.events(job).unwrap().pop().unwrap().kind, "cancelled");
    assert!(!c.release(job, &cl.token, "w1").unwrap(), "released twice");

    // A retryable failure with a cancel pending: cancelled, not requeued.
    for (n, kind) in [
        (32, Failure::Transient),
        (33, Failure::Infrastructure),
        (34, Failure::Crash),
    ] {
        let job = created(c.submit(&upload(n), 3).unwrap());
        let cl = c
            .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .unwrap();
        c.cancel(job).unwrap();
        assert_eq!(
            c.fail(job, &cl.token, "w1", "store: timeout", kind, NO_BACKOFF)
                .unwrap(),
            Some(JobState::Cancelled),
            "{kind:?}"
        );
    }
    // A release without a cancel still requeues.
    let job = created(c.submit(&upload(35), 3).unwrap());
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert!(c.release(job, &cl.token, "w1").unwrap());
    assert_eq!(c.job(job).unwrap().unwrap().state, JobState::Queued);
    assert!(
        c.claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .is_some()
    );
    assert!(
        c.claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
            .unwrap()
            .is_none(),
        "a cancelled job was claimed"
    );
}

/// The same bytes submitted again fill what the first submission left
/// empty, and never overwrite what it said.
fn duplicate_metadata(c: &Catalog) {
    let bare = NewVideo {
        title: String::new(),
        ..upload(40)
    };
    let job = created(c.submit(&bare, 3).unwrap());
    let id = bare.video_id();
    let richer = NewVideo {
        original_name: "second-name.mp4".into(),
        title: "Photosynthesis in five minutes".into(),
        description: "Light, water, sugar.".into(),
        creator: "teacher-7".into(),
        language_hint: Some("ur".into()),
        grade_hint: Some(7),
        ..bare.clone()
    };
    assert_eq!(
        c.submit(&richer, 3).unwrap(),
        Submitted::Duplicate {
            video_id: id.clone()
        }
    );
    let v = c.video(&id).unwrap().unwrap();
    assert_eq!(
        (
            v.title.as_str(),
            v.description.as_str(),
            v.creator.as_str(),
            v.language_hint.as_deref(),
            v.grade_hint
        ),
        (
            "Photosynthesis in five minutes",
            "Light, water, sugar.",
            "teacher-7",
            Some("ur"),
            Some(7)
        )
    );
    assert_eq!(
        v.original_name, "clip-40.mp4",
        "the first upload's name stays"
    );
    let ev = c.events(job).unwrap().pop().unwrap();
    assert_eq!(ev.kind, "metadata");
    assert_eq!(
        ev.detail.as_deref(),
        Some(
            "title, description, creator, language hint, grade hint filled from a second upload of the same content (second-name.mp4)"
        )
    );

    // A third submission saying other things changes nothing set.
    let other = NewVideo {
        title: "Another title".into(),
        description: "Another description".into(),
        language_hint: Some("pa".into()),
        grade_hint: Some(9),
        ..bare.clone()
    };
    assert!(matches!(
        c.submit(&other, 3).unwrap(),
        Submitted::Duplicate { .. }
    ));
    assert_eq!(c.video(&id).unwrap().unwrap(), v);
    assert_eq!(
        c.events(job)
            .unwrap()
            .iter()
            .filter(|e| e.kind == "metadata")
            .count(),
        1
    );

    // Only the empty fields are filled, from either side.
    let first = NewVideo {
        title: "Fractions".into(),
        language_hint: Some(String::new()),
        ..upload(41)
    };
    c.submit(&first, 3).unwrap();
    c.submit(
        &NewVideo {
            title: "Not this".into(),
            description: "Halves and quarters".into(),
            language_hint: Some("sd".into()),
            ..first.clone()
        },
        3,
    )
    .unwrap();
    let v = c.video(&first.video_id()).unwrap().unwrap();
    assert_eq!(
        (
            v.title.as_str(),
            v.description.as_str(),
            v.language_hint.as_deref(),
            v.grade_hint
        ),
        ("Fractions", "Halves and quarters", Some("sd"), None)
    );
    assert_eq!(c.jobs(None).unwrap().len(), 2, "a duplicate made a job");
}

fn first(track: &str, cues: &str) -> FirstCaption {
    FirstCaption {
        track: track.to_owned(),
        status: "ok".to_owned(),
        reason: None,
        cues: cues.to_owned(),
    }
}

/// A finished run's tracks become version 1 with the completion itself;
/// later imports never overwrite a curator's work; curators saving at the
/// same moment each get their own version, never an error.
fn caption_versions(c: &Catalog) {
    let video = c.submit(&upload(300), 3).unwrap().video_id().to_owned();
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    let tracks = [
        first("ur.transcript", "[1]"),
        first("en.translation", "[2]"),
    ];
    assert!(
        c.complete(cl.job.id, &cl.token, "w1", "videos/r1", &tracks)
            .unwrap()
    );
    let v = c.caption_versions(&video).unwrap();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(
        v.iter().all(|v| v.version == 1 && v.author == "whisper"),
        "{v:?}"
    );
    assert!(c.videos_without_captions().unwrap().is_empty());

    // A curator edits; an import of a later run leaves the track alone but
    // adds a track the video did not have.
    assert_eq!(
        c.add_caption_version(&video, "ur.transcript", "ayesha", "edited", None, "[3]")
            .unwrap(),
        2
    );
    let again = [first("ur.transcript", "[9]"), first("pa.transcript", "[4]")];
    assert_eq!(c.import_first_captions(&video, &again).unwrap(), 1);
    assert_eq!(c.import_first_captions(&video, &again).unwrap(), 0);
    let latest = c.latest_captions(&video).unwrap();
    let ur = latest.iter().find(|v| v.track == "ur.transcript").unwrap();
    assert_eq!((ur.version, ur.cues.as_str()), (2, "[3]"));
    assert!(
        latest
            .iter()
            .any(|v| v.track == "pa.transcript" && v.version == 1)
    );

    // Eight curators save the same track and the tags at once.
    std::thread::scope(|s| {
        for w in 0..8 {
            let video = &video;
            s.spawn(move || {
                for n in 0..4 {
                    c.add_caption_version(
                        video,
                        "ur.transcript",
                        &format!("c{w}"),
                        "edited",
                        None,
                        &format!("[{w}{n}]"),
                    )
                    .unwrap_or_else(|e| panic!("concurrent caption save failed: {e}"));
                    c.add_tag_version(video, &format!("c{w}"), "{}")
                        .unwrap_or_else(|e| panic!("concurrent tag save failed: {e}"));
                }
            });
        }
    });
    let versions: Vec<i64> = c
        .caption_versions(&video)
        .unwrap()
        .into_iter()
        .filter(|v| v.track == "ur.transcript")
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, (1..=34).collect::<Vec<_>>());
    assert_eq!(c.latest_tags(&video).unwrap().unwrap().0, 32);

    // A run completed without tracks (an older worker) is listed for import.
    let old = c.submit(&upload(301), 3).unwrap().video_id().to_owned();
    let cl = c
        .claim("w1", LEASE, &stemfeed_queue::Phase::ALL)
        .unwrap()
        .unwrap();
    assert!(
        c.complete(cl.job.id, &cl.token, "w1", "videos/r2", &[])
            .unwrap()
    );
    assert_eq!(
        c.videos_without_captions().unwrap(),
        vec![(old.clone(), "videos/r2".to_owned())]
    );
    assert_eq!(c.import_first_captions(&old, &tracks).unwrap(), 2);
    assert!(c.videos_without_captions().unwrap().is_empty());
}

/// Curators' glossary: per language, a term replaces its variants (kept
/// one per line, so commas and spaces survive); setting a term again
/// replaces its variants; removing says whether it was there.
fn glossary(c: &Catalog) {
    let variants = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    c.set_glossary_term(
        "ur",
        "مقناطیس",
        &variants(&["مقناتیس", "magnet, iron"]),
        "ayesha",
    )
    .unwrap();
    c.set_glossary_term("en", "acceleration", &variants(&["excelleration"]), "bilal")
        .unwrap();
    let ur = c.glossary("ur").unwrap();
    assert_eq!(ur.len(), 1);
    assert_eq!(
        (
            ur[0].term.as_str(),
            ur[0].variants.clone(),
            ur[0].author.as_str()
        ),
        ("مقناطیس", variants(&["مقناتیس", "magnet, iron"]), "ayesha")
    );
    c.set_glossary_term("ur", "مقناطیس", &variants(&["مکناطیس"]), "bilal")
        .unwrap();
    let ur = c.glossary("ur").unwrap();
    assert_eq!(
        (ur.len(), ur[0].variants.clone()),
        (1, variants(&["مکناطیس"]))
    );
    assert_eq!(ur[0].author, "bilal");
    assert!(c.remove_glossary_term("ur", "مقناطیس").unwrap());
    assert!(!c.remove_glossary_term("ur", "مقناطیس").unwrap());
    assert!(c.glossary("ur").unwrap().is_empty());
    assert_eq!(c.glossary("en").unwrap().len(), 1);

    // The curators' accuracy table is replaced whole.
    let row = |language: &str, tracks: i64| stemfeed_queue::CuratorAccuracy {
        language: language.into(),
        model: "base".into(),
        tracks,
        words: 100 * tracks,
        words_changed: 31 * tracks,
        updated_ms: 0,
    };
    c.set_curator_accuracy(&[row("ur", 3), row("en", 2)])
        .unwrap();
    c.set_curator_accuracy(&[row("ur", 4)]).unwrap();
    let got = c.curator_accuracy().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].tracks, got[0].words_changed), (4, 124));
    assert!(got[0].updated_ms > 0);
}

/// Curators' priority: normal when submitted, set to high or low, clamped,
/// and refused for a video that does not exist.
fn priority(c: &Catalog) {
    let submitted = c.submit(&upload(41), 3).unwrap();
    let id = submitted.video_id().to_owned();
    assert_eq!(c.video(&id).unwrap().unwrap().priority, 0);
    assert!(c.set_priority(&id, 1).unwrap());
    assert_eq!(c.video(&id).unwrap().unwrap().priority, 1);
    assert!(c.set_priority(&id, -5).unwrap());
    assert_eq!(c.video(&id).unwrap().unwrap().priority, -1);
    assert!(!c.set_priority("no-such-video", 1).unwrap());
}

/// A named behaviour, run on a fresh catalog of each backend.
type Scenario = (&'static str, fn(&Catalog));

const SCENARIOS: [Scenario; 8] = [
    ("priority", priority),
    ("glossary", glossary),
    ("phases", phases),
    ("ingest_leases", ingest_leases),
    ("failure_kinds", failure_kinds),
    ("cancellation_edges", cancellation_edges),
    ("duplicate_metadata", duplicate_metadata),
    ("caption_versions", caption_versions),
];

/// A job's parts are claimed by the workers that do them: the transcode
/// part hands the job on exactly once (under its lease), the captions part
/// starts with fresh attempts and completes; the queue depth is per part.
fn phases(c: &Catalog) {
    use stemfeed_queue::Phase;
    let job = created(c.submit(&upload(50), 3).unwrap());
    let depth = c.queue_depth().unwrap();
    assert_eq!((depth[&Phase::Transcode], depth[&Phase::Captions]), (1, 0));
    assert!(c.claim("gpu", LEASE, &[Phase::Captions]).unwrap().is_none());
    let t = c.claim("cpu", LEASE, &[Phase::Transcode]).unwrap().unwrap();
    assert_eq!(
        (t.job.id, t.job.phase, t.job.handoff.clone()),
        (job, Phase::Transcode, None)
    );
    assert!(
        !c.hand_off(job, "not-the-token", "cpu", "videos/x/runs/1-1")
            .unwrap()
    );
    let run = format!("videos/{}/runs/{job}-1", t.video.id);
    assert!(c.hand_off(job, &t.token, "cpu", &run).unwrap());
    // Once: the old lease no longer holds it.
    assert!(!c.hand_off(job, &t.token, "cpu", &run).unwrap());
    assert!(!c.complete(job, &t.token, "cpu", &run, &[]).unwrap());
    let depth = c.queue_depth().unwrap();
    assert_eq!((depth[&Phase::Transcode], depth[&Phase::Captions]), (0, 1));
    assert!(
        c.claim("cpu", LEASE, &[Phase::Transcode])
            .unwrap()
            .is_none()
    );
    let g = c.claim("gpu", LEASE, &[Phase::Captions]).unwrap().unwrap();
    assert_eq!(g.job.phase, Phase::Captions);
    assert_eq!(g.job.handoff.as_deref(), Some(run.as_str()));
    assert_eq!(g.job.attempts, 1, "the captions part has its own attempts");
    // A failure retries the captions part, not the transcode.
    assert_eq!(
        c.fail(
            job,
            &g.token,
            "gpu",
            "whisper hiccup",
            Failure::Transient,
            NO_BACKOFF
        )
        .unwrap(),
        Some(JobState::Queued)
    );
    let g = c.claim("gpu", LEASE, &[Phase::Captions]).unwrap().unwrap();
    assert_eq!((g.job.phase, g.job.attempts), (Phase::Captions, 2));
    assert!(c.complete(job, &g.token, "gpu", &run, &[]).unwrap());
    let kinds: Vec<String> = c.events(job).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "handed-off").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "completed").count(), 1);
    let depth = c.queue_depth().unwrap();
    assert_eq!((depth[&Phase::Transcode], depth[&Phase::Captions]), (0, 0));
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
                while let Some(cl) = c
                    .claim(&format!("t{w}"), LEASE, &stemfeed_queue::Phase::ALL)
                    .unwrap()
                {
                    assert!(
                        c.complete(cl.job.id, &cl.token, &format!("t{w}"), "videos/x", &[])
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
    for (name, scenario) in SCENARIOS {
        eprintln!("sqlite: {name}");
        scenario(
            &Catalog::open(&format!(
                "sqlite:{}",
                dir2.path().join(format!("{name}.db")).display()
            ))
            .unwrap(),
        );
    }
}

#[test]
fn postgres_backend() {
    let pg = Postgres::start();
    let url = pg.database("behaviour");
    behaviour(&Catalog::open(&url).unwrap());
    assert_eq!(Catalog::open(&url).unwrap().jobs(None).unwrap().len(), 7);
    concurrent_claims(Arc::new(Catalog::open(&pg.database("race")).unwrap()));
    for (name, scenario) in SCENARIOS {
        eprintln!("postgres: {name}");
        scenario(&Catalog::open(&pg.database(name)).unwrap());
    }
}
