//! Prometheus metrics for a worker: jobs by state and runnable jobs per
//! stage queue (read from the catalog at scrape time: what an autoscaler
//! sizes the transcode and captions pools by), stage durations, realtime factor, completions,
//! retries and failures by reason. Served in the OpenMetrics text format at
//! `GET /metrics` by a small axum router.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use stemfeed_queue::Catalog;

/// The content type of the OpenMetrics text exposition format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the `stemfeed_stage_seconds` buckets.
const STAGE_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: String,
}

type StageHistograms = Family<StageLabel, Histogram, fn() -> Histogram>;

fn stage_histogram() -> Histogram {
    Histogram::new(STAGE_BUCKETS)
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs: Family<StateLabel, Gauge>,
    queue_depth: Family<StageLabel, Gauge>,
    completed: Counter,
    handed_off: Counter,
    retries: Counter,
    failures: Family<ReasonLabel, Counter>,
    stages: StageHistograms,
    stage_crashes: Family<StageLabel, Counter>,
    disk_low: Gauge,
    realtime_factor: Gauge<f64, AtomicU64>,
    /// (media seconds, processing seconds) of completed jobs.
    totals: Mutex<(f64, f64)>,
}

impl Default for Metrics {
    fn default() -> Self {
        let jobs = Family::<StateLabel, Gauge>::default();
        let queue_depth = Family::<StageLabel, Gauge>::default();
        let completed = Counter::default();
        let handed_off = Counter::default();
        let retries = Counter::default();
        let failures = Family::<ReasonLabel, Counter>::default();
        let stages: StageHistograms = Family::new_with_constructor(stage_histogram);
        let stage_crashes = Family::<StageLabel, Counter>::default();
        let disk_low = Gauge::default();
        let realtime_factor = Gauge::<f64, AtomicU64>::default();

        let mut registry = Registry::default();
        // Counters are registered without `_total`: the encoder appends it.
        registry.register(
            "stemfeed_jobs",
            "Jobs in the catalog by state",
            jobs.clone(),
        );
        registry.register(
            "stemfeed_queue_depth",
            "Runnable jobs waiting for a worker, by the stage they need next (transcode or captions)",
            queue_depth.clone(),
        );
        registry.register(
            "stemfeed_jobs_completed",
            "Jobs this worker completed",
            completed.clone(),
        );
        registry.register(
            "stemfeed_jobs_handed_off",
            "Jobs whose transcode part this worker finished and handed on for captions",
            handed_off.clone(),
        );
        registry.register(
            "stemfeed_job_retries",
            "Failed attempts requeued for retry",
            retries.clone(),
        );
        registry.register(
            "stemfeed_job_failures",
            "Failed attempts by reason",
            failures.clone(),
        );
        registry.register(
            "stemfeed_stage_seconds",
            "Wall time per stage",
            stages.clone(),
        );
        registry.register(
            "stemfeed_stage_crashes",
            "Stage processes killed by a signal or their time limit",
            stage_crashes.clone(),
        );
        registry.register(
            "stemfeed_worker_disk_low",
            "1 while the work directory has less free space than worker.min_free_mib (no jobs are claimed)",
            disk_low.clone(),
        );
        registry.register(
            "stemfeed_realtime_factor",
            "Seconds of video processed per second of work (completed jobs)",
            realtime_factor.clone(),
        );
        Self {
            registry,
            jobs,
            queue_depth,
            completed,
            handed_off,
            retries,
            failures,
            stages,
            stage_crashes,
            disk_low,
            realtime_factor,
            totals: Mutex::new((0.0, 0.0)),
        }
    }
}

impl Metrics {
    pub fn completed(&self, media_s: f64, processing_s: f64) {
        self.completed.inc();
        if let Ok(mut t) = self.totals.lock() {
            t.0 += media_s;
            t.1 += processing_s;
            let rtf = if t.1 > 0.0 { t.0 / t.1 } else { 0.0 };
            self.realtime_factor.set(rtf);
        }
    }

    pub fn handed_off(&self) {
        self.handed_off.inc();
    }

    pub fn retry(&self) {
        self.retries.inc();
    }

