//! The taxonomy file (`pipelines/taxonomy.toml`): subjects, topics, grade
//! bands and off-topic categories, each with terms in English, Urdu (Arabic
//! script) and Roman Urdu.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

/// The taxonomy shipped with the binary.
pub const BUILT_IN: &str = include_str!("../../../pipelines/taxonomy.toml");

#[derive(Debug, thiserror::Error)]
pub enum TaxonomyError {
    #[error("cannot read taxonomy {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid taxonomy {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Terms in the three written forms the product meets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    #[serde(default)]
    pub en: Vec<String>,
    #[serde(default)]
    pub ur: Vec<String>,
    #[serde(default)]
    pub roman: Vec<String>,
}

impl Terms {
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.en.iter().chain(&self.ur).chain(&self.roman)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeBand {
    pub id: String,
    pub label: String,
    /// First and last grade of the band.
    pub grades: [u8; 2],
    /// Exams and levels that name the band ("matric", "FSc").
    #[serde(flatten)]
    pub terms: Terms,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub id: String,
    pub label: String,
    /// Grade bands where the curriculum teaches the topic, lowest first.
    pub grades: Vec<String>,
    #[serde(flatten)]
    pub terms: Terms,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub id: String,
    pub label: String,
    pub label_ur: String,
    pub hashtag: String,
    /// Terms for Whisper's vocabulary prompt when the title and description
    /// point to no topic.
    #[serde(default)]
    pub prompt: Vec<String>,
    pub topics: Vec<Topic>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffTopic {
    pub id: String,
    pub label: String,
    #[serde(flatten)]
    pub terms: Terms,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    pub version: u32,
    pub grade_bands: Vec<GradeBand>,
    pub subjects: Vec<Subject>,
    pub off_topic: Vec<OffTopic>,
}

impl Taxonomy {
    /// The taxonomy compiled into the binary.
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN, "built-in taxonomy")
            .expect("the built-in taxonomy is checked by tests")
    }

    pub fn load(path: &Path) -> Result<Self, TaxonomyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TaxonomyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, TaxonomyError> {
        let invalid = |message: String| TaxonomyError::Invalid {
            path: path.to_owned(),
            message,
        };
        let t: Taxonomy = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        t.check().map_err(invalid)?;
        Ok(t)
    }

    fn check(&self) -> Result<(), String> {
        let bands: BTreeSet<&str> = self.grade_bands.iter().map(|b| b.id.as_str()).collect();
        if bands.len() != self.grade_bands.len() {
            return Err("grade band ids must be unique".into());
        }
        for b in &self.grade_bands {
            if b.grades[0] > b.grades[1] || b.grades[1] > 12 {
                return Err(format!(
                    "grade band {}: grades {:?} out of order or past 12",
                    b.id, b.grades
                ));
            }
        }
        let mut ids = BTreeSet::new();
        for s in &self.subjects {
            if !ids.insert(s.id.as_str()) {
                return Err(format!("duplicate id {:?}", s.id));
            }
            if s.topics.is_empty() {
                return Err(format!("subject {} has no topics", s.id));
            }
            for t in &s.topics {
                if !ids.insert(t.id.as_str()) {
                    return Err(format!("duplicate id {:?} (topic of {})", t.id, s.id));
                }
                if t.grades.is_empty() {
                    return Err(format!("topic {} names no grade band", t.id));
                }
                if let Some(g) = t.grades.iter().find(|g| !bands.contains(g.as_str())) {
                    return Err(format!("topic {} names unknown grade band {g:?}", t.id));
                }
                check_terms(&t.terms, &t.id)?;
            }
        }
        for o in &self.off_topic {
            if !ids.insert(o.id.as_str()) {
                return Err(format!("duplicate id {:?} (off-topic category)", o.id));
            }
            check_terms(&o.terms, &o.id)?;
        }
        Ok(())
    }

    pub fn subject(&self, id: &str) -> Option<&Subject> {
        self.subjects.iter().find(|s| s.id == id)
    }

    pub fn grade_band(&self, id: &str) -> Option<&GradeBand> {
        self.grade_bands.iter().find(|b| b.id == id)
    }

    /// The band holding `grade` (1–12).
    pub fn band_of_grade(&self, grade: u8) -> Option<&GradeBand> {
        self.grade_bands
            .iter()
            .find(|b| (b.grades[0]..=b.grades[1]).contains(&grade))
    }
}

fn check_terms(terms: &Terms, owner: &str) -> Result<(), String> {
    if terms.all().next().is_none() {
        return Err(format!("{owner} has no terms"));
    }
    for term in terms.all() {
        if crate::text::term_keys(term).is_empty() {
            return Err(format!("{owner}: term {term:?} has no letters"));
        }
    }
    Ok(())
}
