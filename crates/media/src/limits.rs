//! Bounds on every decode: how much media a file may yield (its declared
//! duration plus a margin), how long a run may take, and how long it may sit
//! without progress. `Monitor` (crate-internal) is the shared state the
//! streaming threads feed (buffer timestamps seen by pad probes and
//! appsinks) and the bus handler reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;

use crate::error::MediaError;

/// The least slack a decode gets past the declared duration, seconds.
pub const MIN_MARGIN_S: f64 = 2.0;
/// The slack as a fraction of the declared duration, when that is larger.
pub const MARGIN_FRACTION: f64 = 0.1;
/// How long a run may go without decoding further before it is abandoned.
pub const DEFAULT_STALL: Duration = Duration::from_secs(20);

/// How much decoded media a file may yield. A file whose streams run past
/// `max_s` is refused as lying about its length, instead of being decoded
/// (and held) for as long as its bytes last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLimit {
    /// The duration the container declares (the probe's), seconds.
    pub declared_s: f64,
    /// Decoded media time past which the decode stops and fails, seconds.
    pub max_s: f64,
}

impl DecodeLimit {
    /// The declared duration plus `max(2 s, 10 %)`.
    pub fn for_declared(declared_s: f64) -> Self {
        let declared_s = declared_s.max(0.0);
        Self {
            declared_s,
            max_s: declared_s + margin_s(declared_s),
        }
    }

    /// The most samples `max_s` of audio holds at `rate` Hz (per channel).
    pub fn samples_at(&self, rate: u32) -> usize {
        (self.max_s * f64::from(rate)).ceil() as usize
    }
}

fn margin_s(seconds: f64) -> f64 {
    (seconds * MARGIN_FRACTION).max(MIN_MARGIN_S)
}

/// The hard cap, in 16 kHz mono samples, on the audio kept for speech
/// recognition when a profile accepts inputs up to `max_duration_s`
/// (`limits.max_duration_s`), with the same margin as [`DecodeLimit`].
pub fn asr_sample_cap(max_duration_s: f64) -> usize {
    DecodeLimit::for_declared(max_duration_s).samples_at(crate::audio::ASR_RATE as u32)
}

/// How long one run may take in all, and without progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdog {
    /// The whole run's deadline.
    pub timeout: Duration,
    /// A run whose decoded position does not advance for this long (while
    /// playing, preroll included) fails as stalled.
    pub stall: Duration,
}

impl Watchdog {
    /// `timeout` overall, with the default stall limit ([`DEFAULT_STALL`]).
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            stall: DEFAULT_STALL,
        }
    }

    pub fn with_stall(self, stall: Duration) -> Self {
        Self { stall, ..self }
    }
}

/// What the streaming threads report and the bus handler watches: the
/// furthest decoded (and encoded) media time, and the first failure a
/// streaming thread found.
#[derive(Debug)]
pub(crate) struct Monitor {
    path: PathBuf,
    stage: &'static str,
    limit: DecodeLimit,
    /// Furthest end (running time, ns) of any decoded buffer; 0 before the first.
    decoded_ns: AtomicU64,
    /// Furthest end of any encoded buffer (encoders' output), ns.
    encoded_ns: AtomicU64,
    /// Buffers that carried no timestamp: still progress.
    untimed: AtomicU64,
    /// Set with the first failure and never cleared.
    stopped: AtomicBool,
    failure: Mutex<Option<MediaError>>,
}

impl Monitor {
    pub(crate) fn new(path: &Path, stage: &'static str, limit: DecodeLimit) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_path_buf(),
            stage,
            limit,
            decoded_ns: AtomicU64::new(0),
            encoded_ns: AtomicU64::new(0),
            untimed: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            failure: Mutex::new(None),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn stage(&self) -> &'static str {
        self.stage
    }

    /// Records decoded media reaching `end_ns`. Past the limit this records
    /// the refusal and returns false: the caller must not pass the data on.
    pub(crate) fn decoded(&self, end_ns: u64) -> bool {
        self.decoded_ns.fetch_max(end_ns, Ordering::Relaxed);
        let decoded_s = end_ns as f64 / 1e9;
        if decoded_s > self.limit.max_s {
            self.fail(MediaError::Overrun {
                path: self.path.clone(),
                stage: self.stage,
                declared_s: self.limit.declared_s,
                decoded_s,
            });
            return false;
        }
        !self.failed()
    }

    pub(crate) fn encoded(&self, end_ns: u64) {
        self.encoded_ns.fetch_max(end_ns, Ordering::Relaxed);
    }

    pub(crate) fn untimed(&self) {
        self.untimed.fetch_add(1, Ordering::Relaxed);
    }

    /// The furthest decoded media time, seconds.
    pub(crate) fn decoded_s(&self) -> f64 {
        self.decoded_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// Changes whenever anything advanced.
    pub(crate) fn progress_mark(&self) -> (u64, u64, u64) {
        (
            self.decoded_ns.load(Ordering::Relaxed),
            self.encoded_ns.load(Ordering::Relaxed),
            self.untimed.load(Ordering::Relaxed),
        )
    }

    /// Records why the run must stop; the first reason wins.
    pub(crate) fn fail(&self, error: MediaError) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if !self.stopped.load(Ordering::SeqCst) {
            *slot = Some(error);
            self.stopped.store(true, Ordering::SeqCst);
        }
    }

