//! `stemfeed worker`: claims jobs from the catalog and runs them, with
//! separate limits for the CPU-bound first half (probe, transcode) and the
//! ASR second half (captions, tags), so job N's captions overlap job N+1's
//! transcode. Blocking work runs on dedicated threads; the async runtime
//! only waits, heartbeats and moves bytes.
//!
//! Output layout: a run's files go to `videos/<video>/runs/<job>-<attempt>/`
//! with that run's manifest last; then `videos/<video>/manifest.json` (with
//! `"base"` naming the run) is written, and the job is completed in the
//! catalog only while this worker still holds the lease.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use stemfeed_core::{Config, Profile};
use stemfeed_queue::{Catalog, Claim, Failure, Heartbeat, JobState};
use stemfeed_store::ObjectStore;
use stemfeed_tagging::Tagger;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::pipeline::{self, Stage};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Name of this worker in leases and logs (default: host name and process id).
    #[arg(long)]
    id: Option<String>,
    /// Exit once no job is runnable (for batch runs and benchmarks).
    #[arg(long)]
    drain: bool,
}

/// Everything a job needs, shared by all jobs of this worker.
#[derive(Debug)]
struct Shared {
    id: String,
    config: Config,
    profile: Profile,
    tagger: Tagger,
    catalog: Arc<Catalog>,
    store: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
    transcode: Semaphore,
    asr: Semaphore,
    lease: Duration,
    /// Jobs running now: id → lease token (released on shutdown).
    running: Mutex<HashMap<i64, String>>,
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}

pub fn run(args: &WorkerArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        on_signals(tx);
        run_pool(args.id.clone(), args.drain, config.clone(), rx).await
    })
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

/// The job loop; returns after `stop` turns true (or, with `drain`, once
/// nothing is runnable).
pub async fn run_pool(
    id: Option<String>,
    drain: bool,
    config: Config,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    let w = config.worker.clone();
    anyhow::ensure!(
        w.transcode_slots >= 1 && w.asr_slots >= 1,
        "worker: transcode_slots and asr_slots must be at least 1"
    );
    let id = id.unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
    let catalog = stemfeed_server::ingest::open_catalog(&config).await?;
    let store = stemfeed_server::ingest::open_store(&config).await?;
    let profile = crate::probe_cmd::load_profile(w.profile.as_deref())?;
    let tagger = crate::tagging_cmd::tagger(&config)?;
    let metrics = Arc::new(Metrics::default());
    if let Some(listen) = w.metrics_listen.clone() {
        let (m, c) = (Arc::clone(&metrics), Arc::clone(&catalog));
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(listen, m, c).await {
                tracing::error!("metrics endpoint: {e:#}");
            }
        });
    }
    tracing::info!(worker = %id, store = %store.describe(), catalog = %catalog.describe(), "worker started");
    let shared = Arc::new(Shared {
        id,
        lease: Duration::from_secs(w.lease_seconds.max(3)),
        transcode: Semaphore::new(w.transcode_slots),
        asr: Semaphore::new(w.asr_slots),
        config,
        profile,
        tagger,
        catalog,
        store,
        metrics,
        running: Mutex::new(HashMap::new()),
    });

    let slots = Arc::new(Semaphore::new(w.transcode_slots + w.asr_slots));
    let poll = Duration::from_millis(w.poll_millis.max(50));
    let work = shared.config.data_dir.join("work");
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_scan: Option<Instant> = None;
    let mut seen = stemfeed_server::ingest::Seen::new();
    while !*stop.borrow() {
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                tracing::error!("job task ended abnormally: {e}");
            }
        }
        if w.watch && last_scan.is_none_or(|t| t.elapsed() >= poll) {
            last_scan = Some(Instant::now());
            if let Err(e) = stemfeed_server::ingest::scan_incoming(
                &*shared.store,
                &shared.catalog,
                &shared.id,
                &work,
                w.max_attempts,
                &mut seen,
            )
            .await
            {
                tracing::warn!("watching incoming/: {e:#}");
            }
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

    // Shutdown: give running jobs the grace period, then hand their leases back.
    let grace = Duration::from_secs(w.shutdown_grace_seconds);
    let finished =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_ok();
    if !finished {
        let running: Vec<(i64, String)> = shared
            .running
            .lock()
            .map(|r| r.clone().into_iter().collect())
            .unwrap_or_default();
        for (job, token) in running {
            let (c, who) = (Arc::clone(&shared.catalog), shared.id.clone());
            match tokio::task::spawn_blocking(move || c.release(job, &token, &who)).await {
                Ok(Ok(true)) => tracing::info!(job, "lease released for another worker"),
                other => tracing::warn!(job, "could not release lease: {other:?}"),
            }
        }
        // Stage threads cannot be interrupted; the process exit ends them.
        tracing::info!("worker stopped (jobs released)");
        std::process::exit(0);
    }
    tracing::info!("worker stopped");
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
    fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            failure: Failure::Transient,
            reason,
            message: message.into(),
        }
    }
}

