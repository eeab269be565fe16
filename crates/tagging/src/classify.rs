use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::grade;
use crate::learned::{self, Model, Prediction};
use crate::taxonomy::{Taxonomy, Terms};
use crate::text::{self, Token};

/// Where a piece of text came from; titles are written on purpose and count more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Title,
    Description,
    Transcript,
    Translation,
}

impl Source {
    fn weight(self) -> f64 {
        match self {
            Source::Title => 2.0,
            Source::Description => 1.0,
            Source::Transcript => 1.0,
            Source::Translation => 1.0,
        }
    }
}

/// One caption cue (or any span of text) with its time in the video.
#[derive(Debug, Clone, Default)]
pub struct Segment {
    pub text: String,
    pub start: Option<f64>,
    pub end: Option<f64>,
}

impl Segment {
    pub fn untimed(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }
}

/// Everything known about one video's content.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub title: String,
    pub description: String,
    /// Spoken language (ISO 639-1), if known.
    pub language: Option<String>,
    pub transcript: Vec<Segment>,
    pub translation: Vec<Segment>,
    /// The submitter's grade (1–12), used when the video names none.
    pub grade_hint: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tags {
    pub version: u32,
    pub taxonomy_version: u32,
    /// True when the video teaches STEM; false flags it off-topic.
    pub stem: bool,
    pub off_topic: Option<OffTopicFlag>,
    /// Subjects with enough evidence, strongest first.
    pub subjects: Vec<SubjectTag>,
    pub grade_band: Option<GradeEstimate>,
    pub hashtags: Vec<String>,
    pub keywords: Vec<String>,
    /// The terms found for what was decided (the subjects, or the off-topic
    /// category), then, for a video called off-topic, the terms of the
    /// subjects still listed (marked `against`).
    pub evidence: Vec<Evidence>,
    /// Why the text cannot tell STEM from off-topic (too few usable words
    /// and no subject or off-topic vocabulary): a curator decides. Such a
    /// video is neither filed under a subject nor flagged off-topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undetermined: Option<String>,
    /// What the learned model said, when it made the STEM/off-topic call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<ClassifierView>,
    /// The curator who set these tags; absent for the classifier's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_by: Option<String>,
}

impl Tags {
    /// The subject the video is filed under. The one place the rule
    /// "off-topic unless STEM" lives: a video not called STEM has no subject
    /// even when some subject terms matched.
    pub fn subject(&self) -> Option<&SubjectTag> {
        self.subjects.first().filter(|_| self.stem)
    }

    /// The top topic of [`Tags::subject`].
    pub fn topic(&self) -> Option<&TopicTag> {
        self.subject().and_then(|s| s.topics.first())
    }

    /// The top subject id, `"undetermined"` when the text could not tell,
    /// or `"off-topic"`.
    pub fn primary_subject(&self) -> &str {
        match self.subject() {
            Some(s) => &s.id,
            None if self.undetermined.is_some() => "undetermined",
            None => "off-topic",
        }
    }
}

/// The learned model's view of a video, for the curator: its likeliest
/// classes and the words that argued most for the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierView {
    /// How many labelled transcripts it was trained on.
    pub trained_on: usize,
    pub probabilities: Vec<ClassProbability>,
    pub words: Vec<String>,
    /// The model's probability of the class the call names (the first
    /// subject, or off-topic), rounded to three places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_probability: Option<f64>,
    /// How often a call this sure was right when the model was scored on
    /// writers it had not learned from: the share right among the
    /// out-of-fold calls whose probability fell in the same band
    /// ([`CALL_RIGHT_BY_BAND`]). The probabilities above are strongly
    /// regularised and read far lower: calls at 0.2–0.3 were right 94% of
    /// the time. Only for the built-in model, the one that was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_right: Option<f64>,
}

/// How often the model's calls were right by band of its probability of
/// the call: (the band's upper edge, the share right), the share counted as
/// (right + 1) / (n + 2) over the out-of-fold calls of the cross-validation
/// by training writer whose `call_probability` fell in the band.
/// `tests/eval.rs` measures this table on every run and fails, printing the
/// new one, when the training data has moved it.
pub const CALL_RIGHT_BY_BAND: [(f64, f64); 8] = [
    (0.1, 0.364),
    (0.2, 0.829),
    (0.3, 0.937),
    (0.4, 0.974),
    (0.5, 0.984),
    (0.6, 0.985),
    (0.8, 0.997),
    (1.0, 0.998),
];

