//! Workers by capability: a transcode-only worker (`worker.stages =
//! ["transcode"]`, a CPU box) and a captions-only worker (`["captions",
//! "tags"]`, a GPU box) share six spoken uploads over PostgreSQL and S3
//! (moto) on loopback. The hand-off goes through the catalog and the store;
//! each worker is killed with SIGKILL mid-stage once and replaced. Every
//! job must end in review with each part committed exactly once, by the
//! right kind of worker, with complete outputs whose captions hold the
//! spoken words.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::services::{Postgres, S3Server, free_port};
use common::workers::{http_get, logs, small_profile, spawn_worker, wait_until};
use stemfeed_queue::{Catalog, JobState, Phase};
use stemfeed_store::{ObjectStore, S3Options, S3Store};

const UPLOADS: usize = 6;

/// `n` spoken clips: the same English sentence over a numbered test
/// pattern, so each is its own upload.
fn spoken_uploads(dir: &Path, n: usize) -> Vec<PathBuf> {
    let wav = common::espeak(
        dir,
        "speech.wav",
        "en-us",
        "Water boils at one hundred degrees. Gravity pulls the apple down to the ground.",
    );
    (0..n)
        .map(|i| {
            let path = dir.join(format!("lesson-{i}.mp4"));
            let out = Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                ])
                .arg(format!(
                    "testsrc2=size=360x640:rate=15,drawtext=text=lesson{i}:fontcolor=white"
                ))
                .arg("-i")
                .arg(&wav)
                .args([
                    "-shortest",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                ])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", common::text(&out.stderr));
            path
        })
        .collect()
}

/// Kills `worker` with SIGKILL once it holds a job in `phase`; returns the
/// job's id.
fn kill_mid_stage(
    catalog: &Catalog,
    dir: &Path,
    name: &str,
    phase: Phase,
    worker: &mut Child,
) -> i64 {
    let mut held = None;
    wait_until(
        &format!("{name} to hold a {phase:?} job"),
        Duration::from_secs(300),
        dir,
        || {
            held = catalog
                .jobs(None)
                .unwrap()
                .into_iter()
                .find(|j| {
                    j.lease_owner.as_deref() == Some(name)
                        && j.state.is_active()
                        && j.phase == phase
                })
                .map(|j| j.id);
            held.is_some()
        },
    );
    worker.kill().unwrap();
    worker.wait().unwrap();
    held.unwrap()
}

