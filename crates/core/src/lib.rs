//! Domain types and configuration shared by every stemfeed crate.
//!
//! This crate must stay light: no GStreamer, no whisper.cpp, no AWS SDK. Every
//! other crate depends on it, so anything heavy here slows the whole build.

pub mod accuracy;
pub mod config;
pub mod media_info;
pub mod profile;

pub use config::{Config, ConfigError};
pub use media_info::{MediaInfo, Rejection};
pub use profile::{Profile, ProfileError};
