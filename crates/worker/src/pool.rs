//! The job loop: claims jobs from the catalog and runs them, with separate
//! limits for the CPU-bound first half (probe, transcode) and the ASR second
//! half (captions, tags), so job N's captions overlap job N+1's transcode.
//!
//! Untrusted bytes never run here. The worker downloads the upload into a
//! work directory, and each half runs in a child process that sees only
//! that directory ([`stemfeed_pipeline::isolate`]): no credentials, no
//! network, resource limits, a wall clock, killed on cancellation or
//! shutdown. The worker uploads what the child wrote.
//!
//! Publishing: a run's files go to `videos/<video>/runs/<job>-<attempt>/`
//! with that run's manifest last; the job is completed in the catalog (which
//! records the run) only while this worker holds the lease; only then is
//! `videos/<video>/manifest.json` repointed. A worker that lost its lease
//! never touches the pointer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stemfeed_core::{Config, Profile};
use stemfeed_pipeline::contract::{JobSpec, Manifest, StageRequest, StageSettings};
use stemfeed_pipeline::isolate::{Answer, Isolation, Limits, run_stage};
use stemfeed_pipeline::{Fault, Stage, StageError};
use stemfeed_queue::{Catalog, Claim, Failure, FirstCaption, Heartbeat, JobState};
use stemfeed_store::ObjectStore;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::metrics::Metrics;

/// How a pool is started.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Name of this worker in leases and logs (default: host name and process id).
    pub id: Option<String>,
    /// Return once no job is runnable (batch runs, benchmarks, tests).
    pub drain: bool,
    pub config: Config,
    pub profile: Profile,
    /// The `stemfeed` binary whose hidden `stage` command runs a stage.
    pub stage_exe: PathBuf,
}

/// Everything a job needs, shared by all jobs of this worker.
#[derive(Debug)]
struct Shared {
    id: String,
    config: Config,
    profile: Profile,
    isolation: Isolation,
    catalog: Arc<Catalog>,
    store: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
    transcode: Semaphore,
    asr: Semaphore,
    lease: Duration,
    /// This worker's work directory (`<data>/work/<id>/`).
    work: PathBuf,
    /// Jobs running now: id → their status (killed and released on shutdown).
    running: Mutex<HashMap<i64, Arc<Status>>>,
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}

/// Sends `true` on SIGTERM or SIGINT.
pub fn on_signals(tx: tokio::sync::watch::Sender<bool>) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutdown requested: no new jobs; finishing running ones");
        let _ = tx.send(true);
    });
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A file name from a worker id (ids come from the command line).
fn dir_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Takes this worker's work directory and removes those of workers that
/// are gone: each live worker holds an exclusive lock on `<dir>.lock`.
fn claim_work_dir(
    root: &Path,
    id: &str,
) -> anyhow::Result<(PathBuf, nix::fcntl::Flock<std::fs::File>)> {
    use nix::fcntl::{Flock, FlockArg};
    std::fs::create_dir_all(root)?;
    let lock_of = |name: &str| -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(format!("{name}.lock")))
    };
    let mine = dir_name(id);
    let lock =
        Flock::lock(lock_of(&mine)?, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            anyhow::anyhow!(
                "{}: another worker named {id:?} runs here ({e})",
                root.display()
            )
        })?;
    for entry in std::fs::read_dir(root)?.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name.ends_with(".lock") || !path.is_dir() {
            continue;
        }
        let stale = name == mine
            || match lock_of(&name) {
                Ok(f) => Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok(),
                Err(_) => false,
            };
        if stale {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(dir = %path.display(), "removed a stale work directory"),
                Err(e) => {
                    tracing::warn!(dir = %path.display(), "could not remove a stale work directory: {e}")
                }
            }
            let _ = std::fs::remove_file(root.join(format!("{name}.lock")));
        }
    }
    let dir = root.join(&mine);
    std::fs::create_dir_all(&dir)?;
    Ok((dir, lock))
}

