//! The stage child (`stemfeed stage`): locks itself down before it reads a
//! byte of the request (descriptors closed, resource limits, no network
//! where the kernel allows), runs one [`StageRequest`] and writes
//! [`ChildMessage`] lines on stdout.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::resource::{Resource, setrlimit};

use crate::child_env::{FAULT, Fault as InjectedFault};
use std::path::{Path, PathBuf};

use crate::contract::{
    ChildMessage, FULLY_CONFINED, JobSpec, SandboxReport, StageRequest, StageSettings,
};
use crate::error::{Fault, Stage, StageError};
use crate::stages;

/// A request is a job description: small.
pub const MAX_REQUEST: u64 = 16 << 20;

/// Limits the parent asked for (`Limits::args`).
#[derive(Debug, Clone, Default)]
pub struct ChildLimits {
    pub memory_mib: u64,
    pub file_mib: u64,
    pub cpu_seconds: u64,
    pub open_files: u64,
}

/// What the lock-down managed; logged once.
#[derive(Debug, Default)]
pub struct Hardening {
    pub closed_descriptors: usize,
    pub network: &'static str,
}

/// Closes every descriptor but 0, 1 and 2 (the pipes): whatever the
/// parent's libraries left open without close-on-exec stays out of reach.
fn close_inherited() -> usize {
    let keep: [RawFd; 3] = [
        std::io::stdin().as_raw_fd(),
        std::io::stdout().as_raw_fd(),
        std::io::stderr().as_raw_fd(),
    ];
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let fds: Vec<RawFd> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| !keep.contains(fd))
        .collect();
    // One of them was the directory listing itself, closed by now.
    fds.into_iter()
        .filter(|&fd| nix::unistd::close(fd).is_ok())
        .count()
}

fn limit(resource: Resource, value: u64) -> Result<(), String> {
    setrlimit(resource, value, value).map_err(|e| format!("setrlimit {resource:?}: {e}"))
}

/// Applies the limits and drops the network. Called first thing, while the
/// process has one thread.
pub fn harden(limits: &ChildLimits) -> Result<Hardening, String> {
    let closed_descriptors = close_inherited();
    if limits.memory_mib > 0 {
        limit(Resource::RLIMIT_AS, limits.memory_mib << 20)?;
    }
    limit(Resource::RLIMIT_FSIZE, limits.file_mib.max(1) << 20)?;
    if limits.cpu_seconds > 0 {
        limit(Resource::RLIMIT_CPU, limits.cpu_seconds)?;
    }
    limit(Resource::RLIMIT_NOFILE, limits.open_files.max(64))?;
    limit(Resource::RLIMIT_CORE, 0)?;
    // A new network namespace has only a down loopback: nothing to reach.
    // It comes with a new user namespace where the kernel allows one: then
    // even a root worker's stage holds no capability over the machine (it
    // cannot raise the limits above again, make device nodes or load
    // modules); this user is mapped to itself so its files keep their owner.
    use nix::sched::{CloneFlags, unshare};
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let network = if unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).is_ok() {
        std::fs::write("/proc/self/setgroups", "deny")
            .and_then(|()| std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")))
            .and_then(|()| std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")))
            .map_err(|e| format!("mapping the user namespace: {e}"))?;
        "none (user and network namespace)"
    } else if unshare(CloneFlags::CLONE_NEWNET).is_ok() {
        "none (network namespace)"
    } else {
        "host network (this kernel refuses new namespaces here)"
    };
    Ok(Hardening {
        closed_descriptors,
        network,
    })
}

fn send(message: &ChildMessage) {
    let mut line = serde_json::to_vec(message).expect("child messages are plain data");
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    // A parent that went away will kill us; nothing useful to do here.
    let _ = out.write_all(&line).and_then(|()| out.flush());
}

/// The test-only fault switch: `STEMFEED_TEST_FAULT=<stage>:<abort|hang|segv>`
/// makes this child fail that way when it enters the stage, so the crash
/// and timeout paths of the worker can be proven.
#[cfg(not(debug_assertions))]
fn inject(_stage: Stage) {}

/// Compiled into debug builds (the test suite's) only.
#[cfg(debug_assertions)]
fn inject(stage: Stage) {
    let Some(fault) = std::env::var(FAULT)
        .ok()
        .and_then(|v| InjectedFault::parse(&v))
    else {
        return;
    };
    if fault.stage != stage {
        return;
    }
    match fault.action.as_str() {
        "abort" => std::process::abort(),
        "segv" => {
            // The runtime's SIGSEGV handler (stack-overflow detection)
            // restores the default action for a fault it does not own and
            // returns; the second signal then kills the process.
            for _ in 0..2 {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSEGV);
            }
        }
        "hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        // Tries what a compromised decoder would: read the worker's catalog
        // (found by walking up from the work directory) and signal the
        // worker. Reports each outcome on stderr and exits.
        "escape" => {
            let mut dir = std::env::current_dir().unwrap_or_default();
            for _ in 0..6 {
                let candidate = dir.join("catalog.db");
                if candidate.exists() {
                    match std::fs::read(&candidate) {
                        Ok(b) => {
                            eprintln!("escape: read {} bytes of {}", b.len(), candidate.display())
                        }
                        Err(e) => eprintln!("escape: {}: {e}", candidate.display()),
                    }
                }
                if !dir.pop() {
                    break;
                }
            }
            match std::fs::read("/etc/hostname") {
                Ok(_) => eprintln!("escape: read /etc/hostname"),
                Err(e) => eprintln!("escape: /etc/hostname: {e}"),
            }
            let parent = nix::unistd::getppid();
            match nix::sys::signal::kill(parent, None) {
                Ok(()) => eprintln!("escape: could signal the worker"),
                Err(e) => eprintln!("escape: signalling the worker: {e}"),
            }
            std::process::exit(3);
        }
        _ => {}
    }
}

