//! Captions as a viewer and a curator see them: the right words in the
//! right script at the right time, nothing over silence or music, every cue
//! within the rules, right-to-left lines that render right, and files that
//! parse back to the same cues.

mod common;

use std::path::Path;

use common::{ensure_default_models, espeak, ffmpeg_make, run, stemfeed, text};
use serde_json::Value;

fn process(input: &Path, out: &Path, extra: &[&str]) -> Value {
    ensure_default_models();
    let result = run(stemfeed()
        .arg("process")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra));
    assert!(
        result.status.success(),
        "process failed: {}",
        text(&result.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

fn track<'a>(manifest: &'a Value, kind: &str) -> &'a Value {
    manifest["captions"]["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} track: {manifest}"))
}

/// Cues as `stemfeed captions parse --json` reads them from a file.
fn parsed_cues(file: &Path) -> Vec<Value> {
    let out = run(stemfeed().args(["captions", "parse", "--json"]).arg(file));
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["cues"].as_array().unwrap().clone()
}

fn graphemes(s: &str) -> usize {
    // Count characters, ignoring directional marks; the test texts have no
    // combining sequences beyond what chars() counts as one.
    s.chars()
        .filter(|c| !matches!(c, '\u{200E}' | '\u{200F}' | '\u{2066}'..='\u{2069}'))
        .count()
}

/// The profile's rules: ≤ 42 per line, ≤ 2 lines, 0.833–7 s, ≥ 2 frames apart, ≤ 17 cps.
fn assert_rules(cues: &[Value]) {
    for (i, c) in cues.iter().enumerate() {
        let t = c["text"].as_str().unwrap();
        let (start, end) = (c["start"].as_f64().unwrap(), c["end"].as_f64().unwrap());
        let lines: Vec<&str> = t.split('\n').collect();
        assert!(lines.len() <= 2, "cue {i}: {t:?}");
        assert!(lines.iter().all(|l| graphemes(l) <= 42), "cue {i}: {t:?}");
        let d = end - start;
        assert!((0.833 - 1e-3..=7.0 + 1e-3).contains(&d), "cue {i}: {d} s");
        assert!(
            graphemes(&t.replace('\n', "")) as f64 / d <= 17.0 + 1e-3,
            "cue {i}: too fast to read"
        );
        if let Some(next) = cues.get(i + 1) {
            assert!(
                next["start"].as_f64().unwrap() - end >= 2.0 / 30.0 - 1e-3,
                "cue {i}: gap"
            );
        }
    }
}

