//! Stage isolation for real: a `stemfeed worker` (embedded: SQLite and a
//! local directory) whose stage process is made to abort, segfault or hang
//! by the test-only switch `STEMFEED_TEST_FAULT`. Checks that the crash is
//! retried once and then refused naming the stage and the signal, that a
//! hang is killed at the stage's wall-clock limit, that the worker lives on
//! and leaves no process behind; that a stage process holds no credentials,
//! no inherited descriptors, its own network namespace and resource limits;
//! and that a worker that lost its lease never repoints the published
//! manifest.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::workers::{self, wait_exit};
use stemfeed_queue::{Catalog, JobState};

/// A 1.5 s 160×284 clip with a tone: tiny, but every stage runs on it.
fn clip(dir: &Path, name: &str, seed: u32) -> PathBuf {
    workers::tone_clip(dir, name, seed, "160x284", 1.5)
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// An embedded deployment: the worker's config carries a fake secret in
/// its environment so the test can look for it in the stage process.
fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("stemfeed.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[worker]\ncaptions = false\nwatch = false\npoll_millis = 100\nretry_backoff_seconds = 0\n{extra}"
        ),
    )
    .unwrap();
    Setup { dir, config }
}

impl Setup {
    fn catalog(&self) -> Catalog {
        Catalog::open(&format!(
            "sqlite:{}",
            self.dir.path().join("data/catalog.db").display()
        ))
        .unwrap()
    }

    fn submit(&self, file: &Path) -> i64 {
        workers::submit_job(&self.config, file, workers::NO_ENV)
    }

    fn worker(&self, id: &str, env: &[(&str, &str)], drain: bool) -> Child {
        let mut env = env.to_vec();
        env.push(("AWS_SECRET_ACCESS_KEY", "test-secret-must-not-leak"));
        workers::spawn_worker(&self.config, id, &env, self.dir.path(), drain)
    }

    fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{id}.log"))).unwrap_or_default()
    }
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces; split after ')'.
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == pid {
            out.push(p);
        }
    }
    out
}

/// Processes whose command line mentions `needle` (leftover stage processes).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{p}/cwd")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) || cwd.to_string_lossy().contains(needle)
        {
            out.push(p);
        }
    }
    out
}

fn final_job(catalog: &Catalog, id: i64) -> stemfeed_queue::Job {
    catalog.job(id).unwrap().expect("job exists")
}

#[test]
fn a_crashing_stage_is_retried_once_then_refused_naming_stage_and_signal() {
    for (fault, signal) in [("transcode:abort", "SIGABRT"), ("probe:segv", "SIGSEGV")] {
        let s = setup("max_attempts = 3\n");
        let job = s.submit(&clip(s.dir.path(), "crash.mp4", 1));
        let mut worker = s.worker("w", &[("STEMFEED_TEST_FAULT", fault)], true);
        let status = wait_exit(&mut worker, Duration::from_secs(120));
        let log = s.log("w");
        assert!(
            status.success(),
            "{fault}: the worker survives its stage crashing\n{log}"
        );
        let j = final_job(&s.catalog(), job);
        assert_eq!(
            j.state,
            JobState::Failed,
            "{fault}: refused after the second crash\n{log}"
        );
        assert_eq!(j.attempts, 2, "{fault}: one retry, then refused");
        let error = j.last_error.unwrap_or_default();
        let stage = fault.split(':').next().unwrap();
        assert!(
            error.contains("crash.mp4") && error.contains(stage) && error.contains(signal),
            "{fault}: the reason names the file, the stage and the signal: {error}"
        );
        assert!(
            processes_mentioning(&s.dir.path().display().to_string()).is_empty(),
            "{fault}: no stage process is left behind"
        );
    }
}

