//! What curators change: for every caption track of an approved video whose
//! approved text is public, Whisper's version (version 1) against the
//! approved one — words and characters changed (WER/CER with the same
//! normalisation `stemfeed eval asr` uses), cues re-timed — pooled by
//! language, model and ISO week of the approval. This is the production
//! accuracy figure no benchmark gives ("Urdu, base: curators changed 31% of
//! words"). Served as JSON (`/api/stats/edits`), as a page
//! (`/review/stats`) and as OpenMetrics (`/metrics`), all for curators.
//!
//! Computed from the catalog's caption versions and the runs' manifests
//! when asked; fine for thousands of approved videos, a table kept at
//! approval time would be the next step beyond.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stemfeed_captions::Cue;
use stemfeed_captions::score::{Errors, normalise};
use stemfeed_queue::{JobState, Role};

use crate::{ApiError, App, view};

/// One group's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EditStats {
    pub language: String,
    pub kind: String,
    /// The run's Whisper model.
    pub model: String,
    /// ISO week of the approval, `2026-W48`.
    pub week: String,
    pub tracks: usize,
    /// Whisper's words, and how many a curator changed (edits: substituted,
    /// deleted or inserted).
    pub words: usize,
    pub words_changed: usize,
    pub chars: usize,
    pub chars_changed: usize,
    pub cues: usize,
    /// Whisper's cues a curator kept word for word but moved in time.
    pub cues_retimed: usize,
    pub word_change_rate: f64,
    pub char_change_rate: f64,
}

/// Moved by more than this counts as re-timed (about a frame at 25 fps).
const RETIME_S: f64 = 0.04;

/// Whisper's cues kept word for word whose start or end a curator moved.
fn retimed(language: &str, whisper: &[Cue], approved: &[Cue]) -> usize {
    let mut used = vec![false; approved.len()];
    whisper
        .iter()
        .filter(|w| {
            let words = normalise(language, &w.text);
            let found = approved
                .iter()
                .enumerate()
                .find(|(i, a)| !used[*i] && normalise(language, &a.text) == words);
            match found {
                Some((i, a)) => {
                    used[i] = true;
                    (a.start - w.start).abs() > RETIME_S || (a.end - w.end).abs() > RETIME_S
                }
                None => false,
            }
        })
        .count()
}

