//! Hostile inputs through one real `stemfeed worker --drain` in embedded
//! mode (SQLite catalog, local-directory store): valid seeds of every
//! container, zzuf mutants of them, truncations, junk and header liars
//! (`common::hostile`), each submitted with `stemfeed jobs submit`.
//!
//! What an operator must be able to count on, whatever is uploaded:
//! - the worker never dies and exits cleanly once the queue is drained;
//! - every job ends `in-review`, `failed` or `dead`, and a failure's message
//!   names the file and the stage;
//! - no attempt runs longer than [`STAGE_LIMIT`];
//! - the worker's memory stays under [`PEAK_RSS_MIB`] (the worker process
//!   and any children it starts, summed);
//! - no process the worker started outlives it;
//! - and, as a check that the inputs are what they claim: every valid seed
//!   with a video stream reaches `in-review`, and audio-only seeds are refused.
//!
//! About 220 inputs; about 4 minutes on 2 cores today, three quarters of
//! it stages that stall until the worker's 20 s no-progress limit (twice
//! per job, as the first failure is retried).
//!
//! The test prints a tally (container × outcome, failure reasons by stage)
//! and copies inputs that broke a rule to `target/test-artifacts/hostile/`
//! with how each was made.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::hostile::{self, Input, Kind};
use serde_json::Value;

/// The generator must produce at least this many distinct inputs.
const MIN_INPUTS: usize = 200;
/// No attempt of a job (claim to its end) may take longer than this. The
/// inputs are at most about 2 s of ≤ 320 px media (the liars up to 100 s of
/// 64×64), so a healthy stage finishes in seconds.
const STAGE_LIMIT: Duration = Duration::from_secs(120);
/// Peak resident memory of the worker plus any processes it starts, summed
/// (shared pages count twice, so this errs high). Measured at 470–515 MiB
/// with two transcode slots: the worker ~50 MiB, stage children ~100 MiB
/// each, and one probe of a VP9 frame claiming 16384×16384 ~350–375 MiB.
const PEAK_RSS_MIB: u64 = 600;
/// Past this the worker is killed and the test reports the stuck jobs.
const WORKER_DEADLINE: Duration = Duration::from_secs(420);
/// How often the worker's memory and children are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Steps a failure message may name after the file (pipeline stages and the
/// worker's own store steps).
const STAGES: &[&str] = &[
    "probe",
    "loudness",
    "transcode",
    "poster",
    "audio decode",
    "captions",
    "tagging",
    "fetching the upload",
    "uploading outputs",
    "writing the manifest",
    "completing the job",
];

fn stemfeed(config: &Path) -> Command {
    let mut cmd = common::stemfeed();
    cmd.arg("--config").arg(config);
    cmd
}

fn json_of(out: &std::process::Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        common::text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", common::text(&out.stdout)))
}

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    ppid: u32,
    /// Start time in clock ticks since boot: with the pid, names one process.
    start: u64,
    comm: String,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, tail) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = tail.split_whitespace().collect();
    Some(Proc {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
        comm,
    })
}

fn all_procs() -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(read_proc)
                .collect()
        })
        .unwrap_or_default()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// What sampling the worker saw.
#[derive(Debug, Default)]
struct Watch {
    samples: usize,
    peak_worker_kib: u64,
    peak_tree_kib: u64,
    /// Jobs running (by file name) when the tree's peak was sampled.
    running_at_peak: Vec<String>,
    /// Every descendant process seen: (pid, start) → description.
    descendants: HashMap<(u32, u64), String>,
    /// Each descendant's peak RSS and the job whose files it had open then.
    child_peaks: HashMap<(u32, u64), (u64, Option<String>)>,
    timed_out: bool,
}

/// The job whose work directory (`…/job-<id>-<attempt>/`) a process runs
/// in or has a file open in, by the job's input name.
fn job_of_process(pid: u32, names: &HashMap<i64, String>) -> Option<String> {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok());
    cwd.into_iter().chain(fds).find_map(|target| {
        let t = target.to_string_lossy().into_owned();
        let rest = &t[t.rfind("/job-")? + "/job-".len()..];
        let id: i64 = rest.split('-').next()?.parse().ok()?;
        names.get(&id).cloned()
    })
}

