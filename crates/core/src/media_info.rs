//! What a probe found in an input, and whether a profile accepts it.
//!
//! Pure data: the media crate fills [`MediaInfo`] with GStreamer; the job
//! layer, manifest and server read it without linking GStreamer.

use serde::{Deserialize, Serialize};

use crate::profile::Profile;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Container format as GStreamer describes it, e.g. "ISO MP4/M4A".
    pub container: Option<String>,
    pub duration_s: f64,
    pub file_bytes: u64,
    /// The first video stream (others are ignored).
    pub video: Option<VideoStream>,
    /// The first audio stream (others are ignored).
    pub audio: Option<AudioStream>,
    pub video_streams: usize,
    pub audio_streams: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStream {
    pub codec: String,
    /// Coded size, before the orientation tag is applied.
    pub width: u32,
    pub height: u32,
    /// Clockwise rotation the player must apply (0, 90, 180, 270).
    pub rotation: u32,
    /// Frames per second; `None` when the stream declares a variable rate.
    pub fps: Option<f64>,
    pub variable_frame_rate: bool,
    pub bitrate: Option<u32>,
}

impl VideoStream {
    /// Upright size: what the viewer sees after rotation.
    pub fn display_size(&self) -> (u32, u32) {
        if self.rotation % 180 == 90 {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStream {
    pub codec: String,
    pub channels: u32,
    pub sample_rate: u32,
    pub bitrate: Option<u32>,
}

/// Why a profile refuses an input. The job fails with this reason; the
/// upload itself is kept untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Rejection {
    #[error("no video stream (an audio-only or image file is not a video)")]
    NoVideo,
    #[error("duration {actual_s:.1} s is longer than the profile's {limit_s:.0} s limit")]
    TooLong { actual_s: f64, limit_s: f64 },
    #[error("duration {actual_s:.2} s is shorter than the profile's {limit_s:.2} s minimum")]
    TooShort { actual_s: f64, limit_s: f64 },
    #[error("dimensions {width}x{height} are outside the accepted {min}..={max} pixels per side")]
    Dimensions {
        width: u32,
        height: u32,
        min: u32,
        max: u32,
    },
}

/// Accepted input, with notes that do not stop the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// e.g. "no audio stream: no captions".
    pub notes: Vec<String>,
    pub has_audio: bool,
}

pub fn validate(info: &MediaInfo, profile: &Profile) -> Result<Accepted, Rejection> {
    let video = info.video.as_ref().ok_or(Rejection::NoVideo)?;
    let l = &profile.limits;
    if info.duration_s > l.max_duration_s {
        return Err(Rejection::TooLong {
            actual_s: info.duration_s,
            limit_s: l.max_duration_s,
        });
    }
    if info.duration_s < l.min_duration_s {
        return Err(Rejection::TooShort {
            actual_s: info.duration_s,
            limit_s: l.min_duration_s,
        });
    }
    let (w, h) = (video.width, video.height);
    if w.min(h) < l.min_dimension || w.max(h) > l.max_dimension {
        return Err(Rejection::Dimensions {
            width: w,
            height: h,
            min: l.min_dimension,
            max: l.max_dimension,
        });
    }
    let mut notes = Vec::new();
    if info.audio.is_none() {
        notes.push("no audio stream: no captions".to_owned());
    }
    if info.video_streams > 1 {
        notes.push(format!(
            "{} video streams: only the first is used",
            info.video_streams
        ));
    }
    if video.variable_frame_rate {
        notes.push("variable frame rate: output is constant frame rate".to_owned());
    }
    Ok(Accepted {
        notes,
        has_audio: info.audio.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(duration_s: f64, w: u32, h: u32, audio: bool) -> MediaInfo {
        MediaInfo {
            container: Some("ISO MP4/M4A".into()),
            duration_s,
            file_bytes: 1,
            video: Some(VideoStream {
                codec: "H.264".into(),
                width: w,
                height: h,
                rotation: 0,
                fps: Some(30.0),
                variable_frame_rate: false,
                bitrate: None,
            }),
            audio: audio.then(|| AudioStream {
                codec: "AAC".into(),
                channels: 2,
                sample_rate: 48_000,
                bitrate: None,
            }),
            video_streams: 1,
            audio_streams: usize::from(audio),
        }
    }

    #[test]
    fn accepts_a_normal_short_and_notes_missing_audio() {
        let p = Profile::short_form();
        assert!(
            validate(&info(30.0, 1080, 1920, true), &p)
                .unwrap()
                .notes
                .is_empty()
        );
        let silent = validate(&info(30.0, 1080, 1920, false), &p).unwrap();
        assert!(!silent.has_audio && silent.notes[0].contains("no captions"));
    }

    #[test]
    fn rejects_each_limit_with_its_reason() {
        let p = Profile::short_form();
        assert!(matches!(
            validate(&info(181.0, 1080, 1920, true), &p),
            Err(Rejection::TooLong { .. })
        ));
        assert!(matches!(
            validate(&info(0.1, 1080, 1920, true), &p),
            Err(Rejection::TooShort { .. })
        ));
        assert!(matches!(
            validate(&info(10.0, 20000, 20000, true), &p),
            Err(Rejection::Dimensions { .. })
        ));
        let mut no_video = info(10.0, 2, 2, true);
        no_video.video = None;
        assert_eq!(validate(&no_video, &p), Err(Rejection::NoVideo));
    }

    #[test]
    fn rotation_swaps_the_display_size() {
        let mut v = info(1.0, 1920, 1080, false).video.unwrap();
        v.rotation = 90;
        assert_eq!(v.display_size(), (1080, 1920));
    }
}
