//! Tags for the curated feed: STEM subject and topic, grade band, an
//! off-topic flag, hashtags and search keywords, from a video's transcript,
//! its English translation, title and description.
//!
//! A lexicon classifier over the taxonomy in `pipelines/taxonomy.toml`: every
//! term found (longest match first, on normalised and plural-stripped words)
//! adds to its topic a weight that shrinks when the term belongs to several
//! topics and grows for multi-word phrases. It is deterministic, explains
//! itself (the evidence lists each matched term with its source and time) and
//! runs in well under a millisecond per video. Pure Rust: this crate builds
//! without GStreamer or whisper.cpp.

pub mod grade;
pub mod taxonomy;
pub mod text;

mod classify;

pub use classify::{
    Document, Evidence, GradeEstimate, OffTopicFlag, Segment, Source, SubjectTag, Tagger, Tags,
    TopicTag,
};
pub use taxonomy::{Taxonomy, TaxonomyError};

/// Version of the `tags.json` layout.
pub const TAGS_VERSION: u32 = 1;
