//! One behavioural suite for the object store, run against both backends:
//! the local directory and S3 over HTTP (moto on loopback).

mod common;

use std::path::Path;

use common::services::{S3_KEY, S3_SECRET, S3Server};
use stemfeed_store::{LocalStore, ObjectStore, S3Options, S3Store, put_tree};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A file of pseudo-random bytes (so a wrong part order would show).
fn noise_file(path: &Path, len: usize) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// The keys under `prefix`, as listed.
async fn keys_under(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

async fn behaviour(store: &dyn ObjectStore, dir: &Path) {
    // Bytes round trip, overwrite replaces.
    store
        .put_bytes("videos/v1/manifest.json", b"{}".to_vec())
        .await
        .unwrap();
    store
        .put_bytes("videos/v1/manifest.json", b"{\"v\":2}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.get_bytes("videos/v1/manifest.json").await.unwrap(),
        b"{\"v\":2}"
    );

    // A large file goes up in parts (S3) and comes back identical.
    let big = dir.join("big.bin");
    noise_file(&big, 12 * 1024 * 1024 + 12345);
    store.put_file("uploads/v1/source", &big).await.unwrap();
    let back = dir.join("back.bin");
    let n = store.get_file("uploads/v1/source", &back).await.unwrap();
    assert_eq!(n, std::fs::metadata(&big).unwrap().len());
    assert!(
        std::fs::read(&big).unwrap() == std::fs::read(&back).unwrap(),
        "downloaded bytes differ"
    );
    let head = store
        .head("uploads/v1/source")
        .await
        .unwrap()
        .expect("head of a stored object");
    assert_eq!(head.size, n);
    // A byte range, as a player's HLS segment request asks for it.
    let whole = std::fs::read(&big).unwrap();
    let part = store
        .get_range("uploads/v1/source", 5_000_000..5_100_000)
        .await
        .unwrap();
    assert!(part == whole[5_000_000..5_100_000], "range bytes differ");

    // Missing objects: head is None, get names the key.
    assert!(store.head("uploads/nope/source").await.unwrap().is_none());
    let err = store.get_bytes("uploads/nope/source").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("uploads/nope/source"), "{err}");
    let err = store
        .get_file("uploads/nope/source", &dir.join("x"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(!dir.join("x").exists(), "a failed download left a file");

    // Listing is by prefix, sorted, and does not leak neighbours.
    for k in [
        "incoming/b.mp4",
        "incoming/a.mp4",
        "incomingx/c.mp4",
        "incoming/sub/d.mp4",
    ] {
        store.put_bytes(k, k.as_bytes().to_vec()).await.unwrap();
    }
    let keys = keys_under(store, "incoming/").await;
    assert_eq!(
        keys,
        ["incoming/a.mp4", "incoming/b.mp4", "incoming/sub/d.mp4"]
    );
    assert!(store.list("nothing-here/").await.unwrap().is_empty());

    // A tree goes up with the manifest last.
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("hls")).unwrap();
    std::fs::write(tree.join("manifest.json"), "{}").unwrap();
    std::fs::write(tree.join("hls/master.m3u8"), "#EXTM3U").unwrap();
    std::fs::write(tree.join(".partial-junk"), "x").unwrap();
    assert_eq!(
        put_tree(store, &tree, "videos/v2/runs/r1", Some("manifest.json"))
            .await
            .unwrap(),
        2
    );
    let keys = keys_under(store, "videos/v2/").await;
    assert_eq!(
        keys,
        [
            "videos/v2/runs/r1/hls/master.m3u8",
            "videos/v2/runs/r1/manifest.json"
        ]
    );

    // Delete is idempotent.
    store.delete("incoming/a.mp4").await.unwrap();
    store.delete("incoming/a.mp4").await.unwrap();
    assert!(store.head("incoming/a.mp4").await.unwrap().is_none());

    // Keys that could escape or alias are refused before any I/O.
    for bad in ["../etc/passwd", "a/../../b", "/abs", "a//b"] {
        assert!(
            store.put_bytes(bad, vec![1]).await.is_err(),
            "{bad} accepted"
        );
    }
}

#[test]
fn local_directory_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("objects"));
    rt().block_on(behaviour(&store, dir.path()));
    // Local objects are files the server can serve with ranges; no presigning.
    assert!(store.local_path("uploads/v1/source").unwrap().is_file());
    let presigned =
        rt().block_on(store.presign_get("uploads/v1/source", std::time::Duration::from_secs(1)));
    assert!(presigned.unwrap().is_none());
    // Nothing was written outside the root.
    assert!(!dir.path().join("etc").exists());
}

#[test]
fn s3_backend_over_http() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut opts = S3Options::new("stemfeed-test");
        opts.endpoint = Some(server.endpoint());
        opts.path_style = true;
        opts.region = Some("us-east-1".into());
        opts.prefix = "tenant-a".into();
        opts.multipart_threshold = 5 * 1024 * 1024;
        opts.part_size = 5 * 1024 * 1024;
        opts.credentials = Some((S3_KEY.into(), S3_SECRET.into()));
        let store = S3Store::connect(opts).await;
        store.ensure_bucket().await.unwrap();
        behaviour(&store, dir.path()).await;
        // A presigned URL lets any HTTP client fetch the object, without credentials.
        let url = store
            .presign_get(
                "videos/v1/manifest.json",
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap()
            .expect("S3 presigns");
        let mut resp = ureq::get(&url).call().unwrap();
        assert_eq!(resp.body_mut().read_to_string().unwrap(), "{\"v\":2}");
    });
}
