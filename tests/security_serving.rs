//! How media and static files are served, against a real `stemfeed serve`
//! on loopback with one real job: HEAD, byte ranges (206 with the right
//! bytes, 416 past the end), If-Range (a stale validator gets the whole
//! file), ETag with If-None-Match (304), Last-Modified with
//! If-Modified-Since, a year's immutable caching for a run's public files,
//! revalidation for generated playlists, caption files and the review UI's
//! embedded assets, and conditional headers that never open what is not
//! public (still 404, never 304 or 206).

mod common;

use std::collections::HashMap;

use common::server::{Server, agent, get};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// A GET or HEAD with extra headers: status, headers (lower-case names) and body.
fn fetch(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let agent = agent();
    let mut req = match method {
        "HEAD" => agent.head(url),
        _ => agent.get(url),
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap_or_default();
    Reply {
        status: resp.status().as_u16(),
        headers,
        body,
    }
}

#[test]
fn media_and_static_files_answer_standard_conditional_and_range_requests() {
    common::ensure_default_models();
    let server = Server::start(&[]);
    let submitter = server.token("studio", "submitter");
    let curator = server.token("cur", "curator");
    let bearer = format!("Bearer {curator}");
    let dir = tempfile::tempdir().unwrap();
    let video = server.approved_video(
        &submitter,
        &curator,
        dir.path(),
        "Gravity pulls the ball down toward the ground.",
    );
    let url = |p: &str| format!("{}{p}", server.url);
    let (code, feed) = get(&url("/feed.json"), None);
    assert_eq!(code, 200);
    let feed: serde_json::Value = serde_json::from_str(&feed).unwrap();
    let item = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == video.as_str())
        .expect("the approved video in the feed")
        .clone();
    let mp4 = item["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["mime_type"] == "video/mp4")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();

    // The whole rendition, with its validators and a year's caching.
    let full = fetch("GET", &mp4, &[]);
    assert_eq!(full.status, 200);
    let len = full.body.len();
    assert!(len > 1000, "{len} bytes");
    assert_eq!(full.header("content-type"), "video/mp4");
    assert_eq!(full.header("content-length"), len.to_string());
    assert_eq!(full.header("accept-ranges"), "bytes");
    assert_eq!(full.header("cache-control"), IMMUTABLE);
    let etag = full.header("etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "a strong ETag: {etag:?}"
    );
    assert!(!etag.contains("runs"), "the ETag names no key: {etag}");
    let modified = full.header("last-modified").to_owned();
    assert!(modified.ends_with(" GMT"), "Last-Modified: {modified:?}");

    // HEAD: the same headers, no body.
    let head = fetch("HEAD", &mp4, &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), len.to_string());
    assert_eq!(head.header("etag"), etag);
    assert_eq!(head.header("last-modified"), modified);
    assert_eq!(head.header("cache-control"), IMMUTABLE);

    // One range: 206 and exactly those bytes; a suffix range; past the end, 416.
    let part = fetch("GET", &mp4, &[("range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), format!("bytes 100-199/{len}"));
    assert_eq!(part.body, full.body[100..200]);
    assert_eq!(part.header("etag"), etag);
    assert_eq!(part.header("cache-control"), IMMUTABLE);
    let tail = fetch("GET", &mp4, &[("range", "bytes=-10")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, full.body[len - 10..]);
    let past = fetch("GET", &mp4, &[("range", &format!("bytes={len}-"))]);
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), format!("bytes */{len}"));
    let head_part = fetch("HEAD", &mp4, &[("range", "bytes=0-9")]);
    assert_eq!(head_part.status, 206);
    assert_eq!(head_part.header("content-length"), "10");
    assert!(head_part.body.is_empty());

    // If-Range: a current validator keeps the range, a stale one gets all.
    let older = "Mon, 01 Jan 2001 00:00:00 GMT";
    for (validator, status) in [
        (etag.as_str(), 206),
        (modified.as_str(), 206),
        ("\"stale\"", 200),
        (older, 200),
    ] {
        let r = fetch(
            "GET",
            &mp4,
            &[("range", "bytes=100-199"), ("if-range", validator)],
        );
        assert_eq!(r.status, status, "If-Range: {validator}");
        if status == 200 {
            assert_eq!(r.body, full.body, "If-Range: {validator}");
        } else {
            assert_eq!(r.body, full.body[100..200], "If-Range: {validator}");
        }
    }

    // If-None-Match and If-Modified-Since: 304 with the validators, no body;
    // If-None-Match wins over If-Modified-Since; If-Match guards.
    for (name, value) in [
        ("if-none-match", etag.as_str()),
        ("if-none-match", &format!("\"other\", W/{etag}")),
        ("if-modified-since", modified.as_str()),
    ] {
        for method in ["GET", "HEAD"] {
            let r = fetch(method, &mp4, &[(name, value)]);
            assert_eq!(r.status, 304, "{method} {name}: {value}");
            assert!(r.body.is_empty());
            assert_eq!(r.header("etag"), etag);
            assert_eq!(r.header("cache-control"), IMMUTABLE);
        }
    }
    let r = fetch(
        "GET",
        &mp4,
        &[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &modified),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full.body);
    assert_eq!(fetch("GET", &mp4, &[("if-match", &etag)]).status, 200);
    assert_eq!(fetch("GET", &mp4, &[("if-match", "\"other\"")]).status, 412);

    // HLS: segments are run files (immutable); the master playlist is
    // rewritten for the public, so it revalidates, with its own ETag.
    let master = url(&format!("/media/{video}/hls/master.m3u8"));
    let m = fetch("GET", &master, &[]);
    assert_eq!(m.status, 200);
    assert_eq!(m.header("cache-control"), "public, no-cache");
    let m_tag = m.header("etag").to_owned();
    assert!(m_tag.starts_with('"'), "{m_tag:?}");
    assert_eq!(
        fetch("GET", &master, &[("if-none-match", &m_tag)]).status,
        304
    );
    let text = String::from_utf8(m.body).unwrap();
    let variant = text
        .lines()
        .find(|l| l.ends_with("/index.m3u8"))
        .expect("a variant playlist");
    let variant_url = url(&format!("/media/{video}/hls/{variant}"));
    let v = fetch("GET", &variant_url, &[]);
    assert_eq!(v.status, 200);
    assert_eq!(v.header("cache-control"), IMMUTABLE);
    let playlist = String::from_utf8(v.body).unwrap();
    // A segment is a byte range of a rendition: what a player asks for.
    let (segment, range) = common::hls_segments(&playlist).remove(0);
    let (length, offset) = range.as_deref().unwrap().split_once('@').unwrap();
    let (length, offset): (usize, usize) = (length.parse().unwrap(), offset.parse().unwrap());
    let seg_url = common::resolve(&variant_url, &segment);
    let seg = fetch(
        "GET",
        &seg_url,
        &[("range", &format!("bytes={offset}-{}", offset + length - 1))],
    );
    assert_eq!(seg.status, 206);
    assert_eq!(seg.body.len(), length);
    assert_eq!(&seg.body[4..8], b"moof", "a segment opens with a fragment");
    assert_eq!(seg.header("content-type"), "video/mp4");
    assert_eq!(seg.header("cache-control"), IMMUTABLE);
    if let Some(poster) = item["image"].as_str() {
        let p = fetch("GET", poster, &[]);
        assert_eq!(p.status, 200, "{poster}");
        assert_eq!(p.header("cache-control"), IMMUTABLE);
    }

    // An approved caption file is rendered: validated by its own hash.
    let vtt = url(&format!("/captions/{video}/en.transcript.vtt"));
    let c = fetch("GET", &vtt, &[]);
    assert_eq!(c.status, 200);
    assert_eq!(c.header("cache-control"), "public, no-cache");
    let c_tag = c.header("etag").to_owned();
    assert_eq!(fetch("GET", &vtt, &[("if-none-match", &c_tag)]).status, 304);

    // The embedded review assets: a content hash ETag, no immutability
    // (their URLs are not versioned), 304 on If-None-Match, HEAD.
    for (path, kind) in [
        ("/static/review.js", "text/javascript"),
        ("/static/review.css", "text/css"),
    ] {
        let a = fetch("GET", &url(path), &[]);
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.header("content-type"), kind);
        assert!(!a.body.is_empty());
        let cache = a.header("cache-control");
        assert!(
            cache.contains("no-cache") && !cache.contains("immutable"),
            "{path}: {cache}"
        );
        let tag = a.header("etag").to_owned();
        assert!(tag.starts_with('"'), "{path}: {tag:?}");
        let again = fetch("GET", &url(path), &[("if-none-match", &tag)]);
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), tag);
        let head = fetch("HEAD", &url(path), &[]);
        assert_eq!(head.status, 200);
        assert_eq!(head.header("etag"), tag);
        assert!(head.body.is_empty());
    }

    // What is never public stays 404 whatever the conditional headers say:
    // the recogniser's raw caption file and the run's manifest...
    let conditional = [
        ("range", "bytes=0-9"),
        ("if-range", etag.as_str()),
        ("if-none-match", "*"),
    ];
    for p in [
        format!("/media/{video}/captions/en.transcript.vtt"),
        format!("/media/{video}/manifest.json"),
    ] {
        for method in ["GET", "HEAD"] {
            let r = fetch(method, &url(&p), &conditional);
            assert_eq!(r.status, 404, "{method} {p}");
            assert!(!String::from_utf8_lossy(&r.body).contains("runs/"));
        }
        // A curator reads them, but no shared cache may keep them.
        let r = fetch("GET", &url(&p), &[("authorization", &bearer)]);
        assert_eq!(r.status, 200, "{p} for a curator");
        assert_eq!(r.header("cache-control"), "private, no-cache");
    }
    // ...and, once the video is taken back, its renditions: no 304, no 206.
    assert!(server.decide(&curator, &video, "decision=reject&reason=off+topic") < 400);
    for headers in [
        &[][..],
        &[("range", "bytes=100-199")][..],
        &[("if-none-match", etag.as_str())][..],
        &[("range", "bytes=100-199"), ("if-range", etag.as_str())][..],
    ] {
        for method in ["GET", "HEAD"] {
            let r = fetch(method, &mp4, headers);
            assert_eq!(r.status, 404, "{method} {headers:?}");
            assert!(r.header("etag").is_empty(), "{method} {headers:?}");
            assert!(!String::from_utf8_lossy(&r.body).contains("runs/"));
        }
    }
    assert_eq!(fetch("GET", &master, &[]).status, 404);
    assert_eq!(fetch("GET", &vtt, &[]).status, 404);
    // A curator still gets it, with ranges, privately cached only.
    let r = fetch(
        "GET",
        &mp4,
        &[("authorization", &bearer), ("range", "bytes=100-199")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, full.body[100..200]);
    assert_eq!(r.header("cache-control"), "private, no-cache");
}
