//! Labelled sets, printed as tables and enforced:
//! - `tests/tagging/eval.toml`, the TUNING set: written by hand, but its
//!   phrases then went into the lexicon, so its accuracy is a regression
//!   check, not a result;
//! - `tests/tagging/blind.toml` to `blind5.toml`, HELD-OUT sets: written without sight of the lexicon,
//!   the training transcripts or the other sets (issue "Review, part 2"),
//!   never used to tune; their misses are not printed. Their numbers
//!   are the honest ones; the floors below are what the tagger measured on
//!   them, so a change that makes them worse fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;
use stemfeed_tagging::{Document, Segment, Tagger, Taxonomy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    language: String,
    style: String,
    subject: String,
    /// `""` or absent: the text gives no grade.
    grade: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    transcript: String,
    translation: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EvalSet {
    case: Vec<Case>,
}

fn eval_set(name: &str) -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/tagging")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("reading the evaluation set");
    toml::from_str::<EvalSet>(&text)
        .expect("parsing the evaluation set")
        .case
}

/// What one set measured, percent.
struct Measured {
    overall: f64,
    stem_top1: f64,
    off_recall: f64,
    stem_kept: f64,
    /// Cases with no usable text called `undetermined`; `None` when the set has none.
    undetermined: Option<f64>,
}

#[derive(Debug, Default)]
struct Tally {
    n: usize,
    right: usize,
}

impl Tally {
    fn add(&mut self, ok: bool) {
        self.n += 1;
        self.right += usize::from(ok);
    }
    fn pct(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            100.0 * self.right as f64 / self.n as f64
        }
    }
}

/// Every run of eight words (normalised) in `text`.
fn runs(text: &str) -> std::collections::HashSet<String> {
    let keys: Vec<String> = stemfeed_tagging::text::tokens(text)
        .into_iter()
        .map(|t| t.key)
        .collect();
    keys.windows(8).map(|w| w.join(" ")).collect()
}

/// The runs of eight words of every training transcript (once per test
/// binary: every set is scored twice).
fn training_runs() -> &'static std::collections::HashSet<String> {
    static RUNS: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    RUNS.get_or_init(|| {
        stemfeed_tagging::learned::corpus()
            .iter()
            .flat_map(|(_, d)| runs(&d.transcript))
            .collect()
    })
}

/// Measures the tagger on one set. The misses of a held-out set are not
/// printed: whoever reads them is no longer blind to it.
fn measure(name: &str, held_out: bool) -> Measured {
    let lexicon = score(
        &Tagger::lexicon_only(Taxonomy::built_in()),
        name,
        "lexicon only",
        held_out,
    );
    println!(
        "lexicon only, {name}: top-1 on STEM {:.1}%, off-topic recall {:.1}%, STEM kept {:.1}%",
        lexicon.stem_top1, lexicon.off_recall, lexicon.stem_kept
    );
    score(
        &Tagger::new(Taxonomy::built_in()),
        name,
        "lexicon and learned model",
        held_out,
    )
}