/// Directories a stage only reads besides its own inputs: the system's
/// libraries and GStreamer plugins, CPU facts, and the few files under
/// `/etc` the dynamic loader and fontconfig read. Not `/etc` as a whole: a
/// configuration with credentials may live there.
const READ_ONLY: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/fonts",
    "/proc",
    "/sys",
    "/dev/urandom",
    "/dev/random",
];

/// GStreamer's registry cache: read, and rewritten when plugins change.
fn gst_registry_dir() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("GST_REGISTRY") {
        return PathBuf::from(file).parent().map(Path::to_path_buf);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("gstreamer-1.0"))
}

/// Landlock: from here on the process can read only the system's
/// libraries, its input, the models and the taxonomy, and write only its
/// job's directories (and GStreamer's registry cache); it cannot signal
/// processes outside its sandbox (the worker) or ptrace them. Best effort:
/// on a kernel without Landlock it says so and goes on. The captions stage
/// works from the ASR audio alone and does not get to read the upload
/// (`reads_input` false).
fn confine(
    job: &JobSpec,
    settings: &StageSettings,
    gpu: bool,
    reads_input: bool,
) -> Result<&'static str, String> {
    for dir in [&job.out, &job.scratch] {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let mut read: Vec<PathBuf> = Vec::new();
    if reads_input {
        read.push(job.input.clone());
    }
    read.push(settings.models_dir.clone());
    read.extend(settings.tagging.taxonomy.clone());
    let mut write: Vec<PathBuf> = vec![job.out.clone(), job.scratch.clone()];
    // GPUs are device files, for the recogniser only.
    if gpu {
        if let Ok(entries) = std::fs::read_dir("/dev") {
            write.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("nvidia"))
            }));
        }
        write.push("/dev/dri".into());
    }
    confine_to(read, write)
}

/// Landlock for a media process: it can read only the system's libraries
/// and fonts and `read`, and write only files and directories under
/// `write` (and GStreamer's registry cache), never signal or ptrace a
/// process outside its sandbox. Best effort, as [`confine`] says.
pub fn confine_to(mut read: Vec<PathBuf>, mut write: Vec<PathBuf>) -> Result<&'static str, String> {
    use landlock::{
        ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, Scope, path_beneath_rules,
    };
    let registry = gst_registry_dir();
    if let Some(dir) = &registry {
        let _ = std::fs::create_dir_all(dir);
    }
    let abi = ABI::V6;
    read.extend(READ_ONLY.iter().map(PathBuf::from));
    write.push("/dev/null".into());
    write.extend(registry);
    // Writing means files and directories: no links (a symbolic or hard link
    // in the outputs would make the worker upload what it points at), no
    // device nodes, FIFOs or sockets, nothing executed from there.
    let write_access = AccessFs::from_all(abi)
        & !(AccessFs::MakeSym
            | AccessFs::MakeFifo
            | AccessFs::MakeBlock
            | AccessFs::MakeChar
            | AccessFs::MakeSock
            | AccessFs::Execute
            | AccessFs::Refer);
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.scope(Scope::Signal | Scope::AbstractUnixSocket))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&read, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&write, write_access)))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => FULLY_CONFINED,
        RulesetStatus::PartiallyEnforced => {
            "partly confined (this kernel's landlock is older than ABI 6: signals to the worker are not blocked)"
        }
        _ => "not confined (this kernel has no landlock)",
    })
}

