//! Tags for the curated feed: STEM subject and topic, grade band, an
//! off-topic flag, hashtags and search keywords, from a video's transcript,
//! its English translation, title and description.
//!
//! Two parts. A lexicon classifier over the taxonomy in
//! `pipelines/taxonomy.toml`: every term found (longest match first, on
//! normalised and plural-stripped words) adds to its topic a weight that
//! shrinks when the term belongs to several topics and grows for multi-word
//! phrases; it supplies topics, evidence (each matched term with its source
//! and time), grade bands and keywords. And a learned model ([`learned`])
//! trained on labelled transcripts, which makes the STEM / off-topic call and
//! ranks subjects, because which sense a word has depends on the words
//! around it. Both are deterministic; tagging takes about a millisecond per
//! video. Pure Rust: this crate builds without GStreamer or whisper.cpp.

pub mod grade;
pub mod learned;
pub mod taxonomy;
pub mod text;

mod classify;

pub use classify::{
    CALL_RIGHT_BY_BAND, ClassProbability, ClassifierView, Document, Evidence, GradeEstimate,
    OffTopicFlag, Segment, Source, SubjectTag, Tagger, Tags, TopicTag,
};
pub use taxonomy::{Taxonomy, TaxonomyError};

/// Version of the `tags.json` layout. 2: `evidence` may end with terms
/// marked `against` (the STEM terms an off-topic call outweighed), and
/// `classifier` carries `call_probability` and `call_right`; a version-1
/// file reads as version 2 with neither.
pub const TAGS_VERSION: u32 = 2;
