//! The published feed against a real `stemfeed serve`: pages of
//! `?limit=N` linked by JSON Feed `next_url` on the configured public URL
//! (never a forged `Host`), a strong `ETag` answered with 304, and media
//! served from a cached manifest once a video's run has been read.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use common::server::{Server, agent, get};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn ids(feed: &serde_json::Value, key: &str) -> Vec<String> {
    feed[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}: {feed}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A GET over a bare socket, so the `Host` header is whatever we say.
fn raw_get(server: &Server, path: &str, host: &str) -> String {
    let addr = server.url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Host: {host}\r\nForwarded: host={host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn feed_pages_etags_and_cached_manifests() {
    common::ensure_default_models();
    let server = Server::start(&[]);
    let submitter = server.token("studio", "submitter");
    let curator = server.token("cur", "curator");
    let dir = tempfile::tempdir().unwrap();
    let url = |p: &str| format!("{}{p}", server.url);

    // Three tiny approved videos, submitted (and so published) in order.
    let mut videos = Vec::new();
    for (i, text) in [
        "Gravity pulls the ball down.",
        "Water boils at one hundred degrees.",
        "Plants make food from light.",
    ]
    .into_iter()
    .enumerate()
    {
        let wav = common::espeak(dir.path(), &format!("s{i}.wav"), "en", text);
        let clip = common::video_with(dir.path(), &format!("c{i}.mp4"), &wav);
        let out = server.submit(&submitter, &clip, &["--title", text, "--language", "en"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let submitted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        videos.push(submitted["video"].as_str().unwrap().to_owned());
        // Distinct publication times.
        std::thread::sleep(Duration::from_millis(20));
    }
    for video in &videos {
        server.wait_for_state(&submitter, video, "in-review", Duration::from_secs(600));
        assert_eq!(
            get(&url(&format!("/review/{video}")), Some(&curator)).0,
            200
        );
        let code = agent()
            .post(&url(&format!("/review/{video}/decision")))
            .header("authorization", &format!("Bearer {curator}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send(&b"decision=approve"[..])
            .unwrap()
            .status()
            .as_u16();
        assert!(code < 400, "approving {video}: {code}");
    }
    let newest_first: Vec<String> = videos.iter().rev().cloned().collect();

    // Everything on one default page, without a next page.
    let (code, body) = get(&url("/feed.json"), None);
    assert_eq!(code, 200);
    let all = json(&body);
    assert_eq!(ids(&all, "items"), newest_first);
    assert!(all.get("next_url").is_none(), "{all}");

    // limit=2: two items and a next_url on the public URL; then the last one.
    let (code, body) = get(&url("/feed.json?limit=2"), None);
    assert_eq!(code, 200);
    let first = json(&body);
    assert_eq!(ids(&first, "items"), newest_first[..2]);
    let next = first["next_url"].as_str().expect("a next_url").to_owned();
    assert!(next.starts_with(&url("/feed.json?")), "{next}");
    let (code, body) = get(&next, None);
    assert_eq!(code, 200);
    let second = json(&body);
    assert_eq!(ids(&second, "items"), newest_first[2..]);
    assert!(second.get("next_url").is_none(), "{second}");

    // /api/feed pages the same way.
    let (code, body) = get(&url("/api/feed?limit=2"), None);
    assert_eq!(code, 200);
    let api = json(&body);
    assert_eq!(ids(&api, "videos"), newest_first[..2]);
    let api_next = api["next_url"].as_str().expect("a next_url").to_owned();
    assert!(api_next.starts_with(&url("/api/feed?")), "{api_next}");
    let (_, body) = get(&api_next, None);
    assert_eq!(ids(&json(&body), "videos"), newest_first[2..]);

    // Filters: each returns exactly the items of the whole feed that have
    // the asked-for language, subject or grade band, newest first, and its
    // next_url keeps the filter.
    let field =
        |item: &serde_json::Value, key: &str| item["_stemfeed"][key].as_str().map(str::to_owned);
    let items = all["items"].as_array().unwrap().clone();
    let expect = |keep: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
        items
            .iter()
            .filter(|i| keep(i))
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let subjects: BTreeSet<String> = items.iter().filter_map(|i| field(i, "subject")).collect();
    assert!(!subjects.is_empty(), "the tagger found no subject: {all}");
    for subject in &subjects {
        let (code, body) = get(&url(&format!("/feed.json?subject={subject}")), None);
        assert_eq!(code, 200, "{body}");
        let want = expect(&|i| field(i, "subject").as_deref() == Some(subject.as_str()));
        assert_eq!(ids(&json(&body), "items"), want, "subject={subject}");
        // One per page: the filter survives paging.
        let mut got = Vec::new();
        let mut next = Some(url(&format!("/api/feed?subject={subject}&limit=1")));
        while let Some(page) = next {
            assert!(page.contains(&format!("subject={subject}")), "{page}");
            let page = json(&get(&page, None).1);
            got.extend(ids(&page, "videos"));
            next = page["next_url"].as_str().map(str::to_owned);
        }
        assert_eq!(got, want, "paged subject={subject}");
    }
    let (_, body) = get(&url("/feed.json?language=en"), None);
    assert_eq!(
        ids(&json(&body), "items"),
        newest_first,
        "all are spoken English"
    );
    let (_, body) = get(&url("/feed.json?language=ur"), None);
    assert!(ids(&json(&body), "items").is_empty(), "{body}");
    let bands = [
        ("primary", 1..=5),
        ("middle", 6..=8),
        ("secondary", 9..=10),
        ("higher-secondary", 11..=12),
    ];
    for grade in [3u8, 7, 9, 12] {
        let want = expect(&|i| {
            field(i, "grade_band").is_some_and(|b| {
                bands
                    .iter()
                    .any(|(id, range)| *id == b && range.contains(&grade))
            })
        });
        let (_, body) = get(&url(&format!("/feed.json?grade={grade}&language=en")), None);
        assert_eq!(ids(&json(&body), "items"), want, "grade={grade}");
    }

    // Bad limits, cursors and filters are refused, not guessed at.
    for q in [
        "limit=0",
        "limit=201",
        "limit=-1",
        "limit=two",
        "before=junk!",
        "before=bm90LWEtY3Vyc29y",
        "subject=astrology",
        "grade=13",
        "grade=0",
        "grade=nine",
        "language=Urdu",
        "language=u",
    ] {
        assert_eq!(get(&url(&format!("/feed.json?{q}")), None).0, 400, "{q}");
    }

    // A strong ETag; If-None-Match answers 304 with no body.
    let resp = agent().get(&url("/feed.json?limit=2")).call().unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let tag = header("etag").expect("an ETag");
    assert!(tag.starts_with('"') && !tag.starts_with("W/"), "{tag}");
    assert_eq!(
        header("cache-control").as_deref(),
        Some("public, max-age=60")
    );
    let mut again = agent()
        .get(&url("/feed.json?limit=2"))
        .header("if-none-match", &tag)
        .call()
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(again.headers().get("etag").unwrap().to_str().unwrap(), tag);
    assert!(again.body_mut().read_to_vec().unwrap().is_empty());
    let stale = agent()
        .get(&url("/feed.json?limit=2"))
        .header("if-none-match", "\"not-this-one\"")
        .call()
        .unwrap();
    assert_eq!(stale.status().as_u16(), 200);
    // Another page is another body and another tag.
    let other = agent()
        .get(&next)
        .header("if-none-match", &tag)
        .call()
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    assert_ne!(other.headers().get("etag").unwrap().to_str().unwrap(), tag);

    // A forged Host (or forwarding header) never reaches the URLs.
    let raw = raw_get(&server, "/feed.json?limit=2", "evil.example");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(!raw.contains("evil.example"), "{raw}");
    assert!(raw.contains(&url("/feed.json?limit=2&before=")), "{raw}");

    // Media: the first request reads the manifest; later ones, segments
    // included, are served from the cache even with the manifest gone.
    let video = &videos[0];
    let master = url(&format!("/media/{video}/hls/master.m3u8"));
    let (code, text) = get(&master, None);
    assert_eq!(code, 200);
    let variant = text
        .lines()
        .find(|l| l.ends_with("/index.m3u8"))
        .expect("a variant playlist")
        .to_owned();
    let aside = set_aside(&server, video);
    let (code, playlist) = get(&url(&format!("/media/{video}/hls/{variant}")), None);
    assert_eq!(code, 200, "{playlist}");
    let variant_url = url(&format!("/media/{video}/hls/{variant}"));
    let (segment, _) = common::hls_segments(&playlist).remove(0);
    let seg = common::resolve(&variant_url, &segment);
    for _ in 0..2 {
        assert_eq!(get(&seg, None).0, 200, "{seg}");
    }
    // A video not read yet still needs its manifest.
    let other_aside = set_aside(&server, &videos[1]);
    let other_master = url(&format!("/media/{}/hls/master.m3u8", videos[1]));
    assert_ne!(get(&other_master, None).0, 200);
    put_back(&other_aside);
    assert_eq!(get(&other_master, None).0, 200);
    put_back(&aside);
}

/// Every `manifest.json` of a video in the local store (its runs' and the
/// `videos/<id>` pointer), renamed away; returns the new names.
fn set_aside(server: &Server, video: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|n| n == "manifest.json") {
                out.push(p);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &server.data().join(format!("objects/videos/{video}")),
        &mut found,
    );
    assert!(!found.is_empty(), "no manifest of {video} in the store");
    found
        .into_iter()
        .map(|p| {
            let aside = p.with_extension("json.aside");
            std::fs::rename(&p, &aside).unwrap();
            aside
        })
        .collect()
}

fn put_back(aside: &[std::path::PathBuf]) {
    for p in aside {
        std::fs::rename(p, p.with_extension("")).unwrap();
    }
}
