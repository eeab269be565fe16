//! Runs a stage in a child process (`stemfeed stage`), the only place
//! untrusted bytes are decoded: an environment without credentials, no
//! descriptors but its pipes, resource limits, its own process group, a
//! wall-clock limit, and a kill of the whole group on timeout, cancellation
//! or shutdown. The child answers with [`ChildMessage`] lines on stdout; a
//! child that dies instead is a [`Fault::Crash`] naming the stage and the
//! signal.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, LinesCodec};

use crate::contract::{AudioReady, Captioned, ChildMessage, Prepared, StageRequest};
use crate::error::{Fault, Stage, StageError};

/// Environment variables a stage child keeps; everything else (store and
/// catalog URLs, AWS and database credentials, tokens) is dropped.
const KEPT_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "XDG_CACHE_HOME",
    "STEMFEED_LOG",
    "GST_PLUGIN_PATH",
    "GST_PLUGIN_SYSTEM_PATH",
    "GST_PLUGIN_SCANNER",
    "GST_REGISTRY",
    "GST_DEBUG",
    "CUDA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
];

/// The kept part of this process's environment ([`KEPT_ENV`]), for any
/// child that works on media and must not hold credentials.
pub fn kept_env() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os().filter(|(k, _)| KEPT_ENV.iter().any(|kept| k == kept))
}

/// The test-only fault switch travels to the child in debug builds only.
const TEST_ENV: &[&str] = if cfg!(debug_assertions) {
    &[crate::child_env::FAULT]
} else {
    &[]
};

/// A stage's answers are small (a manifest); a longer line is refused.
const MAX_LINE: usize = 4 << 20;
/// Log lines from the child are cut at this length.
const MAX_LOG_LINE: usize = 4096;

/// Bounds on one stage process.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Address space, MiB (0 = none).
    pub memory_mib: u64,
    /// Largest file written, MiB.
    pub file_mib: u64,
    /// CPU seconds over all threads.
    pub cpu_seconds: u64,
    /// Open descriptors.
    pub open_files: u64,
    /// Wall clock from start to answer.
    pub wall: Duration,
}

impl Limits {
    pub fn args(&self) -> Vec<String> {
        vec![
            format!("--memory-mib={}", self.memory_mib),
            format!("--file-mib={}", self.file_mib),
            format!("--cpu-seconds={}", self.cpu_seconds),
            format!("--open-files={}", self.open_files),
        ]
    }
}

/// How to start a stage child.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// The `stemfeed` binary (its hidden `stage` command).
    pub exe: PathBuf,
}

impl Isolation {
    /// `stemfeed stage` with only the kept environment: every way of
    /// starting a stage process goes through here.
    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("stage").env_clear().envs(
            std::env::vars_os()
                .filter(|(k, _)| KEPT_ENV.iter().chain(TEST_ENV).any(|kept| k == kept)),
        );
        cmd
    }
}

/// What a finished stage returned.
#[derive(Debug)]
pub enum Answer {
    Prepared(Box<Prepared>),
    Captioned(Box<Captioned>),
}

/// Kills the child's process group when dropped (the child and anything it
/// started, such as GStreamer's plugin scanner).
#[derive(Debug)]
struct Group(Option<Pid>);

impl Group {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = killpg(pid, Signal::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

fn who(stage: Stage) -> &'static str {
    match stage {
        Stage::Probe | Stage::Transcode => "decoder",
        Stage::Captions => "speech recogniser",
        Stage::Tagging => "tagger",
    }
}

/// Why a process ended by `signal` under `limits`, in words.
fn signal_reason(stage: Stage, signal: i32, limits: &Limits, stderr_tail: &str) -> String {
    let name = Signal::try_from(signal)
        .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned());
    match Signal::try_from(signal) {
        Ok(Signal::SIGXCPU) => format!(
            "{} used up its {} s of CPU time ({name})",
            who(stage),
            limits.cpu_seconds
        ),
        Ok(Signal::SIGXFSZ) => format!(
            "{} tried to write a file over {} MiB ({name})",
            who(stage),
            limits.file_mib
        ),
        Ok(Signal::SIGABRT) if stderr_tail.contains("memory allocation of") => format!(
            "{} ran out of memory (limit {} MiB) ({name})",
            who(stage),
            limits.memory_mib
        ),
        _ => format!("{} crashed ({name})", who(stage)),
    }
}

