//! One video through its stages.
//!
//! * [`contract`]: the typed, versioned data the stages hand each other and
//!   readers see — [`Manifest`] (`manifest.json`), the stage request and
//!   answers. Caption track files and tags are defined by the captions and
//!   tagging crates and used from here.
//! * [`error`]: [`StageError`] with its [`Fault`]: bad input, transient,
//!   infrastructure, or a crash of the stage process.
//! * [`isolate`]: runs a stage in a child process with no credentials, no
//!   network, resource limits and a wall clock.
//! * [`tag`]: the tagging stage (pure Rust).
//! * [`compose`]: the master playlist and `manifest.json` from both halves'
//!   results (pure Rust; the worker runs it).
//! * With the `stages` feature, the stage code itself (`stages`,
//!   `captioning`) and the child's side (`child`): these link GStreamer and
//!   whisper.cpp, so the worker and the server build without the feature.

pub mod child_env;
pub mod compose;
pub mod contract;
pub mod error;
pub mod isolate;
pub mod tag;

#[cfg(feature = "stages")]
pub mod captioning;
#[cfg(feature = "stages")]
pub mod child;
#[cfg(feature = "stages")]
pub mod stages;

pub use contract::{JobSpec, MANIFEST_VERSION, Manifest, Prepared, StageRequest, StageSettings};
pub use error::{Fault, Stage, StageError};