/// Scores one tagger on one set, printing the table.
fn score(tagger: &Tagger, name: &str, which: &str, held_out: bool) -> Measured {
    let cases = eval_set(name);
    let styles: Vec<&str> = {
        let mut s: Vec<&str> = cases.iter().map(|c| c.style.as_str()).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    assert!(
        cases.len() >= 90,
        "the set needs at least 90 cases, has {}",
        cases.len()
    );

    let mut by_style: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut overall = Tally::default();
    let mut stem_top1 = Tally::default();
    let mut off_recall = Tally::default();
    let mut stem_kept = Tally::default();
    let mut undetermined = Tally::default();
    let mut grade = Tally::default();
    let mut misses = Vec::new();
    // The same slices over the cases that share no run of eight words with
    // any training transcript: how the model does on text unlike its own.
    let training = training_runs();
    let (mut fresh_top1, mut fresh_off, mut fresh_kept) =
        (Tally::default(), Tally::default(), Tally::default());
    let mut shared = 0;
    let mut calls: Vec<(f64, bool)> = Vec::new();
    let started = Instant::now();
    for c in &cases {
        let doc = Document {
            title: c.title.clone(),
            description: c.description.clone(),
            language: Some(c.language.clone()),
            transcript: vec![Segment::untimed(c.transcript.clone())],
            translation: c
                .translation
                .iter()
                .map(|t| Segment::untimed(t.clone()))
                .collect(),
            grade_hint: None,
        };
        let tags = tagger.tag(&doc);
        // STEMFEED_EVAL_SHOW=id,id prints the whole tags.json of those
        // cases (of the tuning set).
        if !held_out
            && std::env::var("STEMFEED_EVAL_SHOW").is_ok_and(|v| v.split(',').any(|x| x == c.id))
        {
            println!("{}: {}", c.id, serde_json::to_string_pretty(&tags).unwrap());
        }
        let got = tags.primary_subject();
        let ok = got == c.subject;
        if let Some(p) = tags.classifier.as_ref().and_then(|c| c.call_right) {
            calls.push((p, ok));
        }
        let own = runs(&c.transcript);
        let common = own.intersection(training).count();
        // A case pasted into the training transcripts (or they into it)
        // would be learned, not measured.
        assert!(
            common * 2 <= own.len().max(1),
            "{}: {common} of its {} runs of eight words are in the training transcripts",
            c.id,
            own.len()
        );
        let fresh = common == 0;
        shared += usize::from(!fresh);
        if fresh {
            match c.subject.as_str() {
                "off-topic" => fresh_off.add(ok),
                "undetermined" => {}
                _ => {
                    fresh_top1.add(ok);
                    fresh_kept.add(tags.stem);
                }
            }
        }
        by_style.entry(c.style.as_str()).or_default().add(ok);
        overall.add(ok);
        if c.subject == "off-topic" {
            off_recall.add(ok);
        } else if c.subject == "undetermined" {
            undetermined.add(ok);
        } else {
            stem_top1.add(ok);
            stem_kept.add(tags.stem);
            if let Some(expected) = c.grade.as_ref().filter(|g| !g.is_empty()) {
                grade.add(tags.grade_band.as_ref().is_some_and(|g| &g.id == expected));
            }
        }
        if !ok {
            misses.push(format!(
                "  {:<28} expected {:<24} got {:<24} ({})",
                c.id,
                c.subject,
                got,
                tags.off_topic.as_ref().map_or_else(
                    || tags
                        .subjects
                        .iter()
                        .map(|s| format!("{} {:.2}", s.id, s.score))
                        .collect::<Vec<_>>()
                        .join(", "),
                    |o| o.reason.clone()
                )
            ));
        }
    }
    println!("cases sharing a run of eight words with a training transcript: {shared}");
    let per_video_ms = started.elapsed().as_secs_f64() * 1000.0 / cases.len() as f64;

    println!(
        "\ntagging evaluation, {name}, {which}: {} cases ({} styles)",
        cases.len(),
        styles.len()
    );
    println!("{:<34} {:>5} {:>7} {:>8}", "slice", "n", "right", "percent");
    for (style, t) in &by_style {
        println!(
            "{:<34} {:>5} {:>7} {:>7.1}%",
            format!("top-1, {style}"),
            t.n,
            t.right,
            t.pct()
        );
    }
    for (name, t) in [
        ("top-1 subject, all cases", &overall),
        ("top-1 subject, STEM cases", &stem_top1),
        ("off-topic recall", &off_recall),
        ("STEM cases kept as STEM", &stem_kept),
        ("no usable text: undetermined", &undetermined),
        ("grade band (informational)", &grade),
        ("top-1 on STEM, no shared 8-word run", &fresh_top1),
        ("off-topic, no shared 8-word run", &fresh_off),
        ("STEM kept, no shared 8-word run", &fresh_kept),
    ] {
        println!("{:<34} {:>5} {:>7} {:>7.1}%", name, t.n, t.right, t.pct());
    }
    println!("mean time per video: {per_video_ms:.3} ms");
    if !calls.is_empty() {
        println!("call_right against how often the calls on {name} were right:");
        print_calibration(&calls);
    }
    if held_out {
        println!("misses: {} (not listed: a held-out set)", misses.len());
    } else if !misses.is_empty() {
        println!("misses:\n{}", misses.join("\n"));
    }
    assert!(
        off_recall.n >= 10,
        "the set needs at least 10 off-topic cases"
    );
    Measured {
        overall: overall.pct(),
        stem_top1: stem_top1.pct(),
        off_recall: off_recall.pct(),
        stem_kept: stem_kept.pct(),
        undetermined: (undetermined.n > 0).then(|| undetermined.pct()),
    }
}

#[test]
fn subject_accuracy_and_off_topic_recall_on_the_tuning_set() {
    let m = measure("eval.toml", false);
    assert!(m.overall >= 90.0, "top-1 accuracy {:.1}% < 90%", m.overall);
    assert!(
        m.stem_top1 >= 90.0,
        "top-1 subject accuracy {:.1}% < 90%",
        m.stem_top1
    );
    assert!(
        m.off_recall >= 90.0,
        "off-topic recall {:.1}% < 90%",
        m.off_recall
    );
}

/// The held-out set. The targets (top-1 ≥ 95% on STEM, off-topic
/// recall ≥ 95%, STEM kept as STEM ≥ 97%) are printed beside the measured
/// numbers; the gate is the measured level (see the module doc).
#[test]
fn subject_accuracy_and_off_topic_recall_on_the_blind_set() {
    let m = measure("blind.toml", true);
    println!(
        "targets: top-1 on STEM >= 95% (now {:.1}%), off-topic recall >= 95% (now {:.1}%), STEM kept >= 97% (now {:.1}%)",
        m.stem_top1, m.off_recall, m.stem_kept
    );
    for (what, now, floor) in [
        ("top-1 on STEM", m.stem_top1, BLIND_FLOOR.0),
        ("off-topic recall", m.off_recall, BLIND_FLOOR.1),
        ("STEM kept as STEM", m.stem_kept, BLIND_FLOOR.2),
    ] {
        assert!(now >= floor, "{what}: {now:.1}% fell below {floor:.1}%");
    }
}

/// (top-1 on STEM, off-topic recall, STEM kept), percent: the blind set's
/// measured level, rounded down. History (each a single measurement; the
/// misses are never listed, so no change was made with them in hand):
/// - 2026-11-30, first measurement, the lexicon as it was: 62.5%, 79.4%, 65.9%;
/// - support rule (a subject found through one term counts half) and
///   "undetermined" for no usable text: 60.2%, 85.3%, 64.8%;
/// - plus ~370 everyday-context terms written by a helper who saw neither
///   blind set: 60.2%, 85.3%, 64.8% (no change);
/// - the learned model beside the lexicon (issue "Review, part 2"; the
///   lexicon-only numbers above are printed beside it on every run):
///   89.8%, 91.2%, 96.6% as first measured; 92.0%, 88.2%, 98.9% after inputs
///   seen in one training transcript were dropped (for training speed; the
///   change was judged by cross-validation, not by these sets);
/// - 528 more training transcripts (four writers, Roman Urdu and Urdu
///   script): 94.3%, 94.1%, 100%; unchanged with writers 11-14;
/// - writers 15-18 (528 more): 95.5%, 97.1%, 100%.
const BLIND_FLOOR: (f64, f64, f64) = (95.0, 97.0, 100.0);

/// Measures a held-out set with cases of no usable text and gates it at
/// `floor`: (top-1 on STEM, off-topic recall, STEM kept, undetermined).
fn gate_held_out(name: &str, floor: (f64, f64, f64, f64)) {
    let m = measure(name, true);
    println!(
        "targets: top-1 on STEM >= 95% (now {:.1}%), off-topic recall >= 95% (now {:.1}%), STEM kept >= 97% (now {:.1}%), undetermined {:.1}%",
        m.stem_top1,
        m.off_recall,
        m.stem_kept,
        m.undetermined.unwrap_or(0.0)
    );
    for (what, now, floor) in [
        ("top-1 on STEM", m.stem_top1, floor.0),
        ("off-topic recall", m.off_recall, floor.1),
        ("STEM kept as STEM", m.stem_kept, floor.2),
        (
            "undetermined recall",
            m.undetermined.unwrap_or(0.0),
            floor.3,
        ),
    ] {
        assert!(now >= floor, "{what}: {now:.1}% fell below {floor:.1}%");
    }
}

/// The second held-out set (written blind after the first was measured,
/// with cases that have no usable text), gated at its measured level.
#[test]
fn subject_accuracy_and_off_topic_recall_on_the_second_blind_set() {
    gate_held_out("blind2.toml", BLIND2_FLOOR);
}

/// (top-1 on STEM, off-topic recall, STEM kept, undetermined), percent,
/// rounded down. History (single measurements, misses never listed):
/// - the tagger before the support rule and "undetermined", old lexicon:
///   59.1%, 71.9%, 68.2%, 0%;
/// - support rule and "undetermined": 59.1%, 71.9%, 65.9%, 70.0%;
/// - plus the everyday-context terms: 58.0% (51 of 88), 78.1%, 64.8%, 70.0%;
/// - the learned model: 81.8%, 87.5%, 95.5%, 70.0% (a first version that let
///   the model decide short texts read 30% undetermined; see the README);
///   81.8%, 87.5%, 98.9%, 70.0% after rare inputs were dropped;
///   89.8%, 90.6%, 97.7%, 70.0% with the 528 more training transcripts;
///   93.2%, 93.8%, 98.9%, 70.0% with writers 11-14 (528 more, chosen by
///   cross-validation before this set was read again); unchanged with
///   writers 15-18.
const BLIND2_FLOOR: (f64, f64, f64, f64) = (93.0, 93.0, 98.0, 70.0);

/// Leave-one-writer-out over the training transcripts: the model is trained
/// on all writers' files but one and scored on that one's, for each writer. This is
/// where the model's settings were chosen (never on the evaluation sets); the
/// numbers are printed per held-out writer and pooled.
#[test]
fn cross_validation_by_training_writer() {
    let corpus = stemfeed_tagging::learned::corpus();
    let files: std::collections::BTreeSet<&str> = corpus.iter().map(|(f, _)| f.as_str()).collect();
    let (mut top1, mut off, mut kept) = (Tally::default(), Tally::default(), Tally::default());
    // (the model's probability of the call, whether the call was right)
    let mut calls: Vec<(f64, bool)> = Vec::new();
    for held in &files {
        let train: Vec<_> = corpus
            .iter()
            .filter(|(f, _)| f != held)
            .map(|(_, d)| d.clone())
            .collect();
        let tagger = Tagger::trained_on(Taxonomy::built_in(), &train);
        let (mut t, mut o, mut k) = (Tally::default(), Tally::default(), Tally::default());
        for (_, d) in corpus.iter().filter(|(f, _)| f == held) {
            let tags = tagger.tag(&Document {
                title: d.title.clone(),
                description: d.description.clone(),
                language: Some(d.language.clone()),
                transcript: vec![Segment::untimed(d.transcript.clone())],
                ..Document::default()
            });
            let ok = tags.primary_subject() == d.subject;
            if let Some(p) = tags.classifier.as_ref().and_then(|c| c.call_probability) {
                calls.push((p, ok));
            }
            if d.subject == "off-topic" {
                o.add(ok);
                off.add(ok);
            } else {
                t.add(ok);
                k.add(tags.stem);
                top1.add(ok);
                kept.add(tags.stem);
            }
        }
        println!(
            "held-out writer {held}: top-1 on STEM {:.1}% ({}), off-topic recall {:.1}% ({}), STEM kept {:.1}%",
            t.pct(),
            t.n,
            o.pct(),
            o.n,
            k.pct()
        );
    }
    println!(
        "pooled over {} writers: top-1 on STEM {:.1}%, off-topic recall {:.1}%, STEM kept {:.1}%",
        files.len(),
        top1.pct(),
        off.pct(),
        kept.pct()
    );
    println!("the model's probability of the call, as it comes:");
    print_calibration(&calls);
    // The table the tagger reads call_right from, measured on these calls.
    let table = stemfeed_tagging::CALL_RIGHT_BY_BAND;
    let mut lower = 0.0;
    let mut measured = Vec::new();
    for &(upper, _) in &table {
        let inside: Vec<bool> = calls
            .iter()
            .filter(|(p, _)| in_band(*p, lower, upper))
            .map(|(_, ok)| *ok)
            .collect();
        let right = inside.iter().filter(|ok| **ok).count();
        let share = (right as f64 + 1.0) / (inside.len() as f64 + 2.0);
        measured.push((upper, (share * 1000.0).round() / 1000.0));
        lower = upper;
    }
    let literal: Vec<String> = measured
        .iter()
        .map(|(u, s)| format!("    ({u:?}, {s:?}),"))
        .collect();
    println!("CALL_RIGHT_BY_BAND measured:\n{}", literal.join("\n"));
    for (now, then) in measured.iter().zip(&table) {
        assert!(
            (now.1 - then.1).abs() <= 0.01,
            "the tagger's CALL_RIGHT_BY_BAND is stale (band up to {}: {} in the table, {} measured): paste the table printed above",
            now.0,
            then.1,
            now.1
        );
    }
    // How well call_right reads is measured on the held-out sets (printed
    // with each): here it would be measured on the calls it was made from.
    assert!(top1.n >= 400, "{} STEM transcripts", top1.n);
    // The level measured, rounded down: 97.7%, 98.9%, 99.7% over writers
    // 01-10 when the settings were chosen; 97.0%, 99.2%, 99.7% over 01-14
    // (writers 11-14 write in settings and lengths the others did not, and
    // are the hardest folds, 93-96% top-1; on the folds of 01-10 the added
    // writers raised top-1 from 97.7% to 98.1%, off-topic recall from 98.9%
    // to 99.5%). L2 1.5e-3 and 6e-3 were tried again on 01-14: both lower.
    // 97.2%, 99.0%, 99.8% over 01-18; on the folds of 01-14 writers 15-18
    // moved top-1 from 97.0% to 97.3%, off-topic recall from 99.2% to 98.9%
    // (two transcripts) and STEM kept from 99.7% to 99.8%.
    for (what, now, floor) in [
        ("top-1 on STEM", top1.pct(), 97.0),
        ("off-topic recall", off.pct(), 98.0),
        ("STEM kept as STEM", kept.pct(), 99.0),
    ] {
        assert!(now >= floor, "{what}: {now:.1}% fell below {floor:.1}%");
    }
}

/// The third held-out set: written blind (like the others) and committed
/// before the learned model existed, to judge it. Gated at its measured level.
#[test]
fn subject_accuracy_and_off_topic_recall_on_the_third_blind_set() {
    gate_held_out("blind3.toml", BLIND3_FLOOR);
}

/// (top-1 on STEM, off-topic recall, STEM kept, undetermined), percent,
/// rounded down. History: the lexicon alone 69.3%, 66.7%, 75.0%, 100%;
/// the learned model 95.5%, 97.2%, 96.6%, 100% (its first version read 37.5%
/// undetermined; see the README); 97.7%, 97.2%, 98.9%, 100% after rare
/// inputs were dropped; 98.9%, 100%, 100%, 100% with the 528 more training
/// transcripts; unchanged with writers 11-14 and with 15-18.
const BLIND3_FLOOR: (f64, f64, f64, f64) = (98.0, 100.0, 100.0, 100.0);

/// The fourth held-out set: written blind from a brief of its own (a
/// different picture of the uploads, in different words, from the label
/// definitions the training transcripts were written from), and committed
/// before the training transcripts of writers 11-14 were added.
#[test]
fn subject_accuracy_and_off_topic_recall_on_the_fourth_blind_set() {
    gate_held_out("blind4.toml", BLIND4_FLOOR);
}

/// (top-1 on STEM, off-topic recall, STEM kept, undetermined), percent,
/// rounded down. History: the lexicon alone 87.5%, 66.7%, 89.8%; the
/// learned model on writers 01-10 (first measurement) 97.7%, 100%, 100%,
/// 87.5% (7 of 8); 18 cases share an 8-word run with training, and on the
/// others 98.6%, 100%, 100%. With writers 11-14 (the change it was
/// written to judge): 97.7%, 100%, 100%, 87.5%, unchanged; 24 cases share a
/// run, and on the others 98.5%, 100%, 100%. With writers 15-18: 98.9%,
/// 100%, 100%, 87.5%; 29 share a run, the others 100%, 100%, 100%.
const BLIND4_FLOOR: (f64, f64, f64, f64) = (98.0, 100.0, 100.0, 87.0);

/// The fifth held-out set: blind4's brief with another picture of the
/// upload queue (clips, reactions, adverts, videos that mix two things),
/// committed before the training transcripts of writers 15-18 were added.
#[test]
fn subject_accuracy_and_off_topic_recall_on_the_fifth_blind_set() {
    gate_held_out("blind5.toml", BLIND5_FLOOR);
}

/// (top-1 on STEM, off-topic recall, STEM kept, undetermined), percent,
/// rounded down. History: the lexicon alone 78.4%, 72.2%, 83.0%; the
/// learned model on writers 01-14 (first measurement) 96.6%, 100%, 98.9%,
/// 87.5% (7 of 8); 26 cases share an 8-word run with training, and on the
/// others 95.5%, 100%, 98.5%. With writers 15-18 (the change it was
/// written to judge): unchanged, 96.6%, 100%, 98.9%, 87.5%.
const BLIND5_FLOOR: (f64, f64, f64, f64) = (96.0, 100.0, 98.0, 87.0);

/// Whether probability `p` falls in the band from `lo` to `hi`: `lo`
/// included, `hi` excluded except for the last band (`hi` = 1), which
/// includes 1.
fn in_band(p: f64, lo: f64, hi: f64) -> bool {
    p >= lo && (p < hi || (hi >= 1.0 && p <= 1.0))
}

/// How far the stated confidences are from how often the calls are right:
/// a table by confidence band and the expected calibration error (the
/// bands' gaps weighted by their sizes). Printed, not gated: the
/// confidences are shown to curators, and this says how to read them.
fn print_calibration(calls: &[(f64, bool)]) {
    println!(
        "{:<12} {:>6} {:>10} {:>10}",
        "band", "calls", "stated", "right"
    );
    let mut ece = 0.0;
    const EDGES: [f64; 9] = [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99, 1.0];
    for w in EDGES.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let inside: Vec<&(f64, bool)> = calls.iter().filter(|(c, _)| in_band(*c, lo, hi)).collect();
        if inside.is_empty() {
            continue;
        }
        let n = inside.len() as f64;
        let stated = inside.iter().map(|(c, _)| c).sum::<f64>() / n;
        let right = inside.iter().filter(|(_, ok)| *ok).count() as f64 / n;
        ece += n / calls.len() as f64 * (stated - right).abs();
        println!(
            "{:<12} {:>6} {:>9.1}% {:>9.1}%",
            format!("{lo:.2}-{hi:.2}"),
            inside.len(),
            100.0 * stated,
            100.0 * right
        );
    }
    println!("expected calibration error: {:.1} points", 100.0 * ece);
}
