//! One stored copy per rung: each rendition is a fragmented MP4 (one
//! `moof`/`mdat` pair per track per GOP, written by `mp4mux` with a fragment
//! duration equal to the GOP) that plays progressively as it is, and whose
//! HLS playlist addresses the same file by byte ranges (`EXT-X-MAP` for the
//! `ftyp` + `moov` header, one `EXT-X-BYTERANGE` segment per GOP).
//!
//! The playlist is written from the file itself: its top-level boxes are
//! walked, each `moof`'s track and decode time read from `tfhd`/`tfdt`, and
//! each segment ends after the video fragment that opens it (with the audio
//! fragments that precede it), so every segment starts on a video keyframe
//! at the same time in every rung.

use std::ops::Range;
use std::path::Path;

/// Where a fragmented MP4's parts are, in bytes, and when its segments start.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// `ftyp` + `moov`.
    pub init: Range<u64>,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub bytes: Range<u64>,
    /// Decode time of the segment's first video sample, seconds.
    pub start_s: f64,
    pub duration_s: f64,
}

struct Box_ {
    kind: [u8; 4],
    /// Whole box, header included.
    range: Range<u64>,
    /// Payload (after the header).
    body: Range<u64>,
}

fn boxes(data: &[u8], within: Range<u64>) -> Result<Vec<Box_>, String> {
    let mut out = Vec::new();
    let mut pos = within.start;
    while pos + 8 <= within.end {
        let at = pos as usize;
        let size32 = u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().expect("4 bytes");
        let (size, header) = match size32 {
            0 => (within.end - pos, 8),
            1 => {
                let wide = data
                    .get(at + 8..at + 16)
                    .ok_or("truncated 64-bit box size")?;
                (u64::from_be_bytes(wide.try_into().expect("8 bytes")), 16)
            }
            n => (u64::from(n), 8),
        };
        if size < header || pos + size > within.end {
            return Err(format!(
                "box {:?} at byte {pos} claims {size} bytes, past the end",
                String::from_utf8_lossy(&kind)
            ));
        }
        out.push(Box_ {
            kind,
            range: pos..pos + size,
            body: pos + header..pos + size,
        });
        pos += size;
    }
    Ok(out)
}

fn child(data: &[u8], parent: &Box_, kind: &[u8; 4]) -> Result<Option<Box_>, String> {
    Ok(boxes(data, parent.body.clone())?
        .into_iter()
        .find(|b| &b.kind == kind))
}

fn be32(data: &[u8], at: u64) -> Result<u32, String> {
    data.get(at as usize..at as usize + 4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| format!("truncated box field at byte {at}"))
}

fn be64(data: &[u8], at: u64) -> Result<u64, String> {
    data.get(at as usize..at as usize + 8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| format!("truncated box field at byte {at}"))
}

/// The video track's id and timescale, from `moov`.
fn video_track(data: &[u8], moov: &Box_) -> Result<(u32, u32), String> {
    for trak in boxes(data, moov.body.clone())?
        .iter()
        .filter(|b| &b.kind == b"trak")
    {
        let (Some(tkhd), Some(mdia)) = (child(data, trak, b"tkhd")?, child(data, trak, b"mdia")?)
        else {
            continue;
        };
        let (Some(hdlr), Some(mdhd)) = (child(data, &mdia, b"hdlr")?, child(data, &mdia, b"mdhd")?)
        else {
            continue;
        };
        // hdlr: version/flags, pre_defined, then the handler type.
        if data.get(hdlr.body.start as usize + 8..hdlr.body.start as usize + 12) != Some(b"vide") {
            continue;
        }
        let v1 = data.get(tkhd.body.start as usize) == Some(&1);
        let track_id = be32(data, tkhd.body.start + if v1 { 20 } else { 12 })?;
        let v1 = data.get(mdhd.body.start as usize) == Some(&1);
        let timescale = be32(data, mdhd.body.start + if v1 { 20 } else { 12 })?;
        if timescale == 0 {
            return Err("video track has a zero timescale".into());
        }
        return Ok((track_id, timescale));
    }
    Err("no video track in moov".into())
}

/// The track id and base decode time of a `moof`'s first `traf`.
fn fragment_time(data: &[u8], moof: &Box_) -> Result<(u32, u64), String> {
    let traf = child(data, moof, b"traf")?.ok_or("moof without traf")?;
    let tfhd = child(data, &traf, b"tfhd")?.ok_or("traf without tfhd")?;
    let tfdt = child(data, &traf, b"tfdt")?.ok_or("traf without tfdt")?;
    let track = be32(data, tfhd.body.start + 4)?;
    let time = if data.get(tfdt.body.start as usize) == Some(&1) {
        be64(data, tfdt.body.start + 4)?
    } else {
        u64::from(be32(data, tfdt.body.start + 4)?)
    };
    Ok((track, time))
}

