//! The whole human loop in a real browser (Debian's headless Chromium
//! driven over WebDriver): a generated video is submitted through the API,
//! processed by the in-process workers, a curator logs in, opens it, plays
//! it, edits a cue, approves, and the feed lists it with the edited caption.
//! Screenshots of the review page are saved under target/test-artifacts/.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::server::{Server, agent, get};
use common::webdriver::Browser;

/// WebDriver key codes: Alt held for the rest of the keys sent.
const ALT_S: &str = "\u{E00A}s";
const ALT_M: &str = "\u{E00A}m";
const ALT_LEFT_BRACKET: &str = "\u{E00A}[";
const ALT_RIGHT_BRACKET: &str = "\u{E00A}]";
const ALT_LEFT: &str = "\u{E00A}\u{E012}";
const ALT_RIGHT: &str = "\u{E00A}\u{E014}";
const ALT_UP: &str = "\u{E00A}\u{E013}";
const ALT_DOWN: &str = "\u{E00A}\u{E015}";
const ALT_G: &str = "\u{E00A}g";
const ALT_ENTER: &str = "\u{E00A}\u{E007}";

/// Runs `js` until it returns something other than false or null (10 s at most).
fn wait_for(b: &Browser, what: &str, js: &str) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let v = b.script(js);
        if !(v.is_null() || v == false) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "waited 10 s for {what}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

