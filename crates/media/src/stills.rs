//! Poster and thumbnails from frames sampled off the transcode's single
//! decode: the poster is the most detailed, non-black frame away from the
//! very start and end (no fade-in black, no end card), centre-cropped to 9:16
//! for the vertical feed; thumbnails are evenly spaced.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Frames are sampled at this rate.
pub const SAMPLE_FPS: i32 = 1;
/// Sampled frames are scaled so their short side is this long.
pub const SAMPLE_SHORT_SIDE: u32 = 720;
pub const THUMBNAILS: usize = 4;
const THUMB_SHORT_SIDE_DIVISOR: u32 = 4;

/// An RGB frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub time_s: f64,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Frame {
    /// Mean and standard deviation of luma on a sparse grid.
    fn luma_stats(&self) -> (f64, f64) {
        let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
        for px in self.rgb.chunks_exact(3).step_by(7) {
            let y = 0.299 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.114 * f64::from(px[2]);
            n += 1.0;
            sum += y;
            sq += y * y;
        }
        let mean = sum / n.max(1.0);
        (mean, (sq / n.max(1.0) - mean * mean).max(0.0).sqrt())
    }

    /// Higher is a better poster: contrast, never black or blown out.
    fn poster_score(&self, duration_s: f64) -> f64 {
        let (mean, std) = self.luma_stats();
        if !(20.0..=235.0).contains(&mean) {
            return -1.0;
        }
        let at = self.time_s / duration_s.max(0.001);
        let placement = if (0.1..=0.9).contains(&at) { 1.0 } else { 0.7 };
        std * placement
    }
}

/// Keeps the best poster candidate and the frames nearest each thumbnail
/// time, so memory stays bounded however long the video is.
#[derive(Debug)]
pub struct FramePicker {
    duration_s: f64,
    best: Option<(f64, Frame)>,
    thumbs: Vec<Option<Frame>>,
}

impl FramePicker {
    pub fn new(duration_s: f64) -> Self {
        Self {
            duration_s,
            best: None,
            thumbs: vec![None; THUMBNAILS],
        }
    }

    fn thumb_time(&self, i: usize) -> f64 {
        self.duration_s * (i as f64 + 0.5) / THUMBNAILS as f64
    }

    pub fn offer(&mut self, frame: Frame) {
        for i in 0..THUMBNAILS {
            let target = self.thumb_time(i);
            let closer = self.thumbs[i]
                .as_ref()
                .is_none_or(|t| (frame.time_s - target).abs() < (t.time_s - target).abs());
            if closer {
                self.thumbs[i] = Some(frame.clone());
            }
        }
        let score = frame.poster_score(self.duration_s);
        if self.best.as_ref().is_none_or(|(s, _)| score > *s) {
            self.best = Some((score, frame));
        }
    }

    pub fn poster(&self) -> Option<&Frame> {
        self.best.as_ref().map(|(_, f)| f)
    }

    pub fn thumbnails(&self) -> impl Iterator<Item = &Frame> {
        self.thumbs.iter().flatten()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Still {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub time_s: f64,
}

/// Centre crop to 9:16 (portrait frames are already close; landscape frames
/// lose their sides).
fn crop_9_16(f: &Frame) -> Frame {
    let target_w = ((f64::from(f.height) * 9.0 / 16.0).round() as u32).min(f.width) & !1;
    let target_h = if target_w < f.width {
        f.height
    } else {
        ((f64::from(f.width) * 16.0 / 9.0).round() as u32).min(f.height) & !1
    };
    let (x0, y0) = ((f.width - target_w) / 2, (f.height - target_h) / 2);
    let mut rgb = Vec::with_capacity((target_w * target_h * 3) as usize);
    for y in y0..y0 + target_h {
        let start = ((y * f.width + x0) * 3) as usize;
        rgb.extend_from_slice(&f.rgb[start..start + (target_w * 3) as usize]);
    }
    Frame {
        time_s: f.time_s,
        width: target_w,
        height: target_h,
        rgb,
    }
}

/// Box-filter downscale by an integer factor.
fn downscale(f: &Frame, k: u32) -> Frame {
    let (w, h) = (f.width / k, f.height / k);
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0u32; 3];
            for dy in 0..k {
                for dx in 0..k {
                    let i = (((y * k + dy) * f.width + x * k + dx) * 3) as usize;
                    for (sum, v) in acc.iter_mut().zip(&f.rgb[i..i + 3]) {
                        *sum += u32::from(*v);
                    }
                }
            }
            rgb.extend(acc.iter().map(|v| (v / (k * k)) as u8));
        }
    }
    Frame {
        time_s: f.time_s,
        width: w,
        height: h,
        rgb,
    }
}

fn write_jpeg(frame: &Frame, path: &Path, quality: u8) -> std::io::Result<Still> {
    let to_io = |e: jpeg_encoder::EncodingError| std::io::Error::other(e.to_string());
    let encoder = jpeg_encoder::Encoder::new_file(path, quality).map_err(to_io)?;
    encoder
        .encode(
            &frame.rgb,
            frame.width as u16,
            frame.height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(to_io)?;
    Ok(Still {
        path: path.to_path_buf(),
        width: frame.width,
        height: frame.height,
        time_s: frame.time_s,
    })
}

/// Writes `poster.jpg` and `thumbs/NN.jpg` under `out_dir`.
pub fn write(picker: &FramePicker, out_dir: &Path) -> std::io::Result<(Option<Still>, Vec<Still>)> {
    let poster = picker
        .poster()
        .map(|f| write_jpeg(&crop_9_16(f), &out_dir.join("poster.jpg"), 85))
        .transpose()?;
    let thumbs_dir = out_dir.join("thumbs");
    std::fs::create_dir_all(&thumbs_dir)?;
    let thumbs = picker
        .thumbnails()
        .enumerate()
        .map(|(i, f)| {
            write_jpeg(
                &downscale(f, THUMB_SHORT_SIDE_DIVISOR),
                &thumbs_dir.join(format!("{i:02}.jpg")),
                80,
            )
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((poster, thumbs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(time_s: f64, w: u32, h: u32, value: u8) -> Frame {
        Frame {
            time_s,
            width: w,
            height: h,
            rgb: vec![value; (w * h * 3) as usize],
        }
    }

    fn stripes(time_s: f64, w: u32, h: u32) -> Frame {
        let rgb = (0..w * h)
            .flat_map(|i| {
                if ((i % w) / 8).is_multiple_of(2) {
                    [230u8; 3]
                } else {
                    [30u8; 3]
                }
            })
            .collect();
        Frame {
            time_s,
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn black_and_flat_frames_never_win_the_poster() {
        let mut p = FramePicker::new(10.0);
        p.offer(flat(0.0, 64, 112, 0));
        p.offer(flat(1.0, 64, 112, 128));
        p.offer(stripes(5.0, 64, 112));
        p.offer(flat(9.0, 64, 112, 0));
        assert_eq!(p.poster().unwrap().time_s, 5.0);
        assert_eq!(p.thumbnails().count(), THUMBNAILS);
    }

    #[test]
    fn landscape_posters_are_cropped_to_9_16() {
        let c = crop_9_16(&flat(0.0, 1280, 720, 9));
        assert_eq!((c.width, c.height), (404, 720));
        let c = crop_9_16(&flat(0.0, 720, 1280, 9));
        assert_eq!((c.width, c.height), (720, 1280));
        assert_eq!(downscale(&c, 4).width, 180);
    }
}