    pub fn failure(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn disk_low(&self, low: bool) {
        self.disk_low.set(i64::from(low));
    }

    /// A stage process that died or overran its limit.
    pub fn crash(&self, stage: &str) {
        self.stage_crashes
            .get_or_create(&StageLabel {
                stage: stage.to_owned(),
            })
            .inc();
    }

    pub fn stage(&self, stage: &str, seconds: f64) {
        self.stages
            .get_or_create(&StageLabel {
                stage: stage.to_owned(),
            })
            .observe(seconds);
    }

    /// The exposition text, with the jobs by state from `queue` and the
    /// runnable jobs per stage from `depth`.
    pub fn render(&self, queue: &BTreeMap<String, i64>, depth: &BTreeMap<String, i64>) -> String {
        self.queue_depth.clear();
        for (stage, n) in depth {
            self.queue_depth
                .get_or_create(&StageLabel {
                    stage: stage.clone(),
                })
                .set(*n);
        }
        self.jobs.clear();
        for (state, n) in queue {
            self.jobs
                .get_or_create(&StateLabel {
                    state: state.clone(),
                })
                .set(*n);
        }
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!("encoding metrics: {e}");
        }
        out
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    catalog: Arc<Catalog>,
}

async fn scrape(State(s): State<AppState>) -> Response {
    let catalog = Arc::clone(&s.catalog);
    let counts: BTreeMap<String, i64> =
        match tokio::task::spawn_blocking(move || catalog.counts()).await {
            Ok(Ok(c)) => c
                .into_iter()
                .map(|(state, n)| (state.as_str().to_owned(), n))
                .collect(),
            Ok(Err(e)) => {
                tracing::warn!("metrics: reading queue depth: {e}");
                BTreeMap::new()
            }
            Err(e) => {
                tracing::warn!("metrics: reading queue depth: {e}");
                BTreeMap::new()
            }
        };
    let catalog = Arc::clone(&s.catalog);
    let depth: BTreeMap<String, i64> =
        match tokio::task::spawn_blocking(move || catalog.queue_depth()).await {
            Ok(Ok(d)) => d
                .into_iter()
                .map(|(phase, n)| (phase.as_str().to_owned(), n))
                .collect(),
            Ok(Err(e)) => {
                tracing::warn!("metrics: reading stage queue depth: {e}");
                BTreeMap::new()
            }
            Err(e) => {
                tracing::warn!("metrics: reading stage queue depth: {e}");
                BTreeMap::new()
            }
        };
    let body = s.metrics.render(&counts, &depth);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// One request per connection, as before: scrapers and the tests read the
/// response to the end of the stream.
async fn close_connection(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn router(metrics: Arc<Metrics>, catalog: Arc<Catalog>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::middleware::map_response(close_connection))
        .with_state(AppState { metrics, catalog })
}

/// Serves `/metrics` until the process ends.
pub async fn serve(
    listen: String,
    metrics: Arc<Metrics>,
    catalog: Arc<Catalog>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(%listen, "metrics at /metrics");
    axum::serve(listener, router(metrics, catalog)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_under_its_name() {
        let m = Metrics::default();
        m.completed(30.0, 10.0);
        m.retry();
        m.failure("timeout");
        m.stage("transcode", 2.0);
        m.stage("transcode", 3.0);
        m.crash("transcode");
        m.disk_low(true);
        let queue = BTreeMap::from([("in-review".to_owned(), 5), ("queued".to_owned(), 0)]);
        let text = m.render(&queue, &BTreeMap::from([("captions".to_owned(), 2)]));
        for want in [
            "stemfeed_jobs{state=\"in-review\"} 5\n",
            "stemfeed_jobs{state=\"queued\"} 0\n",
            "stemfeed_queue_depth{stage=\"captions\"} 2\n",
            "stemfeed_jobs_completed_total 1\n",
            "stemfeed_job_retries_total 1\n",
            "stemfeed_job_failures_total{reason=\"timeout\"} 1\n",
            "stemfeed_stage_seconds_sum{stage=\"transcode\"} 5.0\n",
            "stemfeed_stage_seconds_count{stage=\"transcode\"} 2\n",
            "stemfeed_stage_crashes_total{stage=\"transcode\"} 1\n",
            "stemfeed_worker_disk_low 1\n",
            "stemfeed_realtime_factor 3.0\n",
            "# EOF\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        // Queue depth is replaced, not accumulated, on the next scrape.
        let text = m.render(
            &BTreeMap::from([("in-review".to_owned(), 2)]),
            &BTreeMap::new(),
        );
        assert!(
            text.contains("stemfeed_jobs{state=\"in-review\"} 2\n"),
            "{text}"
        );
        assert!(!text.contains("state=\"queued\""), "{text}");
    }

    /// A raw HTTP/1.1 request read to the end of the stream, as a scraper
    /// without keep-alive (and tests/scaleout.rs) does it.
    fn http_get(port: u16, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_metrics_and_404s_over_http() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("c.db").display());
        let catalog = Arc::new(Catalog::open(&url).unwrap());
        let metrics = Arc::new(Metrics::default());
        metrics.stage("transcode", 1.5);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(axum::serve(listener, router(metrics, catalog)).into_future());

        let (ok, missing) = tokio::task::spawn_blocking(move || {
            (http_get(port, "/metrics"), http_get(port, "/nope"))
        })
        .await
        .unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE), "{ok}");
        assert!(
            ok.contains("stemfeed_jobs{state=\"in-review\"} 0\n"),
            "{ok}"
        );
        assert!(
            ok.contains("stemfeed_stage_seconds_count{stage=\"transcode\"} 1\n"),
            "{ok}"
        );
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
    }
}