/// The job loop; returns after `stop` turns true (or, with `drain`, once
/// nothing is runnable).
pub async fn run_pool(
    options: WorkerOptions,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    let WorkerOptions {
        id,
        drain,
        config,
        profile,
        stage_exe,
    } = options;
    let w = config.worker.clone();
    anyhow::ensure!(
        w.transcode_slots >= 1 && w.asr_slots >= 1,
        "worker: transcode_slots and asr_slots must be at least 1"
    );
    // Other processes of this user (a stage gone rogue among them) may not
    // ptrace this one or read its memory and environment through /proc.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!("could not make the worker undumpable: {e}");
    }
    // A broken taxonomy fails the worker now, not every job later.
    stemfeed_pipeline::tag::tagger(&config.tagging)?;
    let id = id.unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
    let catalog = crate::wiring::open_catalog(&config).await?;
    let store = crate::wiring::open_store(&config).await?;
    let metrics = Arc::new(Metrics::default());
    if let Some(listen) = w.metrics_listen.clone() {
        let (m, c) = (Arc::clone(&metrics), Arc::clone(&catalog));
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(listen, m, c).await {
                tracing::error!("metrics endpoint: {e:#}");
            }
        });
    }
    let isolation = Isolation { exe: stage_exe };
    let sandbox = stemfeed_pipeline::isolate::check_sandbox(&isolation)
        .await
        .map_err(|e| anyhow::anyhow!("checking the stage sandbox: {e}"))?;
    if sandbox.complete() {
        tracing::info!(%sandbox, "stage processes are sandboxed");
    } else if w.require_sandbox {
        anyhow::bail!(
            "stage processes cannot be fully sandboxed on this machine ({sandbox}); \
             untrusted uploads would be decoded with more access than they need. \
             Use a kernel with Landlock (ABI 6, Linux 6.12+) and user or network namespaces, \
             or set worker.require_sandbox = false to accept the risk"
        );
    } else {
        tracing::warn!(%sandbox, "stage processes are NOT fully sandboxed (worker.require_sandbox = false)");
    }
    let (work, _work_lock) = claim_work_dir(&config.data_dir.join("work"), &id)?;
    tracing::info!(worker = %id, store = %store.describe(), catalog = %catalog.describe(), "worker started");
    let shared = Arc::new(Shared {
        id,
        lease: Duration::from_secs(w.lease_seconds.max(3)),
        transcode: Semaphore::new(w.transcode_slots),
        asr: Semaphore::new(w.asr_slots),
        isolation,
        config,
        profile,
        catalog,
        store,
        metrics,
        work,
        running: Mutex::new(HashMap::new()),
    });

    let slots = Arc::new(Semaphore::new(w.transcode_slots + w.asr_slots));
    let poll = Duration::from_millis(w.poll_millis.max(50));
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_scan: Option<Instant> = None;
    let mut last_disk_warning: Option<Instant> = None;
    let mut seen = crate::ingest::Seen::new();
    while !*stop.borrow() {
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                tracing::error!("job task ended abnormally: {e}");
            }
        }
        if w.watch && last_scan.is_none_or(|t| t.elapsed() >= poll) {
            last_scan = Some(Instant::now());
            if let Err(e) = crate::ingest::scan_incoming(
                &*shared.store,
                &shared.catalog,
                &shared.id,
                &shared.work,
                w.max_attempts,
                shared.lease,
                &mut seen,
            )
            .await
            {
                tracing::warn!("watching incoming/: {e:#}");
            }
        }
        // Below the free-space floor a job could only fail for want of
        // room: claim nothing until space comes back.
        match crate::wiring::free_mib(&shared.work) {
            Ok(free) if free < w.min_free_mib => {
                shared.metrics.disk_low(true);
                if last_disk_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_disk_warning = Some(Instant::now());
                    tracing::warn!(
                        free_mib = free,
                        floor_mib = w.min_free_mib,
                        dir = %shared.work.display(),
                        "free space under worker.min_free_mib: not claiming jobs"
                    );
                }
                if drain && tasks.is_empty() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stopped(stop.clone()) => break,
                }
                continue;
            }
            Ok(_) => shared.metrics.disk_low(false),
            Err(e) => tracing::warn!("checking free space in {}: {e}", shared.work.display()),
        }
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p?,
            _ = stopped(stop.clone()) => break,
        };
        let (c, who, lease) = (Arc::clone(&shared.catalog), shared.id.clone(), shared.lease);
        let claim = match tokio::task::spawn_blocking(move || c.claim(&who, lease)).await? {
            Ok(claim) => claim,
            Err(e) => {
                tracing::warn!("claiming a job: {e}");
                None
            }
        };
        let Some(claim) = claim else {
            drop(permit);
            if drain && tasks.is_empty() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stopped(stop.clone()) => break,
            }
            continue;
        };
        let shared = Arc::clone(&shared);
        let span = tracing::info_span!("job", id = claim.job.id, video = %claim.video.id, attempt = claim.job.attempts);
        tasks.spawn(
            async move {
                run_job(&shared, claim).await;
                drop(permit);
            }
            .instrument(span),
        );
    }

    // Shutdown: give running jobs the grace period; then kill their stage
    // processes and hand their leases back to another worker.
    let grace = Duration::from_secs(w.shutdown_grace_seconds);
    let finished =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_ok();
    if !finished {
        if let Ok(running) = shared.running.lock() {
            for status in running.values() {
                status.shutdown.store(true, Ordering::SeqCst);
            }
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!("worker stopped (unfinished jobs handed back)");
    } else {
        tracing::info!("worker stopped");
    }
    Ok(ExitCode::SUCCESS)
}

