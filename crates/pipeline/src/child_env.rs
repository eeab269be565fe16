//! The test-only fault switch shared by the parent (which passes it on) and
//! the child (which acts on it).

use crate::error::Stage;

/// `STEMFEED_TEST_FAULT=<stage>:<abort|hang|segv>`.
pub const FAULT: &str = "STEMFEED_TEST_FAULT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub stage: Stage,
    pub action: String,
}

impl Fault {
    pub fn parse(value: &str) -> Option<Self> {
        let (stage, action) = value.split_once(':')?;
        let stage = match stage {
            "probe" => Stage::Probe,
            "transcode" => Stage::Transcode,
            "captions" => Stage::Captions,
            "tagging" => Stage::Tagging,
            _ => return None,
        };
        Some(Self {
            stage,
            action: action.to_owned(),
        })
    }
}
