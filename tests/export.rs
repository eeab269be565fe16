//! Exports of approved videos, checked as their users would.
//! - `stemfeed export platform`: captions burned into a 1080×1920 MP4 for
//!   short-video platforms. The file plays (ffprobe), its sound is the
//!   rendition's to the byte, every caption is drawn inside the safe area and
//!   nowhere else, English reads back through OCR (Tesseract), and Urdu is
//!   drawn joined (a misshaped renderer draws one blob per letter).
//! - `stemfeed export bundle`: an offline site opened from `file://` in
//!   Chromium with the network off: the index lists the videos, a video plays
//!   with its captions, Urdu renders in the bundled Nastaliq font (the
//!   system's hidden), checksums hold, the size budget holds, and a second
//!   export copies nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::server::{Server, get};
use common::webdriver::Browser;

const W: usize = 1080;
const H: usize = 1920;
/// Frames are compared in cells of this many pixels a side: scalers and
/// encoders differ at edges, a caption box does not.
const CELL: usize = 8;

/// A pixel rectangle: x0, y0, x1, y1.
type Rect = (usize, usize, usize, usize);

/// One frame at `t` seconds, scaled to 1080×1920, as 8-bit luma.
fn frame(file: &Path, t: f64) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t:.3}"), "-i"])
        .arg(file)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=1080:1920",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), W * H);
    out.stdout
}

/// Mean luma per cell.
fn cells(f: &[u8]) -> Vec<f64> {
    let (cw, ch) = (W / CELL, H / CELL);
    let mut out = vec![0.0; cw * ch];
    for y in 0..H {
        for x in 0..W {
            out[(y / CELL) * cw + x / CELL] += f64::from(f[y * W + x]);
        }
    }
    out.iter().map(|v| v / (CELL * CELL) as f64).collect()
}

/// The pixel rectangle (x0, y0, x1, y1) of cells that differ between the
/// two frames, or `None`.
fn changed(a: &[u8], b: &[u8]) -> Option<Rect> {
    let (ca, cb) = (cells(a), cells(b));
    let cw = W / CELL;
    let mut rect: Option<Rect> = None;
    for (i, (x, y)) in ca.iter().zip(&cb).enumerate() {
        if (x - y).abs() > 24.0 {
            let (cx, cy) = ((i % cw) * CELL, (i / cw) * CELL);
            rect = Some(match rect {
                None => (cx, cy, cx + CELL, cy + CELL),
                Some((x0, y0, x1, y1)) => {
                    (x0.min(cx), y0.min(cy), x1.max(cx + CELL), y1.max(cy + CELL))
                }
            });
        }
    }
    rect
}

/// Light text on the dark caption box, as black on white for OCR.
fn crop_for_ocr(f: &[u8], (x0, y0, x1, y1): Rect, path: &Path) {
    let (w, h) = (x1 - x0, y1 - y0);
    let mut pgm = format!("P5\n{w} {h}\n255\n").into_bytes();
    for y in y0..y1 {
        for x in x0..x1 {
            pgm.push(if f[y * W + x] > 160 { 0 } else { 255 });
        }
    }
    std::fs::write(path, pgm).unwrap();
}