#[test]
fn english_speech_is_detected_transcribed_and_timed() {
    let dir = tempfile::tempdir().unwrap();
    let wav = espeak(
        dir.path(),
        "en.wav",
        "en",
        "Photosynthesis turns sunlight into chemical energy. Newton's second law connects force, mass and acceleration.",
    );
    let input = common::video_with(dir.path(), "lesson.mp4", &wav);
    let out = dir.path().join("out");
    let manifest = process(&input, &out, &[]);
    let lang = &manifest["captions"]["language"];
    assert_eq!(lang["language"], "en", "{lang}");
    assert!(lang["probability"].as_f64().unwrap() > 0.5);
    let transcript = track(&manifest, "transcript");
    assert_eq!(transcript["status"], "ok");
    assert!(
        manifest["captions"]["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["kind"] != "translation"),
        "no translation of English"
    );

    let cues = parsed_cues(&out.join(transcript["files"]["vtt"].as_str().unwrap()));
    let said = cues
        .iter()
        .map(|c| c["text"].as_str().unwrap().replace('\n', " "))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    for phrase in [
        "photosynthesis",
        "sunlight",
        "chemical energy",
        "second law",
        "acceleration",
    ] {
        assert!(said.contains(phrase), "{phrase:?} missing from {said:?}");
    }
    // Cues sit inside the speech (espeak starts at once and ends with the file).
    let duration = manifest["source"]["media"]["duration_s"].as_f64().unwrap();
    assert!(cues.iter().all(
        |c| c["start"].as_f64().unwrap() >= 0.0 && c["end"].as_f64().unwrap() <= duration + 1.0
    ));
    assert_rules(&cues);

    // The JSON track carries words with timings and confidence, the SRT the same cues.
    let json: Value = serde_json::from_slice(
        &std::fs::read(out.join(transcript["files"]["json"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let word = &json["cues"][0]["words"][0];
    assert!(
        word["start"].is_number() && word["probability"].is_number(),
        "{word}"
    );
    let srt = parsed_cues(&out.join(transcript["files"]["srt"].as_str().unwrap()));
    assert_eq!(srt.len(), cues.len());
    // Tags: the spoken subject, with evidence timed inside the video.
    assert_eq!(manifest["tags"]["file"], "tags.json");
    let tags: Value =
        serde_json::from_slice(&std::fs::read(out.join("tags.json")).unwrap()).unwrap();
    assert_eq!(tags["stem"], true, "{tags}");
    let subjects: Vec<&str> = tags["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        matches!(subjects.first(), Some(&"physics" | &"biology")),
        "{subjects:?}"
    );
    let timed = tags["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == "transcript")
        .expect("transcript evidence");
    assert!(timed["start"].as_f64().unwrap() <= duration, "{timed}");
    assert!(
        tags["hashtags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "#STEMTok")
    );
    // HLS players find the track.
    let master = std::fs::read_to_string(out.join("hls/master.m3u8")).unwrap();
    assert!(
        master.contains("TYPE=SUBTITLES")
            && master.contains("LANGUAGE=\"en\"")
            && master.contains("SUBTITLES=\"subs\""),
        "{master}"
    );
}

#[test]
fn urdu_speech_is_detected_and_written_in_arabic_script_right_to_left() {
    let dir = tempfile::tempdir().unwrap();
    let wav = espeak(
        dir.path(),
        "ur.wav",
        "ur",
        "نیوٹن کا دوسرا قانون کہتا ہے کہ قوت برابر ہے کمیت ضرب اسراع۔ روشنی کی رفتار بہت زیادہ ہے۔",
    );
    let input = common::video_with(dir.path(), "urdu.mp4", &wav);
    let out = dir.path().join("out");
    let manifest = process(&input, &out, &[]);
    assert_eq!(
        manifest["captions"]["language"]["language"], "ur",
        "{}",
        manifest["captions"]["language"]
    );
    let transcript = track(&manifest, "transcript");
    // Right script, guards passed, but the base model is measured to get
    // most Urdu words wrong on real speech: a draft that says so.
    assert_eq!(transcript["status"], "draft", "{transcript}");
    let reason = transcript["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("model base") && reason.contains("% of words wrong"),
        "{transcript}"
    );
    let cues = parsed_cues(&out.join(transcript["files"]["vtt"].as_str().unwrap()));
    assert!(!cues.is_empty());
    for c in &cues {
        for line in c["text"].as_str().unwrap().split('\n') {
            assert!(
                line.starts_with('\u{200F}'),
                "RTL line without RLM: {line:?}"
            );
        }
        let arabic = c["text"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|ch| ('\u{0600}'..='\u{06FF}').contains(ch))
            .count();
        assert!(arabic > 0, "{c}");
    }
    assert_rules(&cues);
    // Non-English speech also gets an English translation track.
    let translation = track(&manifest, "translation");
    assert_eq!(translation["language"], "en");
    assert!(
        out.join(translation["files"]["vtt"].as_str().unwrap())
            .is_file()
    );
    // Tags are written for every processed video. (The base model's
    // transcript of espeak's Urdu is too garbled to carry subject terms, so
    // the subject is checked by re-tagging with an Urdu title instead.)
    let tags: Value =
        serde_json::from_slice(&std::fs::read(out.join("tags.json")).unwrap()).unwrap();
    assert_eq!(tags["stem"], manifest["tags"]["stem"]);
    let retag = common::run(common::stemfeed().arg("tag").arg(&out).args([
        "--title",
        "نیوٹن کا دوسرا قانون: قوت اور اسراع",
        "--grade",
        "9",
    ]));
    assert!(retag.status.success(), "{}", common::text(&retag.stderr));
    let tags: Value =
        serde_json::from_slice(&std::fs::read(out.join("tags.json")).unwrap()).unwrap();
    // The Urdu title's terms are found: physics is the first subject. The
    // transcript and translation under it are garbled (espeak's Urdu through
    // the base model), and the text classifier weighs them too: it files the
    // video under physics, or calls it off-topic without being sure, naming
    // physics, and a curator decides.
    assert_eq!(tags["subjects"][0]["id"], "physics", "{tags}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    if tags["stem"] == true {
        assert!(
            tags["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["source"] == "title"
                    && e["term"]
                        .as_str()
                        .unwrap()
                        .chars()
                        .any(|c| ('\u{0600}'..='\u{06FF}').contains(&c))),
            "{tags}"
        );
        assert!(
            tags["hashtags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h == "#UrduScience"),
            "{tags}"
        );
        assert_eq!(tags["grade_band"]["id"], "secondary", "{tags}");
        assert_eq!(manifest["tags"]["subject"], "physics");
    } else {
        let off = &tags["off_topic"];
        assert!(off["confidence"].as_f64().unwrap() < 0.6, "{tags}");
        assert!(
            off["reason"].as_str().unwrap().contains("physics"),
            "{tags}"
        );
        assert_eq!(manifest["tags"]["stem"], false);
    }
}

#[test]
fn script_guard_catches_a_wrong_forced_language() {
    let dir = tempfile::tempdir().unwrap();
    let wav = espeak(
        dir.path(),
        "ur.wav",
        "ur",
        "نیوٹن کا دوسرا قانون کہتا ہے کہ قوت برابر ہے کمیت ضرب اسراع۔",
    );
    let input = common::video_with(dir.path(), "urdu.mp4", &wav);
    let out = dir.path().join("out");
    // A submitter says Hindi for Urdu speech. Depending on the prompt, the
    // base model writes Devanagari (right for hi) or romanised text (wrong):
    // the track's status must follow the script actually written.
    let manifest = process(&input, &out, &["--language", "hi"]);
    let language = &manifest["captions"]["language"];
    assert_eq!(
        (language["language"].as_str(), language["source"].as_str()),
        (Some("hi"), Some("hint"))
    );
    let transcript = track(&manifest, "transcript");
    let text: String = parsed_cues(&out.join(transcript["files"]["vtt"].as_str().unwrap()))
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect();
    let devanagari = text
        .chars()
        .filter(|c| ('\u{0900}'..='\u{097F}').contains(c))
        .count();
    let latin = text.chars().filter(char::is_ascii_alphabetic).count();
    if text.trim().is_empty() {
        // Every segment dropped: never published as ok.
        assert_eq!(transcript["status"], "needs-human", "{transcript}");
    } else if devanagari > latin {
        // The right script for hi: not a script failure. It may still be a
        // draft for low confidence (espeak Urdu heard as Hindi often is).
        let reason = transcript["reason"].as_str().unwrap_or_default();
        assert!(
            transcript["status"] == "ok"
                || (transcript["status"] == "draft" && reason.contains("confidence")),
            "{transcript} {text}"
        );
    } else {
        assert_eq!(transcript["status"], "draft", "{transcript} {text}");
        assert!(
            transcript["reason"]
                .as_str()
                .unwrap()
                .contains("script guard"),
            "{transcript}"
        );
    }
}

#[test]
fn pashto_is_never_published_as_ok() {
    let dir = tempfile::tempdir().unwrap();
    // espeak has no Pashto voice: Urdu speech stands in; the point is the policy.
    let wav = espeak(dir.path(), "ps.wav", "ur", "روشنی کی رفتار بہت زیادہ ہے۔");
    let input = common::video_with(dir.path(), "pashto.mp4", &wav);
    let manifest = process(&input, &dir.path().join("out"), &["--language", "ps"]);
    for t in manifest["captions"]["tracks"].as_array().unwrap() {
        assert_eq!(t["status"], "needs-human", "{t}");
        assert!(t["reason"].as_str().unwrap().contains("Pashto"));
    }
}

#[test]
fn silence_and_music_produce_no_cues() {
    let dir = tempfile::tempdir().unwrap();
    let silence = ffmpeg_make(
        dir.path(),
        "silence.mp4",
        &[
            "testsrc2=size=360x640:rate=30:duration=30",
            "anullsrc=r=48000:cl=stereo:d=30",
        ],
        &[
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", "30",
        ],
    );
    // Music: a chord progression with a beat, over pink noise.
    let music = ffmpeg_make(
        dir.path(),
        "music.mp4",
        &[
            "testsrc2=size=360x640:rate=30:duration=30",
            "aevalsrc='0.2*sin(2*PI*(220+110*mod(floor(t/2),4))*t)+0.15*sin(2*PI*(330+55*mod(floor(t/2),3))*t)+0.3*sin(2*PI*60*t)*exp(-8*mod(t,0.5))':s=48000:d=30",
            "anoisesrc=color=pink:amplitude=0.05:d=30:r=48000:seed=7",
        ],
        &[
            "-filter_complex",
            "[1:a][2:a]amix=inputs=2[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    );
    for input in [silence, music] {
        let out = dir.path().join(format!(
            "{}.out",
            input.file_stem().unwrap().to_string_lossy()
        ));
        let manifest = process(&input, &out, &[]);
        let cues: u64 = manifest["captions"]["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["cues"].as_u64().unwrap())
            .sum();
        assert_eq!(cues, 0, "{}: {}", input.display(), manifest["captions"]);
        // Nothing said, no title: not filed as STEM nor as off-topic, but
        // left for a curator, and the tags say why.
        assert_eq!(manifest["tags"]["stem"], false, "{}", manifest["tags"]);
        assert!(
            manifest["tags"]["off_topic"].is_null(),
            "{}",
            manifest["tags"]
        );
        assert!(
            manifest["tags"]["undetermined"]
                .as_str()
                .unwrap()
                .contains("too little usable text"),
            "{}",
            manifest["tags"]
        );
    }
}

#[test]
fn captions_parse_reads_webvtt_settings_and_convert_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let vtt = dir.path().join("edited.vtt");
    std::fs::write(
        &vtt,
        "WEBVTT\n\nREGION\nid:low\nwidth:50%\n\nNOTE curator edit\n\nq1\n00:00:01.000 --> 00:00:03.500 align:start line:85% position:10% size:80% region:low\n\u{200F}\u{2066}Newton\u{2069} کا قانون\n\n00:04.000 --> 00:06.000 vertical:rl\nF &amp; m\n",
    )
    .unwrap();
    let cues = parsed_cues(&vtt);
    assert_eq!(cues.len(), 2);
    assert_eq!(cues[0]["id"], "q1");
    assert_eq!(
        (cues[0]["start"].as_f64(), cues[0]["end"].as_f64()),
        (Some(1.0), Some(3.5))
    );
    assert_eq!(cues[0]["settings"]["align"], "start");
    assert_eq!(cues[0]["settings"]["line"], "85%");
    assert_eq!(cues[0]["settings"]["region"], "low");
    assert_eq!(cues[1]["settings"]["vertical"], "rl");
    // The settings as the WebVTT parsing algorithm computes them, and the
    // cue text as collected (character references are the renderer's).
    assert_eq!(cues[0]["align"], "start");
    assert_eq!(cues[0]["line"], 85.0);
    assert_eq!(cues[0]["snapToLines"], false);
    assert_eq!(cues[0]["position"], 10.0);
    assert_eq!(cues[0]["size"], 80.0);
    assert_eq!(cues[1]["vertical"], "rl");
    assert_eq!(cues[1]["line"], "auto");
    assert_eq!(cues[1]["text"], "F &amp; m");

    let srt = dir.path().join("edited.srt");
    assert!(
        run(stemfeed().args(["captions", "convert"]).arg(&vtt).arg(&srt))
            .status
            .success()
    );
    let back = dir.path().join("back.vtt");
    assert!(
        run(stemfeed()
            .args(["captions", "convert"])
            .arg(&srt)
            .arg(&back))
        .status
        .success()
    );
    let again = parsed_cues(&back);
    for (a, b) in cues.iter().zip(&again) {
        assert_eq!(
            (&a["start"], &a["end"], &a["text"]),
            (&b["start"], &b["end"], &b["text"])
        );
    }

    let broken = dir.path().join("broken.srt");
    std::fs::write(&broken, "1\n00:00:01,000 -> 00:00:02,000\nhi\n").unwrap();
    let out = run(stemfeed().args(["captions", "parse"]).arg(&broken));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("broken.srt: line 2"),
        "{}",
        text(&out.stderr)
    );
}
