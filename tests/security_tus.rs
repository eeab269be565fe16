//! tus uploads under bad luck and abuse, against a real `stemfeed serve` on
//! loopback: two clients PATCHing the same upload at the same offset (an
//! ordinary retry after a timeout) never store a corrupted file, progress
//! is recorded while a PATCH streams and survives a broken connection, an
//! abandoned upload expires with its partial file, and the per-submitter
//! limits and the free-space floor refuse with clear messages.
//!
//! Short expiries come from `stemfeed serve --upload-expiry-seconds N`
//! (also `STEMFEED_UPLOAD_EXPIRY_SECONDS`).

mod common;

use std::io::Read;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine;
use common::server::{Server, agent};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

/// `len` bytes that sniff as MP4 (an `ftyp` box) and differ with `seed`,
/// so each upload is its own content-addressed video. Nothing decodes
/// them: the servers here run without a worker.
fn fake_video(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2");
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A request body that arrives in `chunk`-sized pieces with a pause
/// between them, like a client on a slow link; after `fail_after` bytes
/// (if set) it waits `pause` and breaks off.
struct Slow {
    data: Arc<Vec<u8>>,
    pos: usize,
    end: usize,
    chunk: usize,
    pause: Duration,
    fail_after: Option<usize>,
}

impl Slow {
    fn new(data: Arc<Vec<u8>>, from: usize, chunk: usize, pause: Duration) -> Self {
        let end = data.len();
        Self {
            data,
            pos: from,
            end,
            chunk,
            pause,
            fail_after: None,
        }
    }
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.fail_after.is_some_and(|n| self.pos >= n) {
            std::thread::sleep(self.pause);
            return Err(std::io::Error::other("client gave up"));
        }
        if self.pos >= self.end {
            return Ok(0);
        }
        if self.pos.is_multiple_of(self.chunk) {
            std::thread::sleep(self.pause);
        }
        let chunk_end = (self.pos / self.chunk + 1) * self.chunk;
        let n = buf.len().min(chunk_end.min(self.end) - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn create(server: &Server, token: &str, length: usize) -> (u16, Option<String>, String) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut resp = agent()
        .post(&format!("{}/api/uploads", server.url))
        .header("authorization", &format!("Bearer {token}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", &length.to_string())
        .header("upload-metadata", &format!("filename {}", b64("clip.mp4")))
        .send_empty()
        .unwrap();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if location.is_some() {
        assert!(
            resp.headers().get("upload-expires").is_some(),
            "a created upload says when it expires"
        );
    }
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), location, body)
}

/// One PATCH: Ok((status, Stemfeed-Video)) or the transport error (the
/// server may refuse before reading the whole body and close).
fn patch(
    server: &Server,
    token: &str,
    location: &str,
    offset: usize,
    body: &mut dyn Read,
) -> Result<(u16, Option<String>), String> {
    let resp = agent()
        .patch(&format!("{}{location}", server.url))
        .header("authorization", &format!("Bearer {token}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", &offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .send(ureq::SendBody::from_reader(body))
        .map_err(|e| e.to_string())?;
    let video = resp
        .headers()
        .get("stemfeed-video")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((resp.status().as_u16(), video))
}

/// (status, Upload-Offset, Stemfeed-Video) of a HEAD.
fn head(server: &Server, token: &str, location: &str) -> (u16, Option<usize>, Option<String>) {
    let resp = agent()
        .head(&format!("{}{location}", server.url))
        .header("authorization", &format!("Bearer {token}"))
        .header("tus-resumable", "1.0.0")
        .call()
        .unwrap();
    let get = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    (
        resp.status().as_u16(),
        get("upload-offset").and_then(|v| v.parse().ok()),
        get("stemfeed-video"),
    )
}

fn partial_file(server: &Server, location: &str) -> std::path::PathBuf {
    let id = location.rsplit('/').next().unwrap();
    server.data().join("partial-uploads").join(id)
}

fn stored_source(server: &Server, video: &str) -> Vec<u8> {
    std::fs::read(
        server
            .data()
            .join(format!("objects/uploads/{video}/source")),
    )
    .unwrap()
}

#[test]
fn concurrent_patches_at_one_offset_never_corrupt_an_upload() {
    let server = Server::start(&["--no-worker", "--max-open-uploads", "100"]);
    let token = server.token("uploader", "submitter");
    let (mut completed, mut locked, mut conflicts) = (0, 0, 0);
    for trial in 0..50u64 {
        let data = Arc::new(fake_video(trial + 1, MIB));
        let (code, loc, body) = create(&server, &token, data.len());
        assert_eq!(code, 201, "{body}");
        let loc = loc.unwrap();
        // Both clients send the whole file from offset 0 at once, in 64 KiB
        // pieces with pauses, so their bodies really overlap.
        let barrier = Arc::new(Barrier::new(2));
        let outcomes: Vec<_> = std::thread::scope(|s| {
            let clients: Vec<_> = (0..2)
                .map(|_| {
                    let (barrier, data, loc, server, token) = (
                        Arc::clone(&barrier),
                        Arc::clone(&data),
                        &loc,
                        &server,
                        &token,
                    );
                    s.spawn(move || {
                        let mut body = Slow::new(data, 0, 64 * 1024, Duration::from_millis(3));
                        barrier.wait();
                        patch(server, token, loc, 0, &mut body)
                    })
                })
                .collect();
            clients.into_iter().map(|c| c.join().unwrap()).collect()
        });
        for outcome in &outcomes {
            match outcome {
                Ok((204, _)) => {}
                Ok((423, _)) => locked += 1,
                Ok((409, _)) => conflicts += 1,
                Ok((code, _)) => panic!("trial {trial}: unexpected {code}: {outcomes:?}"),
                // Refused before its body was read: the server closed.
                Err(_) => conflicts += 1,
            }
        }
        let finished = outcomes
            .iter()
            .filter(|o| matches!(o, Ok((204, Some(_)))))
            .count();
        assert!(finished <= 1, "trial {trial}: both finished: {outcomes:?}");
        let (code, offset, video) = head(&server, &token, &loc);
        assert_eq!(code, 200);
        match video {
            Some(video) => {
                assert_eq!(
                    sha256(&stored_source(&server, &video)),
                    sha256(&data),
                    "trial {trial}: the stored video differs from the client's file"
                );
                completed += 1;
            }
            None => {
                // Refused: whatever is kept is exactly the client's bytes.
                let offset = offset.unwrap();
                let kept = std::fs::read(partial_file(&server, &loc)).unwrap();
                assert!(kept.len() >= offset);
                assert!(
                    kept[..offset] == data[..offset],
                    "trial {trial}: kept bytes differ"
                );
            }
        }
    }
    eprintln!("{completed} of 50 completed; losers: {locked} locked, {conflicts} conflicts");
    assert!(completed >= 45, "only {completed} of 50 completed");
    // A refused client often sees only a broken pipe (the server answers
    // 423 before reading its body, then closes); the server's log counts.
    let refused_as_locked = server
        .log()
        .matches("PATCH refused: another request is writing")
        .count();
    eprintln!("server refused {refused_as_locked} PATCHes as locked");
    assert!(
        locked > 0 || refused_as_locked > 0,
        "the two PATCHes never overlapped: the test proves nothing"
    );
}

#[test]
fn progress_is_recorded_while_a_patch_streams_and_kept_when_it_breaks() {
    let server = Server::start(&["--no-worker"]);
    let token = server.token("uploader", "submitter");
    let data = Arc::new(fake_video(7, MIB));
    let (code, loc, body) = create(&server, &token, data.len());
    assert_eq!(code, 201, "{body}");
    let loc = loc.unwrap();
    // 256 KiB, then nothing for 3 s, then the connection breaks.
    let sent = 256 * 1024;
    let offset_while_streaming = std::thread::scope(|s| {
        let client = s.spawn(|| {
            let mut body = Slow::new(Arc::clone(&data), 0, 64 * 1024, Duration::from_millis(5));
            body.pause = Duration::from_millis(5);
            body.fail_after = Some(sent);
            let mut body = PauseBeforeFail(body, Duration::from_secs(3));
            patch(&server, &token, &loc, 0, &mut body)
        });
        std::thread::sleep(Duration::from_secs(2));
        let (code, offset, _) = head(&server, &token, &loc);
        assert_eq!(code, 200);
        let _ = client.join().unwrap();
        offset.unwrap()
    });
    assert_eq!(
        offset_while_streaming, sent,
        "HEAD during a quiet PATCH reports what arrived"
    );
    // After the break, the offset is what was written and fsynced, and
    // the file holds exactly the client's bytes up to it.
    let start = Instant::now();
    let offset = loop {
        let (_, offset, _) = head(&server, &token, &loc);
        let offset = offset.unwrap();
        if offset == sent || start.elapsed() > Duration::from_secs(10) {
            break offset;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(offset, sent);
    let kept = std::fs::read(partial_file(&server, &loc)).unwrap();
    assert!(kept.len() >= offset && kept[..offset] == data[..offset]);
    // Resuming there gives the identical file.
    let mut rest = Slow::new(Arc::clone(&data), offset, 128 * 1024, Duration::ZERO);
    let (code, video) = patch(&server, &token, &loc, offset, &mut rest).unwrap();
    assert_eq!(code, 204);
    assert_eq!(
        sha256(&stored_source(&server, &video.unwrap())),
        sha256(&data)
    );
    assert!(!partial_file(&server, &loc).exists());
}

/// Waits `.1` before the inner body's failure, so the server has taken
/// every byte before the connection breaks.
struct PauseBeforeFail(Slow, Duration);

impl Read for PauseBeforeFail {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.fail_after.is_some_and(|n| self.0.pos >= n) {
            std::thread::sleep(self.1);
        }
        self.0.read(buf)
    }
}

#[test]
fn an_expired_upload_disappears_with_its_partial_file() {
    let server = Server::start(&["--no-worker", "--upload-expiry-seconds", "2"]);
    let token = server.token("uploader", "submitter");
    let data = Arc::new(fake_video(11, 200_000));
    let (code, abandoned, body) = create(&server, &token, data.len());
    assert_eq!(code, 201, "{body}");
    let abandoned = abandoned.unwrap();
    let (_, active, _) = create(&server, &token, data.len());
    let active = active.unwrap();
    let mut first = Slow::new(Arc::clone(&data), 0, 50_000, Duration::ZERO);
    first.end = 50_000;
    assert_eq!(
        patch(&server, &token, &abandoned, 0, &mut first).unwrap().0,
        204
    );
    assert_eq!(
        std::fs::metadata(partial_file(&server, &abandoned))
            .unwrap()
            .len(),
        50_000
    );
    // The active upload gets a few bytes every 700 ms, which moves its
    // expiry on; the abandoned one gets nothing.
    let start = Instant::now();
    let mut offset = 0;
    let gone = loop {
        let mut piece = Slow::new(Arc::clone(&data), offset, 1000, Duration::ZERO);
        piece.end = offset + 1000;
        assert_eq!(
            patch(&server, &token, &active, offset, &mut piece)
                .unwrap()
                .0,
            204
        );
        offset += 1000;
        let (code, _, _) = head(&server, &token, &abandoned);
        if code == 404 {
            break true;
        }
        assert_eq!(code, 200);
        if start.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(700));
    };
    assert!(
        gone,
        "the abandoned upload never expired:\n{}",
        server.log()
    );
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "expired too early"
    );
    assert!(
        !partial_file(&server, &abandoned).exists(),
        "its partial file is still there"
    );
    let (code, active_offset, _) = head(&server, &token, &active);
    assert_eq!(code, 200, "an upload still being written was swept");
    assert_eq!(active_offset, Some(offset));
    assert!(partial_file(&server, &active).exists());
}

#[test]
fn per_submitter_limits_refuse_with_a_clear_message() {
    let server = Server::start(&[
        "--no-worker",
        "--max-open-uploads",
        "2",
        "--max-upload-mib-in-flight",
        "3",
    ]);
    let token = server.token("uploader", "submitter");
    let first = create(&server, &token, MIB).1.unwrap();
    assert_eq!(create(&server, &token, MIB).0, 201);
    let (code, loc, body) = create(&server, &token, MIB);
    assert_eq!(code, 429, "{body}");
    assert!(loc.is_none());
    assert!(
        body.contains("2 unfinished uploads"),
        "the refusal says why: {body}"
    );
    // Another submitter is not held up by this one…
    let other = server.token("uploader2", "submitter");
    assert_eq!(create(&server, &other, 2 * MIB).0, 201);
    // …but has a limit on declared bytes.
    let (code, _, body) = create(&server, &other, 2 * MIB);
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("bytes"), "the refusal says why: {body}");
    // Finishing an upload frees its place.
    let data = Arc::new(fake_video(3, MIB));
    let mut all = Slow::new(Arc::clone(&data), 0, 256 * 1024, Duration::ZERO);
    assert_eq!(patch(&server, &token, &first, 0, &mut all).unwrap().0, 204);
    assert_eq!(create(&server, &token, MIB).0, 201);
}

#[test]
fn uploads_are_refused_when_the_disk_is_nearly_full() {
    // A floor no disk reaches.
    let server = Server::start(&["--no-worker", "--upload-min-free-mib", "1000000000"]);
    let token = server.token("uploader", "submitter");
    let (code, loc, body) = create(&server, &token, MIB);
    assert_eq!(code, 507, "{body}");
    assert!(loc.is_none());
    assert!(body.contains("disk space"), "{body}");
}