    pub(crate) fn failed(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    pub(crate) fn take_failure(&self) -> Option<MediaError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Watches every buffer leaving `pad` (a decoder's output): its end in
    /// running time is decoded media time. Past the limit, or once the run
    /// has failed, buffers are dropped so nothing downstream grows while the
    /// bus handler tears the pipeline down.
    pub(crate) fn watch_decoded(self: &Arc<Self>, pad: &gst::Pad) {
        let monitor = Arc::clone(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let keep = match buffer_end(pad, buffer) {
                Some(end) => monitor.decoded(end),
                None => {
                    monitor.untimed();
                    !monitor.failed()
                }
            };
            if keep {
                gst::PadProbeReturn::Ok
            } else {
                wake_bus(pad);
                gst::PadProbeReturn::Drop
            }
        });
    }

    /// Fails the run at once, as bad input, when `pad` (a decoder's output
    /// the run needs) ends without a single buffer: a file whose index
    /// promises a `what` stream (e.g. "audio") whose data is missing. The
    /// stream's EOS would otherwise be the only sign, and the elements
    /// downstream, never negotiated, could report it as something else.
    pub(crate) fn require_data(self: &Arc<Self>, pad: &gst::Pad, what: &'static str) {
        let monitor = Arc::clone(self);
        let seen = AtomicBool::new(false);
        pad.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::BUFFER_LIST
                | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |pad, info| {
                match &info.data {
                    Some(gst::PadProbeData::Buffer(_) | gst::PadProbeData::BufferList(_)) => {
                        seen.store(true, Ordering::Relaxed);
                    }
                    Some(gst::PadProbeData::Event(event))
                        if event.type_() == gst::EventType::Eos
                            && !seen.load(Ordering::Relaxed) =>
                    {
                        monitor.fail(MediaError::Input {
                            path: monitor.path.clone(),
                            stage: monitor.stage,
                            reason: format!(
                                "the {what} stream ended before any of it was decoded \
                                 (the file is truncated, or its {what} data is missing)"
                            ),
                        });
                        wake_bus(pad);
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    }

    /// Watches an encoder's output: progress for the stall watchdog only
    /// (encoders may work through their lookahead after decoding ends).
    pub(crate) fn watch_encoded(self: &Arc<Self>, pad: &gst::Pad) {
        let monitor = Arc::clone(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some(buffer) = info.buffer() {
                match buffer_end(pad, buffer) {
                    Some(end) => monitor.encoded(end),
                    None => monitor.untimed(),
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
}

/// The end of `buffer` in running time (pts + duration, through the pad's
/// segment), or its raw timestamps when no time segment is known.
pub(crate) fn buffer_end(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<u64> {
    let pts = buffer.pts()?;
    let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
    let running = pad.sticky_event::<gst::event::Segment>(0).and_then(|ev| {
        ev.segment()
            .downcast_ref::<gst::ClockTime>()
            .and_then(|s| s.to_running_time(end))
    });
    Some(running.unwrap_or(end).nseconds())
}

/// The end of an appsink sample in running time.
pub(crate) fn sample_end(sample: &gst::Sample) -> Option<u64> {
    let buffer = sample.buffer()?;
    let pts = buffer.pts()?;
    let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
    let running = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .and_then(|s| s.to_running_time(end));
    Some(running.unwrap_or(end).nseconds())
}

/// Wakes the bus handler at once (it also checks every 100 ms).
pub(crate) fn wake_bus(pad: &gst::Pad) {
    if let Some(element) = pad.parent_element() {
        post_wake(&element);
    }
}

pub(crate) fn post_wake(element: &gst::Element) {
    let _ = element.post_message(
        gst::message::Application::builder(gst::Structure::new_empty("stemfeed-stop"))
            .src(element)
            .build(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_two_seconds_or_ten_percent() {
        assert_eq!(DecodeLimit::for_declared(5.0).max_s, 7.0);
        assert!((DecodeLimit::for_declared(60.0).max_s - 66.0).abs() < 1e-9);
        assert_eq!(DecodeLimit::for_declared(0.0).max_s, 2.0);
        assert_eq!(DecodeLimit::for_declared(10.0).samples_at(16_000), 192_000);
        assert_eq!(asr_sample_cap(180.0), 198 * 16_000);
    }

    #[test]
    fn the_first_failure_wins_and_overruns_are_refused() {
        let m = Monitor::new(
            Path::new("x.mkv"),
            "transcode",
            DecodeLimit::for_declared(5.0),
        );
        assert!(m.decoded(6_900_000_000));
        assert!(!m.decoded(7_100_000_000));
        assert!(!m.decoded(8_000_000_000));
        let err = m.take_failure().unwrap();
        assert_eq!(
            err.to_string(),
            "x.mkv: transcode: the stream runs past its declared duration of 5.0 s \
             (decoded 7.1 s); refusing a file that lies about its length"
        );
        assert!(err.is_bad_input());
    }
}
