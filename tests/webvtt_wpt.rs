//! The web-platform-tests WebVTT file-parsing cases
//! (`webvtt/parsing/file-parsing`), run against the real binary:
//! `stemfeed captions parse --json FILE.vtt` must produce what a browser's
//! WebVTT parser produces for every case.
//!
//! The cases live in tests/webvtt-wpt/ (where they came from, their licence
//! and the expectation format: tests/webvtt-wpt/SOURCES.md). Each is
//! cases/NAME.vtt, the file the WPT test loads, and cases/NAME.json, what the
//! test asserts about it, as data:
//!
//! * `"expect": "error"`: the track must fail to load (a bad signature); the
//!   command must fail.
//! * `"expect": "cues"`: the command must succeed; `"cues"` is the number of
//!   cues the test asserts (null: it asserts none); each entry of `"checks"`
//!   names a cue and a path of `VTTCue` attribute names (`region`, then
//!   `VTTRegion` names) and says what the value `equals`, or which other
//!   value it is the `same_as` / `not_same_as` (region identity, compared
//!   here by value).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Assertions of a case about something other than parse output; each is
/// skipped, with the reason, and any not listed here fails the test.
const NOT_CHECKED: &[(&str, &str, &str)] = &[(
    "stylesheets",
    "document.styleSheets.length",
    "a property of the HTML page (WebVTT STYLE blocks must not reach \
     document.styleSheets), not of the parsed track; the case still checks \
     that the file parses",
)];

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webvtt-wpt/cases")
}

/// `VTTCue` attribute names that the JSON output spells differently.
fn json_key(wpt: &str) -> &str {
    match wpt {
        "startTime" => "start",
        "endTime" => "end",
        other => other,
    }
}

fn lookup<'a>(cues: &'a [Value], spec: &Value) -> Result<&'a Value, String> {
    let i = spec["cue"].as_u64().ok_or("check without a cue index")? as usize;
    let mut v = cues
        .get(i)
        .ok_or_else(|| format!("no cue {i} (only {})", cues.len()))?;
    let mut shown = format!("cues[{i}]");
    for key in spec["path"].as_array().ok_or("check without a path")? {
        let key = json_key(key.as_str().ok_or("path key not a string")?);
        shown.push('.');
        shown.push_str(key);
        v = v
            .get(key)
            .ok_or_else(|| format!("{shown}: missing from the output"))?;
    }
    Ok(v)
}

/// JSON equality with numbers compared as numbers (3 == 3.0; -0 == 0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn describe(spec: &Value) -> String {
    let path: Vec<&str> = spec["path"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!("cues[{}].{}", spec["cue"], path.join("."))
}

/// Runs one case; the problems found (empty: it passes).
fn run_case(name: &str) -> Vec<String> {
    let dir = cases_dir();
    let case: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{name}.json"))).expect("case file reads"),
    )
    .expect("case file is JSON");
    let out = Command::new(env!("CARGO_BIN_EXE_stemfeed"))
        .env_remove("STEMFEED_CONFIG")
        .args(["captions", "parse", "--json"])
        .arg(dir.join(format!("{name}.vtt")))
        .output()
        .expect("stemfeed runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if case["expect"] == "error" {
        return if out.status.success() {
            vec!["the file must fail to load (bad signature), but it parsed".into()]
        } else {
            vec![]
        };
    }
    if !out.status.success() {
        return vec![format!("the command failed: {}", stderr.trim())];
    }
    let doc: Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => return vec![format!("output is not JSON: {e}")],
    };
    let mut problems = Vec::new();
    if doc["format"] != "webvtt" {
        problems.push(format!("format is {}, not \"webvtt\"", doc["format"]));
    }
    let Some(cues) = doc["cues"].as_array() else {
        return vec!["output has no cue list".into()];
    };
    if let Some(n) = case["cues"].as_u64()
        && cues.len() as u64 != n
    {
        problems.push(format!("{} cues, WPT expects {n}", cues.len()));
        return problems;
    }
    for check in case["checks"].as_array().expect("checks are a list") {
        let actual = match lookup(cues, check) {
            Ok(v) => v,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let what = describe(check);
        if let Some(expected) = check.get("equals") {
            if !same(actual, expected) {
                problems.push(format!("{what} is {actual}, WPT expects {expected}"));
            }
        } else if let Some(other) = check.get("same_as") {
            match lookup(cues, other) {
                Ok(o) if same(actual, o) => {}
                Ok(o) => problems.push(format!(
                    "{what} is {actual}, WPT expects the same as {} ({o})",
                    describe(other)
                )),
                Err(e) => problems.push(e),
            }
        } else if let Some(other) = check.get("not_same_as") {
            match lookup(cues, other) {
                Ok(o) if !same(actual, o) => {}
                Ok(_) => problems.push(format!(
                    "{what} is {actual}, WPT expects it to differ from {}",
                    describe(other)
                )),
                Err(e) => problems.push(e),
            }
        } else {
            problems.push(format!("unknown check {check}"));
        }
    }
    for skipped in case["not_checked"].as_array().into_iter().flatten() {
        let what = skipped["what"].as_str().unwrap_or_default();
        match NOT_CHECKED
            .iter()
            .find(|(case, w, _)| *case == name && *w == what)
        {
            Some((_, _, why)) => eprintln!("{name}: not checked: {what}: {why}"),
            None => problems.push(format!(
                "asserts {what}, which this test cannot check and does not list"
            )),
        }
    }
    problems
}

#[test]
fn webvtt_file_parsing_matches_web_platform_tests() {
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .expect("tests/webvtt-wpt/cases exists")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 40, "only {} cases found", names.len());
    let mut failed = Vec::new();
    for name in &names {
        let problems = run_case(name);
        if problems.is_empty() {
            eprintln!("PASS {name}");
        } else {
            eprintln!("FAIL {name}");
            for p in &problems {
                eprintln!("    {p}");
            }
            failed.push(name.as_str());
        }
    }
    eprintln!(
        "{} of {} WPT file-parsing cases pass",
        names.len() - failed.len(),
        names.len()
    );
    assert!(
        failed.is_empty(),
        "failing WPT cases: {}",
        failed.join(", ")
    );
}
