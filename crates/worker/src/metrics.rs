//! Prometheus metrics for a worker: queue depth by state (read from the
//! catalog at scrape time), stage durations, realtime factor, completions,
//! retries and failures by reason. Served as text at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;

use stemfeed_queue::Catalog;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    completed: u64,
    retries: u64,
    failures: BTreeMap<String, u64>,
    /// stage → (seconds, count)
    stages: BTreeMap<String, (f64, u64)>,
    media_seconds: f64,
    processing_seconds: f64,
    /// Free space under the floor: the worker claims nothing.
    disk_low: bool,
    stage_crashes: BTreeMap<String, u64>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut g) = self.inner.lock() {
            f(&mut g);
        }
    }

    pub fn completed(&self, media_s: f64, processing_s: f64) {
        self.with(|m| {
            m.completed += 1;
            m.media_seconds += media_s;
            m.processing_seconds += processing_s;
        });
    }

    pub fn retry(&self) {
        self.with(|m| m.retries += 1);
    }

    pub fn failure(&self, reason: &str) {
        self.with(|m| *m.failures.entry(reason.to_owned()).or_default() += 1);
    }

    pub fn disk_low(&self, low: bool) {
        self.with(|m| m.disk_low = low);
    }

    /// A stage process that died or overran its limit.
    pub fn crash(&self, stage: &str) {
        self.with(|m| *m.stage_crashes.entry(stage.to_owned()).or_default() += 1);
    }

    pub fn stage(&self, stage: &str, seconds: f64) {
        self.with(|m| {
            let e = m.stages.entry(stage.to_owned()).or_default();
            e.0 += seconds;
            e.1 += 1;
        });
    }

    pub fn render(&self, queue: &BTreeMap<String, i64>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP stemfeed_jobs Jobs in the catalog by state.\n# TYPE stemfeed_jobs gauge"
        );
        for (state, n) in queue {
            let _ = writeln!(out, "stemfeed_jobs{{state=\"{state}\"}} {n}");
        }
        let Ok(m) = self.inner.lock() else { return out };
        let _ = writeln!(
            out,
            "# HELP stemfeed_jobs_completed_total Jobs this worker completed.\n# TYPE stemfeed_jobs_completed_total counter\nstemfeed_jobs_completed_total {}",
            m.completed
        );
        let _ = writeln!(
            out,
            "# HELP stemfeed_job_retries_total Failed attempts requeued for retry.\n# TYPE stemfeed_job_retries_total counter\nstemfeed_job_retries_total {}",
            m.retries
        );
        let _ = writeln!(
            out,
            "# HELP stemfeed_job_failures_total Failed attempts by reason.\n# TYPE stemfeed_job_failures_total counter"
        );
        for (reason, n) in &m.failures {
            let _ = writeln!(
                out,
                "stemfeed_job_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP stemfeed_stage_seconds Wall time per stage.\n# TYPE stemfeed_stage_seconds summary"
        );
        for (stage, (sum, count)) in &m.stages {
            let _ = writeln!(
                out,
                "stemfeed_stage_seconds_sum{{stage=\"{stage}\"}} {sum}\nstemfeed_stage_seconds_count{{stage=\"{stage}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP stemfeed_stage_crashes_total Stage processes killed by a signal or their time limit.\n# TYPE stemfeed_stage_crashes_total counter"
        );
        for (stage, n) in &m.stage_crashes {
            let _ = writeln!(out, "stemfeed_stage_crashes_total{{stage=\"{stage}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP stemfeed_worker_disk_low 1 while the work directory has less free space than worker.min_free_mib (no jobs are claimed).\n# TYPE stemfeed_worker_disk_low gauge\nstemfeed_worker_disk_low {}",
            u8::from(m.disk_low)
        );
        let rtf = if m.processing_seconds > 0.0 {
            m.media_seconds / m.processing_seconds
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "# HELP stemfeed_realtime_factor Seconds of video processed per second of work (completed jobs).\n# TYPE stemfeed_realtime_factor gauge\nstemfeed_realtime_factor {rtf}"
        );
        out
    }
}

/// Serves `/metrics` until the process ends.
pub async fn serve(
    listen: String,
    metrics: Arc<Metrics>,
    catalog: Arc<Catalog>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(%listen, "metrics at /metrics");
    loop {
        let (mut sock, _) = listener.accept().await?;
        let (metrics, catalog) = (Arc::clone(&metrics), Arc::clone(&catalog));
        tokio::spawn(async move {
            // Read the whole request head: it may arrive in several pieces.
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let head = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .await;
            if head.is_err() {
                return;
            }
            let request = String::from_utf8_lossy(&buf);
            let response = if request.starts_with("GET /metrics ") {
                let counts = tokio::task::spawn_blocking(move || catalog.counts())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(s, n)| (s.as_str().to_owned(), n))
                    .collect();
                let body = metrics.render(&counts);
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = sock.write_all(response.as_bytes()).await;
        });
    }
}