#[test]
fn a_hanging_stage_is_killed_at_its_limit_and_the_worker_carries_on() {
    // A 4 s stage limit; the second upload has no fault and must complete.
    let s = setup("max_attempts = 3\nstage_base_seconds = 4\nstage_seconds_per_media_second = 0\n");
    let hung = s.submit(&clip(s.dir.path(), "hang.mp4", 2));
    let mut worker = s.worker("w", &[("STEMFEED_TEST_FAULT", "transcode:hang")], true);
    let status = wait_exit(&mut worker, Duration::from_secs(120));
    let log = s.log("w");
    assert!(status.success(), "{log}");
    let j = final_job(&s.catalog(), hung);
    assert_eq!(j.state, JobState::Failed, "{log}");
    assert_eq!(j.attempts, 2);
    let error = j.last_error.unwrap_or_default();
    assert!(
        error.contains("hang.mp4") && error.contains("transcode") && error.contains("within 4 s"),
        "{error}"
    );
    assert!(processes_mentioning(&s.dir.path().display().to_string()).is_empty());

    // Same worker setup without the fault: the job completes.
    let ok = s.submit(&clip(s.dir.path(), "fine.mp4", 3));
    let mut worker = s.worker("w2", &[], true);
    assert!(wait_exit(&mut worker, Duration::from_secs(120)).success());
    assert_eq!(
        final_job(&s.catalog(), ok).state,
        JobState::InReview,
        "{}",
        s.log("w2")
    );
}

