//! The job loop: claims jobs from the catalog and runs them, with separate
//! limits for the CPU-bound first half (probe, loudness and ASR audio,
//! transcode) and the ASR second half (captions, tags). Within a job the
//! captions start as soon as the ASR audio is written, beside the encode;
//! across jobs, job N's captions overlap job N+1's transcode.
//!
//! Workers by capability (`worker.stages`): a transcode-only worker runs
//! the first half, uploads the renditions and the hand-off (the first
//! half's result and the ASR audio) under the run's prefix, and hands the
//! job on in the catalog; a captions worker claims it there, fetches the
//! hand-off, captions, tags and completes the same run. Each part has its
//! own lease and attempts.
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
use stemfeed_pipeline::contract::{
    AudioReady, Captioned, JobSpec, Manifest, StageRequest, StageSettings,
};
use stemfeed_pipeline::isolate::{Answer, Isolation, Limits, run_stage};
use stemfeed_pipeline::{Fault, Stage, StageError};
use stemfeed_queue::{Catalog, Claim, Failure, FirstCaption, Heartbeat, JobState, Phase};
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
    config.worker.check().map_err(|e| anyhow::anyhow!(e))?;
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

    // The parts of jobs this worker claims, and as many claims at once as
    // it has slots for them.
    let mut phases = Vec::new();
    let mut slot_count = 0;
    if w.transcodes() {
        phases.push(Phase::Transcode);
        slot_count += w.transcode_slots;
    }
    if w.captions_and_tags() {
        phases.push(Phase::Captions);
        slot_count += w.asr_slots;
    }
    tracing::info!(stages = ?w.stages, "claiming {phases:?}");
    let phases = Arc::new(phases);
    let slots = Arc::new(Semaphore::new(slot_count));
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
        let (c, who, lease, phases) = (
            Arc::clone(&shared.catalog),
            shared.id.clone(),
            shared.lease,
            Arc::clone(&phases),
        );
        let claim = match tokio::task::spawn_blocking(move || c.claim(&who, lease, &phases)).await?
        {
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

/// What curators changed in approved transcripts, per language and model,
/// for judging this job's tracks. Only an aid: without it (catalog busy)
/// the shipped `eval asr` figures judge them.
async fn curator_accuracy(
    shared: &Arc<Shared>,
) -> Vec<stemfeed_pipeline::contract::CuratorAccuracy> {
    match tokio::task::spawn_blocking({
        let c = Arc::clone(&shared.catalog);
        move || c.curator_accuracy()
    })
    .await
    {
        Ok(Ok(rows)) => rows
            .into_iter()
            .map(|r| stemfeed_pipeline::contract::CuratorAccuracy {
                language: r.language,
                model: r.model,
                tracks: usize::try_from(r.tracks).unwrap_or(0),
                words: usize::try_from(r.words).unwrap_or(0),
                words_changed: usize::try_from(r.words_changed).unwrap_or(0),
            })
            .collect(),
        Ok(Err(e)) => {
            tracing::warn!(
                "reading the curators' accuracy: {e}; judging tracks by the shipped figures"
            );
            Vec::new()
        }
        Err(e) => {
            tracing::warn!("reading the curators' accuracy: {e}");
            Vec::new()
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
        Ok(Done::Completed(media_s)) => {
            shared
                .metrics
                .completed(media_s, started.elapsed().as_secs_f64());
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "completed: in review"
            );
            Ok(())
        }
        Ok(Done::HandedOff(media_s)) => {
            shared.metrics.handed_off();
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                media_s,
                "transcode part done: handed on for captions"
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
    audio_ready: &mut (dyn FnMut(AudioReady) + Send),
) -> Result<Answer, JobError> {
    let progress_status = Arc::clone(status);
    let mut progress = move |s: Stage, f: f64| progress_status.set(s, f);
    run_stage(
        &shared.isolation,
        &request,
        limits,
        &mut progress,
        audio_ready,
        status.until_stopped(),
    )
    .await
    .map_err(JobError::from)
}

/// How an attempt that did its part ended.
enum Done {
    /// The job is complete and in review; the seconds of media it had.
    Completed(f64),
    /// The transcode part is in the store and the job handed on to a
    /// captions worker.
    HandedOff(f64),
}

/// Where a transcode-only worker leaves what the captions part needs,
/// under the run's prefix; removed once the job completes.
const HANDOFF: &str = "handoff";
const HANDOFF_PREPARED: &str = "prepared.json";
const HANDOFF_AUDIO: &str = "asr.f32";

/// A stage error the worker raises itself about a child's answer.
fn refused(video: &stemfeed_queue::Video, stage: Stage, message: impl Into<String>) -> JobError {
    JobError::from(StageError::new(
        &video.original_name,
        stage,
        Fault::Crash,
        message,
    ))
}

fn io_error(video: &stemfeed_queue::Video, what: &str) -> impl Fn(std::io::Error) -> JobError {
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
}

/// The child's numbers are checked, not trusted: limits and metrics derive
/// from the duration.
fn checked_duration(
    shared: &Shared,
    video: &stemfeed_queue::Video,
    s: f64,
) -> Result<f64, JobError> {
    let longest = shared.profile.limits.max_duration_s * 1.1 + 2.0;
    if s.is_finite() && (0.0..=longest).contains(&s) {
        Ok(s)
    } else {
        Err(refused(
            video,
            Stage::Transcode,
            format!("the stage process reported an impossible duration ({s} s)"),
        ))
    }
}

async fn execute(
    shared: &Arc<Shared>,
    claim: &Claim,
    status: &Arc<Status>,
    dir: &Path,
) -> Result<Done, JobError> {
    let video = &claim.video;
    let _ = tokio::fs::remove_dir_all(dir).await;
    tokio::fs::create_dir_all(dir.join("scratch"))
        .await
        .map_err(io_error(video, "creating the work directory"))?;
    let job = JobSpec {
        input: dir.join("source"),
        display_name: video.original_name.clone(),
        out: dir.join("out"),
        scratch: dir.join("scratch"),
        profile: shared.profile.clone(),
        language: video.language_hint.clone(),
        title: Some(video.title.clone()).filter(|s| !s.is_empty()),
        description: Some(video.description.clone()).filter(|s| !s.is_empty()),
        grade: video.grade_hint,
        captions: shared.config.worker.captions,
        captions_elsewhere: !shared.config.worker.captions_and_tags(),
    };
    let mut settings = StageSettings::from(&shared.config);
    if !job.captions_elsewhere {
        settings.curator_accuracy = curator_accuracy(shared).await;
    }
    match claim.job.phase {
        Phase::Captions => captions_part(shared, claim, status, dir, &job, settings)
            .await
            .map(Done::Completed),
        Phase::Transcode => {
            download(shared, video, &job.input).await?;
            if job.captions_elsewhere {
                transcode_part(shared, claim, status, dir, &job, settings)
                    .await
                    .map(Done::HandedOff)
            } else {
                whole(shared, claim, status, &job, settings)
                    .await
                    .map(Done::Completed)
            }
        }
    }
}

async fn download(
    shared: &Arc<Shared>,
    video: &stemfeed_queue::Video,
    input: &Path,
) -> Result<(), JobError> {
    let t = Instant::now();
    shared
        .store
        .get_file(&video.source_key, input)
        .await
        .map_err(fetch_error(video, "the upload"))?;
    shared.metrics.stage("download", t.elapsed().as_secs_f64());
    Ok(())
}

/// A failed read of `what` from the store. A missing object is not an
/// outage: waiting will not bring it back, so the attempt is charged and the
/// job ends dead rather than looping; anything else is the store's.
fn fetch_error<'a>(
    video: &'a stemfeed_queue::Video,
    what: &'a str,
) -> impl Fn(stemfeed_store::StoreError) -> JobError + 'a {
    move |e| {
        let message = format!("{}: fetching {what}: {e}", video.original_name);
        if e.is_not_found() {
            JobError {
                failure: Failure::Transient,
                reason: "store",
                message,
            }
        } else {
            JobError::infrastructure("store", message)
        }
    }
}

/// What a lease-guarded catalog write answered: done, the lease gone
/// (`lost` says what that leaves unused), or the catalog unreachable.
fn under_lease(
    video: &stemfeed_queue::Video,
    answer: Result<bool, String>,
    lost: impl FnOnce() -> String,
) -> Result<(), JobError> {
    match answer {
        Ok(true) => Ok(()),
        Ok(false) => Err(JobError {
            failure: Failure::Transient,
            reason: "lease_lost",
            message: format!("{}: {}", video.original_name, lost()),
        }),
        Err(e) => Err(JobError::infrastructure(
            "catalog",
            format!("{}: {e}", video.original_name),
        )),
    }
}

/// The first half in a child under a transcode slot. `audio_ready` hears,
/// checked, when the ASR audio is written.
async fn prepare_part(
    shared: &Arc<Shared>,
    status: &Arc<Status>,
    video: &stemfeed_queue::Video,
    job: &JobSpec,
    settings: &StageSettings,
    mut audio_ready: Option<tokio::sync::oneshot::Sender<AudioReady>>,
) -> Result<stemfeed_pipeline::Prepared, JobError> {
    let _permit = shared
        .transcode
        .acquire()
        .await
        .map_err(|e| JobError::infrastructure("io", e.to_string()))?;
    let t = Instant::now();
    // Probing happens inside: the limit follows the longest video the
    // profile accepts.
    let limits = limits(&shared.config, shared.profile.limits.max_duration_s);
    let mut heard = |audio: AudioReady| {
        let sane = checked_duration(shared, video, audio.duration_s).is_ok()
            && (1..=1000).contains(&audio.fps);
        match audio_ready.take() {
            Some(tx) if sane => {
                let _ = tx.send(audio);
            }
            _ => tracing::warn!(?audio, "ignoring an unexpected audio-ready message"),
        }
    };
    let request = StageRequest::Prepare {
        job: job.clone(),
        settings: settings.clone(),
    };
    let prepared = match stage(shared, status, request, &limits, &mut heard).await? {
        Answer::Prepared(p) => p,
        Answer::Captioned(_) => {
            return Err(refused(
                video,
                Stage::Transcode,
                "the stage process answered out of turn",
            ));
        }
    };
    shared.metrics.stage("transcode", t.elapsed().as_secs_f64());
    checked_duration(shared, video, prepared.info.duration_s)?;
    Ok(*prepared)
}

/// Captions and tags in a child under an ASR slot.
async fn captions_child(
    shared: &Arc<Shared>,
    status: &Arc<Status>,
    video: &stemfeed_queue::Video,
    job: &JobSpec,
    settings: &StageSettings,
    audio: Option<AudioReady>,
    media_s: f64,
) -> Result<Captioned, JobError> {
    let _permit = shared
        .asr
        .acquire()
        .await
        .map_err(|e| JobError::infrastructure("io", e.to_string()))?;
    let t = Instant::now();
    let limits = limits(&shared.config, media_s);
    let request = StageRequest::Captions {
        job: job.clone(),
        settings: settings.clone(),
        audio,
    };
    let captioned = match stage(shared, status, request, &limits, &mut |_| {}).await? {
        Answer::Captioned(c) => c,
        Answer::Prepared(_) => {
            return Err(refused(
                video,
                Stage::Captions,
                "the stage process answered out of turn",
            ));
        }
    };
    shared
        .metrics
        .stage("captions_and_tags", t.elapsed().as_secs_f64());
    Ok(*captioned)
}

/// Both halves on this worker: captions start when the first half reports
/// the ASR audio written, and run beside the video encode.
async fn whole(
    shared: &Arc<Shared>,
    claim: &Claim,
    status: &Arc<Status>,
    job: &JobSpec,
    settings: StageSettings,
) -> Result<f64, JobError> {
    let video = &claim.video;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let first = prepare_part(shared, status, video, job, &settings, Some(tx));
    // Beside the encode, with fewer ASR threads (StageSettings::beside_encode).
    let beside = settings.beside_encode();
    let early = async {
        match rx.await {
            Ok(audio) => captions_child(
                shared,
                status,
                video,
                job,
                &beside,
                Some(audio),
                audio.duration_s,
            )
            .await
            .map(Some),
            // The first half ended without audio to caption: tags only,
            // once it is done.
            Err(_) => Ok(None),
        }
    };
    // Either half failing ends the other (its child is killed).
    let (prepared, early) = tokio::try_join!(first, early)?;
    let media_s = prepared.info.duration_s;
    let captioned = match early {
        Some(c) => c,
        None => captions_child(shared, status, video, job, &settings, None, media_s).await?,
    };
    let manifest = stemfeed_pipeline::compose::write_manifest(job, &prepared, &captioned)
        .map_err(io_error(video, "writing manifest.json"))?;
    if let Some(why) = status.stopped() {
        return Err(JobError::infrastructure("stopped", why));
    }
    let run = format!("{}-{}", claim.job.id, claim.job.attempts);
    let run_prefix = format!("videos/{}/runs/{run}", video.id);
    publish(shared, claim, job, manifest, &run_prefix).await?;
    Ok(media_s)
}

/// The transcode part on a worker without captions: renditions and the
/// hand-off (the first half's result and the ASR audio) go to the store
/// under a run prefix, and the catalog hands the job to a captions worker.
async fn transcode_part(
    shared: &Arc<Shared>,
    claim: &Claim,
    status: &Arc<Status>,
    dir: &Path,
    job: &JobSpec,
    settings: StageSettings,
) -> Result<f64, JobError> {
    let video = &claim.video;
    let prepared = prepare_part(shared, status, video, job, &settings, None).await?;
    let media_s = prepared.info.duration_s;
    if let Some(why) = status.stopped() {
        return Err(JobError::infrastructure("stopped", why));
    }
    verify_outputs(&job.out).map_err(|e| {
        refused(
            video,
            Stage::Transcode,
            format!("refusing the outputs: {e}"),
        )
    })?;
    let t = Instant::now();
    let run = format!("{}-{}", claim.job.id, claim.job.attempts);
    let run_prefix = format!("videos/{}/runs/{run}", video.id);
    let store_error = |e: stemfeed_store::StoreError| {
        JobError::infrastructure(
            "store",
            format!("{}: uploading the transcode part: {e}", video.original_name),
        )
    };
    stemfeed_store::put_tree(&*shared.store, &job.out, &run_prefix, None)
        .await
        .map_err(store_error)?;
    if let Some(pcm) = &prepared.asr_pcm {
        if pcm != &job.scratch.join(HANDOFF_AUDIO) {
            return Err(refused(
                video,
                Stage::Transcode,
                "the stage process named an unexpected ASR audio file",
            ));
        }
        shared
            .store
            .put_file(&format!("{run_prefix}/{HANDOFF}/{HANDOFF_AUDIO}"), pcm)
            .await
            .map_err(store_error)?;
    }
    let portable = prepared.rebase(dir, Path::new(""));
    let json = serde_json::to_vec(&portable).expect("the first half's result is plain data");
    shared
        .store
        .put_bytes(&format!("{run_prefix}/{HANDOFF}/{HANDOFF_PREPARED}"), json)
        .await
        .map_err(store_error)?;
    let (who, token, job_id, p) = (
        shared.id.clone(),
        claim.token.clone(),
        claim.job.id,
        run_prefix.clone(),
    );
    let answer = catalog_call(&shared.catalog, "handing the job on", move |c| {
        c.hand_off(job_id, &token, &who, &p)
    })
    .await;
    under_lease(video, answer, || {
        format!("lease lost before the hand-off; run {run} is not used")
    })?;
    shared.metrics.stage("upload", t.elapsed().as_secs_f64());
    Ok(media_s)
}

/// The captions part of a job a transcode worker handed on: the hand-off
/// comes from the store, the captions and tags run here, and the manifest
/// completes the run the transcode worker started.
async fn captions_part(
    shared: &Arc<Shared>,
    claim: &Claim,
    status: &Arc<Status>,
    dir: &Path,
    job: &JobSpec,
    settings: StageSettings,
) -> Result<f64, JobError> {
    let video = &claim.video;
    let run_prefix = claim.job.handoff.clone().ok_or_else(|| JobError {
        failure: Failure::BadInput,
        reason: "catalog",
        message: format!(
            "{}: the job is in its captions phase but names no hand-off",
            video.original_name
        ),
    })?;
    let t = Instant::now();
    let fetch_error = &fetch_error(video, "the hand-off");
    let json = shared
        .store
        .get_bytes(&format!("{run_prefix}/{HANDOFF}/{HANDOFF_PREPARED}"))
        .await
        .map_err(fetch_error)?;
    let prepared: stemfeed_pipeline::Prepared = serde_json::from_slice(&json).map_err(|e| {
        refused(
            video,
            Stage::Captions,
            format!("the hand-off is unreadable: {e}"),
        )
    })?;
    let prepared = prepared.rebase(Path::new(""), dir);
    let media_s = checked_duration(shared, video, prepared.info.duration_s)?;
    let audio = if job.captions && prepared.asr_pcm.is_some() {
        shared
            .store
            .get_file(
                &format!("{run_prefix}/{HANDOFF}/{HANDOFF_AUDIO}"),
                &job.scratch.join(HANDOFF_AUDIO),
            )
            .await
            .map_err(fetch_error)?;
        Some(AudioReady {
            duration_s: media_s,
            fps: prepared.renditions.first().map_or(30, |r| r.fps),
            samples: prepared.asr_samples,
        })
    } else {
        None
    };
    shared.metrics.stage("download", t.elapsed().as_secs_f64());
    let captioned = captions_child(shared, status, video, job, &settings, audio, media_s).await?;
    let manifest = stemfeed_pipeline::compose::write_manifest(job, &prepared, &captioned)
        .map_err(io_error(video, "writing manifest.json"))?;
    if let Some(why) = status.stopped() {
        return Err(JobError::infrastructure("stopped", why));
    }
    publish(shared, claim, job, manifest, &run_prefix).await?;
    // The hand-off has served; a failure here leaves only stray objects.
    for name in [HANDOFF_PREPARED, HANDOFF_AUDIO] {
        let key = format!("{run_prefix}/{HANDOFF}/{name}");
        if let Err(e) = shared.store.delete(&key).await
            && !e.is_not_found()
        {
            tracing::warn!("removing {key}: {e}");
        }
    }
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
    run_prefix: &str,
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
    let run = run_prefix
        .strip_prefix(&format!("{prefix}/runs/"))
        .ok_or_else(|| JobError {
            failure: Failure::BadInput,
            reason: "catalog",
            message: format!(
                "{}: run {run_prefix} is not under {prefix}/runs/",
                video.original_name
            ),
        })?
        .to_owned();
    stemfeed_store::put_tree(&*shared.store, &job.out, run_prefix, Some("manifest.json"))
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
        run_prefix.to_owned(),
    );
    let answer = catalog_call(&shared.catalog, "completing the job", move |c| {
        c.complete(job_id, &token, &who, &p, &captions)
    })
    .await;
    under_lease(video, answer, || {
        format!("lease lost before completion; run {run} is not published")
    })?;

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
