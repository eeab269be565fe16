//! The model itself, with no tie to where its training text comes from:
//! the inputs read from a text, training, prediction, and the bytes a
//! trained model is kept in. The build script (`build.rs`) compiles this
//! file too and trains the built-in model with it, so the binary carries the
//! trained weights; the library trains with it only for a taxonomy the
//! built-in model does not fit, and in the evaluation's cross-validation.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::text;

/// The label of everything that does not teach STEM.
pub const OFF_TOPIC: &str = "off-topic";

// Chosen by leave-one-writer-out cross-validation on the training corpus
// (`tests/eval.rs`), never on an evaluation set.
const EPOCHS: usize = 30;
const LEARNING_RATE: f64 = 0.5;
const L2: f64 = 3e-3;
/// A class needs this many training transcripts for the model to be used.
pub const MIN_EXAMPLES: usize = 8;
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

/// The transcripts of one training file (`name` is for the message: a file
/// that does not parse stops the build or the process that reads it).
pub fn parse_corpus_file(name: &str, text: &str) -> Vec<TrainingDoc> {
    toml::from_str::<CorpusFile>(text)
        .unwrap_or_else(|e| panic!("training file {name} does not parse: {e}"))
        .doc
}

/// Whether `docs` teach `class`: at least [`MIN_EXAMPLES`] of them carry it.
pub fn teaches(docs: &[TrainingDoc], class: &str) -> bool {
    docs.iter().filter(|d| d.subject == class).count() >= MIN_EXAMPLES
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
    /// Row-major: input × class. Kept as `f32`: half the size in the
    /// binary, and far finer than anything the training data can tell.
    weights: Vec<f32>,
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
    /// Made by the model `build.rs` trained (set by the library, which
    /// knows which model that is).
    pub built_in: bool,
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

/// The first bytes of a stored model (the version of this layout and of the
/// inputs' names: change it when either changes).
const MAGIC: &[u8] = b"stemfeed-tagger-model 1\n";

/// Reads a stored model front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
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
    /// Classes are kept sorted, so the same examples give the same model
    /// whatever order the classes come in.
    pub fn train(mut classes: Vec<String>, examples: &[(RawFeatures, String)]) -> Self {
        classes.sort();
        classes.dedup();
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
        let mut weights = vec![0.0f64; vocabulary.len() * k];
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
            weights: weights.into_iter().map(|w| w as f32).collect(),
            bias,
            trained_on: rows.len(),
        }
    }

    /// The classes, sorted.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The model as bytes ([`Model::from_bytes`] reads them back exactly):
    /// a magic line, the counts, the classes, the biases, then each input's
    /// name followed by its weights, in input order; numbers little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let k = self.classes.len();
        let mut names: Vec<(&usize, &String)> =
            self.vocabulary.iter().map(|(n, i)| (i, n)).collect();
        names.sort();
        let mut out = MAGIC.to_vec();
        let u32_of = |n: usize| u32::try_from(n).expect("model sizes fit 32 bits");
        let put = |out: &mut Vec<u8>, s: &str| {
            out.extend(u32_of(s.len()).to_le_bytes());
            out.extend(s.as_bytes());
        };
        for n in [k, names.len(), self.trained_on] {
            out.extend(u32_of(n).to_le_bytes());
        }
        for c in &self.classes {
            put(&mut out, c);
        }
        for b in &self.bias {
            out.extend(b.to_le_bytes());
        }
        for (&i, name) in names {
            put(&mut out, name);
            for w in &self.weights[i * k..(i + 1) * k] {
                out.extend(w.to_le_bytes());
            }
        }
        out
    }

    /// Reads what [`Model::to_bytes`] wrote; `None` if the bytes are not a
    /// whole model.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes.strip_prefix(MAGIC)?);
        let k = r.u32()? as usize;
        let n = r.u32()? as usize;
        let trained_on = r.u32()? as usize;
        let classes = (0..k).map(|_| r.string()).collect::<Option<Vec<_>>>()?;
        let bias = (0..k)
            .map(|_| Some(f64::from_le_bytes(r.take(8)?.try_into().ok()?)))
            .collect::<Option<Vec<_>>>()?;
        // Every input takes at least its name's length and its weights: a
        // count the remaining bytes cannot hold is damage, not a size to
        // allocate for.
        if n > r.0.len() / (4 + 4 * k) {
            return None;
        }
        let mut vocabulary = HashMap::with_capacity(n);
        let mut weights = Vec::with_capacity(n * k);
        for i in 0..n {
            vocabulary.insert(r.string()?, i);
            for _ in 0..k {
                weights.push(f32::from_le_bytes(r.take(4)?.try_into().ok()?));
            }
        }
        r.0.is_empty().then_some(Self {
            classes,
            vocabulary,
            weights,
            bias,
            trained_on,
        })
    }

    pub fn predict(&self, raw: &RawFeatures) -> Prediction {
        let k = self.classes.len();
        if k == 0 {
            return Prediction {
                probabilities: Vec::new(),
                words: Vec::new(),
                trained_on: self.trained_on,
                built_in: false,
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
                let w = |c: usize| f64::from(self.weights[f * k + c]);
                let push = v * (w(top) - (0..k).map(w).sum::<f64>() / k as f64);
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
            built_in: false,
        }
    }
}

fn scores<W: Copy + Into<f64>>(
    weights: &[W],
    bias: &[f64],
    k: usize,
    row: &[(usize, f64)],
    z: &mut [f64],
) {
    z.copy_from_slice(bias);
    for &(f, v) in row {
        for (c, zc) in z.iter_mut().enumerate() {
            *zc += weights[f * k + c].into() * v;
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