/// Waits for the worker, sampling its memory and children, and kills it
/// past [`WORKER_DEADLINE`]. `names` maps job ids to input names.
fn watch_worker(
    worker: &mut Child,
    catalog_url: &str,
    names: &HashMap<i64, String>,
) -> (std::process::ExitStatus, Watch) {
    let pid = worker.id();
    let catalog = stemfeed_queue::Catalog::open(catalog_url).ok();
    let mut w = Watch::default();
    let start = Instant::now();
    loop {
        if let Some(status) = worker.try_wait().unwrap() {
            return (status, w);
        }
        if start.elapsed() > WORKER_DEADLINE {
            w.timed_out = true;
            let _ = worker.kill();
            return (worker.wait().unwrap(), w);
        }
        let procs = all_procs();
        let mut children: HashMap<u32, Vec<&Proc>> = HashMap::new();
        for p in &procs {
            children.entry(p.ppid).or_default().push(p);
        }
        let worker_kib = rss_kib(pid);
        let mut tree_kib = worker_kib;
        let mut stack = vec![pid];
        while let Some(parent) = stack.pop() {
            for c in children.get(&parent).into_iter().flatten() {
                let kib = rss_kib(c.pid);
                tree_kib += kib;
                let peak = w.child_peaks.entry((c.pid, c.start)).or_insert((0, None));
                if kib > peak.0 {
                    // Look up the job only when the peak moves noticeably.
                    if kib > peak.0 + 8 * 1024 || peak.1.is_none() {
                        peak.1 = job_of_process(c.pid, names).or(peak.1.take());
                    }
                    peak.0 = kib;
                }
                w.descendants
                    .entry((c.pid, c.start))
                    .or_insert_with(|| format!("{} ({}) {}", c.pid, c.comm, cmdline(c.pid)));
                stack.push(c.pid);
            }
        }
        w.samples += 1;
        w.peak_worker_kib = w.peak_worker_kib.max(worker_kib);
        if tree_kib > w.peak_tree_kib {
            // Note what was running at a new high (cheap: WAL readers do not block).
            if (tree_kib > w.peak_tree_kib + 8 * 1024 || w.running_at_peak.is_empty())
                && let Some(jobs) = catalog.as_ref().and_then(|c| c.jobs(None).ok())
            {
                w.running_at_peak = jobs
                    .iter()
                    .filter(|j| j.state.is_active())
                    .map(|j| {
                        let name = names.get(&j.id).map_or("?", String::as_str);
                        format!("{name} ({})", j.state.as_str())
                    })
                    .collect();
            }
            w.peak_tree_kib = tree_kib;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// How one input ended.
#[derive(Debug, Clone)]
struct Outcome {
    /// in-review, failed, dead, refused (at submit), or a non-final state.
    state: String,
    attempts: u64,
    message: Option<String>,
    /// The stage a failure message names, if it names one.
    stage: Option<String>,
    /// The longest attempt, claim to end.
    longest: Duration,
    /// An attempt that never ended (its worker was killed or lost the lease).
    unended: bool,
}

fn stage_of(name: &str, message: &str) -> Option<String> {
    let rest = message.strip_prefix(&format!("{name}: "))?;
    STAGES
        .iter()
        .find(|s| {
            rest.strip_prefix(**s)
                .is_some_and(|r| r.starts_with(':') || r.starts_with(' '))
        })
        .map(|s| (*s).to_owned())
}

/// Attempt lengths from a job's events: each `claimed` to the event that ends it.
fn attempts_of(events: &[Value]) -> (Duration, bool) {
    let mut longest = 0i64;
    let mut open: Option<i64> = None;
    for e in events {
        let at = e["at_ms"].as_i64().unwrap_or(0);
        match e["kind"].as_str().unwrap_or("") {
            "claimed" => {
                if let Some(s) = open {
                    longest = longest.max(at - s);
                }
                open = Some(at);
            }
            "completed" | "retry" | "failed" | "dead" | "released" | "cancelled" => {
                if let Some(s) = open.take() {
                    longest = longest.max(at - s);
                }
            }
            _ => {}
        }
    }
    (Duration::from_millis(longest.max(0) as u64), open.is_some())
}

fn short(message: &str, name: &str, max: usize) -> String {
    let m = message
        .strip_prefix(&format!("{name}: "))
        .unwrap_or(message)
        .replace('\n', " ");
    if m.chars().count() > max {
        format!("{}…", m.chars().take(max).collect::<String>())
    } else {
        m
    }
}

fn tally(inputs: &[Input], outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let states = ["in-review", "failed", "dead", "refused", "other"];
    let bucket = |s: &str| {
        if states[..4].contains(&s) {
            s.to_owned()
        } else {
            "other".to_owned()
        }
    };
    let mut by: BTreeMap<(String, String), BTreeMap<String, usize>> = BTreeMap::new();
    for (i, o) in inputs.iter().zip(outcomes) {
        *by.entry(("container".into(), i.container.into()))
            .or_default()
            .entry(bucket(&o.state))
            .or_default() += 1;
        *by.entry(("kind".into(), i.kind.to_string()))
            .or_default()
            .entry(bucket(&o.state))
            .or_default() += 1;
    }
    for group in ["container", "kind"] {
        let _ = writeln!(
            out,
            "\n{group:<14}{}",
            states.map(|s| format!("{s:>10}")).concat()
        );
        for ((g, key), counts) in &by {
            if g != group {
                continue;
            }
            let cells: String = states
                .iter()
                .map(|s| format!("{:>10}", counts.get(*s).copied().unwrap_or(0)))
                .collect();
            let _ = writeln!(out, "{key:<14}{cells}");
        }
    }
    let total: usize = outcomes.len();
    let _ = writeln!(out, "{:<14}{total:>10} inputs", "total");

    // Failure reasons by stage, with a few distinct examples each.
    let mut reasons: BTreeMap<String, (usize, usize, Vec<String>)> = BTreeMap::new();
    for (i, o) in inputs.iter().zip(outcomes) {
        if !matches!(o.state.as_str(), "failed" | "dead" | "refused") {
            continue;
        }
        let stage = match (&o.stage, o.state.as_str()) {
            (Some(s), _) => s.clone(),
            (None, "refused") => "submit".to_owned(),
            _ => "(unnamed)".to_owned(),
        };
        let e = reasons.entry(stage).or_default();
        if o.state == "dead" {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
        let example = short(o.message.as_deref().unwrap_or(""), &i.name, 150);
        let key: String = example.chars().take(40).collect();
        if e.2.len() < 4 && !e.2.iter().any(|x| x.starts_with(&key)) {
            e.2.push(example);
        }
    }
    let _ = writeln!(out, "\nfailures by stage   failed   dead");
    for (stage, (failed, dead, examples)) in &reasons {
        let _ = writeln!(out, "{stage:<20}{failed:>6}{dead:>7}");
        for e in examples {
            let _ = writeln!(out, "      e.g. {e}");
        }
    }

    let _ = writeln!(out, "\nliars and junk:");
    for (i, o) in inputs.iter().zip(outcomes) {
        if matches!(i.kind, Kind::Liar | Kind::Junk) {
            let why = o
                .message
                .as_deref()
                .map(|m| format!(": {}", short(m, &i.name, 110)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<36} {:<9} {:>6.1} s{why}",
                i.name,
                o.state,
                o.longest.as_secs_f64()
            );
        }
    }
    let mut slow: Vec<(&Input, &Outcome)> = inputs.iter().zip(outcomes).collect();
    slow.sort_by_key(|(_, o)| std::cmp::Reverse(o.longest));
    let _ = writeln!(out, "\nlongest attempts:");
    for (i, o) in slow.iter().take(8) {
        let _ = writeln!(
            out,
            "  {:>6.1} s  {:<40} {}",
            o.longest.as_secs_f64(),
            i.name,
            o.state
        );
    }
    out
}

/// Where a run leaves what a developer needs after it: every input's
/// outcome (`outcomes.tsv`), the worker's log, and, when a rule broke, the
/// offending inputs with how each was made (`README.txt`).
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/hostile");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_outcomes(dir: &Path, inputs: &[Input], outcomes: &[Outcome]) {
    let mut tsv = String::from("input\tcontainer\tkind\tstate\tattempts\tlongest_s\tmessage\n");
    for (i, o) in inputs.iter().zip(outcomes) {
        let _ = writeln!(
            tsv,
            "{}\t{}\t{}\t{}\t{}\t{:.1}\t{}",
            i.name,
            i.container,
            i.kind,
            o.state,
            o.attempts,
            o.longest.as_secs_f64(),
            o.message
                .as_deref()
                .unwrap_or("")
                .replace(['\t', '\n'], " ")
        );
    }
    std::fs::write(dir.join("outcomes.tsv"), tsv).unwrap();
}

fn keep_offenders(dir: &Path, offenders: &[(&Input, String)]) {
    let mut readme = String::from(
        "Inputs that broke a rule in tests/hostile.rs (generated by tests/common/hostile.rs).\n\
         Reproduce one: stemfeed jobs submit FILE, then stemfeed worker --drain\n\
         (embedded mode, worker captions = false, transcode_slots = 2, max_attempts = 2).\n\n",
    );
    for (input, why) in offenders {
        let _ = std::fs::copy(&input.path, dir.join(&input.name));
        let _ = writeln!(
            readme,
            "{}\n  made by: {}\n  problem: {why}\n",
            input.name, input.recipe
        );
    }
    std::fs::write(dir.join("README.txt"), readme).unwrap();
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[test]
fn hostile_inputs_never_take_the_worker_down() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inputs = hostile::generate(&dir.path().join("inputs"));
    let generated = started.elapsed();
    assert!(
        inputs.len() >= MIN_INPUTS,
        "only {} inputs generated",
        inputs.len()
    );

    // Two attempts, so a transient failure is retried once; no backoff, so
    // `--drain` never exits while a retry is waiting to become runnable.
    let config = dir.path().join("stemfeed.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{data}\"\nmodels_dir = \"{models}\"\n\
             [worker]\ntranscode_slots = 2\nasr_slots = 1\ncaptions = false\nwatch = false\n\
             poll_millis = 100\nmax_attempts = 2\nretry_backoff_seconds = 0.0\n\
             lease_seconds = 30\nshutdown_grace_seconds = 5\n",
            data = data.display(),
            models = dir.path().join("models").display(),
        ),
    )
    .unwrap();

    // Submit every input as an operator would; a refusal is an outcome too.
    let mut job_of: Vec<Option<i64>> = Vec::new();
    let mut refused: HashMap<usize, String> = HashMap::new();
    let mut names: HashMap<i64, String> = HashMap::new();
    for (n, input) in inputs.iter().enumerate() {
        let out = stemfeed(&config)
            .args(["jobs", "submit"])
            .arg(&input.path)
            .output()
            .unwrap();
        if !out.status.success() {
            refused.insert(n, common::text(&out.stderr).trim().to_owned());
            job_of.push(None);
            continue;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["new"],
            Value::Bool(true),
            "{} was not a new upload: {v}",
            input.name
        );
        job_of.push(v["job"].as_i64());
        if let Some(job) = v["job"].as_i64() {
            names.insert(job, input.name.clone());
        }
    }
    let submitted = started.elapsed();

    // One worker drains the queue while its memory and children are watched.
    let log = dir.path().join("worker.log");
    let catalog_url = format!("sqlite:{}", data.join("catalog.db").display());
    let worker_started = Instant::now();
    let mut worker = stemfeed(&config)
        .args(["worker", "--id", "hostile", "--drain"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting stemfeed worker");
    let worker_pid = worker.id();
    let (status, watch) = watch_worker(&mut worker, &catalog_url, &names);
    let worker_time = worker_started.elapsed();

    // Processes the worker started that are still alive, and anything else
    // still working in this test's data directory.
    std::thread::sleep(Duration::from_millis(300));
    let data_str = data.display().to_string();
    let mut leftovers: Vec<String> = Vec::new();
    for p in all_procs() {
        let ours = watch.descendants.contains_key(&(p.pid, p.start));
        let in_data = p.pid != std::process::id() && cmdline(p.pid).contains(&data_str);
        if ours || in_data {
            leftovers.push(format!("{} ({}) {}", p.pid, p.comm, cmdline(p.pid)));
            // Started (indirectly) by this test: do not leave it running.
            let _ = Command::new("kill")
                .args(["-KILL", &p.pid.to_string()])
                .status();
        }
    }

    // The operator's view of every job.
    let list = json_of(
        &stemfeed(&config).args(["jobs", "list"]).output().unwrap(),
        "jobs list",
    );
    let jobs: HashMap<i64, Value> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_i64().unwrap(), j.clone()))
        .collect();
    let mut outcomes = Vec::new();
    for (n, input) in inputs.iter().enumerate() {
        let Some(id) = job_of[n] else {
            outcomes.push(Outcome {
                state: "refused".into(),
                attempts: 0,
                message: refused.get(&n).cloned(),
                stage: None,
                longest: Duration::ZERO,
                unended: false,
            });
            continue;
        };
        let shown = json_of(
            &stemfeed(&config)
                .args(["jobs", "show", &id.to_string()])
                .output()
                .unwrap(),
            "jobs show",
        );
        let job = jobs.get(&id).unwrap_or(&shown["job"]);
        let state = job["state"].as_str().unwrap_or("?").to_owned();
        let message = job["last_error"].as_str().map(str::to_owned);
        let name = shown["video"]["original_name"].as_str().unwrap_or("");
        assert_eq!(name, input.name, "job {id} is not {}", input.name);
        let (longest, unended) = attempts_of(shown["events"].as_array().unwrap());
        outcomes.push(Outcome {
            stage: message.as_deref().and_then(|m| stage_of(&input.name, m)),
            state,
            attempts: job["attempts"].as_u64().unwrap_or(0),
            message,
            longest,
            unended,
        });
    }

    // The rules.
    let mut offenders: Vec<(&Input, String)> = Vec::new();
    for (input, o) in inputs.iter().zip(&outcomes) {
        let why = match o.state.as_str() {
            "in-review" if !input.has_video && input.kind == Kind::Seed => {
                Some("an audio-only file was accepted as a video".to_owned())
            }
            "in-review" => None,
            "failed" | "dead" if o.stage.is_none() => Some(format!(
                "{} after {} attempt(s) with a message that does not name the file and stage: {}",
                o.state,
                o.attempts,
                o.message.as_deref().unwrap_or("(none)")
            )),
            "failed" | "dead" if input.kind == Kind::Seed && input.has_video => Some(format!(
                "a valid seed ended {}: {}",
                o.state,
                o.message.as_deref().unwrap_or("")
            )),
            "failed" | "dead" => None,
            "refused"
                if o.message
                    .as_deref()
                    .is_some_and(|m| m.contains(&input.name)) =>
            {
                None
            }
            "refused" => Some(format!(
                "submit refused it without naming the file: {}",
                o.message.as_deref().unwrap_or("")
            )),
            other => Some(format!(
                "ended in state {other} (attempts {}, last error {:?})",
                o.attempts, o.message
            )),
        };
        let slow = (o.longest > STAGE_LIMIT).then(|| {
            format!(
                "an attempt took {:.1} s (limit {} s)",
                o.longest.as_secs_f64(),
                STAGE_LIMIT.as_secs()
            )
        });
        let unended = o
            .unended
            .then(|| "an attempt never ended (no completed/failed/retry event)".to_owned());
        for why in [why, slow, unended].into_iter().flatten() {
            offenders.push((input, why));
        }
    }

    let kept = artifacts();
    write_outcomes(&kept, &inputs, &outcomes);
    let _ = std::fs::copy(&log, kept.join("worker.log"));
    let report = format!(
        "{}\njobs list counts: {}",
        tally(&inputs, &outcomes),
        list["counts"]
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "{report}\n\
         inputs: {} generated in {:.1} s; submitted by {:.1} s; worker ran {:.1} s; total {:.1} s\n\
         worker pid {worker_pid}: exit {status}; peak RSS {:.0} MiB (worker), {:.0} MiB (worker + children, bound {PEAK_RSS_MIB} MiB); \
         {} samples; {} child processes seen\n\
         running at the peak: {:?}\n\
         largest child processes: {}\n\
         every outcome and the worker log: {}",
        inputs.len(),
        generated.as_secs_f64(),
        submitted.as_secs_f64(),
        worker_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        mib(watch.peak_worker_kib),
        mib(watch.peak_tree_kib),
        watch.samples,
        watch.descendants.len(),
        watch.running_at_peak,
        {
            let mut peaks: Vec<_> = watch.child_peaks.values().collect();
            peaks.sort_by_key(|(kib, _)| std::cmp::Reverse(*kib));
            peaks
                .iter()
                .take(5)
                .map(|(kib, job)| {
                    format!("{:.0} MiB ({})", mib(*kib), job.as_deref().unwrap_or("?"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
        kept.display(),
    );

    let mut problems: Vec<String> = Vec::new();
    if watch.timed_out {
        problems.push(format!(
            "the worker had not drained the queue after {} s and was killed",
            WORKER_DEADLINE.as_secs()
        ));
    } else if !status.success() {
        problems.push(format!("the worker died: {status}"));
    }
    if watch.peak_tree_kib > PEAK_RSS_MIB * 1024 {
        problems.push(format!(
            "peak RSS {:.0} MiB is over the {PEAK_RSS_MIB} MiB bound (running then: {:?})",
            mib(watch.peak_tree_kib),
            watch.running_at_peak
        ));
    }
    if !leftovers.is_empty() {
        problems.push(format!("processes outlived the worker: {leftovers:#?}"));
    }
    for (input, why) in &offenders {
        problems.push(format!("{}: {why}", input.name));
    }
    if !problems.is_empty() {
        keep_offenders(&kept, &offenders);
        panic!(
            "{} problem(s):\n{}\n\noffending inputs copied to {}\n--- worker log (tail)\n{}",
            problems.len(),
            problems.join("\n"),
            kept.display(),
            log_tail(&log, 15)
        );
    }
}