#[test]
fn a_stage_process_has_no_credentials_descriptors_or_network_and_is_limited() {
    let s = setup("stage_memory_mib = 3000\nstage_file_mib = 700\nshutdown_grace_seconds = 1\n");
    let job = s.submit(&clip(s.dir.path(), "inspect.mp4", 4));
    let mut worker = s.worker("w", &[("STEMFEED_TEST_FAULT", "transcode:hang")], false);
    let pid = worker.id();
    // Find the stage process while it hangs.
    let start = Instant::now();
    let stage = loop {
        let kids: Vec<u32> = children_of(pid)
            .into_iter()
            .filter(|c| {
                String::from_utf8_lossy(
                    &std::fs::read(format!("/proc/{c}/cmdline")).unwrap_or_default(),
                )
                .contains("stage")
            })
            .collect();
        if let Some(&k) = kids.first() {
            // Give it a moment to lock itself down and reach the hang (the
            // worker's start-up `stage --check` comes and goes first).
            std::thread::sleep(Duration::from_millis(1500));
            if std::fs::metadata(format!("/proc/{k}")).is_ok() {
                break k;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no stage process appeared\n{}",
            s.log("w")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let environ =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{stage}/environ")).unwrap())
            .into_owned();
    assert!(
        !environ.contains("test-secret-must-not-leak"),
        "credentials reached the stage"
    );
    assert!(!environ.contains("AWS_"), "AWS variables reached the stage");
    // Nothing the worker holds open reaches the stage (GStreamer opens its
    // own descriptors since: the input, outputs, eventfds, pipes).
    let worker_fds: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect();
    assert!(
        worker_fds
            .iter()
            .any(|f| f.to_string_lossy().contains("catalog.db")),
        "the worker holds the catalog open: {worker_fds:?}"
    );
    for e in std::fs::read_dir(format!("/proc/{stage}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        assert!(
            !target.to_string_lossy().contains("catalog.db")
                && !target.to_string_lossy().ends_with(".lock"),
            "the stage process holds the worker's file {}",
            target.display()
        );
        assert!(
            !target.to_string_lossy().starts_with("socket:"),
            "the stage process holds a socket: {}",
            target.display()
        );
    }
    let ns = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/net")).unwrap();
    assert_ne!(
        ns(stage),
        ns(pid),
        "the stage process shares the worker's network"
    );
    let limits = std::fs::read_to_string(format!("/proc/{stage}/limits")).unwrap();
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("Max address space").contains(&(3000u64 << 20).to_string()),
        "{limits}"
    );
    assert!(
        line("Max file size").contains(&(700u64 << 20).to_string()),
        "{limits}"
    );
    assert!(!line("Max cpu time").contains("unlimited"), "{limits}");
    assert!(
        line("Max core file size")
            .split_whitespace()
            .any(|w| w == "0"),
        "{limits}"
    );
    // Its own process group.
    let pgid = |p: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(pgid(stage), stage);
    assert_ne!(pgid(stage), pgid(pid));

    // SIGTERM with a short grace: the worker kills the stage, hands the
    // job back and exits cleanly.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = wait_exit(&mut worker, Duration::from_secs(60));
    assert!(status.success(), "{}", s.log("w"));
    assert!(
        std::fs::metadata(format!("/proc/{stage}")).is_err(),
        "the stage process outlived the worker"
    );
    let j = final_job(&s.catalog(), job);
    assert_eq!(
        j.state,
        JobState::Queued,
        "handed back for another worker: {j:?}"
    );
}

#[test]
fn a_worker_that_lost_its_lease_never_repoints_the_manifest() {
    let s = setup("max_attempts = 3\nlease_seconds = 3\n");
    let job = s.submit(&clip(s.dir.path(), "lease.mp4", 5));
    let catalog = s.catalog();
    let mut a = s.worker("a", &[], false);
    // Freeze worker A as soon as it holds the job.
    let start = Instant::now();
    while final_job(&catalog, job).lease_owner.as_deref() != Some("a") {
        assert!(start.elapsed() < Duration::from_secs(60), "{}", s.log("a"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let a_pid = a.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &a_pid])
            .status()
            .unwrap()
            .success()
    );
    // Its lease runs out; worker B takes the job over and publishes.
    std::thread::sleep(Duration::from_secs(4));
    let mut b = s.worker("b", &[], true);
    assert!(
        wait_exit(&mut b, Duration::from_secs(120)).success(),
        "{}",
        s.log("b")
    );
    let j = final_job(&catalog, job);
    assert_eq!(j.state, JobState::InReview, "{}", s.log("b"));
    let video = catalog.video(&j.video_id).unwrap().unwrap();
    let published = video.output_prefix.clone().unwrap();
    let pointer = s
        .dir
        .path()
        .join(format!("data/objects/videos/{}/manifest.json", video.id));
    let before = std::fs::read(&pointer).unwrap();
    // Worker A wakes up, finishes whatever it was doing, and must not touch
    // the pointer or the catalog's run.
    assert!(
        Command::new("kill")
            .args(["-CONT", &a_pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_secs(8));
    let _ = Command::new("kill").args(["-TERM", &a_pid]).status();
    let status = wait_exit(&mut a, Duration::from_secs(60));
    assert!(status.success(), "{}", s.log("a"));
    assert_eq!(
        std::fs::read(&pointer).unwrap(),
        before,
        "worker A repointed the manifest\n{}",
        s.log("a")
    );
    let video = catalog.video(&j.video_id).unwrap().unwrap();
    assert_eq!(video.output_prefix.unwrap(), published);
    let j = final_job(&catalog, job);
    assert_eq!(j.state, JobState::InReview);
    let completions = catalog
        .events(job)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "completed")
        .count();
    assert_eq!(completions, 1, "completed exactly once");
}

#[test]
fn a_compromised_stage_cannot_read_the_catalog_or_signal_the_worker() {
    let s = setup("max_attempts = 1\n");
    let job = s.submit(&clip(s.dir.path(), "escape.mp4", 6));
    let mut worker = s.worker("w", &[("STEMFEED_TEST_FAULT", "probe:escape")], true);
    assert!(wait_exit(&mut worker, Duration::from_secs(120)).success());
    let log = s.log("w");
    let tries: Vec<&str> = log.lines().filter(|l| l.contains("escape:")).collect();
    assert!(
        tries
            .iter()
            .any(|l| l.contains("catalog.db") && l.contains("denied")),
        "the catalog must be out of reach: {tries:#?}"
    );
    assert!(
        !tries.iter().any(|l| l.contains("read ")),
        "the stage read a file it must not: {tries:#?}"
    );
    assert!(
        tries
            .iter()
            .any(|l| l.contains("signalling the worker") && l.contains("EPERM")),
        "the worker must be out of reach: {tries:#?}"
    );
    let j = final_job(&s.catalog(), job);
    assert!(
        matches!(j.state, JobState::Failed | JobState::Dead),
        "{j:?}"
    );
}