/// Starts `stemfeed stage --check` the way stages are started and returns
/// what its lock-down achieved on this machine.
pub async fn check_sandbox(
    isolation: &Isolation,
) -> Result<crate::contract::SandboxReport, String> {
    let out = isolation
        .command()
        .arg("--check")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("starting {} stage --check: {e}", isolation.exe.display()))?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{} stage --check answered {:?} ({e}); stderr: {}",
            isolation.exe.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Lines of `r`, each cut at `cap` bytes (the rest of a longer line is
/// read and dropped), so a flood of log never stops the draining that
/// keeps the child from blocking on a full pipe.
fn capped_lines<R: tokio::io::AsyncRead + Unpin>(
    r: R,
    cap: usize,
) -> impl futures_util::Stream<Item = String> {
    use tokio::io::AsyncBufReadExt;
    futures_util::stream::unfold(tokio::io::BufReader::new(r), move |mut r| async move {
        let mut line = Vec::new();
        loop {
            let Ok(buf) = r.fill_buf().await else {
                return None;
            };
            if buf.is_empty() {
                return (!line.is_empty())
                    .then(|| (String::from_utf8_lossy(&line).into_owned(), r));
            }
            let end = buf.iter().position(|&b| b == b'\n');
            let chunk = &buf[..end.unwrap_or(buf.len())];
            let room = cap.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            let used = end.map_or(buf.len(), |i| i + 1);
            r.consume(used);
            if end.is_some() {
                return Some((String::from_utf8_lossy(&line).into_owned(), r));
            }
        }
    })
}

/// Runs `request` in a child and returns its answer. `progress` sees the
/// stage and fraction as the child reports them, `audio_ready` the first
/// half's word that the ASR audio is written. When `stop` resolves (with
/// the reason: cancelled, lease lost, shutting down) the child is killed and
/// the reason comes back as a transient error.
pub async fn run_stage(
    isolation: &Isolation,
    request: &StageRequest,
    limits: &Limits,
    progress: &mut (dyn FnMut(Stage, f64) + Send),
    audio_ready: &mut (dyn FnMut(AudioReady) + Send),
    stop: impl Future<Output = String>,
) -> Result<Answer, StageError> {
    let file = request.job().display_name.clone();
    // The stage the child last reported, and the end of its log: both are
    // named when it dies.
    let current = std::sync::Mutex::new(request.first_stage());
    let stage = || *current.lock().unwrap_or_else(|e| e.into_inner());
    let tail = std::sync::Mutex::new(String::new());
    let error =
        |stage: Stage, fault: Fault, message: String| StageError::new(&file, stage, fault, message);

    let mut cmd = isolation.command();
    cmd.args(limits.args())
        // Temporary files stay in the job's scratch space, the one place
        // the child may write besides its outputs.
        .env("TMPDIR", &request.job().scratch)
        .current_dir(&request.job().scratch)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        error(
            stage(),
            Fault::Infrastructure,
            format!(
                "starting the stage process {}: {e}",
                isolation.exe.display()
            ),
        )
    })?;
    let mut group = Group(child.id().map(|id| Pid::from_raw(id as i32)));

    let body = serde_json::to_vec(request).expect("stage requests are plain data");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = FramedRead::new(
        child.stdout.take().expect("piped stdout"),
        LinesCodec::new_with_max_length(MAX_LINE),
    );
    let mut stderr = Box::pin(capped_lines(
        child.stderr.take().expect("piped stderr"),
        MAX_LOG_LINE,
    ));

    let conversation = async {
        // The request is written while the child reads it; a child that
        // dies first closes the pipe, which the exit status then explains.
        let write = async {
            let _ = stdin.write_all(&body).await;
            let _ = stdin.shutdown().await;
            drop(stdin);
        };
        let read = async {
            let mut answer = None;
            let mut stdout_open = true;
            let mut stderr_open = true;
            while stdout_open || stderr_open {
                tokio::select! {
                    line = stdout.next(), if stdout_open => match line {
                        Some(Ok(line)) => match serde_json::from_str::<ChildMessage>(&line) {
                            Ok(ChildMessage::Progress { stage: s, fraction }) => {
                                *current.lock().unwrap_or_else(|e| e.into_inner()) = s;
                                progress(s, fraction);
                            }
                            Ok(ChildMessage::Prepared(p)) => answer = Some(Ok(Answer::Prepared(p))),
                            Ok(ChildMessage::AudioReady(a)) => audio_ready(a),
                            Ok(ChildMessage::Captioned(c)) => answer = Some(Ok(Answer::Captioned(c))),
                            Ok(ChildMessage::Failed(e)) => answer = Some(Err(e)),
                            Err(e) => tracing::warn!(stage = %stage(), "stage process wrote an unreadable line: {e}"),
                        },
                        Some(Err(e)) => {
                            tracing::warn!(stage = %stage(), "stage process output refused: {e}");
                            stdout_open = false;
                        }
                        None => stdout_open = false,
                    },
                    line = stderr.next(), if stderr_open => match line {
                        Some(line) => {
                            tracing::info!(target: "stemfeed::stage", stage = %stage(), "{line}");
                            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                            tail.push_str(&line);
                            tail.push('\n');
                            if tail.len() > 8192 {
                                let cut = tail.len() - 4096;
                                let cut = (cut..tail.len()).find(|&i| tail.is_char_boundary(i)).unwrap_or(0);
                                tail.drain(..cut);
                            }
                        }
                        None => stderr_open = false,
                    },
                }
            }
            answer
        };
        let ((), answer) = tokio::join!(write, read);
        let status = child.wait().await;
        (answer, status)
    };

    let ended = tokio::select! {
        done = tokio::time::timeout(limits.wall, conversation) => Ok(done),
        why = stop => Err(why),
    };
    let stage = stage();
    let tail = tail.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !matches!(ended, Ok(Ok(_))) {
        // Killed: reap it here rather than leave a zombie to the runtime.
        group.kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
    match ended {
        Ok(done) => match done {
            Ok((answer, status)) => {
                // Anything the child left behind in its group goes too.
                group.kill();
                match (answer, status) {
                    (Some(answer), _) => answer,
                    (None, Ok(status)) => Err(match status.signal() {
                        Some(signal) => error(
                            stage,
                            Fault::Crash,
                            signal_reason(stage, signal, limits, &tail),
                        ),
                        None => error(
                            stage,
                            Fault::Crash,
                            format!(
                                "{} exited with status {} without a result",
                                who(stage),
                                status.code().unwrap_or(-1)
                            ),
                        ),
                    }),
                    (None, Err(e)) => Err(error(
                        stage,
                        Fault::Infrastructure,
                        format!("waiting for the stage process: {e}"),
                    )),
                }
            }
            Err(_) => {
                group.kill();
                Err(error(
                    stage,
                    Fault::Crash,
                    format!(
                        "{} gave no result within {} s; the stage process was killed",
                        who(stage),
                        limits.wall.as_secs()
                    ),
                ))
            }
        },
        Err(why) => {
            group.kill();
            Err(error(stage, Fault::Transient, why))
        }
    }
}