/// [`CALL_RIGHT_BY_BAND`] read at a probability.
fn call_right(p: f64) -> f64 {
    CALL_RIGHT_BY_BAND
        .iter()
        .find(|(upper, _)| p < *upper)
        .unwrap_or(&CALL_RIGHT_BY_BAND[CALL_RIGHT_BY_BAND.len() - 1])
        .1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassProbability {
    pub class: String,
    pub probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectTag {
    pub id: String,
    pub label: String,
    pub label_ur: String,
    pub score: f64,
    pub confidence: f64,
    pub topics: Vec<TopicTag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicTag {
    pub id: String,
    pub label: String,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffTopicFlag {
    /// The non-STEM category with the most evidence, if any matched.
    pub category: Option<String>,
    pub confidence: f64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeEstimate {
    pub id: String,
    pub label: String,
    pub grades: [u8; 2],
    pub confidence: f64,
    /// "explicit", "hint" or "topics".
    pub basis: String,
    /// The words behind an explicit estimate ("class 9", "FSc").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The lexicon term.
    pub term: String,
    /// The words as they appear (normalised).
    pub matched: String,
    /// Topic or off-topic category the term counts for.
    pub counts_for: String,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    /// The term argues against the decision: a STEM term in a video called
    /// off-topic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub against: bool,
}

/// A term's weight for its owner, and how often it was found per source.
type TermCounts = (f64, BTreeMap<Source, usize>);

/// Below this much STEM evidence a video is not called STEM.
const MIN_STEM_SCORE: f64 = 1.5;
/// A subject found through fewer distinct terms than this (a phrase counts
/// as two) is one word's sense, not a lesson: everyday talk borrows single
/// science words ("the chemistry between them", "full of energy"), while a
/// lesson uses several. Its score counts at [`UNSUPPORTED_SHARE`].
const MIN_SUPPORT: usize = 2;
const UNSUPPORTED_SHARE: f64 = 0.5;
/// With fewer usable words than this and no vocabulary either way, the text
/// cannot tell STEM from off-topic (about ten seconds of speech).
const MIN_USABLE_WORDS: usize = 25;
/// A subject without any of its terms is listed from this model probability.
const LISTED_PROBABILITY: f64 = 0.1;
/// Without the lexicon's STEM evidence, the model's best subject needs this
/// probability (twice a subject's share of the training set) for a STEM call.
const MIN_SUBJECT_PROBABILITY: f64 = 0.12;
/// How much the lexicon's share of the subject evidence adds to a subject's
/// model probability when subjects are ranked. Chosen, like the thresholds
/// above, by cross-validation over the training writers (`tests/eval.rs`).
const LEXICON_SHARE_WEIGHT: f64 = 0.1;
/// A subject is tagged (besides the top one) above this share of the top
/// score (the top probability, when the model decides).
const SECONDARY_SHARE: f64 = 0.35;
/// One term cannot carry more than this multiple of its weight.
const TERM_CAP: f64 = 3.0;
const MAX_EVIDENCE: usize = 40;
const MAX_KEYWORDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Owner {
    Topic(usize, usize),
    OffTopic(usize),
    Band(usize),
}

#[derive(Debug, Clone)]
struct Entry {
    owner: Owner,
    term: String,
    weight: f64,
}

/// A taxonomy compiled for matching.
#[derive(Debug, Clone)]
pub struct Tagger {
    taxonomy: Taxonomy,
    index: HashMap<Vec<String>, Vec<Entry>>,
    longest: usize,
    /// The learned model, if this tagger has one.
    model: Learned,
}

/// Where a tagger's learned model comes from.
#[derive(Debug, Clone)]
enum Learned {
    None,
    /// The built-in model, read (or, for a taxonomy of other classes,
    /// trained) when first needed: a tagger made only for the vocabulary
    /// prompt never loads it.
    BuiltIn,
    Given(Arc<Model>),
}

impl Learned {
    fn get(&self, classes: impl FnOnce() -> Vec<String>) -> Option<Arc<Model>> {
        match self {
            Learned::None => None,
            Learned::BuiltIn => learned::built_in(&classes()),
            Learned::Given(m) => Some(Arc::clone(m)),
        }
    }
}

/// The lexicon's findings in one document.
struct Scan<'a> {
    hits: Vec<Hit<'a>>,
    tokens: Vec<Token>,
    owner_score: BTreeMap<Owner, f64>,
    term_score: BTreeMap<(Owner, &'a str), f64>,
}

#[derive(Debug)]
struct Hit<'a> {
    entry: &'a Entry,
    matched: String,
    source: Source,
    start: Option<f64>,
    end: Option<f64>,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Tagger {
    /// The lexicon and the learned model (trained on the built-in corpus at
    /// build time), for the taxonomy's subjects.
    pub fn new(taxonomy: Taxonomy) -> Self {
        let mut tagger = Self::lexicon_only(taxonomy);
        tagger.model = Learned::BuiltIn;
        tagger
    }

    /// The lexicon and a model trained on `docs` instead of the built-in
    /// corpus (to measure the model on transcripts it did not learn from).
    pub fn trained_on(taxonomy: Taxonomy, docs: &[learned::TrainingDoc]) -> Self {
        let mut tagger = Self::lexicon_only(taxonomy);
        tagger.model = Learned::Given(Arc::new(learned::train(tagger.classes(), docs)));
        tagger
    }

    /// The model's classes: the taxonomy's subjects and off-topic.
    fn classes(&self) -> Vec<String> {
        self.taxonomy
            .subjects
            .iter()
            .map(|s| s.id.clone())
            .chain([learned::OFF_TOPIC.to_owned()])
            .collect()
    }

    /// The lexicon alone, as the tagger was before it had a learned model
    /// (kept to measure what the model adds).
    pub fn lexicon_only(taxonomy: Taxonomy) -> Self {
        let mut raw: HashMap<Vec<String>, Vec<(Owner, String)>> = HashMap::new();
        let mut add = |terms: &Terms, owner: Owner| {
            for term in terms.all() {
                let keys = text::term_keys(term);
                let owners = raw.entry(keys).or_default();
                if !owners.iter().any(|(o, _)| *o == owner) {
                    owners.push((owner, term.clone()));
                }
            }
        };
        for (si, s) in taxonomy.subjects.iter().enumerate() {
            for (ti, t) in s.topics.iter().enumerate() {
                add(&t.terms, Owner::Topic(si, ti));
            }
        }
        for (oi, o) in taxonomy.off_topic.iter().enumerate() {
            add(&o.terms, Owner::OffTopic(oi));
        }
        for (bi, b) in taxonomy.grade_bands.iter().enumerate() {
            add(&b.terms, Owner::Band(bi));
        }
        let mut longest = 1;
        let index = raw
            .into_iter()
            .map(|(keys, owners)| {
                longest = longest.max(keys.len());
                let content = owners
                    .iter()
                    .filter(|(o, _)| !matches!(o, Owner::Band(_)))
                    .count();
                // A term shared by n topics/categories is weak evidence for each.
                let phrase = 1.0 + 0.5 * (keys.len() as f64 - 1.0);
                let entries = owners
                    .into_iter()
                    .map(|(owner, term)| Entry {
                        weight: if matches!(owner, Owner::Band(_)) {
                            1.0
                        } else {
                            phrase / content as f64
                        },
                        owner,
                        term,
                    })
                    .collect();
                (keys, entries)
            })
            .collect();
        Self {
            taxonomy,
            index,
            longest,
            model: Learned::None,
        }
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// Longest-match scan of one text.
    fn scan<'a>(&'a self, seg: &Segment, source: Source, hits: &mut Vec<Hit<'a>>) -> Vec<Token> {
        let tokens = text::tokens(&seg.text);
        let keys: Vec<&str> = tokens.iter().map(|t| t.key.as_str()).collect();
        let mut i = 0;
        while i < keys.len() {
            let mut step = 1;
            for len in (1..=self.longest.min(keys.len() - i)).rev() {
                let probe: Vec<String> = keys[i..i + len].iter().map(|k| (*k).to_owned()).collect();
                if let Some(entries) = self.index.get(&probe) {
                    let matched = tokens[i..i + len]
                        .iter()
                        .map(|t| t.surface.as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    for entry in entries {
                        hits.push(Hit {
                            entry,
                            matched: matched.clone(),
                            source,
                            start: seg.start,
                            end: seg.end,
                        });
                    }
                    step = len;
                    break;
                }
            }
            i += step;
        }
        tokens
    }

    /// Finds the lexicon's terms in every text of `doc` and scores their owners.
    fn scan_doc<'a>(&'a self, doc: &Document) -> Scan<'a> {
        let mut hits = Vec::new();
        let mut tokens = Vec::new();
        let sources: [(Source, Vec<Segment>); 4] = [
            (Source::Title, vec![Segment::untimed(doc.title.clone())]),
            (
                Source::Description,
                vec![Segment::untimed(doc.description.clone())],
            ),
            (Source::Transcript, doc.transcript.clone()),
            (Source::Translation, doc.translation.clone()),
        ];
        for (source, segments) in &sources {
            for seg in segments {
                tokens.extend(self.scan(seg, *source, &mut hits));
            }
        }

        // Per owner, per term: weighted count per source, log-damped and capped.
        // Keyed by owner and term, with the term's weight for that owner.
        let mut counts: BTreeMap<(Owner, &str), TermCounts> = BTreeMap::new();
        for h in &hits {
            *counts
                .entry((h.entry.owner, h.entry.term.as_str()))
                .or_insert_with(|| (h.entry.weight, BTreeMap::new()))
                .1
                .entry(h.source)
                .or_default() += 1;
        }
        // How many distinct terms found each subject (a phrase counts twice).
        let mut support: BTreeMap<usize, usize> = BTreeMap::new();
        for &(owner, term) in counts.keys() {
            if let Owner::Topic(si, _) = owner {
                *support.entry(si).or_default() += if term.contains(' ') { 2 } else { 1 };
            }
        }
        let supported = |owner: Owner| !matches!(owner, Owner::Topic(si, _) if support.get(&si).copied().unwrap_or(0) < MIN_SUPPORT);
        let mut owner_score: BTreeMap<Owner, f64> = BTreeMap::new();
        let mut term_score: BTreeMap<(Owner, &str), f64> = BTreeMap::new();
        for (&(owner, term), (w, per_source)) in &counts {
            let raw: f64 = per_source
                .iter()
                .map(|(s, &n)| s.weight() * (1.0 + (n as f64).ln()))
                .sum();
            let share = if supported(owner) {
                1.0
            } else {
                UNSUPPORTED_SHARE
            };
            let score = *w * raw.min(TERM_CAP) * share;
            term_score.insert((owner, term), score);
            *owner_score.entry(owner).or_default() += score;
        }
        Scan {
            hits,
            tokens,
            owner_score,
            term_score,
        }
    }

    /// What the learned model makes of `doc`, if this tagger has one.
    fn predict(&self, doc: &Document) -> Option<Prediction> {
        let model = self.model.get(|| self.classes())?;
        // Each track as one text, as the model was trained: the cues of a
        // transcript are one speech, and word pairs run across their ends.
        let joined = |segments: &[Segment]| {
            segments
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (transcript, translation) = (joined(&doc.transcript), joined(&doc.translation));
        let body = [
            doc.description.as_str(),
            transcript.as_str(),
            translation.as_str(),
        ];
        let text = learned::Text {
            title: &doc.title,
            body: &body,
        };
        let mut prediction = model.predict(&learned::features(text));
        prediction.built_in = learned::is_built_in(&model);
        Some(prediction)
    }

    pub fn tag(&self, doc: &Document) -> Tags {
        self.tag_with(doc, true)
    }

    /// Tags `doc`, with the learned model or by the lexicon alone.
    fn tag_with(&self, doc: &Document, with_model: bool) -> Tags {
        let Scan {
            hits,
            tokens: all_tokens,
            owner_score,
            term_score,
        } = self.scan_doc(doc);
        let usable = usable_words(doc);
        let prediction = (with_model && usable > 0)
            .then(|| self.predict(doc))
            .flatten();
        let p = |id: &str| prediction.as_ref().map_or(0.0, |p| p.probability(id));
        // The model's likeliest subject is always listed.
        let model_top = |id: &str| {
            prediction
                .as_ref()
                .and_then(Prediction::best_subject)
                .is_some_and(|(c, _)| c == id)
        };

        let tax = &self.taxonomy;
        let mut subjects: Vec<SubjectTag> = tax
            .subjects
            .iter()
            .enumerate()
            .filter_map(|(si, s)| {
                let mut topics: Vec<TopicTag> = s
                    .topics
                    .iter()
                    .enumerate()
                    .filter_map(|(ti, t)| {
                        let score = *owner_score.get(&Owner::Topic(si, ti))?;
                        Some(TopicTag {
                            id: t.id.clone(),
                            label: t.label.clone(),
                            score,
                        })
                    })
                    .collect();
                // A subject is listed when its terms were found, or when the
                // model gives it a real chance without them.
                if topics.is_empty() && p(&s.id) < LISTED_PROBABILITY && !model_top(&s.id) {
                    return None;
                }
                topics.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
                let score = topics.iter().map(|t| t.score).sum();
                Some(SubjectTag {
                    id: s.id.clone(),
                    label: s.label.clone(),
                    label_ur: s.label_ur.clone(),
                    score,
                    confidence: 0.0,
                    topics,
                })
            })
            .collect();
        // Ranked by the model, with the lexicon's share of the subject
        // evidence added (its terms are a second opinion on which subject).
        let lexicon_total: f64 = subjects
            .iter()
            .map(|s| s.score)
            .sum::<f64>()
            .max(f64::EPSILON);
        let rank = |s: &SubjectTag| p(&s.id) + LEXICON_SHARE_WEIGHT * s.score / lexicon_total;
        subjects.sort_by(|a, b| {
            rank(b)
                .total_cmp(&rank(a))
                .then(b.score.total_cmp(&a.score))
                .then(a.id.cmp(&b.id))
        });

        let off = tax
            .off_topic
            .iter()
            .enumerate()
            .filter_map(|(oi, o)| Some((o, *owner_score.get(&Owner::OffTopic(oi))?)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.id.cmp(&a.0.id)));
        let off_score = off.map_or(0.0, |(_, s)| s);
        let stem_best = subjects.iter().map(|s| s.score).fold(0.0, f64::max);
        let total: f64 = subjects.iter().map(|s| s.score).sum::<f64>() + off_score;

        // The lexicon alone cannot tell: no vocabulary either way, and too
        // little text to take the silence as evidence.
        let silent = stem_best < MIN_STEM_SCORE && off.is_none() && usable < MIN_USABLE_WORDS;
        // The model does not overrule that silence: its inputs are scaled to
        // unit length, so three words weigh as much as a hundred and its
        // confidence on them means nothing.
        let decided_by_model = prediction.as_ref().filter(|_| !silent);
        let stem = match decided_by_model {
            // STEM when the model puts more than half its weight on the
            // subjects together, and something points at one: the lexicon's
            // own STEM evidence, or a subject the model lifts well above its
            // share (text that says little leaves the model near its priors,
            // which are not evidence of a lesson).
            Some(pr) => {
                let best = pr.best_subject().map_or(0.0, |(_, p)| p);
                pr.probability(learned::OFF_TOPIC) < 0.5
                    && (stem_best >= MIN_STEM_SCORE || best >= MIN_SUBJECT_PROBABILITY)
            }
            None => stem_best >= MIN_STEM_SCORE && stem_best > off_score,
        };
        for s in &mut subjects {
            s.confidence = if decided_by_model.is_some() {
                round3(p(&s.id))
            } else {
                let share = s.score / total.max(f64::EPSILON);
                round3(share * (1.0 - (-s.score / 3.0).exp()))
            };
        }
        // Not STEM (the lexicon's rule decides, and finds too little), but
        // nothing says off-topic either.
        let undetermined = silent.then(|| {
            format!(
                "too little usable text to tell: {usable} words (needs {MIN_USABLE_WORDS}) and no subject or off-topic vocabulary; a curator decides"
            )
        });
        let off_topic = (!stem && undetermined.is_none()).then(|| {
            let vocabulary = off.map(|(o, s)| format!("{} vocabulary (score {s:.2})", o.label));
            let (reason, confidence) = match decided_by_model {
                Some(pr) => {
                    let best = subjects.first().map_or_else(
                        || "no subject".to_owned(),
                        |s| format!("{} {:.2}", s.id, p(&s.id)),
                    );
                    let words = if pr.words.is_empty() {
                        String::new()
                    } else {
                        format!(", on words such as {}", pr.words.join(", "))
                    };
                    let p_off = pr.probability(learned::OFF_TOPIC);
                    let said = if p_off >= 0.5 {
                        format!("the text classifier says off-topic ({p_off:.2} against {best}{words})")
                    } else {
                        format!(
                            "nothing points at a subject: the text classifier's best is {best} and the lexicon found too little STEM vocabulary (off-topic {p_off:.2})"
                        )
                    };
                    let reason = match vocabulary {
                        Some(v) => format!("{said}; {v}"),
                        None => said,
                    };
                    (reason, p_off)
                }
                None => {
                    let reason = match (vocabulary, off.is_some_and(|(_, s)| s >= stem_best)) {
                        (Some(v), true) => format!("{v} outweighs STEM (score {stem_best:.2})"),
                        _ => format!(
                            "too little STEM vocabulary (score {stem_best:.2}, needs {MIN_STEM_SCORE})"
                        ),
                    };
                    // As sure as the evidence: off-topic vocabulary, or a long
                    // text with no subject in it, not a bare absence.
                    let evidence = off_score + usable as f64 / MIN_USABLE_WORDS as f64;
                    let confidence = (1.0 - subjects.first().map_or(0.0, |s| s.confidence))
                        * (1.0 - (-evidence).exp());
                    (reason, confidence)
                }
            };
            OffTopicFlag {
                category: off.map(|(o, _)| o.id.clone()),
                confidence: round3(confidence),
                reason,
            }
        });
        if stem {
            match decided_by_model {
                Some(_) => {
                    let cut = subjects.first().map_or(0.0, |s| p(&s.id)) * SECONDARY_SHARE;
                    subjects.retain(|s| p(&s.id) >= cut);
                }
                None => {
                    let cut = stem_best * SECONDARY_SHARE;
                    subjects.retain(|s| s.score >= cut);
                }
            }
        } else {
            subjects.retain(|s| s.score >= MIN_STEM_SCORE);
        }
        for s in &mut subjects {
            s.score = round3(s.score);
            for t in &mut s.topics {
                t.score = round3(t.score);
            }
        }

        let grade_band = if stem {
            self.grade(doc, &all_tokens, &owner_score)
        } else {
            None
        };

        // Evidence for what was decided: the tagged subjects, or the off-topic category.
        let shown = |owner: Owner| match owner {
            Owner::Topic(si, _) => stem && subjects.iter().any(|s| s.id == tax.subjects[si].id),
            Owner::OffTopic(oi) => !stem && off.is_some_and(|(o, _)| o.id == tax.off_topic[oi].id),
            Owner::Band(_) => false,
        };
        // And, after it, what argued the other way: when a video is called
        // off-topic, the STEM terms of the subjects still listed, so a
        // curator sees what a lesson's case would rest on.
        let against = |owner: Owner| match owner {
            Owner::Topic(si, _) => !stem && subjects.iter().any(|s| s.id == tax.subjects[si].id),
            Owner::OffTopic(_) | Owner::Band(_) => false,
        };
        let owner_id = |owner: Owner| match owner {
            Owner::Topic(si, ti) => tax.subjects[si].topics[ti].id.clone(),
            Owner::OffTopic(oi) => tax.off_topic[oi].id.clone(),
            Owner::Band(bi) => tax.grade_bands[bi].id.clone(),
        };
        let mut evidence: Vec<Evidence> = Vec::new();
        let decision = hits
            .iter()
            .filter(|h| shown(h.entry.owner))
            .map(|h| (h, false));
        let other = hits
            .iter()
            .filter(|h| against(h.entry.owner))
            .map(|h| (h, true));
        for (h, against) in decision.chain(other) {
            let duplicate = evidence
                .iter()
                .any(|e| e.term == h.entry.term && e.source == h.source && e.start == h.start);
            if !duplicate && evidence.len() < MAX_EVIDENCE {
                evidence.push(Evidence {
                    term: h.entry.term.clone(),
                    matched: h.matched.clone(),
                    counts_for: owner_id(h.entry.owner),
                    source: h.source,
                    start: h.start.map(round3),
                    end: h.end.map(round3),
                    against,
                });
            }
        }

        let mut hashtags = Vec::new();
        let mut keywords: Vec<String> = Vec::new();
        if stem {
            hashtags.push("#STEMTok".to_owned());
            for s in &subjects {
                if let Some(tag) = tax.subject(&s.id).map(|x| x.hashtag.clone()) {
                    hashtags.push(tag);
                }
            }
            if let Some(t) = subjects.first().and_then(|s| s.topics.first()) {
                hashtags.push(hashtag(&t.label));
            }
            if let Some(lang) = doc.language.as_deref().and_then(language_hashtag) {
                hashtags.push(lang.to_owned());
            }
            for s in &subjects {
                keywords.push(s.label.clone());
                keywords.push(s.label_ur.clone());
                keywords.extend(s.topics.first().map(|t| t.label.clone()));
            }
            let mut terms: Vec<(&(Owner, &str), &f64)> =
                term_score.iter().filter(|((o, _), _)| shown(*o)).collect();
            terms.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.1.cmp(b.0.1)));
            keywords.extend(terms.into_iter().map(|((_, t), _)| (*t).to_owned()));
            let mut seen = std::collections::HashSet::new();
            keywords.retain(|k| seen.insert(k.to_lowercase()));
            keywords.truncate(MAX_KEYWORDS);
        }

        // The class the call names: the first subject, or off-topic.
        let called = subjects
            .first()
            .filter(|_| stem)
            .map_or(learned::OFF_TOPIC, |s| s.id.as_str())
            .to_owned();
        Tags {
            version: crate::TAGS_VERSION,
            taxonomy_version: tax.version,
            stem,
            off_topic,
            subjects,
            grade_band,
            hashtags,
            keywords,
            evidence,
            undetermined,
            classifier: decided_by_model.map(|pr| {
                let call_p = round3(pr.probability(&called));
                ClassifierView {
                    trained_on: pr.trained_on,
                    probabilities: pr
                        .probabilities
                        .iter()
                        .take(3)
                        .map(|(class, p)| ClassProbability {
                            class: class.clone(),
                            probability: round3(*p),
                        })
                        .collect(),
                    words: pr.words.clone(),
                    call_probability: Some(call_p),
                    call_right: pr.built_in.then(|| call_right(call_p)),
                }
            }),
            edited_by: None,
        }
    }

    fn grade(
        &self,
        doc: &Document,
        tokens: &[Token],
        owner_score: &BTreeMap<Owner, f64>,
    ) -> Option<GradeEstimate> {
        let tax = &self.taxonomy;
        let estimate = |band: &crate::taxonomy::GradeBand,
                        confidence: f64,
                        basis: &str,
                        named_by: Option<String>| {
            GradeEstimate {
                id: band.id.clone(),
                label: band.label.clone(),
                grades: band.grades,
                confidence: round3(confidence),
                basis: basis.to_owned(),
                named_by,
            }
        };
        // 1. The video names a grade or an exam level.
        let mut named: BTreeMap<usize, (usize, String)> = BTreeMap::new();
        for (g, words) in grade::mentions(tokens) {
            if let Some(bi) = tax
                .grade_bands
                .iter()
                .position(|b| (b.grades[0]..=b.grades[1]).contains(&g))
            {
                named.entry(bi).or_insert((0, words)).0 += 1;
            }
        }
        for (owner, score) in owner_score {
            if let Owner::Band(bi) = owner {
                let words = tax.grade_bands[*bi]
                    .terms
                    .all()
                    .next()
                    .cloned()
                    .unwrap_or_default();
                named.entry(*bi).or_insert((0, words)).0 += score.round().max(1.0) as usize;
            }
        }
        if let Some((&bi, (_, words))) = named
            .iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.0.cmp(a.0)))
        {
            return Some(estimate(
                &tax.grade_bands[bi],
                0.9,
                "explicit",
                Some(words.clone()),
            ));
        }
        // 2. The submitter said.
        if let Some(band) = doc.grade_hint.and_then(|g| tax.band_of_grade(g)) {
            return Some(estimate(band, 0.8, "hint", None));
        }
        // 3. Where the curriculum teaches the matched topics: each topic votes
        //    for its bands, most for the middle of its range (a short video
        //    on a topic taught from grade 3 to 10 is rarely for grade 3).
        let mut votes = vec![0.0; tax.grade_bands.len()];
        for (owner, score) in owner_score {
            if let Owner::Topic(si, ti) = owner {
                let bands = &tax.subjects[*si].topics[*ti].grades;
                let centre = (bands.len() as f64 - 1.0) / 2.0;
                for (k, id) in bands.iter().enumerate() {
                    if let Some(bi) = tax.grade_bands.iter().position(|b| &b.id == id) {
                        votes[bi] += score * (1.0 - (k as f64 - centre).abs() / bands.len() as f64);
                    }
                }
            }
        }
        let total: f64 = votes.iter().sum();
        let (bi, best) = votes
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))?;
        (*best > 0.0).then(|| estimate(&tax.grade_bands[bi], best / total, "topics", None))
    }

    /// Terms for Whisper's vocabulary prompt: the vocabulary of the topics the
    /// title and description point to, or a spread over all subjects.
    pub fn vocabulary(
        &self,
        title: &str,
        description: &str,
        language: Option<&str>,
    ) -> Vec<String> {
        // The lexicon alone: the prompt is its terms, and the vocabulary
        // step must not wait for the model's training.
        let tags = self.tag_with(
            &Document {
                title: title.to_owned(),
                description: description.to_owned(),
                ..Document::default()
            },
            false,
        );
        let urdu = matches!(language, Some("ur"));
        let mut out: Vec<String> = Vec::new();
        let topics: Vec<&str> = tags
            .subjects
            .iter()
            .flat_map(|s| s.topics.iter().map(|t| t.id.as_str()))
            .take(3)
            .collect();
        // Nothing in the title or description points to a topic: no terms.
        // A generic list of science words in the prompt is not harmless: on
        // speech about something else (or in another script) Whisper writes
        // the prompt's words back ("Newton, force, energy, energy…").
        if topics.is_empty() {
            return Vec::new();
        }
        for s in &self.taxonomy.subjects {
            for t in s.topics.iter().filter(|t| topics.contains(&t.id.as_str())) {
                out.extend(t.terms.en.iter().take(10).cloned());
                if urdu {
                    out.extend(t.terms.ur.iter().take(6).cloned());
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|t| seen.insert(t.to_lowercase()));
        out
    }
}

/// "Force and motion" → "#ForceAndMotion".
fn hashtag(label: &str) -> String {
    let mut tag = String::from("#");
    for word in label
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            tag.extend(first.to_uppercase());
            tag.push_str(chars.as_str());
        }
    }
    tag
}

