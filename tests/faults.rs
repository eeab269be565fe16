//! Faults of the machine and its services, not of the uploads: PostgreSQL
//! restarted under three running workers, a work directory on a file system
//! that fills up, and free space under the worker's floor. In each case
//! every job ends exactly once in review, and the fault uses up no attempt.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::services::Postgres;
use common::workers::{
    NO_ENV, logs, spawn_worker, stop, submit_job, tone_clip as clip, wait_until,
};
use stemfeed_queue::{Catalog, JobState};

fn config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path
}

fn submit(config: &Path, file: &Path) -> i64 {
    submit_job(config, file, NO_ENV)
}

fn worker(config: &Path, id: &str, log_dir: &Path, drain: bool) -> Child {
    spawn_worker(config, id, NO_ENV, log_dir, drain)
}

/// Each job in review, completed exactly once.
fn assert_all_in_review_once(catalog: &Catalog, jobs: &[i64], log_dir: &Path) {
    for &id in jobs {
        let job = catalog.job(id).unwrap().unwrap();
        assert_eq!(
            job.state,
            JobState::InReview,
            "job {id}: {job:?}\n{}",
            logs(log_dir)
        );
        let completed = catalog
            .events(id)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "completed")
            .count();
        assert_eq!(completed, 1, "job {id} completed {completed} times");
        let video = catalog.video(&job.video_id).unwrap().unwrap();
        let prefix = video
            .output_prefix
            .expect("the catalog names the published run");
        assert!(prefix.contains("/runs/"), "{prefix}");
    }
}

#[test]
fn postgres_restarted_under_three_workers_loses_and_kills_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let url = pg.database("faults");
    let objects = dir.path().join("objects");
    let body = format!(
        "data_dir = {:?}\n[store]\nurl = \"file:{}\"\n[catalog]\nurl = \"{url}\"\n[worker]\ncaptions = false\nwatch = false\npoll_millis = 200\nretry_backoff_seconds = 1\nlease_seconds = 15\nmax_attempts = 3\n",
        dir.path().join("data"),
        objects.display()
    );
    let cfg = config(dir.path(), "stemfeed", &body);
    let jobs: Vec<i64> = (0..10)
        .map(|i| {
            submit(
                &cfg,
                &clip(dir.path(), &format!("pg-{i}.mp4"), i, "160x284", 2.0),
            )
        })
        .collect();
    let catalog = Catalog::open(&url).unwrap();
    let workers: Vec<Child> = (0..3)
        .map(|i| worker(&cfg, &format!("w{i}"), dir.path(), false))
        .collect();
    // Restart once some work is done and some is running.
    wait_until(
        "a first completed job",
        Duration::from_secs(120),
        dir.path(),
        || catalog.counts().is_ok_and(|c| c[&JobState::InReview] >= 1),
    );
    pg.restart();
    wait_until(
        "every job in review",
        Duration::from_secs(300),
        dir.path(),
        || {
            catalog
                .counts()
                .is_ok_and(|c| c[&JobState::InReview] == jobs.len() as i64)
        },
    );
    for w in workers {
        assert!(stop(w).success(), "{}", logs(dir.path()));
    }
    assert_all_in_review_once(&catalog, &jobs, dir.path());
    let dead = catalog.counts().unwrap();
    assert_eq!(dead[&JobState::Dead] + dead[&JobState::Failed], 0);
}

/// Mounts a tmpfs of `size` at `at` (the test runs as root in CI; where
/// mounting is not permitted the test says so and stops).
fn mount_tmpfs(at: &Path, size: &str) -> bool {
    std::fs::create_dir_all(at).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "NOT RUN: cannot mount a tmpfs here ({}); the full-disk path is untested on this machine",
            common::text(&out.stderr).trim()
        );
    }
    out.status.success()
}

#[test]
fn a_full_work_disk_uses_no_attempts_and_the_job_completes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let work = data.join("work");
    // Room for the upload and hardly anything else.
    let input = clip(dir.path(), "full.mp4", 7, "480x854", 4.0);
    let size = std::fs::metadata(&input).unwrap().len();
    if !mount_tmpfs(&work, &format!("{}k", size / 1024 + 96)) {
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let guard = Unmount(work.clone());
    let body = format!(
        "data_dir = {data:?}\n[worker]\ncaptions = false\nwatch = false\npoll_millis = 200\nretry_backoff_seconds = 0.2\nmax_attempts = 2\nmin_free_mib = 0\n"
    );
    let cfg = config(dir.path(), "stemfeed", &body);
    let job = submit(&cfg, &input);
    let catalog = Catalog::open(&format!("sqlite:{}", data.join("catalog.db").display())).unwrap();
    let w = worker(&cfg, "full", dir.path(), false);
    wait_until(
        "three failures for want of space",
        Duration::from_secs(120),
        dir.path(),
        || {
            catalog.events(job).is_ok_and(|events| {
                events
                    .iter()
                    .filter(|e| {
                        e.kind == "retry"
                            && e.detail
                                .as_deref()
                                .is_some_and(|d| d.contains("infrastructure"))
                    })
                    .count()
                    >= 3
            })
        },
    );
    assert!(stop(w).success(), "{}", logs(dir.path()));
    let j = catalog.job(job).unwrap().unwrap();
    assert!(
        !matches!(j.state, JobState::Failed | JobState::Dead),
        "a full disk is not the upload's fault: {j:?}"
    );
    assert!(j.attempts <= 1, "the full disk used up attempts: {j:?}");
    let error = j.last_error.clone().unwrap_or_default();
    eprintln!("while the disk was full: {error}");
    assert!(
        error.contains("full.mp4") && error.contains("transcode"),
        "the failure names the file and the stage: {error}"
    );

    // Space comes back: the same job completes.
    drop(guard);
    let w = worker(&cfg, "roomy", dir.path(), false);
    wait_until(
        "the job in review",
        Duration::from_secs(120),
        dir.path(),
        || {
            catalog
                .job(job)
                .is_ok_and(|j| j.is_some_and(|j| j.state == JobState::InReview))
        },
    );
    assert!(stop(w).success());
    assert_all_in_review_once(&catalog, &[job], dir.path());
}