#[test]
fn transcode_and_captions_workers_split_jobs_and_survive_sigkill() {
    common::ensure_default_models();
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let s3 = S3Server::start();
    let catalog_url = pg.database("split");
    let env = s3.env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(async {
        let mut opts = S3Options::new("media");
        opts.endpoint = Some(s3.endpoint());
        opts.path_style = true;
        opts.credentials = Some((
            common::services::S3_KEY.into(),
            common::services::S3_SECRET.into(),
        ));
        let store = S3Store::connect(opts).await;
        store.ensure_bucket().await.unwrap();
        store
    });
    let files = spoken_uploads(dir.path(), UPLOADS);
    runtime.block_on(async {
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy();
            store
                .put_file(&format!("incoming/{name}"), f)
                .await
                .unwrap();
        }
    });

    let profile = small_profile(dir.path());
    let metrics_port = free_port();
    let config = |name: &str, stages: &str, extra: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "data_dir = \"{data}\"\n[store]\nurl = \"s3://media\"\nendpoint = \"{endpoint}\"\npath_style = true\n[catalog]\nurl = \"{catalog_url}\"\n[worker]\nstages = {stages}\nlease_seconds = 4\npoll_millis = 200\nretry_backoff_seconds = 0.2\nmax_attempts = 3\nprofile = \"{profile}\"\n{extra}",
                data = dir.path().join(format!("data-{name}")).display(),
                endpoint = s3.endpoint(),
                profile = profile.display(),
            ),
        )
        .unwrap();
        path
    };
    let cpu = config("cpu", "[\"transcode\"]", "");
    let gpu = config(
        "gpu",
        "[\"captions\", \"tags\"]",
        &format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n"),
    );
    let catalog = Catalog::open(&catalog_url).unwrap();

    // The transcode worker starts alone: the captions queue fills, and the
    // metrics say so per stage.
    let mut t1 = spawn_worker(&cpu, "t1", &env, dir.path(), false);
    let killed_transcode = kill_mid_stage(&catalog, dir.path(), "t1", Phase::Transcode, &mut t1);
    let t2 = spawn_worker(&cpu, "t2", &env, dir.path(), false);
    wait_until(
        "a job handed on for captions",
        Duration::from_secs(120),
        dir.path(),
        || {
            catalog
                .jobs(None)
                .unwrap()
                .iter()
                .any(|j| j.phase == Phase::Captions && j.state == JobState::Queued)
        },
    );
    let mut c1 = spawn_worker(&gpu, "c1", &env, dir.path(), false);
    wait_until(
        "the captions worker's metrics",
        Duration::from_secs(60),
        dir.path(),
        || std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_ok(),
    );
    let metrics = http_get(metrics_port, "/metrics");
    assert!(
        metrics.contains("stemfeed_queue_depth{stage=\"captions\"}")
            && metrics.contains("stemfeed_queue_depth{stage=\"transcode\"}"),
        "{metrics}"
    );
    let killed_captions = kill_mid_stage(&catalog, dir.path(), "c1", Phase::Captions, &mut c1);
    let c2 = spawn_worker(&gpu, "c2", &env, dir.path(), false);

    wait_until(
        "every job in review",
        Duration::from_secs(600),
        dir.path(),
        || {
            let jobs = catalog.jobs(None).unwrap();
            jobs.len() == UPLOADS
                && jobs
                    .iter()
                    .all(|j| !j.state.is_active() && j.state != JobState::Queued)
        },
    );
    let jobs = catalog.jobs(None).unwrap();
    let transcoders = ["t1", "t2"];
    let captioners = ["c1", "c2"];
    for j in &jobs {
        assert_eq!(
            j.state,
            JobState::InReview,
            "job {j:?}\n{}",
            logs(dir.path())
        );
        assert_eq!(j.phase, Phase::Captions);
        let events = catalog.events(j.id).unwrap();
        let of = |kind: &str| events.iter().filter(|e| e.kind == kind).collect::<Vec<_>>();
        // Each part committed exactly once, by its kind of worker.
        let handed = of("handed-off");
        let completed = of("completed");
        assert_eq!(handed.len(), 1, "job {}: {events:?}", j.id);
        assert_eq!(completed.len(), 1, "job {}: {events:?}", j.id);
        assert!(
            transcoders.contains(&handed[0].worker.as_deref().unwrap()),
            "{events:?}"
        );
        assert!(
            captioners.contains(&completed[0].worker.as_deref().unwrap()),
            "{events:?}"
        );
        // Nobody else claimed a part it does not do.
        for claim in of("claimed") {
            let who = claim.worker.as_deref().unwrap();
            assert!(
                transcoders.contains(&who) || captioners.contains(&who),
                "{events:?}"
            );
        }
    }
    // The killed parts were taken over by the replacement workers.
    for (job, by) in [(killed_transcode, "t2"), (killed_captions, "c2")] {
        let events = catalog.events(job).unwrap();
        let committed = events
            .iter()
            .find(|e| {
                e.kind
                    == if by == "t2" {
                        "handed-off"
                    } else {
                        "completed"
                    }
            })
            .and_then(|e| e.worker.clone());
        assert_eq!(committed.as_deref(), Some(by), "job {job}: {events:?}");
    }

    // Complete outputs: the transcode worker's renditions and the captions
    // worker's tracks in one run, the hand-off gone, the words heard.
    runtime.block_on(async {
        for j in &jobs {
            let video = &j.video_id;
            let m: serde_json::Value = serde_json::from_slice(
                &store
                    .get_bytes(&format!("videos/{video}/manifest.json"))
                    .await
                    .unwrap(),
            )
            .unwrap();
            let base = format!("videos/{video}/{}", m["base"].as_str().unwrap());
            assert_eq!(j.handoff.as_deref(), Some(base.trim_end_matches('/')));
            let keys: BTreeSet<String> = store
                .list(&base)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.key)
                .collect();
            assert!(
                !keys.iter().any(|k| k.contains("/handoff/")),
                "{video}: hand-off left behind: {keys:?}"
            );
            let mut named = vec![
                "manifest.json".to_owned(),
                "tags.json".to_owned(),
                m["hls"]["master"].as_str().unwrap().to_owned(),
            ];
            for r in m["renditions"].as_array().unwrap() {
                named.push(r["path"].as_str().unwrap().to_owned());
                named.push(r["hls_playlist"].as_str().unwrap().to_owned());
                assert!(r["bytes"].as_u64().unwrap() > 10_000, "{r}");
            }
            let tracks = m["captions"]["tracks"].as_array().expect("captions made");
            assert!(!tracks.is_empty(), "{m}");
            for t in tracks {
                named.push(t["files"]["vtt"].as_str().unwrap().to_owned());
            }
            for rel in &named {
                assert!(
                    keys.contains(&format!("{base}{rel}")),
                    "{video}: {rel} missing"
                );
            }
            let master = String::from_utf8(
                store
                    .get_bytes(&format!("{base}{}", m["hls"]["master"].as_str().unwrap()))
                    .await
                    .unwrap(),
            )
            .unwrap();
            assert!(master.contains("TYPE=SUBTITLES"), "{master}");
            let vtt = String::from_utf8(
                store
                    .get_bytes(&format!(
                        "{base}{}",
                        tracks[0]["files"]["vtt"].as_str().unwrap()
                    ))
                    .await
                    .unwrap(),
            )
            .unwrap()
            .to_lowercase();
            let heard = ["water", "boils", "gravity", "apple", "ground"]
                .iter()
                .filter(|w| vtt.contains(*w))
                .count();
            assert!(
                heard >= 3,
                "{video}: captions miss the spoken words:\n{vtt}"
            );
            let mp4 = dir.path().join(format!("{video}.mp4"));
            store
                .get_file(
                    &format!("{base}{}", m["renditions"][0]["path"].as_str().unwrap()),
                    &mp4,
                )
                .await
                .unwrap();
            let d = common::ffprobe_duration(&mp4);
            assert!(d > 4.0, "{video}: rendition lasts {d} s");
        }
        // The uploads are untouched.
        assert_eq!(store.list("uploads/").await.unwrap().len(), UPLOADS);
    });

    for mut w in [t2, c2] {
        let _ = w.kill();
        let _ = w.wait();
    }
}