/// Reads a fragmented MP4's layout. `duration_s` (the file's duration) ends
/// the last segment.
pub fn layout(data: &[u8], duration_s: f64) -> Result<Layout, String> {
    let top = boxes(data, 0..data.len() as u64)?;
    let moov = top
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or("no moov box")?;
    let (video, timescale) = video_track(data, moov)?;
    let init = 0..moov.range.end;
    let mut segments: Vec<Segment> = Vec::new();
    let mut open: Option<u64> = None; // where the next segment's bytes begin
    let mut pending_video: Option<f64> = None;
    for b in top.iter().filter(|b| b.range.start >= moov.range.end) {
        match &b.kind {
            b"moof" => {
                open.get_or_insert(b.range.start);
                let (track, time) = fragment_time(data, b)?;
                if track == video {
                    pending_video = Some(time as f64 / f64::from(timescale));
                }
            }
            b"mdat" => {
                if let (Some(start), Some(start_s)) = (open, pending_video.take()) {
                    segments.push(Segment {
                        bytes: start..b.range.end,
                        start_s,
                        duration_s: 0.0,
                    });
                    open = None;
                }
            }
            _ => {
                // mfra and anything after the media belongs to no segment;
                // audio fragments pending before it join the last one.
                if let (Some(_), Some(last)) = (open.take(), segments.last_mut()) {
                    last.bytes.end = b.range.start;
                }
            }
        }
    }
    // Audio fragments after the last video fragment join the last segment.
    if let (Some(_), Some(last)) = (open, segments.last_mut()) {
        let media_end = top
            .iter()
            .filter(|b| &b.kind == b"moof" || &b.kind == b"mdat")
            .map(|b| b.range.end)
            .max()
            .unwrap_or(last.bytes.end);
        last.bytes.end = media_end;
    }
    if segments.is_empty() {
        return Err("no video fragments: not a fragmented MP4".into());
    }
    for i in 0..segments.len() {
        let end = segments
            .get(i + 1)
            .map_or(duration_s.max(segments[i].start_s), |n| n.start_s);
        segments[i].duration_s = end - segments[i].start_s;
    }
    Ok(Layout { init, segments })
}

/// Writes `playlist` (an HLS media playlist) addressing `media` by byte
/// ranges; `media_uri` is `media`'s path relative to the playlist.
pub fn write_playlist(
    media: &Path,
    media_uri: &str,
    duration_s: f64,
    playlist: &Path,
) -> Result<Layout, String> {
    let data = std::fs::read(media).map_err(|e| format!("reading {}: {e}", media.display()))?;
    let layout = layout(&data, duration_s)?;
    let target = layout
        .segments
        .iter()
        .map(|s| s.duration_s.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"{media_uri}\",BYTERANGE=\"{}@{}\"\n",
        layout.init.end - layout.init.start,
        layout.init.start
    );
    for s in &layout.segments {
        text.push_str(&format!(
            "#EXTINF:{:.3},\n#EXT-X-BYTERANGE:{}@{}\n{media_uri}\n",
            s.duration_s,
            s.bytes.end - s.bytes.start,
            s.bytes.start
        ));
    }
    text.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(playlist, text).map_err(|e| format!("writing {}: {e}", playlist.display()))?;
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn moov(video_id: u32, timescale: u32) -> Vec<u8> {
        let mut tkhd = vec![0u8; 84];
        tkhd[12..16].copy_from_slice(&video_id.to_be_bytes());
        let mut mdhd = vec![0u8; 24];
        mdhd[12..16].copy_from_slice(&timescale.to_be_bytes());
        let mut hdlr = vec![0u8; 24];
        hdlr[8..12].copy_from_slice(b"vide");
        let mdia = [bx(b"mdhd", &mdhd), bx(b"hdlr", &hdlr)].concat();
        bx(
            b"moov",
            &bx(b"trak", &[bx(b"tkhd", &tkhd), bx(b"mdia", &mdia)].concat()),
        )
    }

    fn moof(track: u32, time: u32) -> Vec<u8> {
        let mut tfhd = vec![0u8; 8];
        tfhd[4..8].copy_from_slice(&track.to_be_bytes());
        let mut tfdt = vec![0u8; 8];
        tfdt[4..8].copy_from_slice(&time.to_be_bytes());
        bx(
            b"moof",
            &bx(b"traf", &[bx(b"tfhd", &tfhd), bx(b"tfdt", &tfdt)].concat()),
        )
    }

    #[test]
    fn segments_open_with_audio_and_close_after_each_video_fragment() {
        let mut file = bx(b"ftyp", b"iso6");
        file.extend(moov(1, 3000));
        let init_end = file.len() as u64;
        for (i, t) in [0u32, 6000, 12000].iter().enumerate() {
            file.extend(moof(2, i as u32 * 96000));
            file.extend(bx(b"mdat", &[0; 10]));
            file.extend(moof(1, *t));
            file.extend(bx(b"mdat", &[0; 20]));
        }
        file.extend(bx(b"mfra", &[0; 4]));
        let l = layout(&file, 5.5).unwrap();
        assert_eq!(l.init, 0..init_end);
        let starts: Vec<f64> = l.segments.iter().map(|s| s.start_s).collect();
        assert_eq!(starts, [0.0, 2.0, 4.0]);
        assert_eq!(l.segments[2].duration_s, 1.5);
        // Contiguous from the end of the header to the start of mfra.
        assert_eq!(l.segments[0].bytes.start, init_end);
        assert!(
            l.segments
                .windows(2)
                .all(|w| w[0].bytes.end == w[1].bytes.start)
        );
        assert_eq!(l.segments[2].bytes.end, file.len() as u64 - 12);
    }

    #[test]
    fn a_file_that_is_not_fragmented_or_lies_about_sizes_is_refused() {
        let mut plain = bx(b"ftyp", b"isom");
        plain.extend(moov(1, 90000));
        plain.extend(bx(b"mdat", &[0; 8]));
        assert!(
            layout(&plain, 1.0)
                .unwrap_err()
                .contains("not a fragmented MP4")
        );
        let mut lying = bx(b"ftyp", b"isom");
        lying.extend(200u32.to_be_bytes());
        lying.extend(b"moov");
        assert!(layout(&lying, 1.0).unwrap_err().contains("past the end"));
    }
}
