//! The learned half of the tagger: a multinomial logistic regression over
//! words, word pairs and letter n-grams, trained when first needed on the
//! labelled transcripts in `pipelines/tagging-train/`. It makes the STEM /
//! off-topic call and ranks the subjects; the lexicon still supplies topics,
//! evidence, grade bands, keywords, and the decision when there is too little
//! text for the model to be sure.
//!
//! Why a learned model beside the lexicon: a lexicon matches terms one by
//! one, so it cannot tell a lesson told through everyday life ("the rickshaw
//! turns and we slide outward") from a vlog that borrows a science word ("so
//! much energy at the wedding"). Which sense a word has depends on the words
//! around it, and the weights that say so are learned from whole transcripts.
//! Letter n-grams carry the model across Roman Urdu's many spellings of one
//! word (`bohat`, `bohot`) and across Urdu inflections.
//!
//! The training transcripts were written for training only, by writers who
//! saw neither the lexicon nor any evaluation set; the evaluation sets in
//! `tests/tagging/` are never trained on. Training is deterministic (fixed
//! order, fixed epochs), takes about three seconds optimised, and happens once
//! per process; nothing trained is stored in the repository.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::text;

/// The training files, compiled into the binary.
const CORPUS: &[(&str, &str)] = &[
    (
        "01.toml",
        include_str!("../../../pipelines/tagging-train/01.toml"),
    ),
    (
        "02.toml",
        include_str!("../../../pipelines/tagging-train/02.toml"),
    ),
    (
        "03.toml",
        include_str!("../../../pipelines/tagging-train/03.toml"),
    ),
    (
        "04.toml",
        include_str!("../../../pipelines/tagging-train/04.toml"),
    ),
    (
        "05.toml",
        include_str!("../../../pipelines/tagging-train/05.toml"),
    ),
    (
        "06.toml",
        include_str!("../../../pipelines/tagging-train/06.toml"),
    ),
    (
        "07.toml",
        include_str!("../../../pipelines/tagging-train/07.toml"),
    ),
    (
        "08.toml",
        include_str!("../../../pipelines/tagging-train/08.toml"),
    ),
    (
        "09.toml",
        include_str!("../../../pipelines/tagging-train/09.toml"),
    ),
    (
        "10.toml",
        include_str!("../../../pipelines/tagging-train/10.toml"),
    ),
];

/// The label of everything that does not teach STEM.
pub const OFF_TOPIC: &str = "off-topic";

// Chosen by leave-one-writer-out cross-validation on the training corpus
// (`tests/eval.rs`), never on an evaluation set.
const EPOCHS: usize = 30;
const LEARNING_RATE: f64 = 0.5;
const L2: f64 = 3e-3;
/// A class needs this many training transcripts for the model to be used.
const MIN_EXAMPLES: usize = 8;
/// Inputs found in fewer training transcripts than this are left out.
const MIN_DOCUMENTS: usize = 2;
/// Letter n-grams count at this share of a word.
const NGRAM_WEIGHT: f64 = 0.5;
/// Title words are chosen by the creator and count double, as in the lexicon.
const TITLE_WEIGHT: f64 = 2.0;
/// Shortest and longest letter n-grams taken from each word.
const NGRAMS: std::ops::RangeInclusive<usize> = 3..=5;

/// One labelled training transcript.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingDoc {
    pub id: String,
    pub language: String,
    pub style: String,
    pub subject: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub transcript: String,
}

#[derive(Debug, Deserialize)]
struct CorpusFile {
    doc: Vec<TrainingDoc>,
}

/// The training transcripts compiled into the binary, with the file each came from.
pub fn corpus() -> Vec<(String, TrainingDoc)> {
    CORPUS
        .iter()
        .flat_map(|(name, text)| {
            let file: CorpusFile = toml::from_str(text)
                .unwrap_or_else(|e| panic!("training file {name} does not parse: {e}"));
            file.doc.into_iter().map(|d| ((*name).to_owned(), d))
        })
        .collect()
}

/// The text of one video as the model reads it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Text<'a> {
    pub title: &'a str,
    pub body: &'a [&'a str],
}

/// Named inputs with their values, before they are looked up in the
/// vocabulary. Ordered, so every sum over them is taken in the same order
/// in every process.
pub type RawFeatures = BTreeMap<String, f64>;