/// Why an attempt ended without outputs.
#[derive(Debug)]
struct JobError {
    failure: Failure,
    reason: &'static str,
    message: String,
}

impl JobError {
    /// The worker's own side failed (store, disk, catalog): no attempt charged.
    fn infrastructure(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            failure: Failure::Infrastructure,
            reason,
            message: message.into(),
        }
    }
}

impl From<StageError> for JobError {
    fn from(e: StageError) -> Self {
        let (failure, reason) = match e.fault {
            Fault::BadInput => (Failure::BadInput, "bad_input"),
            Fault::Transient => (Failure::Transient, e.stage.name()),
            Fault::Infrastructure => (Failure::Infrastructure, "infrastructure"),
            Fault::Crash => (Failure::Crash, "crash"),
        };
        Self {
            failure,
            reason,
            message: e.to_string(),
        }
    }
}

/// Shared between a job's stages, its heartbeat and the pool.
#[derive(Debug)]
struct Status {
    state: Mutex<(JobState, f64)>,
    lost: AtomicBool,
    cancel: AtomicBool,
    shutdown: AtomicBool,
}

impl Status {
    fn set(&self, stage: Stage, fraction: f64) {
        let state = match stage {
            Stage::Probe => JobState::Probing,
            Stage::Transcode => JobState::Transcoding,
            Stage::Captions => JobState::Captioning,
            Stage::Tagging => JobState::Tagging,
        };
        if let Ok(mut s) = self.state.lock() {
            *s = (state, fraction);
        }
    }

