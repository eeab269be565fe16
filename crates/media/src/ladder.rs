//! Rendition sizes: which rungs of a profile a source gets, and their exact
//! dimensions. Pure arithmetic, kept apart from the pipeline so it is easy to test.

use serde::Serialize;
use stemfeed_core::profile::{Profile, Rung};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRung {
    /// Short side of the rung as named in the profile (or the source's, when
    /// the source is smaller than every rung).
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub audio_kbps: u32,
}

fn even(v: f64) -> u32 {
    ((v / 2.0).round() as u32 * 2).max(2)
}

/// `width`×`height` scaled so the short side is `short_side`, both even.
pub fn scaled(width: u32, height: u32, short_side: u32) -> (u32, u32) {
    let scale = f64::from(short_side) / f64::from(width.min(height));
    (
        even(f64::from(width) * scale),
        even(f64::from(height) * scale),
    )
}

/// The rungs for an upright `width`×`height` source: never upscaled, aspect
/// kept, dimensions even, orientation kept. A source smaller than every
/// rung gets the smallest rung's settings at its own (even) size.
pub fn plan(profile: &Profile, width: u32, height: u32) -> Vec<PlannedRung> {
    let short = width.min(height);
    let size = |target: u32| scaled(width, height, target);
    let make = |r: &Rung, target: u32| {
        let (w, h) = size(target);
        PlannedRung {
            name: format!("{}p", r.short_side.min(target)),
            width: w,
            height: h,
            video_kbps: r.video_kbps,
            audio_kbps: r.audio_kbps,
        }
    };
    let mut rungs: Vec<PlannedRung> = profile
        .rungs
        .iter()
        .filter(|r| r.short_side <= short)
        .map(|r| make(r, r.short_side))
        .collect();
    if rungs.is_empty() {
        let smallest = profile
            .rungs
            .last()
            .expect("profiles have at least one rung");
        rungs.push(make(smallest, short - short % 2));
    }
    rungs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portrait_full_hd_gets_every_rung() {
        let rungs = plan(&Profile::short_form(), 1080, 1920);
        let sizes: Vec<_> = rungs.iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(sizes, [(1080, 1920), (720, 1280), (480, 854), (360, 640)]);
    }

    #[test]
    fn landscape_stays_landscape() {
        let rungs = plan(&Profile::short_form(), 1920, 1080);
        assert_eq!((rungs[1].width, rungs[1].height), (1280, 720));
    }

    #[test]
    fn never_upscales_and_keeps_dimensions_even() {
        let rungs = plan(&Profile::short_form(), 1079, 1919);
        assert_eq!(rungs[0].name, "720p");
        assert!(
            rungs
                .iter()
                .all(|r| r.width % 2 == 0 && r.height % 2 == 0 && r.width <= 1079)
        );
        let tiny = plan(&Profile::short_form(), 201, 357);
        assert_eq!(tiny.len(), 1);
        assert_eq!((tiny[0].width, tiny[0].height), (200, 356));
    }
}
