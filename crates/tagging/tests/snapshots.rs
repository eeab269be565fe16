//! Snapshot tests of `tags.json`: the whole output for a few videos, so any
//! change to the lexicon or the scoring shows up as a reviewed diff.
//! `STEMFEED_UPDATE_SNAPSHOTS=1 cargo test -p stemfeed-tagging` rewrites them.

use std::path::PathBuf;

use stemfeed_tagging::{Document, Segment, Tagger, Taxonomy};

fn timed(cues: &[(f64, f64, &str)]) -> Vec<Segment> {
    cues.iter()
        .map(|&(start, end, text)| Segment {
            text: text.to_owned(),
            start: Some(start),
            end: Some(end),
        })
        .collect()
}

fn check(name: &str, doc: &Document) {
    let tags = Tagger::new(Taxonomy::built_in()).tag(doc);
    let got = serde_json::to_string_pretty(&tags).expect("tags serialise") + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/tagging/snapshots")
        .join(format!("{name}.json"));
    if std::env::var_os("STEMFEED_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with STEMFEED_UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(
        got, want,
        "tags.json for {name} changed; review and update the snapshot"
    );
}

#[test]
fn english_physics_with_cue_times() {
    check(
        "english-physics",
        &Document {
            title: "Why does a ball fall? Newton's laws in 60 seconds".into(),
            language: Some("en".into()),
            transcript: timed(&[
                (
                    0.0,
                    3.2,
                    "Hi everyone, today we drop a ball from the table.",
                ),
                (
                    3.2,
                    7.5,
                    "Gravity pulls it down, and the force makes it accelerate.",
                ),
                (
                    7.5,
                    12.0,
                    "Newton's second law says force equals mass times acceleration.",
                ),
                (
                    12.0,
                    15.5,
                    "So a heavier ball needs more force for the same acceleration.",
                ),
            ]),
            ..Document::default()
        },
    );
}

#[test]
fn urdu_chemistry_with_translation_and_named_class() {
    check(
        "urdu-chemistry",
        &Document {
            title: "تیزاب اور اساس".into(),
            language: Some("ur".into()),
            transcript: timed(&[
                (
                    0.0,
                    4.0,
                    "\u{200F}السلام علیکم، آج ہم نویں جماعت کا سبق پڑھیں گے۔",
                ),
                (4.0, 9.0, "\u{200F}لیموں کا رس تیزاب ہے اور صابن اساس ہے۔"),
                (9.0, 14.0, "\u{200F}لٹمس پیپر تیزاب میں سرخ ہو جاتا ہے۔"),
            ]),
            translation: timed(&[
                (
                    0.0,
                    4.0,
                    "Peace be upon you, today we will study the lesson of class nine.",
                ),
                (4.0, 9.0, "Lemon juice is an acid and soap is a base."),
                (9.0, 14.0, "Litmus paper turns red in acid."),
            ]),
            ..Document::default()
        },
    );
}

#[test]
fn roman_urdu_cricket_is_off_topic() {
    check(
        "roman-cricket",
        &Document {
            title: "last over ka thriller".into(),
            language: Some("ur".into()),
            transcript: timed(&[
                (
                    0.0,
                    4.0,
                    "kya match tha yaar, last over mein 12 runs chahiye the",
                ),
                (
                    4.0,
                    8.0,
                    "batsman ne pehli ball pe chakka maara, ball ki speed 140 thi",
                ),
                (
                    8.0,
                    12.0,
                    "phir wicket gir gayi aur stadium mein shor mach gaya",
                ),
            ]),
            translation: timed(&[
                (
                    0.0,
                    4.0,
                    "What a match, 12 runs were needed in the last over",
                ),
                (
                    4.0,
                    8.0,
                    "the batsman hit a six on the first ball, the ball's speed was 140",
                ),
                (8.0, 12.0, "then a wicket fell and the stadium erupted"),
            ]),
            ..Document::default()
        },
    );
}

#[test]
fn code_switched_python_with_grade_hint() {
    check(
        "mixed-python",
        &Document {
            language: Some("ur".into()),
            grade_hint: Some(7),
            transcript: timed(&[
                (0.0, 5.0, "aaj hum python mein for loop likhna seekhenge"),
                (
                    5.0,
                    10.0,
                    "pehle ek variable banao, phir range function se loop chalao",
                ),
                (10.0, 15.0, "print statement har number screen pe dikhayega"),
            ]),
            translation: timed(&[
                (
                    0.0,
                    5.0,
                    "today we will learn to write a for loop in python",
                ),
                (
                    5.0,
                    10.0,
                    "first make a variable, then run the loop with the range function",
                ),
                (
                    10.0,
                    15.0,
                    "the print statement will show every number on the screen",
                ),
            ]),
            ..Document::default()
        },
    );
}