impl From<pipeline::StageError> for JobError {
    fn from(e: pipeline::StageError) -> Self {
        Self {
            failure: if e.bad_input {
                Failure::BadInput
            } else {
                Failure::Transient
            },
            reason: if e.bad_input {
                "bad_input"
            } else {
                e.stage.name()
            },
            message: e.to_string(),
        }
    }
}

/// Shared between a job's stages and its heartbeat.
#[derive(Debug)]
struct Status {
    state: Mutex<(JobState, f64)>,
    lost: AtomicBool,
    cancel: AtomicBool,
}

impl Status {
    fn set(&self, stage: Stage, fraction: f64) {
        let state = match stage {
            Stage::Probing => JobState::Probing,
            Stage::Transcoding => JobState::Transcoding,
            Stage::Captioning => JobState::Captioning,
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
        } else {
            None
        }
    }
}

async fn run_job(shared: &Arc<Shared>, claim: Claim) {
    let (job_id, token) = (claim.job.id, claim.token.clone());
    if let Ok(mut r) = shared.running.lock() {
        r.insert(job_id, token.clone());
    }
    tracing::info!(file = %claim.video.original_name, "claimed");
    let status = Arc::new(Status {
        state: Mutex::new((JobState::Probing, 0.0)),
        lost: AtomicBool::new(false),
        cancel: AtomicBool::new(false),
    });
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
    let result = execute(shared, &claim, &status).await;
    heartbeat.abort();
    let (c, who) = (Arc::clone(&shared.catalog), shared.id.clone());
    let outcome = match result {
        Ok((prefix, media_s)) => {
            let done =
                tokio::task::spawn_blocking(move || c.complete(job_id, &token, &who, &prefix))
                    .await;
            match done {
                Ok(Ok(true)) => {
                    shared
                        .metrics
                        .completed(media_s, started.elapsed().as_secs_f64());
                    tracing::info!(
                        seconds = started.elapsed().as_secs_f64(),
                        "completed: in review"
                    );
                    Ok(())
                }
                Ok(Ok(false)) => {
                    shared.metrics.failure("lease_lost");
                    Err("lease lost before completion; the run's outputs are unused".to_owned())
                }
                other => Err(format!("completing: {other:?}")),
            }
        }
        Err(e) if status.cancel.load(Ordering::SeqCst) => {
            let _ = tokio::task::spawn_blocking(move || c.cancelled(job_id, &token, &who)).await;
            Err(format!("cancelled ({})", e.message))
        }
        Err(e) => {
            shared.metrics.failure(e.reason);
            let backoff =
                Duration::from_secs_f64(shared.config.worker.retry_backoff_seconds.max(0.0));
            let message = e.message.clone();
            let failure = e.failure;
            let next = tokio::task::spawn_blocking(move || {
                c.fail(job_id, &token, &who, &message, failure, backoff)
            })
            .await;
            if matches!(next, Ok(Ok(Some(JobState::Queued)))) {
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

/// Runs a blocking stage on its own thread; a panic fails the job, not the worker.
async fn blocking<T: Send + 'static>(
    stage: &'static str,
    f: impl FnOnce() -> Result<T, pipeline::StageError> + Send + 'static,
) -> Result<T, JobError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(JobError::from),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(JobError::transient(
                "panic",
                format!("{stage}: panicked: {msg}"),
            ))
        }
        Err(e) => Err(JobError::transient("panic", format!("{stage}: {e}"))),
    }
}

