//! The worker pool for real: `stemfeed worker` processes sharing a queue and
//! an object store. Scale-out runs three workers over PostgreSQL and S3
//! (moto) on loopback, kills one with SIGKILL mid-job, and checks that every
//! upload ends processed exactly once with a complete output set; embedded
//! mode runs two workers over one SQLite file and a local directory.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::services::{Postgres, S3Server, free_port};
use common::workers::{NO_ENV, http_get, logs, small_profile, spawn_worker};
use stemfeed_queue::{Catalog, JobState, NewVideo};
use stemfeed_store::{LocalStore, ObjectStore, S3Options, S3Store};

const UPLOADS: usize = 30;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `n` distinct uploads (same pictures, different container metadata, so
/// different content hashes), 2 s of 360×640 video with no audio track.
fn uploads(dir: &Path, n: usize) -> Vec<PathBuf> {
    let base = common::ffmpeg_make(
        dir,
        "base.mp4",
        &["testsrc2=size=360x640:rate=25:duration=2"],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    (0..n)
        .map(|i| {
            let path = dir.join(format!("clip-{i:02}.mp4"));
            let out = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
                .arg(&base)
                .args(["-c", "copy", "-metadata", &format!("title=clip {i}")])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", common::text(&out.stderr));
            path
        })
        .collect()
}

fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every file the published manifest names exists under its run.
async fn check_outputs(store: &dyn ObjectStore, video: &str, dir: &Path) {
    let bytes = store
        .get_bytes(&format!("videos/{video}/manifest.json"))
        .await
        .unwrap_or_else(|e| panic!("{video}: {e}"));
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let base = format!(
        "videos/{video}/{}",
        m["base"].as_str().expect("manifest names its run")
    );
    let keys: BTreeSet<String> = store
        .list(&base)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    let mut named: Vec<String> = vec![
        "manifest.json".into(),
        "tags.json".into(),
        m["hls"]["master"].as_str().unwrap().into(),
        m["poster"]["path"].as_str().unwrap().into(),
    ];
    for r in m["renditions"].as_array().unwrap() {
        named.push(r["path"].as_str().unwrap().into());
        named.push(r["hls_playlist"].as_str().unwrap().into());
    }
    for rel in &named {
        assert!(
            keys.contains(&format!("{base}{rel}")),
            "{video}: {rel} missing under {base}"
        );
    }
    // The rendition plays.
    let mp4 = dir.join(format!("{video}.mp4"));
    store
        .get_file(
            &format!("{base}{}", m["renditions"][0]["path"].as_str().unwrap()),
            &mp4,
        )
        .await
        .unwrap();
    let d = common::ffprobe_duration(&mp4);
    assert!((d - 2.0).abs() < 0.2, "{video}: rendition lasts {d} s");
}

#[test]
fn three_workers_over_postgres_and_s3_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let s3 = S3Server::start();
    let catalog_url = pg.database("scaleout");
    let env = s3.env();
    let runtime = rt();
    let store = runtime.block_on(async {
        let mut opts = S3Options::new("media");
        opts.endpoint = Some(s3.endpoint());
        opts.path_style = true;
        opts.credentials = Some((
            common::services::S3_KEY.into(),
            common::services::S3_SECRET.into(),
        ));
        let store = S3Store::connect(opts).await;
        store.ensure_bucket().await.unwrap();
        store
    });

    // Thirty uploads dropped into incoming/ by another S3 client.
    let files = uploads(dir.path(), UPLOADS);
    runtime.block_on(async {
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy();
            store
                .put_file(&format!("incoming/{name}"), f)
                .await
                .unwrap();
        }
    });
    // And one job whose upload is missing from the store: it always fails.
    let catalog = Catalog::open(&catalog_url).unwrap();
    let doomed = NewVideo {
        sha256: "ab".repeat(32),
        size_bytes: 1,
        original_name: "lost.mp4".into(),
        ..NewVideo::default()
    };
    catalog.submit(&doomed, 3).unwrap();

    let profile = small_profile(dir.path());
    let metrics_port = free_port();
    let mut workers: Vec<(String, Child)> = (1..=3)
        .map(|i| {
            let metrics = if i == 1 { format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n") } else { String::new() };
            let config = write_config(
                dir.path(),
                &format!("w{i}"),
                &format!(
                    "data_dir = \"{data}\"\n[store]\nurl = \"s3://media\"\nendpoint = \"{endpoint}\"\npath_style = true\n[catalog]\nurl = \"{catalog_url}\"\n[worker]\nlease_seconds = 4\npoll_millis = 200\nretry_backoff_seconds = 0.2\nmax_attempts = 3\nshutdown_grace_seconds = 20\nprofile = \"{profile}\"\n{metrics}",
                    data = dir.path().join(format!("data-w{i}")).display(),
                    endpoint = s3.endpoint(),
                    profile = profile.display(),
                ),
            );
            (format!("w{i}"), spawn_worker(&config, &format!("w{i}"), &env, dir.path(), false))
        })
        .collect();

    // Kill w2 while it holds a job (one of the real uploads: the doomed job
    // ends dead whoever holds it).
    let doomed_id = doomed.video_id();
    let mut victim_job = None;
    wait_until("w2 to hold a job", Duration::from_secs(120), || {
        victim_job = catalog
            .jobs(None)
            .unwrap()
            .into_iter()
            .find(|j| {
                j.lease_owner.as_deref() == Some("w2")
                    && j.state.is_active()
                    && j.video_id != doomed_id
            })
            .map(|j| j.id);
        victim_job.is_some()
    });
    let (_, mut w2) = workers.remove(1);
    w2.kill().unwrap();
    w2.wait().unwrap();
    let victim_job = victim_job.unwrap();

    let all_settled = || {
        let jobs = catalog.jobs(None).unwrap();
        jobs.len() == UPLOADS + 1
            && jobs.iter().all(|j| {
                matches!(
                    j.state,
                    JobState::InReview | JobState::Dead | JobState::Failed
                )
            })
    };
    let start = Instant::now();
    while !all_settled() {
        assert!(
            start.elapsed() < Duration::from_secs(420),
            "jobs did not settle: {:?}\n{}",
            catalog.counts().unwrap(),
            logs(dir.path())
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Every upload became exactly one job, and each finished once.
    let jobs = catalog.jobs(None).unwrap();
    let counts = catalog.counts().unwrap();
    assert_eq!(
        counts[&JobState::InReview],
        UPLOADS as i64,
        "{counts:?}\n{}",
        logs(dir.path())
    );
    assert_eq!(counts[&JobState::Dead], 1, "{counts:?}");
    for j in &jobs {
        let completions = catalog
            .events(j.id)
            .unwrap()
            .iter()
            .filter(|e| e.kind == "completed")
            .count();
        let expected = usize::from(j.state == JobState::InReview);
        assert_eq!(
            completions, expected,
            "job {} completed {completions} times",
            j.id
        );
    }
    let dead = jobs.iter().find(|j| j.state == JobState::Dead).unwrap();
    assert_eq!(dead.attempts, 3);
    let reason = dead.last_error.as_deref().unwrap_or_default();
    assert!(
        reason.contains("lost.mp4") && reason.contains("not found"),
        "dead letter reason: {reason}"
    );

    // The killed worker's job was taken over and finished by another worker.
    let events = catalog.events(victim_job).unwrap();
    let finisher = events
        .iter()
        .find(|e| e.kind == "completed")
        .and_then(|e| e.worker.clone());
    assert!(
        finisher.is_some() && finisher.as_deref() != Some("w2"),
        "victim job events: {events:?}"
    );
    assert!(catalog.job(victim_job).unwrap().unwrap().attempts >= 2);

    // Each output set is complete and the renditions play.
    runtime.block_on(async {
        for j in jobs.iter().filter(|j| j.state == JobState::InReview) {
            check_outputs(&store, &j.video_id, dir.path()).await;
        }
        // The originals are still there, untouched.
        let originals = store.list("uploads/").await.unwrap();
        assert_eq!(originals.len(), UPLOADS);
    });

    // Metrics show the queue by state.
    let metrics = http_get(metrics_port, "/metrics");
    assert!(
        metrics.contains(&format!("stemfeed_jobs{{state=\"in-review\"}} {UPLOADS}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("stemfeed_stage_seconds_count{stage=\"transcode\"}"),
        "{metrics}"
    );

    // SIGTERM: the remaining workers stop cleanly.
    for (id, mut child) in workers {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{id} exited with {status} after SIGTERM\n{}",
                    logs(dir.path())
                );
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{id} did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn embedded_mode_two_watchers_one_job_per_upload() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let files = uploads(dir.path(), 4);
    let store = LocalStore::new(data.join("objects"));
    rt().block_on(async {
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy();
            store
                .put_file(&format!("incoming/{name}"), f)
                .await
                .unwrap();
        }
        // The same content under a second name is the same video.
        store
            .put_file("incoming/copy-of-clip-00.mp4", &files[0])
            .await
            .unwrap();
        // Bad input: named like a video, but it is not one.
        store
            .put_bytes("incoming/notes.mp4", b"meeting notes, not a video".to_vec())
            .await
            .unwrap();
    });
    let profile = small_profile(dir.path());
    let config = write_config(
        dir.path(),
        "embedded",
        &format!(
            "data_dir = \"{}\"\n[worker]\npoll_millis = 100\nprofile = \"{}\"\n",
            data.display(),
            profile.display()
        ),
    );
    let mut a = spawn_worker(&config, "a", NO_ENV, dir.path(), true);
    let mut b = spawn_worker(&config, "b", NO_ENV, dir.path(), true);
    assert!(a.wait().unwrap().success(), "{}", logs(dir.path()));
    assert!(b.wait().unwrap().success(), "{}", logs(dir.path()));

    let catalog = Catalog::open(&format!("sqlite:{}", data.join("catalog.db").display())).unwrap();
    let jobs = catalog.jobs(None).unwrap();
    assert_eq!(jobs.len(), 5, "{jobs:?}");
    // The bad upload failed at once (no retries) with the file, stage and reason.
    let failed: Vec<_> = jobs
        .iter()
        .filter(|j| j.state == JobState::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{jobs:?}\n{}", logs(dir.path()));
    let reason = failed[0].last_error.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("notes.mp4: probe") && failed[0].attempts == 1,
        "{reason}"
    );
    let done: Vec<_> = jobs
        .iter()
        .filter(|j| j.state == JobState::InReview)
        .collect();
    assert_eq!(done.len(), 4, "{jobs:?}\n{}", logs(dir.path()));
    rt().block_on(async {
        for j in done {
            check_outputs(&store, &j.video_id, dir.path()).await;
        }
    });
    // Uploads are never deleted.
    assert_eq!(
        std::fs::read_dir(data.join("objects/incoming"))
            .unwrap()
            .count(),
        6
    );
}

#[test]
fn sigterm_past_the_grace_period_hands_the_job_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Long enough to be mid-transcode when the signal comes.
    let clip = common::ffmpeg_make(
        dir.path(),
        "long.mp4",
        &["testsrc2=size=1080x1920:rate=30:duration=10"],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let store = LocalStore::new(data.join("objects"));
    rt().block_on(store.put_file("incoming/long.mp4", &clip))
        .unwrap();
    let config = write_config(
        dir.path(),
        "graceless",
        &format!(
            "data_dir = \"{}\"\n[worker]\npoll_millis = 100\nlease_seconds = 3\nshutdown_grace_seconds = 0\n",
            data.display()
        ),
    );
    let mut worker = spawn_worker(&config, "g", NO_ENV, dir.path(), false);
    let catalog_path = format!("sqlite:{}", data.join("catalog.db").display());
    wait_until(
        "the job to be transcoding",
        Duration::from_secs(120),
        || {
            Catalog::open(&catalog_path)
                .ok()
                .and_then(|c| c.jobs(None).ok())
                .is_some_and(|jobs| jobs.iter().any(|j| j.state == JobState::Transcoding))
        },
    );
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    let status = worker.wait().unwrap();
    assert!(
        status.success(),
        "worker exited with {status}\n{}",
        logs(dir.path())
    );
    let catalog = Catalog::open(&catalog_path).unwrap();
    let job = &catalog.jobs(None).unwrap()[0];
    // Back in the queue for another worker, without using up an attempt.
    assert_eq!(
        (job.state, job.attempts, job.lease_owner.as_deref()),
        (JobState::Queued, 0, None),
        "{job:?}"
    );
    let events: Vec<String> = catalog
        .events(job.id)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(events.contains(&"released".to_owned()), "{events:?}");
}
