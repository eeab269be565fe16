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
    let fonts = tempfile::tempdir().unwrap();
    let fonts_conf = fonts.path().join("fonts.conf");
    std::fs::write(
        &fonts_conf,
        "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n<fontconfig>\n\
         <include ignore_missing=\"yes\">/etc/fonts/fonts.conf</include>\n\
         <selectfont><rejectfont><glob>*NotoNastaliq*</glob></rejectfont></selectfont>\n</fontconfig>\n",
    )
    .unwrap();
    let b = Browser::start_with_env(&[("FONTCONFIG_FILE", fonts_conf.display().to_string())]);
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

    // Edit the first cue and save: a new version by this curator.
    let edited = "Gravity pulls the ball down, fixed by a curator.";
    b.type_into("textarea[name='text_0']", edited, true);
    b.click(".track-panel:not([hidden]) .save-captions");
    let start = std::time::Instant::now();
    while b.value("textarea[name='text_0']") != edited {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "edit not saved: {}",
            b.value("textarea[name='text_0']")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
    assert!(vtt.starts_with("WEBVTT") && vtt.contains(edited), "{vtt}");
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
    let preview = b.script(
        "const p = document.querySelector(\".track-panel[data-lang='ur'] p.words\"); return [getComputedStyle(p).direction, getComputedStyle(p).fontFamily];",
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
        // The cue's words (a textarea's text is the browser's own shadow
        // content); low-confidence words sit in <mark>s.
        drawn = b.rendered_fonts(".track-panel[data-lang='ur'] p.words");
        if drawn.is_empty() {
            drawn = b.rendered_fonts(".track-panel[data-lang='ur'] p.words mark");
        }
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

    // The edit was re-exported next to the outputs.
    assert!(
        server
            .data()
            .join(format!("objects/videos/{video}/edits/en.transcript.v2.vtt"))
            .is_file()
    );
}