fn ocr(image: &Path, lang: &str) -> String {
    let out = Command::new("tesseract")
        .arg(image)
        .args(["-", "-l", lang, "--psm", "6"])
        .output()
        .expect("tesseract (scripts/setup.sh installs tesseract-ocr)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The words Tesseract reads in `image`, each with its left edge (pixels).
fn ocr_words(image: &Path, lang: &str) -> Vec<(u32, String)> {
    let out = Command::new("tesseract")
        .arg(image)
        .args(["-", "-l", lang, "--psm", "6", "tsv"])
        .output()
        .expect("tesseract (scripts/setup.sh installs tesseract-ocr)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let text = f.get(11)?.trim();
            if text.is_empty() {
                return None;
            }
            Some((f[6].parse().ok()?, text.to_owned()))
        })
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Urdu captions the curator approves for the platform export.
const URDU_CUE: &str = "کشش ثقل گیند کو نیچے کھینچتی ہے";
const MIXED_CUE: &str = "Newton کا قانون: قوت 100 نیوٹن";

/// Character error rate of `got` against `want`, as `stemfeed eval asr`
/// scores transcripts (case, punctuation and script variants forgiven).
fn cer(language: &str, got: &str, want: &str) -> f64 {
    stemfeed_captions::score::Errors::of(language, want, got).cer()
}

/// Letters of Arabic script that join to neither neighbour's left (the
/// Unicode joining types R and U among Urdu's letters): a new connected
/// run starts after each.
const NON_LEFT_JOINING: &str = "اآأإدڈذرڑزژوؤےۓءٔ";

/// How many joined runs of letters `text` is written in: the shapes a
/// correct renderer draws as single connected strokes (dots apart).
fn joining_runs(text: &str) -> (usize, usize) {
    let (mut runs, mut letters) = (0, 0);
    for word in text.split_whitespace() {
        let mut open = false;
        for c in word
            .chars()
            .filter(|c| ('\u{0620}'..='\u{06FF}').contains(c))
        {
            if ('\u{064B}'..='\u{065F}').contains(&c) || c == '\u{0670}' {
                continue; // diacritics sit on a letter
            }
            letters += 1;
            if !open {
                runs += 1;
            }
            open = !NON_LEFT_JOINING.contains(c);
        }
    }
    (runs, letters)
}

/// Connected shapes of light pixels inside `rect` larger than `min_area`
/// (letter bodies; dots and noise are smaller).
fn blobs(f: &[u8], (x0, y0, x1, y1): Rect, min_area: usize) -> usize {
    let (w, h) = (x1 - x0, y1 - y0);
    let on = |x: usize, y: usize| f[(y0 + y) * W + x0 + x] > 160;
    let mut seen = vec![false; w * h];
    let mut count = 0;
    for sy in 0..h {
        for sx in 0..w {
            if seen[sy * w + sx] || !on(sx, sy) {
                continue;
            }
            let (mut stack, mut area) = (vec![(sx, sy)], 0);
            seen[sy * w + sx] = true;
            while let Some((x, y)) = stack.pop() {
                area += 1;
                for (dx, dy) in [
                    (-1i64, 0i64),
                    (1, 0),
                    (0, -1),
                    (0, 1),
                    (-1, -1),
                    (1, 1),
                    (-1, 1),
                    (1, -1),
                ] {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let (nx, ny) = (nx as usize, ny as usize);
                    if !seen[ny * w + nx] && on(nx, ny) {
                        seen[ny * w + nx] = true;
                        stack.push((nx, ny));
                    }
                }
            }
            if area >= min_area {
                count += 1;
            }
        }
    }
    count
}

fn ffprobe(file: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The audio packets' digest: the sound, to the byte.
fn audio_md5(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-map", "0:a:0", "-c", "copy", "-f", "md5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `stemfeed export ARGS…` against the server's data: its JSON report.
fn export(server: &Server, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let result = common::run(
        common::stemfeed()
            .env("STEMFEED_DATA_DIR", server.data())
            .arg("export")
            .args(args),
    );
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    serde_json::from_slice(&result.stdout).unwrap()
}

fn platform(server: &Server, video: &str, language: &str, out: &Path) -> serde_json::Value {
    let args = ["platform", video, "--language", language, "--out"];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    args.push(out.as_os_str());
    export(server, &args)
}

fn bundle(server: &Server, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["bundle".as_ref(), "--out".as_ref(), out.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    export(server, &args)
}

/// Checks one export against its rendition; returns the frames at each
/// caption's middle with the caption's rectangle and text.
fn check_export(
    server: &Server,
    report: &serde_json::Value,
    out: &Path,
) -> Vec<(Vec<u8>, Rect, String)> {
    let rendition: PathBuf = server
        .data()
        .join("objects")
        .join(report["rendition"].as_str().unwrap());
    // It plays: 1080×1920 H.264 and AAC, as long as the rendition.
    let probe = ffprobe(out);
    let streams = probe["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(
        (
            video["codec_name"].as_str(),
            video["width"].as_u64(),
            video["height"].as_u64()
        ),
        (Some("h264"), Some(1080), Some(1920))
    );
    assert!(
        streams
            .iter()
            .any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac")
    );
    let (d_out, d_in) = (
        common::ffprobe_duration(out),
        common::ffprobe_duration(&rendition),
    );
    assert!((d_out - d_in).abs() < 0.1, "duration {d_out} vs {d_in}");
    // The sound is the rendition's, untouched.
    assert_eq!(audio_md5(out), audio_md5(&rendition));

    let safe = &report["safe_area"];
    let (left, right, bottom) = (
        safe["left"].as_u64().unwrap() as usize,
        safe["right"].as_u64().unwrap() as usize,
        safe["bottom"].as_u64().unwrap() as usize,
    );
    let mut frames = Vec::new();
    for c in report["captions"].as_array().unwrap() {
        let (start, end) = (c["start"].as_f64().unwrap(), c["end"].as_f64().unwrap());
        let t = (start + end) / 2.0;
        let (burned, plain) = (frame(out, t), frame(&rendition, t));
        let rect =
            changed(&burned, &plain).unwrap_or_else(|| panic!("no caption drawn at {t:.2} s: {c}"));
        // Inside the safe area, with a cell's slack for the box's edge.
        assert!(
            rect.0 + CELL >= left && rect.2 <= right + CELL && rect.3 <= bottom + CELL,
            "caption at {t:.2} s drawn at {rect:?}, outside the safe area {safe}"
        );
        frames.push((burned, rect, c["text"].as_str().unwrap().to_owned()));
    }
    frames
}

#[test]
fn platform_and_offline_exports_of_approved_videos() {
    common::ensure_default_models();
    // The default profile, asking for platform exports on approval.
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let profile = dir.path().join("profile.toml");
    let shipped = std::fs::read_to_string(root.join("pipelines/short-form.toml")).unwrap();
    std::fs::write(
        &profile,
        format!("{shipped}\n[platform]\non_approval = true\n"),
    )
    .unwrap();
    let config = dir.path().join("stemfeed.toml");
    std::fs::write(
        &config,
        format!("[worker]\nprofile = {:?}\n", profile.to_str().unwrap()),
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let submitter = server.token("studio", "submitter");
    let curator = server.token("desk", "curator");

    // Only approved videos are exported, with a clear error.
    let wav = common::espeak(
        dir.path(),
        "urdu.wav",
        "ur",
        "کشش ثقل گیند کو نیچے کھینچتی ہے۔ قوت سے اسراع پیدا ہوتا ہے۔",
    );
    let clip = common::video_with(dir.path(), "urdu.mp4", &wav);
    let out = server.submit(&submitter, &clip, &["--title", "گیند", "--language", "ur"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let urdu = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["video"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_for_state(&submitter, &urdu, "in-review", Duration::from_secs(300));
    let refused = common::run(
        common::stemfeed()
            .env("STEMFEED_DATA_DIR", server.data())
            .args(["export", "platform", &urdu, "--language", "ur", "--out"])
            .arg(dir.path().join("refused.mp4")),
    );
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains(&urdu) && why.contains("only approved videos"),
        "{why}"
    );
    assert!(!dir.path().join("refused.mp4").exists());
    // The curator's version: one all-Urdu caption, and one that starts with
    // an English term and carries a number (an Urdu line that starts with
    // "Newton" is laid out left to right unless it is marked).
    let form = format!(
        "n=2&start_0=0.2&end_0=1.6&text_0={}&start_1=1.8&end_1=3.2&text_1={}",
        urlencode(URDU_CUE),
        urlencode(MIXED_CUE)
    );
    assert!(
        server.post_form(
            &curator,
            &format!("/review/{urdu}/captions/ur.transcript"),
            &form
        ) < 400
    );
    assert!(server.decide(&curator, &urdu, "decision=approve") < 400);

    // English: every caption reads back.
    let english = server.approved_video(
        &submitter,
        &curator,
        dir.path(),
        "Gravity pulls the ball down. The force makes it accelerate toward the ground.",
    );
    let out = dir.path().join("english-platform.mp4");
    let report = platform(&server, &english, "en", &out);
    // Drawn in a child without the network or files beyond its work
    // directory, where this kernel allows (it says what held).
    let files = report["isolation"]["files"].as_str().unwrap_or_default();
    assert!(!files.is_empty(), "{report}");
    eprintln!("burn-in isolation: {}", report["isolation"]);
    let (code, vtt) = get(
        &format!("{}/captions/{english}/en.transcript.vtt", server.url),
        None,
    );
    assert_eq!(code, 200);
    // The burned-in captions are the approved cues' words, in order.
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let approved: Vec<String> = vtt
        .split("\n\n")
        .filter(|b| b.contains("-->"))
        .flat_map(|b| {
            b.lines()
                .skip_while(|l| !l.contains("-->"))
                .skip(1)
                .flat_map(words)
                .collect::<Vec<_>>()
        })
        .collect();
    let burned: Vec<String> = report["captions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| words(c["text"].as_str().unwrap()))
        .collect();
    assert_eq!(burned, approved);
    for (i, (f, rect, text)) in check_export(&server, &report, &out).iter().enumerate() {
        let image = dir.path().join(format!("en-{i}.pgm"));
        crop_for_ocr(f, *rect, &image);
        let read = ocr(&image, "eng");
        let e = cer("en", &read, text);
        eprintln!("English caption {i}: OCR {read:?} for {text:?}: CER {e:.2}");
        assert!(e <= 0.15, "OCR read {read:?} for {text:?} (CER {e:.2})");
    }

    // The same export from the review page: made in the background by a
    // separate process, then offered to curators (only) as a download.
    // This profile asks for it on approval, so it is made (or being made)
    // already; a curator can make it again.
    let page = |b: &str| get(&format!("{}/review/{b}", server.url), Some(&curator)).1;
    let exported = |video: &str, language: &str| {
        let link = format!("/review/{video}/exports/{language}.mp4");
        let start = std::time::Instant::now();
        while !page(video).contains(&link) {
            assert!(
                start.elapsed() < Duration::from_secs(240),
                "the {language} export of {video} never finished: {}",
                page(video)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        link
    };
    assert!(page(&english).contains("<li class=\"export\" data-language=\"en\">"));
    exported(&english, "en");
    assert!(
        server.post_form(
            &curator,
            &format!("/review/{english}/export"),
            "language=en"
        ) < 400
    );
    let link = exported(&english, "en");
    let resp = common::server::agent()
        .get(&format!("{}{link}", server.url))
        .header("authorization", &format!("Bearer {curator}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.into_body().read_to_vec().unwrap();
    let downloaded = dir.path().join("from-the-review-page.mp4");
    std::fs::write(&downloaded, &bytes).unwrap();
    let probe = ffprobe(&downloaded);
    assert!(
        probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["codec_type"] == "video" && s["width"] == 1080 && s["height"] == 1920),
        "{probe}"
    );
    assert_ne!(
        get(&format!("{}{link}", server.url), None).0,
        200,
        "exports are for curators"
    );

    // Urdu: drawn in Nastaliq, joined. Tesseract's Urdu models read
    // Nastaliq poorly even when it is drawn right (CER 0.5–0.7 on clean
    // renders), so its reading is reported, and the shaping is checked by
    // the shapes themselves: a renderer that does not join letters draws
    // one body per letter, a correct one one per joined run.
    let out = dir.path().join("urdu-platform.mp4");
    let report = platform(&server, &urdu, "ur", &out);
    assert!(
        report["font"].as_str().unwrap().contains("Nastaliq"),
        "{report}"
    );
    let captions = check_export(&server, &report, &out);
    let texts: Vec<&str> = captions.iter().map(|c| c.2.as_str()).collect();
    assert_eq!(
        texts,
        [URDU_CUE, MIXED_CUE],
        "the approved cues, as written"
    );
    for (i, (f, rect, text)) in captions.iter().enumerate() {
        if text.contains("Newton") {
            // Right to left: "Newton", first in the text, is drawn right of
            // "100", read by Tesseract's English model with its position.
            let image = dir.path().join(format!("ur-mixed-{i}.pgm"));
            crop_for_ocr(f, *rect, &image);
            let words = ocr_words(&image, "eng");
            let x = |w: &str| {
                words
                    .iter()
                    .find(|(_, t)| t.contains(w))
                    .map(|(x, _)| *x)
                    .unwrap_or_else(|| panic!("OCR found no {w:?} in {words:?}"))
            };
            eprintln!("mixed Urdu caption {i}: {text:?}: words at {words:?}");
            assert!(
                x("Newto") > x("100"),
                "{text:?} drawn left to right: {words:?}"
            );
            continue;
        }
        let (runs, letters) = joining_runs(text);
        let bodies = blobs(f, *rect, 150);
        let image = dir.path().join(format!("ur-{i}.pgm"));
        crop_for_ocr(f, *rect, &image);
        let read = ocr(&image, "urd");
        eprintln!(
            "Urdu caption {i}: {text:?}: {letters} letters in {runs} joined runs, {bodies} shapes drawn; OCR {read:?} CER {:.2}",
            cer("ur", &read, text)
        );
        assert!(letters >= 4, "{text:?}");
        assert!(
            bodies <= runs + runs / 2 + 2 && bodies < letters,
            "Urdu drawn unjoined: {bodies} shapes for {runs} joined runs of {letters} letters in {text:?}"
        );
    }

    // The Urdu video's export was made on approval too.
    exported(&urdu, "ur");

    // The same two approved videos, on a USB stick for a school.
    check_offline_bundle(&server, &curator, &english, &urdu, dir.path());
}

/// Every file the bundle's manifest lists is there with its checksum, and
/// no page, style sheet or script names anything on the network.
fn check_bundle_files(dir: &Path) -> serde_json::Value {
    use sha2::Digest;
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    for f in manifest["files"].as_array().unwrap() {
        let path = dir.join(f["path"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap(), "{f}");
        assert_eq!(
            format!("{:x}", sha2::Sha256::digest(&bytes)),
            f["sha256"].as_str().unwrap()
        );
        let name = path.to_string_lossy().to_string();
        if name.ends_with(".html") || name.ends_with(".css") || name.ends_with(".js") {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
                "{name} names the network"
            );
        }
    }
    manifest
}

/// The offline bundle of the two approved videos (`english`, `urdu`).
fn check_offline_bundle(server: &Server, curator: &str, english: &str, urdu: &str, dir: &Path) {
    let stick = dir.join("usb-stick");
    let first = bundle(server, &stick, &[]);
    let ids: Vec<&str> = first["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{first}");
    assert!(ids.contains(&english) && ids.contains(&urdu));
    assert!(first["copied_files"].as_u64().unwrap() >= 10, "{first}");
    check_bundle_files(&stick);

    // A second export copies nothing.
    let again = bundle(server, &stick, &[]);
    assert_eq!(
        (
            again["copied_files"].as_u64(),
            again["removed_files"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(again["unchanged_files"], first["copied_files"]);

    // Opened from the stick with the network off, on a machine without a
    // Nastaliq font.
    let b = Browser::start_without_system_nastaliq();
    b.cdp("Network.enable", serde_json::json!({}));
    b.cdp(
        "Network.emulateNetworkConditions",
        serde_json::json!({"offline": true, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}),
    );
    b.goto(&format!("file://{}/index.html", stick.display()));
    for id in [&english, &urdu] {
        b.find(&format!("li.video[data-video='{id}'] a"));
    }
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    b.screenshot(&artifacts.join("bundle-index.png"));
    let index = b.text("main");
    assert!(
        index.contains("Physics"),
        "the index groups by subject: {index}"
    );
    b.click(&format!("li.video[data-video='{english}'] a"));
    b.find("#player");
    // It plays, with the approved captions on.
    let mut state = serde_json::Value::Null;
    for _ in 0..75 {
        state = b.script(
            "const v = document.getElementById('player'); v.muted = true; if (v.paused) v.play().catch(() => {});\
             const t = v.textTracks[0]; return [v.currentTime, t ? t.mode : null, t && t.cues ? t.cues.length : 0, t && t.activeCues && t.activeCues.length ? t.activeCues[0].text : null];",
        );
        if state[0].as_f64().unwrap_or(0.0) > 1.0 && state[3].is_string() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        state[0].as_f64().unwrap_or(0.0) > 1.0,
        "never played offline: {state}"
    );
    assert_eq!(state[1], "showing", "{state}");
    assert!(state[2].as_u64().unwrap() >= 2, "{state}");
    assert!(
        state[3]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("gravity")
            || state[3].as_str().unwrap().to_lowercase().contains("ball"),
        "{state}"
    );
    // The Urdu page reads right to left in the bundled Nastaliq.
    b.goto(&format!(
        "file://{}/videos/{urdu}/index.html",
        stick.display()
    ));
    let line = ".transcript[lang='ur'] li .text";
    b.find(line);
    let dir_and_font = b.script(&format!(
        "const e = document.querySelector(\"{line}\"); return [getComputedStyle(e).direction, getComputedStyle(e).fontFamily];"
    ));
    assert_eq!(dir_and_font[0], "rtl", "{dir_and_font}");
    let mut drawn = Vec::new();
    for _ in 0..50 {
        drawn = b.rendered_fonts(line);
        if drawn
            .iter()
            .any(|(family, web)| *web && family.contains("Nastaliq"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        drawn
            .iter()
            .any(|(family, web)| *web && family.contains("Nastaliq")),
        "Urdu is not drawn in the bundled Nastaliq font: {drawn:?}"
    );
    b.screenshot(&artifacts.join("bundle-urdu-video.png"));
    drop(b);

    // A size budget takes videos while they fit, the curators' priority
    // first, then the newest approval: the Urdu video, approved first but
    // marked high on its review page, goes on the stick.
    let total = first["total_bytes"].as_u64().unwrap();
    let small = dir.join("small-stick");
    let budget = (total - 1).to_string();
    assert!(server.post_form(curator, &format!("/review/{urdu}/priority"), "priority=1") < 400);
    assert_eq!(
        server.post_form(curator, &format!("/review/{urdu}/priority"), "priority=7"),
        400,
        "a priority outside high/normal/low is refused"
    );
    let (_, page) = get(&format!("{}/review/{urdu}", server.url), Some(curator));
    assert!(
        page.contains(r#"<option value="1" selected>high</option>"#),
        "{page}"
    );
    let partial = bundle(server, &small, &["--max-size", &budget]);
    assert_eq!(partial["videos"].as_array().unwrap().len(), 1, "{partial}");
    assert_eq!(partial["videos"][0], urdu, "{partial}");
    assert_eq!(partial["left_out_for_size"].as_array().unwrap().len(), 1);
    assert!(partial["total_bytes"].as_u64().unwrap() < total);
    check_bundle_files(&small);

    // Narrowed to Urdu, the stick loses the English video and gains nothing.
    let narrowed = bundle(server, &stick, &["--language", "ur"]);
    assert_eq!(
        narrowed["videos"].as_array().unwrap().len(),
        1,
        "{narrowed}"
    );
    assert!(
        narrowed["removed_files"].as_u64().unwrap() >= 3,
        "{narrowed}"
    );
    assert!(!stick.join(format!("videos/{english}")).exists());
    assert!(
        narrowed["copied_files"].as_u64().unwrap() <= 1,
        "only the index changes: {narrowed}"
    );
    check_bundle_files(&stick);
}
