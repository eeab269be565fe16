//! The job runner, shared by `stemfeed worker` and the embedded server.
//!
//! * [`wiring`]: the configured object store and catalog.
//! * [`ingest`]: content-addressed submission and the `incoming/` watcher.
//! * [`pool`]: claims jobs, downloads each upload to a work directory, runs
//!   its stages in isolated child processes (`stemfeed_pipeline::isolate`),
//!   heartbeats, publishes under the lease, and decides retry or refusal
//!   from the stage error's fault.
//! * [`metrics`]: Prometheus text at `/metrics`.
//!
//! Links no GStreamer or whisper.cpp: the stage code runs in the child.

pub mod ingest;
pub mod metrics;
pub mod pool;
pub mod wiring;

pub use pool::{WorkerOptions, on_signals, run_pool};
pub use wiring::{open_catalog, open_store};