/// What the model reads of a text: words (`w:`), neighbouring word pairs
/// (`b:`) and letter n-grams of each word (`c:`), each log-damped and the
/// whole scaled to unit length.
pub fn features(text: Text<'_>) -> RawFeatures {
    let mut counts: RawFeatures = BTreeMap::new();
    let mut add = |s: &str, weight: f64| {
        let tokens = text::tokens(&text::without_annotations(s));
        for (i, t) in tokens.iter().enumerate() {
            *counts.entry(format!("w:{}", t.key)).or_default() += weight;
            if let Some(next) = tokens.get(i + 1) {
                *counts
                    .entry(format!("b:{} {}", t.key, next.key))
                    .or_default() += weight;
            }
            let padded: Vec<char> = format!("<{}>", t.surface).chars().collect();
            for n in NGRAMS {
                for gram in padded.windows(n) {
                    *counts
                        .entry(format!("c:{}", gram.iter().collect::<String>()))
                        .or_default() += weight * NGRAM_WEIGHT;
                }
            }
        }
    };
    add(text.title, TITLE_WEIGHT);
    for s in text.body {
        add(s, 1.0);
    }
    for v in counts.values_mut() {
        *v = v.ln_1p();
    }
    let norm = counts.values().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        for v in counts.values_mut() {
            *v /= norm;
        }
    }
    counts
}

/// A trained model: one weight per (input, class) and a bias per class.
#[derive(Debug)]
pub struct Model {
    classes: Vec<String>,
    vocabulary: HashMap<String, usize>,
    /// Row-major: input × class.
    weights: Vec<f64>,
    bias: Vec<f64>,
    /// How many transcripts it learned from.
    pub trained_on: usize,
}

/// One prediction: probabilities per class, highest first, and the words
/// that pushed hardest towards the top class.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub probabilities: Vec<(String, f64)>,
    pub words: Vec<String>,
    /// How many transcripts the model that made it learned from.
    pub trained_on: usize,
}

impl Prediction {
    pub fn probability(&self, class: &str) -> f64 {
        self.probabilities
            .iter()
            .find(|(c, _)| c == class)
            .map_or(0.0, |(_, p)| *p)
    }

    /// The likeliest class that is not off-topic, with its probability.
    pub fn best_subject(&self) -> Option<(&str, f64)> {
        self.probabilities
            .iter()
            .find(|(c, _)| c != OFF_TOPIC)
            .map(|(c, p)| (c.as_str(), *p))
    }
}

/// A tiny deterministic generator for the training order.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