    fn stopped(&self) -> Option<&'static str> {
        if self.lost.load(Ordering::SeqCst) {
            Some("lease lost")
        } else if self.cancel.load(Ordering::SeqCst) {
            Some("cancelled")
        } else if self.shutdown.load(Ordering::SeqCst) {
            Some("worker shutting down")
        } else {
            None
        }
    }

    /// Resolves, with the reason, once the job must stop.
    async fn until_stopped(&self) -> String {
        loop {
            if let Some(why) = self.stopped() {
                return why.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// How long the end-of-job catalog writes keep trying through a catalog
/// outage (a PostgreSQL restart, a failover) before giving up; the lease
/// then expires and another attempt runs the job.
const CATALOG_PATIENCE: Duration = Duration::from_secs(60);

/// Runs a catalog call on a blocking thread, retrying transient errors
/// (connection lost, timeouts, serialization conflicts) with backoff.
async fn catalog_call<T: Send + 'static>(
    catalog: &Arc<Catalog>,
    what: &str,
    f: impl Fn(&Catalog) -> Result<T, stemfeed_queue::QueueError> + Send + Sync + 'static,
) -> Result<T, String> {
    let f = Arc::new(f);
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let (c, f) = (Arc::clone(catalog), Arc::clone(&f));
        match tokio::task::spawn_blocking(move || f(&c)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if e.is_transient() && started.elapsed() < CATALOG_PATIENCE => {
                tracing::warn!("{what}: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Ok(Err(e)) => return Err(format!("{what}: {e}")),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

async fn run_job(shared: &Arc<Shared>, claim: Claim) {
    let (job_id, token) = (claim.job.id, claim.token.clone());
    tracing::info!(file = %claim.video.original_name, "claimed");
    let status = Arc::new(Status {
        state: Mutex::new((JobState::Probing, 0.0)),
        lost: AtomicBool::new(false),
        cancel: AtomicBool::new(false),
        shutdown: AtomicBool::new(false),
    });
    if let Ok(mut r) = shared.running.lock() {
        r.insert(job_id, Arc::clone(&status));
    }
    let heartbeat = {
        let (shared, status, token) = (Arc::clone(shared), Arc::clone(&status), token.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(shared.lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (state, progress) = status
                    .state
                    .lock()
                    .map(|s| *s)
                    .unwrap_or((JobState::Probing, 0.0));
                let (c, t, lease) = (Arc::clone(&shared.catalog), token.clone(), shared.lease);
                match tokio::task::spawn_blocking(move || {
                    c.heartbeat(job_id, &t, state, progress, lease)
                })
                .await
                {
                    Ok(Ok(Heartbeat::Held)) => {}
                    Ok(Ok(Heartbeat::Lost)) => {
                        tracing::warn!("lease lost: another worker has this job now");
                        status.lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Ok(Ok(Heartbeat::CancelRequested)) => {
                        status.cancel.store(true, Ordering::SeqCst)
                    }
                    other => tracing::warn!("heartbeat failed (will retry): {other:?}"),
                }
            }
        })
    };

    let started = Instant::now();
    let run = format!("{}-{}", claim.job.id, claim.job.attempts);
    let dir = shared.work.join(format!("job-{run}"));
    let result = execute(shared, &claim, &status, &dir).await;
    heartbeat.abort();
    // The work directory held a copy of the upload and the outputs, all in
    // the store now or not wanted: it goes either way.
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), "removing the work directory: {e}");
    }
    let who = shared.id.clone();
    let catalog = &shared.catalog;
    let outcome = match result {
        Ok(media_s) => {
            shared
                .metrics
                .completed(media_s, started.elapsed().as_secs_f64());
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "completed: in review"
            );
            Ok(())
        }
        Err(e) if status.cancel.load(Ordering::SeqCst) => {
            let done = catalog_call(catalog, "recording the cancellation", move |c| {
                c.cancelled(job_id, &token, &who)
            })
            .await;
            Err(format!("cancelled ({}): {done:?}", e.message))
        }
        Err(_) if status.shutdown.load(Ordering::SeqCst) => {
            match catalog_call(catalog, "releasing the lease", move |c| {
                c.release(job_id, &token, &who)
            })
            .await
            {
                Ok(true) => {
                    Err("worker shutting down: lease released for another worker".to_owned())
                }
                other => Err(format!(
                    "worker shutting down: could not release the lease: {other:?}"
                )),
            }
        }
        Err(e) if status.lost.load(Ordering::SeqCst) => {
            shared.metrics.failure("lease_lost");
            Err(format!(
                "lease lost; the run's outputs are unused ({})",
                e.message
            ))
        }
        Err(e) => {
            shared.metrics.failure(e.reason);
            if e.failure == Failure::Crash {
                shared.metrics.crash(e.reason);
            }
            let backoff =
                Duration::from_secs_f64(shared.config.worker.retry_backoff_seconds.max(0.0));
            let message = e.message.clone();
            let failure = e.failure;
            let next = catalog_call(catalog, "recording the failure", move |c| {
                c.fail(job_id, &token, &who, &message, failure, backoff)
            })
            .await;
            if matches!(next, Ok(Some(JobState::Queued))) {
                shared.metrics.retry();
            }
            Err(format!("{} → {next:?}", e.message))
        }
    };
    if let Err(message) = outcome {
        tracing::warn!("attempt ended: {message}");
    }
    if let Ok(mut r) = shared.running.lock() {
        r.remove(&job_id);
    }
}

/// The wall-clock and CPU limits of a stage over `media_s` seconds of media.
fn limits(config: &Config, media_s: f64) -> Limits {
    let w = &config.worker;
    let wall = w.stage_base_seconds as f64 + w.stage_seconds_per_media_second.max(0.0) * media_s;
    // CPU time over all threads: generous (encoders and Whisper use several
    // cores), it only stops a process that spins forever.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    Limits {
        memory_mib: w.stage_memory_mib,
        file_mib: w.stage_file_mib,
        cpu_seconds: (wall * cores).ceil() as u64,
        open_files: 1024,
        wall: Duration::from_secs_f64(wall),
    }
}

async fn stage(
    shared: &Arc<Shared>,
    status: &Arc<Status>,
    request: StageRequest,
    limits: &Limits,
) -> Result<Answer, JobError> {
    let progress_status = Arc::clone(status);
    let mut progress = move |s: Stage, f: f64| progress_status.set(s, f);
    run_stage(
        &shared.isolation,
        &request,
        limits,
        &mut progress,
        status.until_stopped(),
    )
    .await
    .map_err(JobError::from)
}

async fn execute(
    shared: &Arc<Shared>,
    claim: &Claim,
    status: &Arc<Status>,
    dir: &Path,
) -> Result<f64, JobError> {
    let video = &claim.video;
    let run = format!("{}-{}", claim.job.id, claim.job.attempts);
    let io = |what: &str| {
        let what = format!("{}: {what}", video.original_name);
        move |e: std::io::Error| {
            let fault = stemfeed_pipeline::error::io_fault(&e);
            let failure = if fault == Fault::Infrastructure {
                Failure::Infrastructure
            } else {
                Failure::Transient
            };
            JobError {
                failure,
                reason: "io",
                message: format!("{what}: {e}"),
            }
        }
    };
    let _ = tokio::fs::remove_dir_all(dir).await;
    tokio::fs::create_dir_all(dir.join("scratch"))
        .await
        .map_err(io("creating the work directory"))?;
    let input: PathBuf = dir.join("source");
    let t = Instant::now();
    shared
        .store
        .get_file(&video.source_key, &input)
        .await
        .map_err(|e| {
            let message = format!("{}: fetching the upload: {e}", video.original_name);
            if e.is_not_found() {
                // Not an outage: the original is gone, and waiting will not
                // bring it back. Charged, so the job ends dead, not looping.
                JobError {
                    failure: Failure::Transient,
                    reason: "store",
                    message,
                }
            } else {
                JobError::infrastructure("store", message)
            }
        })?;
    shared.metrics.stage("download", t.elapsed().as_secs_f64());

    let job = JobSpec {
        input,
        display_name: video.original_name.clone(),
        out: dir.join("out"),
        scratch: dir.join("scratch"),
        profile: shared.profile.clone(),
        language: video.language_hint.clone(),
        title: Some(video.title.clone()).filter(|s| !s.is_empty()),
        description: Some(video.description.clone()).filter(|s| !s.is_empty()),
        grade: video.grade_hint,
        captions: shared.config.worker.captions,
    };
    let settings = StageSettings::from(&shared.config);

    let permit = shared
        .transcode
        .acquire()
        .await
        .map_err(|e| JobError::infrastructure("io", e.to_string()))?;
    let t = Instant::now();
    // Probing happens inside: the limit follows the longest video the
    // profile accepts.
    let prepare_limits = limits(&shared.config, shared.profile.limits.max_duration_s);
    let prepared = match stage(
        shared,
        status,
        StageRequest::Prepare {
            job: job.clone(),
            settings: settings.clone(),
        },
        &prepare_limits,
    )
    .await?
    {
        Answer::Prepared(p) => p,
        Answer::Finished(_) => {
            return Err(JobError::from(StageError::new(
                &video.original_name,
                Stage::Transcode,
                Fault::Crash,
                "the stage process answered out of turn",
            )));
        }
    };
    drop(permit);
    shared.metrics.stage("transcode", t.elapsed().as_secs_f64());
    // The child's numbers are checked, not trusted: the next limit and the
    // metrics derive from this one.
    let media_s = prepared.info.duration_s;
    let longest = shared.profile.limits.max_duration_s * 1.1 + 2.0;
    if !(media_s.is_finite() && media_s >= 0.0 && media_s <= longest) {
        return Err(JobError::from(StageError::new(
            &video.original_name,
            Stage::Transcode,
            Fault::Crash,
            format!("the stage process reported an impossible duration ({media_s} s)"),
        )));
    }

    let permit = shared
        .asr
        .acquire()
        .await
        .map_err(|e| JobError::infrastructure("io", e.to_string()))?;
    let t = Instant::now();
    let finish_limits = limits(&shared.config, media_s);
    let manifest = match stage(
        shared,
        status,
        StageRequest::Finish {
            job: job.clone(),
            settings,
            prepared,
        },
        &finish_limits,
    )
    .await?
    {
        Answer::Finished(m) => m,
        Answer::Prepared(_) => {
            return Err(JobError::from(StageError::new(
                &video.original_name,
                Stage::Captions,
                Fault::Crash,
                "the stage process answered out of turn",
            )));
        }
    };
    drop(permit);
    shared
        .metrics
        .stage("captions_and_tags", t.elapsed().as_secs_f64());
    if let Some(why) = status.stopped() {
        return Err(JobError::infrastructure("stopped", why));
    }
    publish(shared, claim, &job, *manifest, &run).await?;
    Ok(media_s)
}

/// The outputs are plain files and directories, none linked from
/// elsewhere: a stage process that was taken over could otherwise plant a
/// symbolic or hard link to a credentials file and have the worker publish
/// it. (The stage processes are gone by now; their sandbox also forbids
/// making links and special files.)
fn verify_outputs(out: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let rel = path
                .strip_prefix(out)
                .unwrap_or(&path)
                .display()
                .to_string();
            if meta.is_dir() {
                stack.push(path);
            } else if !meta.is_file() {
                return Err(format!("{rel} is not a regular file"));
            } else if meta.nlink() != 1 {
                return Err(format!("{rel} is a hard link"));
            }
        }
    }
    Ok(())
}