fn text_of(cues: &[Cue]) -> String {
    cues.iter()
        .map(|c| c.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2026-W48` for a time in milliseconds since the epoch.
pub fn iso_week(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // 1970-01-01 was a Thursday; Monday = 0.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let year = civil_year(thursday);
    let jan1 = days_from_civil(year, 1, 1);
    format!("{year:04}-W{:02}", (thursday - jan1) / 7 + 1)
}

fn civil_year(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Every approved video's tracks, pooled by (language, kind, model, week).
pub async fn collect(app: &App) -> Result<Vec<EditStats>, ApiError> {
    let videos = app.db(|c| c.videos_in(&[JobState::Approved])).await?;
    let mut groups: BTreeMap<(String, String, String, String), EditStats> = BTreeMap::new();
    for (video, _) in videos {
        let v = match view::load(app, &video.id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(video = %video.id, "left out of the edit statistics: {}", e.1);
                continue;
            }
        };
        let model = match &v.manifest.captions {
            Some(stemfeed_pipeline::contract::CaptionsEntry::Made(c)) => c.model.clone(),
            _ => continue,
        };
        for t in &v.tracks {
            if !crate::media::track_public(&v.job, &v.history, &t.track, t.version) {
                continue;
            }
            let Some(first) = v
                .history
                .iter()
                .find(|h| h.track == t.track && h.version == 1 && h.author == "whisper")
            else {
                continue;
            };
            let Ok(whisper) = serde_json::from_str::<Vec<Cue>>(&first.cues) else {
                continue;
            };
            let approved_at = v
                .history
                .iter()
                .find(|h| h.track == t.track && h.version == t.version)
                .map_or(v.job.updated_ms, |h| {
                    if h.status == "approved" {
                        h.created_ms
                    } else {
                        v.job.updated_ms
                    }
                });
            let errors = Errors::of(&t.language, &text_of(&whisper), &text_of(&t.cues));
            let key = (
                t.language.clone(),
                t.kind.clone(),
                model.clone(),
                iso_week(approved_at),
            );
            let g = groups.entry(key.clone()).or_insert_with(|| EditStats {
                language: key.0,
                kind: key.1,
                model: key.2,
                week: key.3,
                ..EditStats::default()
            });
            g.tracks += 1;
            g.words += errors.words;
            g.words_changed += errors.word_edits;
            g.chars += errors.chars;
            g.chars_changed += errors.char_edits;
            g.cues += whisper.len();
            g.cues_retimed += retimed(&t.language, &whisper, &t.cues);
        }
    }
    let mut out: Vec<EditStats> = groups.into_values().collect();
    for g in &mut out {
        g.word_change_rate = g.words_changed as f64 / g.words.max(1) as f64;
        g.char_change_rate = g.chars_changed as f64 / g.chars.max(1) as f64;
    }
    Ok(out)
}

/// `GET /api/stats/edits`.
/// The curators' changes to Whisper's transcripts pooled per language and
/// model over every week: what workers judge new tracks by (see
/// `stemfeed_pipeline::captioning`).
pub fn accuracy(stats: &[EditStats]) -> Vec<stemfeed_queue::CuratorAccuracy> {
    let mut pooled: BTreeMap<(String, String), stemfeed_queue::CuratorAccuracy> = BTreeMap::new();
    for s in stats.iter().filter(|s| s.kind == "transcript") {
        let a = pooled
            .entry((s.language.clone(), s.model.clone()))
            .or_insert_with(|| stemfeed_queue::CuratorAccuracy {
                language: s.language.clone(),
                model: s.model.clone(),
                tracks: 0,
                words: 0,
                words_changed: 0,
                updated_ms: 0,
            });
        let n = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
        a.tracks += n(s.tracks);
        a.words += n(s.words);
        a.words_changed += n(s.words_changed);
    }
    pooled.into_values().collect()
}

/// Recomputes the curators' accuracy and stores it in the catalog for the
/// workers.
pub async fn refresh_accuracy(app: &App) -> Result<usize, ApiError> {
    let rows = accuracy(&collect(app).await?);
    let n = rows.len();
    app.db(move |c| c.set_curator_accuracy(&rows)).await?;
    Ok(n)
}

/// Keeps the curators' accuracy fresh: now, then every `every`.
pub async fn keep_accuracy(app: Arc<App>, every: std::time::Duration) {
    loop {
        match refresh_accuracy(&app).await {
            Ok(n) => tracing::debug!(groups = n, "curators' accuracy refreshed"),
            Err(e) => tracing::warn!("refreshing the curators' accuracy: {}", e.1),
        }
        tokio::time::sleep(every).await;
    }
}

pub async fn json(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let result = async {
        app.require(&headers, Role::Curator).await?;
        let stats = collect(&app).await?;
        // As the workers read it from the catalog.
        let accuracy = app.db(|c| c.curator_accuracy()).await?;
        Ok::<_, ApiError>((stats, accuracy))
    }
    .await;
    match result {
        Ok((stats, accuracy)) => {
            axum::Json(serde_json::json!({ "edits": stats, "accuracy": accuracy })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Refreshes of the curators' accuracy asked for by decisions, coalesced: a
/// refresh reads every approved video, so however fast curators decide, at
/// most one runs and one more is owed.
#[derive(Debug, Default)]
pub struct Refresh {
    running: Arc<tokio::sync::Mutex<()>>,
    owed: std::sync::atomic::AtomicBool,
}

/// After a curator's decision: the workers' figures follow within moments
/// (in the background; the periodic refresh catches anything missed).
pub fn refresh_soon(app: &Arc<App>) {
    use std::sync::atomic::Ordering;
    app.accuracy_refresh.owed.store(true, Ordering::SeqCst);
    // A refresh already running sees the debt when it ends and runs again.
    let Ok(running) = Arc::clone(&app.accuracy_refresh.running).try_lock_owned() else {
        return;
    };
    let app = Arc::clone(app);
    tokio::spawn(async move {
        while app.accuracy_refresh.owed.swap(false, Ordering::SeqCst) {
            if let Err(e) = refresh_accuracy(&app).await {
                tracing::warn!("refreshing the curators' accuracy: {}", e.1);
            }
        }
        drop(running);
        // Asked for between the last check and letting go: run once more.
        if app.accuracy_refresh.owed.load(Ordering::SeqCst) {
            refresh_soon(&app);
        }
    });
}

/// `GET /metrics`: the same numbers as OpenMetrics gauges.
pub async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let result = async {
        app.require(&headers, Role::Curator).await?;
        collect(&app).await
    }
    .await;
    let stats = match result {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut text = String::new();
    for (name, help, value) in [
        (
            "stemfeed_curator_word_change_ratio",
            "Share of Whisper's words curators changed before approving",
            (|g: &EditStats| g.word_change_rate) as fn(&EditStats) -> f64,
        ),
        (
            "stemfeed_curator_char_change_ratio",
            "Share of Whisper's characters curators changed before approving",
            |g: &EditStats| g.char_change_rate,
        ),
        (
            "stemfeed_curator_cues_retimed_ratio",
            "Share of Whisper's cues curators kept but moved in time",
            |g: &EditStats| g.cues_retimed as f64 / g.cues.max(1) as f64,
        ),
        (
            "stemfeed_curator_approved_tracks",
            "Approved caption tracks behind the ratios",
            |g: &EditStats| g.tracks as f64,
        ),
    ] {
        text.push_str(&format!("# TYPE {name} gauge\n# HELP {name} {help}\n"));
        for g in &stats {
            text.push_str(&format!(
                "{name}{{language=\"{}\",kind=\"{}\",model=\"{}\",week=\"{}\"}} {}\n",
                label(&g.language),
                label(&g.kind),
                label(&g.model),
                label(&g.week),
                value(g)
            ));
        }
    }
    text.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_weeks() {
        // 2026-11-30 is a Monday in week 49; 2021-01-03 belongs to 2020-W53.
        assert_eq!(
            iso_week(days_from_civil(2026, 11, 30) * 86_400_000),
            "2026-W49"
        );
        assert_eq!(
            iso_week(days_from_civil(2026, 11, 29) * 86_400_000),
            "2026-W48"
        );
        assert_eq!(
            iso_week(days_from_civil(2021, 1, 3) * 86_400_000),
            "2020-W53"
        );
        assert_eq!(
            iso_week(days_from_civil(2024, 12, 30) * 86_400_000),
            "2025-W01"
        );
        assert_eq!(iso_week(0), "1970-W01");
    }

    #[test]
    fn a_cue_kept_but_moved_is_retimed() {
        let w = [
            Cue::new(0.0, 2.0, "Gravity pulls."),
            Cue::new(2.0, 4.0, "The ball falls."),
        ];
        let a = [
            Cue::new(0.0, 2.0, "gravity pulls"),
            Cue::new(2.5, 4.0, "The ball falls."),
        ];
        assert_eq!(retimed("en", &w, &a), 1);
        let edited = [
            Cue::new(0.0, 2.0, "Gravity pulls."),
            Cue::new(2.5, 4.0, "A ball drops."),
        ];
        assert_eq!(
            retimed("en", &w, &edited),
            0,
            "an edited cue is an edit, not a re-time"
        );
    }
}
