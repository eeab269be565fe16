//! The labelled evaluation set (`tests/tagging/eval.toml`, written by hand
//! for this purpose and independently of the taxonomy lexicon): top-1 subject
//! accuracy and off-topic recall, printed as a table and enforced.

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

fn eval_set() -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/tagging/eval.toml");
    let text = std::fs::read_to_string(&path).expect("reading the evaluation set");
    toml::from_str::<EvalSet>(&text)
        .expect("parsing the evaluation set")
        .case
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

#[test]
fn subject_accuracy_and_off_topic_recall_on_the_evaluation_set() {
    let cases = eval_set();
    let tagger = Tagger::new(Taxonomy::built_in());
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
    let mut grade = Tally::default();
    let mut misses = Vec::new();
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
        // STEMFEED_EVAL_SHOW=id,id prints the whole tags.json of those cases.
        if std::env::var("STEMFEED_EVAL_SHOW").is_ok_and(|v| v.split(',').any(|x| x == c.id)) {
            println!("{}: {}", c.id, serde_json::to_string_pretty(&tags).unwrap());
        }
        let got = tags.primary_subject();
        let ok = got == c.subject;
        by_style.entry(c.style.as_str()).or_default().add(ok);
        overall.add(ok);
        if c.subject == "off-topic" {
            off_recall.add(ok);
        } else {
            stem_top1.add(ok);
            stem_kept.add(tags.stem);
            if let Some(expected) = &c.grade {
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
    let per_video_ms = started.elapsed().as_secs_f64() * 1000.0 / cases.len() as f64;

    println!(
        "\ntagging evaluation: {} cases ({} styles)",
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
        ("grade band (informational)", &grade),
    ] {
        println!("{:<34} {:>5} {:>7} {:>7.1}%", name, t.n, t.right, t.pct());
    }
    println!("mean time per video: {per_video_ms:.3} ms");
    if !misses.is_empty() {
        println!("misses:\n{}", misses.join("\n"));
    }
    assert!(
        off_recall.n >= 10,
        "the set needs at least 10 off-topic cases"
    );
    assert!(
        overall.pct() >= 90.0,
        "top-1 accuracy {:.1}% < 90%",
        overall.pct()
    );
    assert!(
        stem_top1.pct() >= 90.0,
        "top-1 subject accuracy {:.1}% < 90%",
        stem_top1.pct()
    );
    assert!(
        off_recall.pct() >= 90.0,
        "off-topic recall {:.1}% < 90%",
        off_recall.pct()
    );
}