impl Model {
    /// Trains on `examples` (inputs and class). `classes` fixes the output order.
    pub fn train(classes: Vec<String>, examples: &[(RawFeatures, String)]) -> Self {
        let mut vocabulary: HashMap<String, usize> = HashMap::new();
        let class_index: HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let examples: Vec<(&RawFeatures, usize)> = examples
            .iter()
            .filter_map(|(raw, class)| Some((raw, *class_index.get(class.as_str())?)))
            .collect();
        // An input seen in one transcript only says nothing about a class.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (raw, _) in &examples {
            for name in raw.keys() {
                *seen.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut rows: Vec<(Vec<(usize, f64)>, usize)> = Vec::new();
        for &(raw, y) in &examples {
            let mut names: Vec<(&String, &f64)> = raw
                .iter()
                .filter(|(name, _)| seen[name.as_str()] >= MIN_DOCUMENTS)
                .collect();
            names.sort_by(|a, b| a.0.cmp(b.0));
            let row = names
                .into_iter()
                .map(|(name, &v)| {
                    let next = vocabulary.len();
                    (*vocabulary.entry(name.clone()).or_insert(next), v)
                })
                .collect();
            rows.push((row, y));
        }
        let k = classes.len();
        let mut weights = vec![0.0; vocabulary.len() * k];
        let mut bias = vec![0.0; k];
        let mut order: Vec<usize> = (0..rows.len()).collect();
        let mut rng = XorShift(0x5EED_F00D_CAFE_1234);
        let mut z = vec![0.0; k];
        let mut step = 0usize;
        for _ in 0..EPOCHS {
            for i in (1..order.len()).rev() {
                order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
            }
            for &r in &order {
                let (row, y) = &rows[r];
                step += 1;
                let rate = LEARNING_RATE / (1.0 + step as f64 * 1e-4);
                scores(&weights, &bias, k, row, &mut z);
                softmax(&mut z);
                // The gradient per class, then one pass over the row's weights.
                z[*y] -= 1.0;
                for (b, g) in bias.iter_mut().zip(&z) {
                    *b -= rate * g;
                }
                for &(f, v) in row {
                    for (w, g) in weights[f * k..(f + 1) * k].iter_mut().zip(&z) {
                        *w -= rate * (g * v + L2 * *w);
                    }
                }
            }
        }
        Self {
            classes,
            vocabulary,
            weights,
            bias,
            trained_on: rows.len(),
        }
    }

    pub fn predict(&self, raw: &RawFeatures) -> Prediction {
        let k = self.classes.len();
        if k == 0 {
            return Prediction {
                probabilities: Vec::new(),
                words: Vec::new(),
                trained_on: self.trained_on,
            };
        }
        let row: Vec<(usize, f64, &str)> = raw
            .iter()
            .filter_map(|(name, &v)| Some((*self.vocabulary.get(name)?, v, name.as_str())))
            .collect();
        let mut z = vec![0.0; k];
        let plain: Vec<(usize, f64)> = row.iter().map(|&(f, v, _)| (f, v)).collect();
        scores(&self.weights, &self.bias, k, &plain, &mut z);
        softmax(&mut z);
        let mut probabilities: Vec<(String, f64)> = self
            .classes
            .iter()
            .cloned()
            .zip(z.iter().copied())
            .collect();
        probabilities.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top = self
            .classes
            .iter()
            .position(|c| *c == probabilities[0].0)
            .unwrap_or(0);
        // The words (not pairs or letter groups) that argued most for the top class.
        let mut pushes: Vec<(f64, &str)> = row
            .iter()
            .filter_map(|&(f, v, name)| {
                let word = name.strip_prefix("w:")?;
                let push = v
                    * (self.weights[f * k + top]
                        - (0..k).map(|c| self.weights[f * k + c]).sum::<f64>() / k as f64);
                (push > 0.0).then_some((push, word))
            })
            .collect();
        pushes.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        Prediction {
            probabilities,
            words: pushes
                .into_iter()
                .take(8)
                .map(|(_, w)| w.to_owned())
                .collect(),
            trained_on: self.trained_on,
        }
    }
}

fn scores(weights: &[f64], bias: &[f64], k: usize, row: &[(usize, f64)], z: &mut [f64]) {
    z.copy_from_slice(bias);
    for &(f, v) in row {
        for (c, zc) in z.iter_mut().enumerate() {
            *zc += weights[f * k + c] * v;
        }
    }
}

fn softmax(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// Trains a model for `classes` on labelled transcripts (those of other
/// classes are skipped).
pub fn train(classes: Vec<String>, docs: &[TrainingDoc]) -> Model {
    let examples: Vec<(RawFeatures, String)> = docs
        .iter()
        .map(|d| {
            let body = [d.description.as_str(), d.transcript.as_str()];
            let text = Text {
                title: &d.title,
                body: &body,
            };
            (features(text), d.subject.clone())
        })
        .collect();
    Model::train(classes, &examples)
}

/// The model trained on the built-in corpus for `classes`, once per process
/// and class list; `None` when the corpus does not teach every class (a
/// taxonomy with subjects of its own): a class without examples would never
/// win, so such a taxonomy is tagged by its lexicon alone.
pub fn built_in(classes: &[String]) -> Option<Arc<Model>> {
    type Cache = std::sync::Mutex<Vec<(Vec<String>, Option<Arc<Model>>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, m)) = cache.iter().find(|(c, _)| c == classes) {
        return m.clone();
    }
    let docs: Vec<TrainingDoc> = corpus().into_iter().map(|(_, d)| d).collect();
    let taught =
        |class: &String| docs.iter().filter(|d| d.subject == *class).count() >= MIN_EXAMPLES;
    let model = (!classes.is_empty() && classes.iter().all(taught))
        .then(|| Arc::new(train(classes.to_vec(), &docs)));
    cache.push((classes.to_vec(), model.clone()));
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_parses_and_every_label_is_known() {
        let tax = crate::Taxonomy::built_in();
        let docs = corpus();
        assert!(docs.len() >= 600, "{} training transcripts", docs.len());
        for (file, d) in &docs {
            assert!(
                d.subject == OFF_TOPIC || tax.subject(&d.subject).is_some(),
                "{file}: {} has unknown label {}",
                d.id,
                d.subject
            );
            assert!(!d.transcript.trim().is_empty(), "{file}: {} is empty", d.id);
        }
    }

    #[test]
    fn training_is_deterministic_and_learns_its_examples() {
        let classes = vec!["a".to_owned(), "b".to_owned()];
        let ex = |s: &str, c: &str| {
            let body = [s];
            (
                features(Text {
                    title: "",
                    body: &body,
                }),
                c.to_owned(),
            )
        };
        let examples = vec![
            ex("the ball rolls down the slope faster", "a"),
            ex("a ball speeds up rolling down", "a"),
            ex("we sang songs at the wedding", "b"),
            ex("wedding songs and dancing all night", "b"),
        ];
        let one = Model::train(classes.clone(), &examples);
        let two = Model::train(classes, &examples);
        assert_eq!(one.weights, two.weights);
        let body = ["the ball rolled"];
        let p = one.predict(&features(Text {
            title: "",
            body: &body,
        }));
        assert_eq!(p.probabilities[0].0, "a", "{p:?}");
        assert!(p.words.contains(&"ball".to_owned()), "{p:?}");
    }
}