fn language_hashtag(language: &str) -> Option<&'static str> {
    Some(match language {
        "ur" => "#UrduScience",
        "pa" => "#PunjabiScience",
        "sd" => "#SindhiScience",
        "ps" => "#PashtoScience",
        _ => return None,
    })
}

/// Words a reader could judge the video by, over the title, description,
/// transcript and translation: annotations such as `[Music]`, `(applause)`
/// and `♪…♪`, hashtags, and tokens without two letters (numbers, camera
/// file names' digits) do not count.
fn usable_words(doc: &Document) -> usize {
    let texts = [doc.title.as_str(), doc.description.as_str()]
        .into_iter()
        .chain(doc.transcript.iter().map(|s| s.text.as_str()))
        .chain(doc.translation.iter().map(|s| s.text.as_str()));
    texts.map(count_usable).sum()
}

fn count_usable(text: &str) -> usize {
    text::without_annotations(text)
        .split_whitespace()
        .filter(|w| !w.starts_with('#') && !w.starts_with('@'))
        // Numbers, and a camera's file names ("VID_20240611_183322").
        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
        .flat_map(|w| w.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(title: &str, transcript: &str) -> Document {
        Document {
            title: title.into(),
            transcript: vec![Segment::untimed(transcript)],
            ..Document::default()
        }
    }

    #[test]
    fn annotations_hashtags_and_file_names_are_not_usable_words() {
        assert_eq!(count_usable("[Music] ♪ ♪ (applause)"), 0);
        assert_eq!(
            count_usable("VID_20240611_183322 #fyp #viral @someone 2024"),
            0
        );
        assert_eq!(count_usable("آج ہم دیکھیں گے"), 4);
        assert_eq!(count_usable("aaj hum dekhein ge [Music] ok"), 5);
    }

    #[test]
    fn no_usable_text_is_undetermined_not_off_topic() {
        let tagger = Tagger::new(Taxonomy::built_in());
        for d in [
            doc("VID_20240611_183322", ""),
            doc("", "[Music]"),
            doc("#fyp #viral", "♪ ♪"),
        ] {
            let tags = tagger.tag(&d);
            assert_eq!(tags.primary_subject(), "undetermined", "{d:?}");
            assert!(!tags.stem && tags.off_topic.is_none(), "{tags:?}");
            assert!(tags.undetermined.as_ref().unwrap().contains("0 words"));
        }
    }

    #[test]
    fn off_topic_confidence_follows_the_evidence() {
        let tagger = Tagger::new(Taxonomy::built_in());
        // Thirty words with nothing of any subject: off-topic, but not sure.
        let words = "we went to see my aunt and then we sat down and talked for a long while about nothing much at all until it got dark and everyone went home again";
        let tags = tagger.tag(&doc("", words));
        let off = tags.off_topic.expect("off-topic");
        assert!(off.confidence < 0.5, "{off:?}");
        assert!(
            off.reason.contains("nothing points at a subject"),
            "{off:?}"
        );
        // A match report: off-topic, and sure of it.
        let tags = tagger.tag(&doc(
            "Babar ka century!",
            "what a shot, straight over the bowler for six, the crowd in Lahore is on its feet, Pakistan need twenty runs from the last two overs and the captain is still at the crease",
        ));
        let off = tags.off_topic.expect("off-topic");
        assert!(off.confidence > 0.5, "{off:?}");
        assert!(off.reason.contains("says off-topic"), "{off:?}");
    }

    #[test]
    fn one_borrowed_science_word_is_not_a_lesson() {
        let tagger = Tagger::new(Taxonomy::built_in());
        // The same word said three times is still one sense with no support.
        let tags = tagger.tag(&doc(
            "",
            "acceleration acceleration acceleration, that is what my cousin kept shouting while we all laughed at the wedding and ate far too much food again",
        ));
        assert!(!tags.stem, "{tags:?}");
        // With a second term of the subject it is.
        let tags = tagger.tag(&doc(
            "",
            "acceleration is the change of velocity every second, that is what the teacher kept saying while we all watched the trolley roll",
        ));
        assert_eq!(tags.primary_subject(), "physics", "{tags:?}");
    }

    #[test]
    fn an_off_topic_call_still_shows_the_stem_terms_it_outweighed() {
        // A match report: the sports vocabulary wins, but the physics terms
        // said on the way are shown, after the decision's own, marked.
        let tags = Tagger::lexicon_only(Taxonomy::built_in()).tag(&doc(
            "Last over thriller 🏏",
            "what a match yaar, last over, six needed, the bowler runs in, the batsman hits it, the ball goes high, gravity brings it down, the force of that shot, the speed of the ball, the fielder drops it, four runs, the crowd in the stadium goes mad, what a win for the team in the final over of the cricket match",
        ));
        assert!(!tags.stem, "{tags:?}");
        assert!(!tags.subjects.is_empty(), "{tags:?}");
        let first_against = tags.evidence.iter().position(|e| e.against);
        let first_against = first_against.expect("the physics terms are shown");
        assert!(
            first_against > 0,
            "the decision's terms come first: {tags:?}"
        );
        assert!(tags.evidence[first_against..].iter().all(|e| e.against));
        assert!(tags.evidence[..first_against].iter().all(|e| !e.against));
        assert!(
            tags.evidence.iter().filter(|e| e.against).all(|e| tags
                .subjects
                .iter()
                .any(|s| s.topics.iter().any(|t| t.id == e.counts_for))),
            "{tags:?}"
        );
        // A lesson's evidence never carries the mark.
        let tags = Tagger::lexicon_only(Taxonomy::built_in()).tag(&doc(
            "",
            "acceleration is the change of velocity every second, that is what the teacher kept saying while we all watched the trolley roll",
        ));
        assert!(
            tags.stem && tags.evidence.iter().all(|e| !e.against),
            "{tags:?}"
        );
    }

    #[test]
    fn a_taxonomy_with_subjects_the_model_never_learned_is_tagged_by_its_lexicon() {
        let mut tax = Taxonomy::built_in();
        let space = tax
            .subjects
            .iter_mut()
            .find(|s| s.id == "earth-space")
            .unwrap();
        space.id = "astronomy".into();
        let tags = Tagger::new(tax).tag(&doc(
            "Why the Moon has phases",
            "over one month the moon shows us a thin crescent, then a half, then a full disc, because sunshine falls on one side of it and we look at that side from a changing angle while it orbits the earth",
        ));
        assert!(tags.classifier.is_none(), "{tags:?}");
        assert_eq!(tags.primary_subject(), "astronomy", "{tags:?}");
        // The built-in taxonomy's own subjects do get the model.
        let tags = Tagger::new(Taxonomy::built_in()).tag(&doc(
            "Why the Moon has phases",
            "over one month the moon shows us a thin crescent, then a half, then a full disc, because sunshine falls on one side of it and we look at that side from a changing angle while it orbits the earth",
        ));
        assert!(tags.classifier.is_some(), "{tags:?}");
        assert_eq!(tags.primary_subject(), "earth-space", "{tags:?}");
    }

    #[test]
    fn hashtags_are_camel_case() {
        assert_eq!(hashtag("Force and motion"), "#ForceAndMotion");
        assert_eq!(hashtag("Acids, bases & salts"), "#AcidsBasesSalts");
    }
}
