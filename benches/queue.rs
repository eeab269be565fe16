//! Queue benchmarks (run with `cargo bench --bench queue`; results go to
//! benches/results/queue.md by hand):
//! 1. claim throughput on PostgreSQL with 1, 4 and 8 concurrent workers
//!    (each claim is followed by a complete, as a worker would);
//! 2. end-to-end throughput of `stemfeed worker` with 1 and then 2 processes
//!    on the same uploads (embedded mode: SQLite + local directory).

#[path = "../tests/common/services.rs"]
mod services;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stemfeed_queue::{Catalog, NewVideo};

const JOBS: usize = 4000;

fn claims(pg: &services::Postgres, workers: usize) -> f64 {
    let url = pg.database(&format!("claims{workers}"));
    let catalog = Catalog::open(&url).unwrap();
    for n in 0..JOBS {
        let sha = format!(
            "{:016x}",
            (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
        .repeat(4);
        catalog
            .submit(
                &NewVideo {
                    sha256: sha,
                    size_bytes: 1,
                    original_name: format!("{n}.mp4"),
                    ..NewVideo::default()
                },
                3,
            )
            .unwrap();
    }
    let catalogs: Vec<Arc<Catalog>> = (0..workers)
        .map(|_| Arc::new(Catalog::open(&url).unwrap()))
        .collect();
    let start = Instant::now();
    let handles: Vec<_> = catalogs
        .into_iter()
        .enumerate()
        .map(|(w, c)| {
            std::thread::spawn(move || {
                let mut n = 0usize;
                let who = format!("w{w}");
                while let Some(cl) = c
                    .claim(&who, Duration::from_secs(60), &stemfeed_queue::Phase::ALL)
                    .unwrap()
                {
                    assert!(
                        c.complete(cl.job.id, &cl.token, &who, "videos/x", &[])
                            .unwrap()
                    );
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, JOBS);
    JOBS as f64 / start.elapsed().as_secs_f64()
}

fn clip(dir: &Path, i: usize) -> std::path::PathBuf {
    let path = dir.join(format!("clip-{i:02}.mp4"));
    let status = Command::new("ffmpeg")
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
            "testsrc2=size=720x1280:rate=30:duration=6,drawtext=text={i}:fontsize=200:x=100:y=100"
        ))
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=6",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

fn end_to_end(clips: &[std::path::PathBuf], processes: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let incoming = data.join("objects/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    for c in clips {
        std::fs::copy(c, incoming.join(c.file_name().unwrap())).unwrap();
    }
    let config = dir.path().join("stemfeed.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[worker]\npoll_millis = 100\ncaptions = false\n",
            data.display()
        ),
    )
    .unwrap();
    let start = Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_stemfeed"))
                .arg("--config")
                .arg(&config)
                .args(["worker", "--drain", "--id", &format!("p{i}")])
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    clips.len() as f64 * 6.0 / start.elapsed().as_secs_f64()
}

fn main() {
    let pg = services::Postgres::start();
    println!("claim + complete throughput on PostgreSQL ({JOBS} jobs)");
    for workers in [1, 4, 8] {
        println!(
            "  {workers} worker(s): {:.0} claims/s",
            claims(&pg, workers)
        );
    }
    // `cargo bench --bench queue -- claims` stops here.
    if std::env::args().any(|a| a == "claims") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clips: Vec<_> = (0..8).map(|i| clip(dir.path(), i)).collect();
    println!(
        "end to end, 8 uploads of 6 s 720x1280 (short-form profile, captions off), seconds of video per second"
    );
    for processes in [1, 2] {
        println!(
            "  {processes} worker process(es): {:.2}x realtime",
            end_to_end(&clips, processes)
        );
    }
}