#[test]
fn under_the_free_space_floor_a_worker_claims_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let body = format!(
        "data_dir = {data:?}\n[worker]\ncaptions = false\nwatch = false\npoll_millis = 100\nmin_free_mib = 1000000000\n"
    );
    let cfg = config(dir.path(), "stemfeed", &body);
    let job = submit(&cfg, &clip(dir.path(), "floor.mp4", 9, "160x284", 1.0));
    let mut w = worker(&cfg, "floor", dir.path(), true);
    let start = Instant::now();
    while w.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            logs(dir.path())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let catalog = Catalog::open(&format!("sqlite:{}", data.join("catalog.db").display())).unwrap();
    let j = catalog.job(job).unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Queued, 0), "{j:?}");
    assert!(
        logs(dir.path()).contains("min_free_mib"),
        "the worker says why it waits"
    );
    let doctor = common::run(common::stemfeed().arg("--config").arg(&cfg).arg("doctor"));
    assert!(
        common::text(&doctor.stdout).contains("min_free_mib"),
        "doctor reports the floor"
    );
}

#[test]
fn the_object_store_killed_and_restarted_mid_run_loses_and_kills_no_job() {
    use common::services::S3Server;
    use stemfeed_store::{ObjectStore, S3Options, S3Store};
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3Server::start_durable(&dir.path().join("s3-recording"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
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
    let data = dir.path().join("data");
    let body = format!(
        "data_dir = {data:?}\n[store]\nurl = \"s3://media\"\nendpoint = \"{}\"\npath_style = true\n[worker]\ncaptions = false\nwatch = false\npoll_millis = 200\nretry_backoff_seconds = 0.5\nmax_attempts = 2\n",
        s3.endpoint()
    );
    let cfg = config(dir.path(), "stemfeed", &body);
    let env = s3.env();
    let submit_s3 = |file: &Path| submit_job(&cfg, file, &env);
    let jobs: Vec<i64> = (0..8)
        .map(|i| {
            submit_s3(&clip(
                dir.path(),
                &format!("s3-{i}.mp4"),
                20 + i,
                "160x284",
                2.0,
            ))
        })
        .collect();
    let catalog = Catalog::open(&format!("sqlite:{}", data.join("catalog.db").display())).unwrap();
    let spawn = |id: &str| spawn_worker(&cfg, id, &env, dir.path(), false);
    let workers = [spawn("s1"), spawn("s2")];
    wait_until(
        "a first completed job",
        Duration::from_secs(120),
        dir.path(),
        || catalog.counts().is_ok_and(|c| c[&JobState::InReview] >= 1),
    );
    // Down in the middle of the run: downloads and uploads in flight fail.
    s3.kill();
    std::thread::sleep(Duration::from_secs(4));
    s3.restart();
    wait_until(
        "every job in review",
        Duration::from_secs(300),
        dir.path(),
        || {
            catalog
                .counts()
                .is_ok_and(|c| c[&JobState::InReview] == jobs.len() as i64)
        },
    );
    for w in workers {
        assert!(stop(w).success(), "{}", logs(dir.path()));
    }
    assert_all_in_review_once(&catalog, &jobs, dir.path());
    let counts = catalog.counts().unwrap();
    assert_eq!(counts[&JobState::Dead] + counts[&JobState::Failed], 0);
    let hit: usize = jobs
        .iter()
        .map(|&id| {
            catalog
                .events(id)
                .unwrap()
                .iter()
                .filter(|e| e.kind == "retry")
                .count()
        })
        .sum();
    eprintln!("attempts the outage interrupted (retried without using an attempt): {hit}");
    // Every published run is complete in the store.
    runtime.block_on(async {
        for &id in &jobs {
            let job = catalog.job(id).unwrap().unwrap();
            let prefix = catalog
                .video(&job.video_id)
                .unwrap()
                .unwrap()
                .output_prefix
                .unwrap();
            let bytes = store
                .get_bytes(&format!("{prefix}/manifest.json"))
                .await
                .unwrap();
            let m = stemfeed_pipeline::Manifest::from_slice(&bytes).unwrap();
            for r in &m.renditions {
                assert!(
                    store
                        .head(&format!("{prefix}/{}", r.path))
                        .await
                        .unwrap()
                        .is_some()
                );
            }
        }
    });
}
