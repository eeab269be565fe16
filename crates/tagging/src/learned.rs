//! The learned half of the tagger: a multinomial logistic regression over
//! words, word pairs and letter n-grams, trained at build time on the
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
//! order, fixed epochs) and happens when the crate is built: `build.rs`
//! trains on every `pipelines/tagging-train/*.toml` with the code in
//! [`model`] and the binary carries the weights, so a process only reads
//! them (about 30 ms). Nothing trained is stored in the repository.

use std::sync::{Arc, OnceLock};

mod model;

pub use model::*;

/// The training files, compiled into the binary (the list is written by
/// `build.rs`, one entry per `pipelines/tagging-train/*.toml`).
const CORPUS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/corpus.rs"));

/// The model `build.rs` trained on [`CORPUS`] for every label in it.
const BUILT_IN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.bin"));

/// The training transcripts compiled into the binary, with the file each came from.
pub fn corpus() -> Vec<(String, TrainingDoc)> {
    CORPUS
        .iter()
        .flat_map(|(name, text)| {
            parse_corpus_file(name, text)
                .into_iter()
                .map(|d| ((*name).to_owned(), d))
        })
        .collect()
}

/// The model `build.rs` trained, read once per process (~30 ms).
fn embedded() -> &'static Arc<Model> {
    static EMBEDDED: OnceLock<Arc<Model>> = OnceLock::new();
    EMBEDDED.get_or_init(|| {
        Arc::new(Model::from_bytes(BUILT_IN).expect("the model build.rs wrote reads back"))
    })
}

/// Whether `model` is the one `build.rs` trained (the one whose calls the
/// cross-validation measured, see `CALL_RIGHT_BY_BAND`).
pub fn is_built_in(model: &Arc<Model>) -> bool {
    Arc::ptr_eq(model, embedded())
}

/// The model for `classes`: the one trained at build time when `classes`
/// are exactly the corpus's labels (the built-in taxonomy), else one trained
/// here on the corpus's transcripts of those classes, once per process and
/// class list. `None` when the corpus does not teach every class (a taxonomy
/// with subjects of its own): a class without examples would never win, so
/// such a taxonomy is tagged by its lexicon alone.
pub fn built_in(classes: &[String]) -> Option<Arc<Model>> {
    let embedded = embedded();
    let mut sorted = classes.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted == embedded.classes() {
        return Some(embedded.clone());
    }
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
    let model = (!classes.is_empty() && classes.iter().all(|c| teaches(&docs, c)))
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

    /// The weights the binary carries are the ones this code trains on this
    /// corpus, and they read back exactly.
    #[test]
    fn the_built_in_model_is_the_corpus_trained_here() {
        let docs: Vec<TrainingDoc> = corpus().into_iter().map(|(_, d)| d).collect();
        // Every transcript's label, so repeated and out of order.
        let mut labels: Vec<String> = docs.iter().map(|d| d.subject.clone()).collect();
        labels.reverse();
        let here = train(labels.clone(), &docs);
        assert_eq!(here.to_bytes(), BUILT_IN, "build.rs trained another model");
        let read = Model::from_bytes(BUILT_IN).expect("reads back");
        assert_eq!(read.to_bytes(), BUILT_IN);
        // The corpus's own labels, in any order and repeated, get the
        // embedded model, not one trained again.
        let model = built_in(&labels).expect("the corpus teaches its own labels");
        assert!(is_built_in(&model));
        assert_eq!(model.trained_on, docs.len());
        let fewer: Vec<String> = labels
            .iter()
            .filter(|l| *l != "robotics")
            .cloned()
            .collect();
        let other = built_in(&fewer).expect("the corpus teaches these too");
        assert!(!is_built_in(&other));
    }

    #[test]
    fn a_damaged_model_is_refused_not_misread() {
        let model = Model::from_bytes(BUILT_IN).expect("reads back");
        let bytes = model.to_bytes();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(Model::from_bytes(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Model::from_bytes(&longer).is_none());
        let mut huge = bytes;
        let at = b"stemfeed-tagger-model 1\n".len() + 4;
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Model::from_bytes(&huge).is_none());
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
        assert_eq!(one.to_bytes(), two.to_bytes());
        let body = ["the ball rolled"];
        let p = one.predict(&features(Text {
            title: "",
            body: &body,
        }));
        assert_eq!(p.probabilities[0].0, "a", "{p:?}");
        assert!(p.words.contains(&"ball".to_owned()), "{p:?}");
    }
}
