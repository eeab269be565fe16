//! The last step of a job: the HLS master playlist and `manifest.json`,
//! composed from the two halves' results once both are in. Pure Rust over
//! typed results (no media is decoded), so the worker runs it itself,
//! whichever machines ran the halves.

use std::path::{Path, PathBuf};

use crate::contract::{
    AsrAudio, Captioned, CaptionsEntry, Hls, JobSpec, MANIFEST_VERSION, Manifest, Prepared,
    RenditionEntry, RenditionOutput, Source, StageTimes, StillEntry, StillOutput, SubtitleTrack,
};

fn quoted(s: &str) -> String {
    s.replace('"', "'")
}

fn relative(out: &Path, path: &Path) -> String {
    path.strip_prefix(out)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// Writes `hls/master.m3u8` referencing every rendition's playlist and, when
/// there are caption tracks, a SUBTITLES group every variant points at.
pub fn write_master_playlist(
    out_dir: &Path,
    renditions: &[RenditionOutput],
    subtitles: &[SubtitleTrack],
) -> std::io::Result<PathBuf> {
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (i, s) in subtitles.iter().enumerate() {
        text.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"{}\",LANGUAGE=\"{}\",DEFAULT={},AUTOSELECT=YES,URI=\"{}\"\n",
            quoted(&s.name),
            quoted(&s.language),
            if i == 0 { "YES" } else { "NO" },
            quoted(&s.playlist)
        ));
    }
    let group = if subtitles.is_empty() {
        ""
    } else {
        ",SUBTITLES=\"subs\""
    };
    for r in renditions {
        let bandwidth =
            (u64::from(r.video_kbps) * 3 / 2 + u64::from(r.audio_kbps.unwrap_or(0))) * 1000;
        let average = (u64::from(r.video_kbps) + u64::from(r.audio_kbps.unwrap_or(0))) * 1000;
        text.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},AVERAGE-BANDWIDTH={average},RESOLUTION={}x{},FRAME-RATE={}.000,CODECS=\"{}\"{group}\n{}/index.m3u8\n",
            r.width, r.height, r.fps, quoted(&r.codecs), r.name
        ));
    }
    let dir = out_dir.join("hls");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("master.m3u8");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Writes the master playlist and then `manifest.json` (last) into
/// `job.out`, and returns the manifest. `p` is the first half's result,
/// with paths under `job.out` (see [`Prepared::rebase`]).
pub fn write_manifest(job: &JobSpec, p: &Prepared, c: &Captioned) -> std::io::Result<Manifest> {
    let out = &job.out;
    let master = write_master_playlist(out, &p.renditions, &c.subtitles)?;
    let still = |s: &StillOutput| StillEntry {
        path: relative(out, &s.path),
        width: s.width,
        height: s.height,
        time_s: s.time_s,
    };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        source: Source {
            file: job.display_name.clone(),
            media: p.info.clone(),
            language_hint: job.language.clone(),
            title: job.title.clone(),
            description: job.description.clone(),
            grade_hint: job.grade,
        },
        profile: job.profile.name.clone(),
        validation: p.accepted.clone(),
        captions: match (&c.summary, job.captions, p.accepted.has_audio) {
            (Some(summary), _, _) => Some(CaptionsEntry::Made(summary.clone())),
            (None, false, _) => Some(CaptionsEntry::Skipped {
                skipped: "captions disabled".to_owned(),
            }),
            (None, _, false) => Some(CaptionsEntry::Skipped {
                skipped: "no audio stream".to_owned(),
            }),
            (None, _, _) => None,
        },
        tags: c.tags.clone(),
        loudness: p.loudness.clone(),
        renditions: p
            .renditions
            .iter()
            .map(|r| RenditionEntry {
                name: r.name.clone(),
                path: relative(out, &r.mp4),
                hls_playlist: relative(out, &r.hls_playlist),
                width: r.width,
                height: r.height,
                fps: r.fps,
                video_kbps: r.video_kbps,
                audio_kbps: r.audio_kbps,
                codecs: r.codecs.clone(),
                bytes: r.bytes,
                duration_s: p.info.duration_s,
            })
            .collect(),
        hls: Hls {
            master: relative(out, &master),
        },
        poster: p.poster.as_ref().map(still),
        thumbnails: p.thumbnails.iter().map(still).collect(),
        asr_audio: AsrAudio {
            samples_16k: p.asr_samples,
            seconds: p.asr_samples as f64 / 16_000.0,
            waveform: p.waveform.as_deref().map(|w| relative(out, w)),
        },
        stages: StageTimes {
            captions_s: c.captions_s,
            tagging_s: c.tagging_s,
            total_s: p.times.total_s + c.captions_s + c.tagging_s,
            ..p.times.clone()
        },
        base: None,
        video_id: None,
    };
    manifest.write(out)?;
    Ok(manifest)
}