/// Locks down as a stage would, with a throwaway job, and reports.
pub fn check(hardening: &Hardening) -> SandboxReport {
    let dir = std::env::temp_dir().join(format!("stemfeed-check-{}", std::process::id()));
    let job = JobSpec {
        input: PathBuf::from("/dev/null"),
        display_name: "check".into(),
        out: dir.join("out"),
        scratch: dir.join("scratch"),
        profile: stemfeed_core::Profile::short_form(),
        language: None,
        title: None,
        description: None,
        grade: None,
        captions: false,
        captions_elsewhere: false,
    };
    let settings = StageSettings {
        models_dir: dir.clone(),
        asr: Default::default(),
        tagging: Default::default(),
        curator_accuracy: Vec::new(),
    };
    let filesystem = match confine(&job, &settings, false, true) {
        Ok(how) => how.to_owned(),
        Err(e) => format!("not confined ({e})"),
    };
    let can_signal_parent = nix::sys::signal::kill(nix::unistd::getppid(), None).is_ok();
    let _ = std::fs::remove_dir_all(&dir);
    SandboxReport {
        network: hardening.network.to_owned(),
        filesystem,
        can_signal_parent,
    }
}

/// Runs one request from stdin; the answer (or the failure) goes to stdout.
pub fn serve(hardening: &Hardening) {
    tracing::debug!(
        closed = hardening.closed_descriptors,
        network = hardening.network,
        "stage process isolated"
    );
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_REQUEST).read_to_end(&mut body) {
        eprintln!("stage: reading the request: {e}");
        return;
    }
    let request: StageRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stage: the request is not a stage request: {e}");
            return;
        }
    };
    let (job, settings) = (request.job(), request.settings());
    let captions = matches!(request, StageRequest::Captions { .. });
    match confine(job, settings, captions && settings.asr.gpu, !captions) {
        Ok(how) if how == FULLY_CONFINED => {
            tracing::debug!(filesystem = how, "stage process confined")
        }
        Ok(how) => tracing::warn!(filesystem = how, "stage process only partly confined"),
        Err(e) => {
            send(&ChildMessage::Failed(StageError::new(
                &job.display_name,
                request.first_stage(),
                Fault::Infrastructure,
                format!("cannot confine the stage process: {e}"),
            )));
            return;
        }
    }
    let mut last: Option<(Stage, i64)> = None;
    let mut progress = |stage: Stage, fraction: f64| {
        let pct = (fraction * 100.0) as i64;
        if last != Some((stage, pct)) {
            let entering = last.map(|(s, _)| s) != Some(stage);
            last = Some((stage, pct));
            send(&ChildMessage::Progress { stage, fraction });
            if entering {
                inject(stage);
            }
        }
    };
    let message = match request {
        StageRequest::Prepare { job, settings } => {
            let mut audio_ready = |audio| send(&ChildMessage::AudioReady(audio));
            match stages::prepare(&job, &settings, &mut progress, &mut audio_ready) {
                Ok(p) => ChildMessage::Prepared(Box::new(p)),
                Err(e) => ChildMessage::Failed(e),
            }
        }
        StageRequest::Captions {
            job,
            settings,
            audio,
        } => match crate::tag::tagger(&settings.tagging) {
            Ok(tagger) => match stages::captions(&job, &settings, &tagger, audio, &mut progress) {
                Ok(c) => ChildMessage::Captioned(Box::new(c)),
                Err(e) => ChildMessage::Failed(e),
            },
            Err(e) => ChildMessage::Failed(StageError::new(
                &job.display_name,
                Stage::Tagging,
                Fault::Transient,
                format!("loading the taxonomy: {e}"),
            )),
        },
    };
    send(&message);
}