async fn execute(
    shared: &Arc<Shared>,
    claim: &Claim,
    status: &Arc<Status>,
) -> Result<(String, f64), JobError> {
    let video = &claim.video;
    let run = format!("{}-{}", claim.job.id, claim.job.attempts);
    let work = shared.config.data_dir.join("work");
    std::fs::create_dir_all(&work)
        .map_err(|e| JobError::transient("io", format!("creating {}: {e}", work.display())))?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("job-{run}-"))
        .tempdir_in(&work)
        .map_err(|e| JobError::transient("io", format!("work directory: {e}")))?;
    let input: PathBuf = dir.path().join("source");
    let t = Instant::now();
    shared
        .store
        .get_file(&video.source_key, &input)
        .await
        .map_err(|e| {
            JobError::transient(
                "store",
                format!("{}: fetching the upload: {e}", video.original_name),
            )
        })?;
    shared.metrics.stage("download", t.elapsed().as_secs_f64());

    let job = Arc::new(pipeline::Job {
        input,
        display_name: video.original_name.clone(),
        out: dir.path().join("out"),
        profile: shared.profile.clone(),
        language: video.language_hint.clone(),
        title: Some(video.title.clone()).filter(|s| !s.is_empty()),
        description: Some(video.description.clone()).filter(|s| !s.is_empty()),
        grade: video.grade_hint,
        captions: shared.config.worker.captions,
    });

    let permit = shared
        .transcode
        .acquire()
        .await
        .map_err(|e| JobError::transient("io", e.to_string()))?;
    let t = Instant::now();
    let prepared = {
        let (job, shared, status) = (Arc::clone(&job), Arc::clone(shared), Arc::clone(status));
        let span = tracing::info_span!("stage", name = "transcode");
        blocking("transcode", move || {
            let _entered = span.enter();
            pipeline::prepare(&job, &shared.config, &mut |s, f| status.set(s, f))
        })
        .await?
    };
    drop(permit);
    shared.metrics.stage("transcode", t.elapsed().as_secs_f64());
    if let Some(why) = status.stopped() {
        return Err(JobError::transient("stopped", why));
    }
    let media_s = prepared.duration_s();

    let permit = shared
        .asr
        .acquire()
        .await
        .map_err(|e| JobError::transient("io", e.to_string()))?;
    let t = Instant::now();
    let manifest = {
        let (job, shared, status) = (Arc::clone(&job), Arc::clone(shared), Arc::clone(status));
        let span = tracing::info_span!("stage", name = "captions_and_tags");
        blocking("captions", move || {
            let _entered = span.enter();
            pipeline::finish(
                &job,
                &shared.config,
                &shared.tagger,
                prepared,
                &mut |s, f| status.set(s, f),
            )
        })
        .await?
    };
    drop(permit);
    shared
        .metrics
        .stage("captions_and_tags", t.elapsed().as_secs_f64());
    if let Some(why) = status.stopped() {
        return Err(JobError::transient("stopped", why));
    }

    // Publish: the run's files, its manifest last, then the video's pointer.
    let t = Instant::now();
    let prefix = format!("videos/{}", video.id);
    let run_prefix = format!("{prefix}/runs/{run}");
    stemfeed_store::put_tree(&*shared.store, &job.out, &run_prefix, Some("manifest.json"))
        .await
        .map_err(|e| {
            JobError::transient(
                "store",
                format!("{}: uploading outputs: {e}", video.original_name),
            )
        })?;
    let mut pointer = manifest;
    pointer["base"] = serde_json::Value::String(format!("runs/{run}/"));
    pointer["video_id"] = serde_json::Value::String(video.id.clone());
    let bytes = serde_json::to_vec_pretty(&pointer).unwrap_or_default();
    if let Some(why) = status.stopped() {
        return Err(JobError::transient("stopped", why));
    }
    shared
        .store
        .put_bytes(&format!("{prefix}/manifest.json"), bytes)
        .await
        .map_err(|e| {
            JobError::transient(
                "store",
                format!("{}: writing the manifest: {e}", video.original_name),
            )
        })?;
    shared.metrics.stage("upload", t.elapsed().as_secs_f64());
    Ok((prefix, media_s))
}
