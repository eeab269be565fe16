//! What the public may fetch, against a real `stemfeed serve` on loopback:
//! only what an approved video publishes (renditions, HLS, poster,
//! thumbnails) and only approved caption tracks, through the
//! approved-version route. The recogniser's raw caption files, rejected
//! tracks, edits not yet re-approved and unapproved videos answer 404 to
//! anonymous callers; curators keep full access.

mod common;

use std::time::Duration;

use common::server::{Server, agent, get};

/// A curator's form POST with an API token (no session, so no CSRF token).
fn post(server: &Server, token: &str, path: &str, body: &str) -> u16 {
    server.post_form(token, path, body)
}

fn feed_item(server: &Server, video: &str) -> Option<serde_json::Value> {
    let (code, feed) = get(&format!("{}/feed.json", server.url), None);
    assert_eq!(code, 200);
    let feed: serde_json::Value = serde_json::from_str(&feed).unwrap();
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == video)
        .cloned()
}

#[test]
fn the_public_gets_only_published_media_and_approved_captions() {
    common::ensure_default_models();
    let server = Server::start(&[]);
    let submitter = server.token("studio", "submitter");
    let curator = server.token("cur", "curator");
    let dir = tempfile::tempdir().unwrap();
    let wav = common::espeak(
        dir.path(),
        "speech.wav",
        "en",
        "Gravity pulls the ball down toward the ground.",
    );
    let clip = common::video_with(dir.path(), "ball.mp4", &wav);
    let out = server.submit(&submitter, &clip, &["--title", "Ball", "--language", "en"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let submitted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let video = submitted["video"].as_str().unwrap().to_owned();
    server.wait_for_state(&submitter, &video, "in-review", Duration::from_secs(300));
    let url = |p: &str| format!("{}{p}", server.url);
    let track = "en.transcript";
    let master = format!("/media/{video}/hls/master.m3u8");
    let raw = [
        format!("/media/{video}/captions/{track}.json"),
        format!("/media/{video}/captions/{track}.vtt"),
        format!("/media/{video}/captions/{track}.srt"),
    ];
    let approved_vtt = format!("/captions/{video}/{track}.vtt");

    // Not approved yet: nothing of it is public; a curator sees it all.
    assert_eq!(get(&url(&master), None).0, 404);
    assert_eq!(get(&url(&approved_vtt), None).0, 404);
    assert_eq!(get(&url(&master), Some(&curator)).0, 200);
    for p in &raw {
        assert_eq!(get(&url(p), Some(&curator)).0, 200, "{p} for a curator");
    }
    assert!(feed_item(&server, &video).is_none());

    // A curator approves the video without anyone having opened its page:
    // the run's tracks became caption versions when its job completed.
    assert!(
        post(
            &server,
            &curator,
            &format!("/review/{video}/decision"),
            "decision=approve"
        ) < 400
    );
    assert_eq!(
        get(&url(&format!("/review/{video}")), Some(&curator)).0,
        200
    );

    // Its renditions, playlists and poster are public...
    let item = feed_item(&server, &video).expect("approved video in the feed");
    let mp4 = item["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["mime_type"] == "video/mp4")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, _) = get(&mp4, None);
    assert_eq!(code, 200, "{mp4}");
    if let Some(poster) = item["image"].as_str() {
        assert_eq!(get(poster, None).0, 200, "{poster}");
    }
    let (code, text) = get(&url(&master), None);
    assert_eq!(code, 200);
    let variant = text
        .lines()
        .find(|l| l.ends_with("/index.m3u8"))
        .expect("a variant playlist");
    let variant_url = url(&format!("/media/{video}/hls/{variant}"));
    let (code, playlist) = get(&variant_url, None);
    assert_eq!(code, 200);
    // Its segments are byte ranges of the published rendition itself.
    let (segment, _) = common::hls_segments(&playlist).remove(0);
    assert_eq!(get(&common::resolve(&variant_url, &segment), None).0, 200);
    // ...its approved captions only through the approved-version route...
    let (code, vtt) = get(&url(&approved_vtt), None);
    assert_eq!(code, 200);
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let (code, subs) = get(&url(&format!("/media/{video}/hls/subs/{track}.m3u8")), None);
    assert_eq!(code, 200);
    assert!(
        subs.contains(&approved_vtt) && !subs.contains("captions/en"),
        "{subs}"
    );
    // ...and never the recogniser's raw files, nor anything else of the run.
    for p in raw.iter().chain([
        &format!("/media/{video}/manifest.json"),
        &format!("/media/{video}/tags.json"),
    ]) {
        let (code, body) = get(&url(p), None);
        assert_eq!(code, 404, "{p} is public: {body}");
        assert!(!body.contains("runs/"), "{p} leaked a key: {body}");
    }
    let tracks = &item["_stemfeed"]["captions"];
    assert_eq!(tracks.as_array().unwrap().len(), 1, "{tracks}");

    // An edit after approval is not public until a curator approves it.
    let edited = "Edited after approval by a curator";
    let form = format!(
        "n=1&start_0=0&end_0=1.5&text_0={}",
        edited.replace(' ', "+")
    );
    // Six saves of the same track at once (curators in two tabs, a
    // retried request): each gets a version, none a server error.
    let path = format!("/review/{video}/captions/{track}");
    let codes: Vec<u16> = std::thread::scope(|s| {
        let saves: Vec<_> = (0..6)
            .map(|_| s.spawn(|| post(&server, &curator, &path, &form)))
            .collect();
        saves.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        codes.iter().all(|c| *c < 400),
        "concurrent saves: {codes:?}"
    );
    assert_eq!(get(&url(&approved_vtt), None).0, 404);
    assert_eq!(
        get(&url(&format!("/media/{video}/hls/subs/{track}.m3u8")), None).0,
        404
    );
    let item = feed_item(&server, &video).unwrap();
    assert!(
        item["_stemfeed"]["captions"].as_array().unwrap().is_empty(),
        "{item}"
    );
    let (_, text) = get(&url(&master), None);
    assert!(!text.contains("SUBTITLES"), "{text}");
    let (code, vtt) = get(&url(&approved_vtt), Some(&curator));
    assert_eq!(code, 200);
    assert!(vtt.contains(edited), "{vtt}");
    let decision = format!("/review/{video}/captions/{track}/decision");
    assert!(post(&server, &curator, &decision, "decision=approve") < 400);
    let (code, vtt) = get(&url(&approved_vtt), None);
    assert_eq!(code, 200);
    assert!(vtt.contains(edited), "{vtt}");

    // A rejected track is gone for the public; a curator still reads it.
    assert!(
        post(
            &server,
            &curator,
            &decision,
            "decision=reject&reason=wrong+words"
        ) < 400
    );
    for ext in ["vtt", "srt", "json"] {
        let p = format!("/captions/{video}/{track}.{ext}");
        assert_eq!(get(&url(&p), None).0, 404, "{p} after rejection");
        assert_eq!(get(&url(&p), Some(&curator)).0, 200, "{p} for a curator");
    }
    let item = feed_item(&server, &video).unwrap();
    assert!(
        item["_stemfeed"]["captions"].as_array().unwrap().is_empty(),
        "{item}"
    );
    // Re-approving the video does not publish a rejected track.
    assert!(
        post(
            &server,
            &curator,
            &format!("/review/{video}/decision"),
            "decision=approve"
        ) < 400
    );
    assert_eq!(get(&url(&approved_vtt), None).0, 404);

    // A video taken back (rejected) is not public at all any more.
    assert!(
        post(
            &server,
            &curator,
            &format!("/review/{video}/decision"),
            "decision=reject&reason=off+topic"
        ) < 400
    );
    assert_eq!(get(&mp4, None).0, 404);
    assert_eq!(get(&url(&master), None).0, 404);
    assert_eq!(get(&mp4, Some(&curator)).0, 200);
    assert!(feed_item(&server, &video).is_none());
    // A range request still works for a curator.
    let resp = agent()
        .get(&mp4)
        .header("authorization", &format!("Bearer {curator}"))
        .header("range", "bytes=0-99")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
}