#[test]
fn curator_edits_a_cue_approves_and_the_feed_shows_it() {
    common::ensure_default_models();
    let server = Server::start(&[]);
    let submitter = server.token("studio", "submitter");
    let password = "curator-password-1";
    server.user("ayesha", "curator", password);

    // A vertical clip with spoken English about a physics topic.
    let dir = tempfile::tempdir().unwrap();
    let wav = common::espeak(
        dir.path(),
        "speech.wav",
        "en",
        "Gravity pulls the ball down. The force makes it accelerate toward the ground.",
    );
    let clip = common::video_with(dir.path(), "falling-ball.mp4", &wav);
    // And one in Urdu, to see right-to-left captions in a Nastaliq font.
    let urdu_wav = common::espeak(
        dir.path(),
        "urdu.wav",
        "ur",
        "کشش ثقل گیند کو نیچے کھینچتی ہے۔ قوت سے اسراع پیدا ہوتا ہے۔",
    );
    let urdu_clip = common::video_with(dir.path(), "urdu-ball.mp4", &urdu_wav);
    let urdu = server.submit(
        &submitter,
        &urdu_clip,
        &["--title", "گیند کیوں گرتی ہے؟", "--language", "ur"],
    );
    assert!(
        urdu.status.success(),
        "{}",
        String::from_utf8_lossy(&urdu.stderr)
    );
    let urdu: serde_json::Value = serde_json::from_slice(&urdu.stdout).unwrap();
    let urdu_video = urdu["video"].as_str().unwrap().to_owned();
    let out = server.submit(
        &submitter,
        &clip,
        &["--title", "Why does the ball fall?", "--language", "en"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let submitted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let video = submitted["video"].as_str().unwrap().to_owned();
    server.wait_for_state(&submitter, &video, "in-review", Duration::from_secs(300));

    // The curator's machine has no Nastaliq font: fontconfig hides the
    // system's Noto Nastaliq Urdu from Chromium, so Urdu can only render in
    // it through the web font the server ships.
    let b = Browser::start_without_system_nastaliq();
    // Not logged in: the review queue sends us to the login page.
    b.goto(&format!("{}/review", server.url));
    assert!(b.current_url().ends_with("/login"), "{}", b.current_url());
    // Every page passes axe-core: no serious or critical violation.
    let accessible = |b: &Browser, page: &str| {
        let found = b.accessibility_violations();
        assert!(found.is_empty(), "{page}: {found:#?}");
    };
    accessible(&b, "login");
    b.type_into("#name", "ayesha", false);
    b.type_into("#password", password, false);
    b.click("#login");
    b.find("#queue");
    accessible(&b, "review queue");
    b.click(&format!("tr[data-video='{video}'] a"));
    b.find("textarea[name='text_0']");
    accessible(&b, "video page");

    // The page plays the byte-range fMP4 HLS ladder: natively where the
    // browser has HLS (Safari; this Chromium), else through the vendored
    // hls.js. Both paths must really play.
    let play_until = |b: &Browser, what: &str, src_prefix: &str| {
        let mut state = serde_json::Value::Null;
        for _ in 0..75 {
            state = b.script(
                "const v = document.getElementById('player'); v.muted = true; \
                 if (v.paused) v.play().catch(() => {}); \
                 return [v.dataset.player, v.currentSrc, v.currentTime];",
            );
            if state[2].as_f64().unwrap_or(0.0) > 1.0
                && state[1].as_str().unwrap_or("").starts_with(src_prefix)
            {
                return state;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{what} never played past 1 s: {state}");
    };
    let state = play_until(&b, "the page's player", "");
    assert!(
        state[1].as_str().unwrap().ends_with("/hls/master.m3u8")
            || state[1].as_str().unwrap().starts_with("blob:"),
        "the page plays HLS, not the MP4 fallback: {state}"
    );
    // The path Firefox and older Chromium take: hls.js over Media Source
    // Extensions (the CSP must let it attach its blob: source).
    b.script(
        "const v = document.getElementById('player'); v.pause(); \
         const h = new Hls({ enableWorker: false }); \
         h.loadSource(v.dataset.hls); h.attachMedia(v); v.currentTime = 0; \
         v.dataset.player = 'hls.js (test)'; return 0;",
    );
    play_until(&b, "hls.js", "blob:");
    b.script("document.getElementById('player').pause(); return 0;");

    // Its metadata and the captions.
    let mut ready = 0;
    for _ in 0..50 {
        ready = b
            .script("return document.getElementById('player').readyState;")
            .as_i64()
            .unwrap_or(0);
        if ready >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ready >= 1, "the video never loaded its metadata");
    let duration = b
        .script("return document.getElementById('player').duration;")
        .as_f64()
        .unwrap();
    assert!(duration > 2.0, "player duration {duration}");
    assert!(
        b.script("return document.getElementById('player').textTracks.length;")
            .as_i64()
            .unwrap()
            >= 1
    );
    let original = b.value("textarea[name='text_0']");
    assert!(
        original.to_lowercase().contains("gravity") || original.to_lowercase().contains("ball"),
        "{original}"
    );
    b.screenshot(&artifacts().join("review-page.png"));

    // The caption workbench.
    // The waveform the worker computed is drawn under the video.
    let peaks = wait_for(
        &b,
        "the waveform's peaks",
        "const c = document.getElementById('waveform'); return c.dataset.peaks ? Number(c.dataset.peaks) : (c.dataset.error || null);",
    );
    // 50 a second over the audio (the clip's speech, a little shorter than its video).
    let peaks = peaks.as_f64().unwrap_or(0.0);
    assert!(
        peaks >= 2.0 * 50.0 && peaks <= duration * 50.0 + 10.0,
        "{peaks} peaks for {duration} s"
    );
    // And drawn: the speech's bars in the waveform's light colour.
    let lit = b.script(
        "const c = document.getElementById('waveform'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;\
         let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] === 0xe8 && d[i + 1] === 0xf4 && d[i + 2] === 0xf8) n++; return n;",
    );
    assert!(lit.as_i64().unwrap() > 500, "waveform pixels drawn: {lit}");
    // The list follows playback: the cue at the playhead is highlighted and
    // shown in the preview line.
    let cues = b
        .script("return document.querySelectorAll('.track-panel:not([hidden]) li.cue').length;")
        .as_i64()
        .unwrap();
    assert!(cues >= 2, "the two spoken sentences make at least two cues");
    let last = cues - 1;
    wait_for(
        &b,
        "the last cue to be highlighted at the playhead",
        &format!(
            "const v = document.getElementById('player'); const li = document.querySelectorAll('.track-panel:not([hidden]) li.cue')[{last}];\
             if (Math.abs(v.currentTime - Number(li.dataset.start) - 0.05) > 0.01) v.currentTime = Number(li.dataset.start) + 0.05;\
             return li.classList.contains('active') && document.querySelector('.track-panel:not([hidden]) .preview').textContent === li.querySelector('textarea').value;"
        ),
    );
    // The curators' glossary: a preferred spelling added for English shows
    // as a one-click fix on every cue that has one of its variants.
    b.click(".track-panel:not([hidden]) .glossary summary");
    b.type_into(
        ".track-panel:not([hidden]) .add-term input[name='term']",
        "Gravitation",
        false,
    );
    b.type_into(
        ".track-panel:not([hidden]) .add-term input[name='variants']",
        "gravity, gravitee",
        false,
    );
    b.click(".track-panel:not([hidden]) .add-term button");
    b.find(".track-panel:not([hidden]) .glossary li.term");
    assert!(
        b.text(".track-panel:not([hidden]) .glossary summary")
            .contains("1 terms"),
        "{}",
        b.text(".track-panel:not([hidden]) .glossary summary")
    );
    b.type_into("textarea[name='text_0']", "the gravity of it", true);
    b.click(".track-panel:not([hidden]) li.cue .gloss-apply");
    assert_eq!(b.value("textarea[name='text_0']"), "the Gravitation of it");
    // Edits show on the video at once, through the track being edited.
    b.type_into(
        "textarea[name='text_0']",
        "Gravity pulls the ball down, fixed by a curator.",
        true,
    );
    wait_for(
        &b,
        "the edit on the video's showing track",
        "const t = Array.from(document.getElementById('player').textTracks).find(t => t.mode === 'showing');\
         return t && t.cues && t.cues.length > 0 && t.cues[0].text === 'Gravity pulls the ball down, fixed by a curator.';",
    );
    // The style rules are checked as the curator types.
    b.type_into(
        "textarea[name='text_1']",
        " and a line far longer than any phone screen can show in one go",
        false,
    );
    wait_for(
        &b,
        "the long line marked",
        "const li = document.querySelectorAll('.track-panel:not([hidden]) li.cue')[1];\
         return li.classList.contains('style-bad') && li.querySelector('.style-msg').textContent.includes('characters (at most 42)');",
    );
    let summary = b.text(".track-panel:not([hidden]) .style-summary");
    assert!(summary.contains("break the style rules"), "{summary}");
    let second = b.value("textarea[name='text_1']");
    let second = second
        .strip_suffix(" and a line far longer than any phone screen can show in one go")
        .unwrap()
        .to_owned();
    b.type_into("textarea[name='text_1']", &second, true);
    // Keyboard flow (Alt+…, so it works while typing): split the first cue
    // at the playhead, merge it back, nudge its start by a frame and back,
    // shift the following cues and back.
    let times = |b: &Browser| -> Vec<f64> {
        b.script("return Array.from(document.querySelectorAll('.track-panel:not([hidden]) li.cue input.t')).map(i => Number(i.value));")
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let before = times(&b);
    let middle = (before[0] + before[1]) / 2.0;
    // Alt+S with the playhead in the middle of the first cue: one cue more.
    let split_first_cue = |b: &Browser| {
        b.script(&format!(
            "document.getElementById('player').currentTime = {middle}; return 0;"
        ));
        b.type_into("textarea[name='text_0']", ALT_S, false);
        wait_for(
            b,
            "the split",
            &format!(
                "return document.querySelectorAll('.track-panel:not([hidden]) li.cue').length === {};",
                cues + 1
            ),
        );
        times(b)
    };
    let split = split_first_cue(&b);
    assert!(
        (split[1] - middle).abs() < 0.05 && split[2] == split[1] && split[0] == before[0],
        "split at {middle}: {split:?}"
    );
    let n = b.value(".track-panel:not([hidden]) input[name='n']");
    assert_eq!(n, (cues + 1).to_string());
    let halves = (
        b.value("textarea[name='text_0']"),
        b.value("textarea[name='text_1']"),
    );
    assert!(!halves.0.is_empty() && !halves.1.is_empty(), "{halves:?}");
    b.type_into("textarea[name='text_0']", ALT_M, false);
    wait_for(
        &b,
        "the merge",
        &format!(
            "return document.querySelectorAll('.track-panel:not([hidden]) li.cue').length === {cues};"
        ),
    );
    assert_eq!(times(&b), before);
    assert_eq!(
        b.value("textarea[name='text_0']"),
        "Gravity pulls the ball down, fixed by a curator."
    );
    b.type_into("textarea[name='text_0']", ALT_RIGHT_BRACKET, false);
    let nudged = times(&b);
    let fps = b.script("return Number(document.getElementById('workbench').dataset.fps);");
    let frame = 1.0 / fps.as_f64().unwrap();
    assert!(
        (nudged[0] - before[0] - frame).abs() < 0.0015,
        "start nudged by a frame ({frame}): {nudged:?}"
    );
    b.type_into("textarea[name='text_0']", ALT_LEFT_BRACKET, false);
    assert_eq!(times(&b), before);
    b.type_into("textarea[name='text_1']", ALT_RIGHT, false);
    let shifted = times(&b);
    assert_eq!(
        shifted[..2],
        before[..2],
        "cues before the one shifted stay"
    );
    for (a, b) in shifted[2..].iter().zip(&before[2..]) {
        assert!((a - b - 0.1).abs() < 0.0015, "{shifted:?} vs {before:?}");
    }
    b.type_into("textarea[name='text_1']", ALT_LEFT, false);
    assert_eq!(times(&b), before);
    // Find and replace across the track.
    b.type_into(".track-panel:not([hidden]) .find-text", "fixed by", false);
    b.type_into(
        ".track-panel:not([hidden]) .replace-text",
        "FIXED BY",
        false,
    );
    b.click(".track-panel:not([hidden]) .replace-all");
    assert_eq!(
        b.text(".track-panel:not([hidden]) .tool-result"),
        "1 replaced."
    );
    assert!(b.value("textarea[name='text_0']").contains("FIXED BY"));
    b.type_into(".track-panel:not([hidden]) .find-text", "FIXED BY", true);
    b.type_into(".track-panel:not([hidden]) .replace-text", "fixed by", true);
    b.click(".track-panel:not([hidden]) .replace-all");
    b.screenshot(&artifacts().join("review-workbench.png"));
    accessible(&b, "video page while editing");

    // Previous / next cue: the list and the playhead move together.
    b.type_into("textarea[name='text_0']", ALT_DOWN, false);
    wait_for(
        &b,
        "Alt+Down to the second cue",
        &format!(
            "const v = document.getElementById('player'); return document.activeElement.name === 'text_1' && Math.abs(v.currentTime - {}) < 0.01;",
            before[2]
        ),
    );
    b.type_into("textarea[name='text_1']", ALT_UP, false);
    wait_for(
        &b,
        "Alt+Up to the first cue",
        "return document.activeElement.name === 'text_0';",
    );
    // The glossary by keyboard, on the cue being typed in.
    b.type_into("textarea[name='text_1']", "a gravitee here", true);
    b.type_into("textarea[name='text_1']", ALT_G, false);
    assert_eq!(b.value("textarea[name='text_1']"), "a Gravitation here");
    b.type_into("textarea[name='text_1']", &second, true);

    // Split the first cue at the playhead and save by keyboard: a new
    // version by this curator, with the cues as they were split.
    let edited = "Gravity pulls the ball down, fixed by a curator.";
    let split = split_first_cue(&b);
    let halves = (
        b.value("textarea[name='text_0']"),
        b.value("textarea[name='text_1']"),
    );
    b.type_into("textarea[name='text_1']", ALT_ENTER, false);
    wait_for(
        &b,
        "the saved version",
        "const h = document.querySelector('.track-panel:not([hidden]) h2'); return h && h.textContent.includes('v2');",
    );
    assert_eq!(
        b.value(".track-panel:not([hidden]) input[name='n']"),
        (cues + 1).to_string()
    );
    assert_eq!(times(&b), split, "the saved cues are the split ones");
    assert_eq!(
        (
            b.value("textarea[name='text_0']"),
            b.value("textarea[name='text_1']")
        ),
        halves
    );
    assert_eq!(format!("{} {}", halves.0, halves.1), edited);
    let heading = b.text(".track-panel:not([hidden]) h2");
    assert!(
        heading.contains("v2") && heading.contains("ayesha"),
        "{heading}"
    );
    // The history keeps both versions, with who made each.
    let history = b.text(".track-panel:not([hidden]) details.history");
    assert!(
        history.contains("v2 · edited · ayesha") && history.contains("v1 · ok · whisper"),
        "{history}"
    );
    b.screenshot(&artifacts().join("review-page-edited.png"));

    // Approve the video.
    b.click("#approve-video");
    let start = std::time::Instant::now();
    while b.text("#video-state") != "approved" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not approved: {}",
            b.text("#video-state")
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The public feed lists it, with the edited caption and playable media.
    let (code, feed) = get(&format!("{}/feed.json", server.url), None);
    assert_eq!(code, 200);
    let feed: serde_json::Value = serde_json::from_str(&feed).unwrap();
    assert_eq!(feed["version"], "https://jsonfeed.org/version/1.1");
    let item = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == video.as_str())
        .expect("approved video in the feed");
    assert_eq!(item["title"], "Why does the ball fall?");
    assert_eq!(item["_stemfeed"]["subject"], "physics", "{item}");
    let track = &item["_stemfeed"]["captions"][0];
    assert_eq!(track["version"], 2);
    let (code, vtt) = get(track["vtt"].as_str().unwrap(), None);
    assert_eq!(code, 200);
    assert!(
        vtt.starts_with("WEBVTT") && vtt.contains(&halves.0) && vtt.contains(&halves.1),
        "{vtt}"
    );
    let mp4 = item["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["mime_type"] == "video/mp4")
        .unwrap();
    let resp = agent()
        .get(mp4["url"].as_str().unwrap())
        .header("range", "bytes=0-1023")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert!(
        resp.headers()
            .get("content-range")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("bytes 0-1023/")
    );
    // The curator's edit shows in the edit statistics: English, the run's
    // model, this week; some of Whisper's words changed, not all.
    b.goto(&format!("{}/review/stats", server.url));
    let row = b.text("#edit-stats tr.edit-row[data-language='en']");
    accessible(&b, "curator edits");
    assert!(row.contains("base") && row.contains("transcript"), "{row}");
    let curator_token = server.token("stats-reader", "curator");
    let (code, body) = get(
        &format!("{}/api/stats/edits", server.url),
        Some(&curator_token),
    );
    assert_eq!(code, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    let en = stats["edits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["language"] == "en")
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(en["tracks"], 1, "{en}");
    let changed = en["words_changed"].as_u64().unwrap();
    let words = en["words"].as_u64().unwrap();
    assert!(changed >= 3 && changed < words, "{en}");
    // And it is in the catalog, where workers judge new English tracks
    // from this model by it (once enough are approved).
    let start = std::time::Instant::now();
    loop {
        let (_, body) = get(
            &format!("{}/api/stats/edits", server.url),
            Some(&curator_token),
        );
        let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
        let pooled = stats["accuracy"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["language"] == "en" && a["model"] == "base")
            .cloned();
        if let Some(a) = pooled {
            assert_eq!(
                (a["tracks"].as_u64(), a["words_changed"].as_u64()),
                (Some(1), Some(changed)),
                "{a}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the curators' accuracy never reached the catalog: {stats}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, metrics) = get(&format!("{}/metrics", server.url), Some(&curator_token));
    assert_eq!(code, 200);
    assert!(
        metrics.contains(
            "stemfeed_curator_word_change_ratio{language=\"en\",kind=\"transcript\",model=\"base\""
        ),
        "{metrics}"
    );
    assert_eq!(get(&format!("{}/metrics", server.url), None).0, 401);

    // Urdu captions read right to left, in the Nastaliq web font the server
    // ships (the browser's own is hidden, see above).
    server.wait_for_state(
        &submitter,
        &urdu_video,
        "in-review",
        Duration::from_secs(300),
    );
    b.goto(&format!("{}/review/{urdu_video}", server.url));
    b.find(".track-panel[data-lang='ur'] textarea");
    accessible(&b, "Urdu video page");
    let direction = b.script("return getComputedStyle(document.querySelector(\".track-panel[data-lang='ur'] textarea\")).direction;");
    assert_eq!(direction, "rtl");
    let family = b.script("return getComputedStyle(document.querySelector(\".track-panel[data-lang='ur'] textarea\")).fontFamily;");
    assert!(
        family.as_str().unwrap().contains("Noto Nastaliq Urdu"),
        "{family}"
    );
    // The preview line shows the cue at the playhead as a viewer reads it.
    wait_for(
        &b,
        "the Urdu cue in the preview line",
        "const p = document.querySelector(\".track-panel[data-lang='ur']\"); const s = document.getElementById('track-select');\
         if (s.value !== p.dataset.track) { s.value = p.dataset.track; s.dispatchEvent(new Event('change')); }\
         const v = document.getElementById('player'); const first = Number(p.querySelector('li.cue').dataset.start) + 0.05;\
         if (Math.abs(v.currentTime - first) > 0.01) v.currentTime = first;\
         return p.querySelector('.preview').textContent.length > 0;",
    );
    let preview = b.script(
        "const p = document.querySelector(\".track-panel[data-lang='ur'] .preview\"); return [getComputedStyle(p).direction, getComputedStyle(p).fontFamily];",
    );
    assert!(
        preview[0] == "rtl" && preview[1].as_str().unwrap().contains("Noto Nastaliq Urdu"),
        "{preview}"
    );
    // The system font really is hidden: text asking for it falls back.
    let widths = b.script(
        "const c = document.createElement('canvas').getContext('2d'); const t = 'کشش ثقل گیند کو نیچے کھینچتی ہے';\
         c.font = '32px \"Noto Nastaliq Urdu\", monospace'; const a = c.measureText(t).width;\
         c.font = '32px monospace'; const b = c.measureText(t).width; return [a, b];",
    );
    assert_eq!(
        widths[0], widths[1],
        "the system's Noto Nastaliq Urdu is visible to the browser"
    );
    // And the Urdu cue is drawn in the served web font.
    let mut drawn = Vec::new();
    for _ in 0..50 {
        // The preview line (a textarea's text is the browser's own shadow
        // content).
        drawn = b.rendered_fonts(".track-panel[data-lang='ur'] .preview");
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
        "Urdu is not drawn in the served Nastaliq web font: {drawn:?}"
    );
    let first = b.value(".track-panel[data-lang='ur'] textarea");
    assert!(
        first
            .chars()
            .any(|c| ('\u{0600}'..='\u{06FF}').contains(&c)),
        "{first}"
    );
    b.screenshot(&artifacts().join("review-page-urdu.png"));

    // The queue shows each video's poster; a video can be approved in bulk
    // once a curator has approved every caption track of it.
    let tracks = b.script(
        "return Array.from(document.querySelectorAll('#track-select option')).map(o => o.value);",
    );
    for track in tracks.as_array().unwrap() {
        let track = track.as_str().unwrap();
        b.goto(&format!("{}/review/{urdu_video}", server.url));
        b.find("#track-select");
        b.script(&format!(
            "const s = document.getElementById('track-select'); s.value = '{track}'; s.dispatchEvent(new Event('change')); return 0;"
        ));
        b.click(".track-panel:not([hidden]) .approve-track");
        wait_for(
            &b,
            "the track approved",
            &format!(
                "const h = document.querySelector(\".track-panel[data-track='{track}'] h2\"); return h && h.textContent.includes('approved');"
            ),
        );
    }
    b.goto(&format!("{}/review", server.url));
    let row = format!("tr[data-video='{urdu_video}']");
    wait_for(
        &b,
        "the queue's poster",
        &format!(
            "const i = document.querySelector(\"{row} td.poster img\"); return i && i.complete && i.naturalWidth > 0;"
        ),
    );
    accessible(&b, "review queue with posters");
    b.click(&format!("{row} input[type='checkbox']"));
    b.click("#bulk-approve");
    let outcome = b.text(&format!("#bulk-result li[data-video='{urdu_video}']"));
    assert!(outcome.ends_with(": approved"), "bulk approval: {outcome}");
    accessible(&b, "bulk approval");
    b.goto(&format!("{}/review/{urdu_video}", server.url));
    assert_eq!(b.text("#video-state"), "approved");
    // An approved video offers platform exports per approved language.
    b.find("#exports li.export[data-language='ur'] button.make-export");
    accessible(&b, "approved video page");

    // The edit was re-exported next to the outputs.
    assert!(
        server
            .data()
            .join(format!("objects/videos/{video}/edits/en.transcript.v2.vtt"))
            .is_file()
    );
}