/// The run's recognised tracks as the catalog's first caption versions,
/// read from the verified outputs.
fn first_captions(out: &Path, manifest: &Manifest) -> Result<Vec<FirstCaption>, String> {
    manifest
        .tracks()
        .iter()
        .map(|t| {
            let path = out.join(t.files.json_path()?);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", t.files.json))?;
            Ok(FirstCaption {
                track: t.name(),
                status: t.status.as_str().to_owned(),
                reason: t.reason.clone(),
                cues: t.cues_json(&bytes)?,
            })
        })
        .collect()
}

/// Uploads the run, completes the job under the lease, then repoints the
/// video's manifest.
async fn publish(
    shared: &Arc<Shared>,
    claim: &Claim,
    job: &JobSpec,
    manifest: Manifest,
    run: &str,
) -> Result<(), JobError> {
    let video = &claim.video;
    verify_outputs(&job.out).map_err(|e| {
        JobError::from(StageError::new(
            &video.original_name,
            Stage::Tagging,
            Fault::Crash,
            format!("refusing the outputs: {e}"),
        ))
    })?;
    let captions = first_captions(&job.out, &manifest).map_err(|e| {
        JobError::from(StageError::new(
            &video.original_name,
            Stage::Captions,
            Fault::Crash,
            format!("refusing the outputs: {e}"),
        ))
    })?;
    let t = Instant::now();
    let prefix = format!("videos/{}", video.id);
    let run_prefix = format!("{prefix}/runs/{run}");
    stemfeed_store::put_tree(&*shared.store, &job.out, &run_prefix, Some("manifest.json"))
        .await
        .map_err(|e| {
            JobError::infrastructure(
                "store",
                format!("{}: uploading outputs: {e}", video.original_name),
            )
        })?;

    // The catalog decides: only the lease holder completes, and the
    // completed run is the video's current one.
    let (who, token, job_id, p) = (
        shared.id.clone(),
        claim.token.clone(),
        claim.job.id,
        run_prefix.clone(),
    );
    match catalog_call(&shared.catalog, "completing the job", move |c| {
        c.complete(job_id, &token, &who, &p, &captions)
    })
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(JobError {
                failure: Failure::Transient,
                reason: "lease_lost",
                message: format!(
                    "{}: lease lost before completion; run {run} is not published",
                    video.original_name
                ),
            });
        }
        Err(e) => {
            return Err(JobError::infrastructure(
                "catalog",
                format!("{}: {e}", video.original_name),
            ));
        }
    }

    // The pointer for readers of the store alone. The catalog already
    // names this run; a failure here leaves the previous pointer, never a
    // half-written one.
    let mut pointer = manifest;
    pointer.base = Some(format!("runs/{run}/"));
    pointer.video_id = Some(video.id.clone());
    if let Err(e) = shared
        .store
        .put_bytes(&format!("{prefix}/manifest.json"), pointer.to_json())
        .await
    {
        tracing::warn!(
            "{}: writing {prefix}/manifest.json: {e} (the catalog names run {run})",
            video.original_name
        );
    }
    shared.metrics.stage("upload", t.elapsed().as_secs_f64());
    Ok(())
}
