//! The curator UI's pages as maud templates. maud checks the markup at
//! compile time and escapes every interpolated value, text and attribute
//! alike, so nothing a submitter or curator typed (titles, cues, names,
//! reasons, hashtags) can become markup. These functions only render: the
//! handlers in `ui.rs` load and check, then hand plain data here.
//!
//! The ids, classes, names and data attributes are an interface:
//! `static/review.js`, `static/review.css` and the browser tests select by
//! them. The Content-Security-Policy allows no inline script or style, so
//! neither appears here.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, html};
use stemfeed_captions::segment::Rules;
use stemfeed_captions::{Cue, bidi};
use stemfeed_queue::{CaptionVersion, GlossaryEntry};
use stemfeed_tagging::{Tags, Taxonomy};

use super::OFF_TOPIC;

/// What the tagger files a video under when its text cannot tell.
const UNDETERMINED: &str = "undetermined";
use crate::Caller;
use crate::view::TrackView;

/// The frame every page shares: head, the signed-in curator's bar, the script.
pub fn page(title: &str, caller: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · stemfeed" }
                link rel="stylesheet" href="/static/review.css";
            }
            body {
                @if let Some(c) = caller {
                    nav {
                        a href="/review" { "Review queue" }
                        " "
                        a href="/feed.json" { "Feed" }
                        " "
                        a href="/review/stats" { "Curator edits" }
                        " "
                        span.who { (c.name) " (" (c.role.as_str()) ")" }
                        form.inline method="post" action="/logout" {
                            (csrf_field(c.csrf.as_deref().unwrap_or_default()))
                            button { "Log out" }
                        }
                    }
                }
                main { (body) }
                script src="/static/review.js" {}
            }
        }
    }
}

fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A signed-in user who is not a curator.
pub fn forbidden(caller: &Caller) -> Markup {
    page(
        "Forbidden",
        Some(caller),
        html! {
            h1 { "Forbidden" }
            p { "This page is for curators." }
        },
    )
}

pub fn login_form() -> Markup {
    page(
        "Log in",
        None,
        html! {
            h1 { "stemfeed review" }
            form.login method="post" action="/login" {
                label { "Name " input name="name" id="name" autocomplete="username" required; }
                label {
                    "Password "
                    input name="password" id="password" type="password" autocomplete="current-password" required;
                }
                button id="login" { "Log in" }
            }
        },
    )
}

/// A login that did not succeed, and why; `try_again` adds a link back to the form.
pub fn login_refused(message: &str, try_again: bool) -> Markup {
    page(
        "Log in",
        None,
        html! {
            h1 { "Log in" }
            p.error { (message) }
            @if try_again {
                p { a href="/login" { "Try again" } }
            }
        },
    )
}

/// One line of the review queue.
pub struct QueueRow<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub language: &'a str,
    pub subject: &'a str,
    pub tracks: &'a [TrackView],
    pub weakest: f32,
    pub state: &'a str,
    pub duration_s: f64,
    /// The poster's path in the video's media, when the run made one.
    pub poster: Option<&'a str>,
}

impl QueueRow<'_> {
    /// Whether a curator approved every caption track (and there is one):
    /// only such videos can be approved in bulk.
    fn tracks_approved(&self) -> bool {
        !self.tracks.is_empty() && self.tracks.iter().all(|t| t.status == "approved")
    }
}

/// The queue's filter form: what is chosen now and what can be.
pub struct Filters<'a> {
    pub status: &'a str,
    pub language: &'a str,
    pub subject: &'a str,
    pub subjects: &'a [&'a str],
}

const STATUSES: [&str; 4] = ["in-review", "approved", "rejected", "all"];
const LANGUAGES: [&str; 5] = ["ur", "en", "pa", "sd", "ps"];

/// A filter: `any` (the empty value) first, then each value, the current one selected.
fn choice(name: &str, label: &str, any: &str, values: &[&str], current: &str) -> Markup {
    html! {
        select name=(name) aria-label=(label) {
            option value="" { (any) }
            @for v in values {
                option selected[*v == current] { (v) }
            }
        }
    }
}

pub fn queue(caller: &Caller, rows: &[QueueRow<'_>], filters: &Filters<'_>) -> Markup {
    let csrf = caller.csrf.as_deref().unwrap_or_default();
    let body = html! {
        h1 { "Review queue" }
        form.filters method="get" {
            // No status means the default, in review.
            (choice("status", "Status", "in-review", &STATUSES, filters.status))
            (choice("language", "Language", "any language", &LANGUAGES, filters.language))
            (choice("subject", "Subject", "any subject", filters.subjects, filters.subject))
            button { "Filter" }
        }
        // Bulk approval: the checkboxes belong to this form.
        form #bulk method="post" action="/review/bulk-approve" {
            (csrf_field(csrf))
            button #bulk-approve { "Approve selected videos" }
            " "
            span.note { "Only videos whose caption tracks are all approved can be selected." }
        }
        table #queue {
            thead {
                tr {
                    th { span.visually-hidden { "Select" } }
                    th { span.visually-hidden { "Poster" } }
                    th { "Video" }
                    th { "Duration" }
                    th { "Language" }
                    th { "Subject" }
                    th { "Caption tracks" }
                    th { "Weakest confidence" }
                    th { "State" }
                }
            }
            tbody {
                @for r in rows {
                    tr.video-row data-video=(r.id) {
                        td {
                            input type="checkbox" form="bulk" name={ "video_" (r.id) }
                                disabled[!r.tracks_approved()]
                                aria-label={ "Select " (r.title) };
                        }
                        td.poster {
                            @if let Some(p) = r.poster {
                                img src={ "/media/" (r.id) "/" (p) } alt="" loading="lazy" width="54" height="96";
                            }
                        }
                        td { a href={ "/review/" (r.id) } { (r.title) } }
                        td { (crate::view::minutes(r.duration_s)) }
                        td { (r.language) }
                        td { (r.subject) }
                        td {
                            @for (i, t) in r.tracks.iter().enumerate() {
                                @if i > 0 { br; }
                                (t.track) " " (t.status)
                            }
                        }
                        td { (format!("{:.2}", r.weakest)) }
                        td { (r.state) }
                    }
                }
            }
        }
        p.note { (rows.len()) " video(s), weakest captions first." }
    };
    page("Review queue", Some(caller), body)
}

/// What a bulk approval did to each video chosen.
pub fn bulk_result(caller: &Caller, results: &[(String, Result<(), String>)]) -> Markup {
    let approved = results.iter().filter(|(_, r)| r.is_ok()).count();
    let body = html! {
        h1 { "Bulk approval" }
        p { (approved) " of " (results.len()) " video(s) approved." }
        ul #bulk-result {
            @for (id, r) in results {
                li data-video=(id) {
                    a href={ "/review/" (id) } { (id) } ": "
                    @match r {
                        Ok(()) => { "approved" }
                        Err(why) => { span.error { "not approved: " (why) } }
                    }
                }
            }
        }
        p { a href="/review" { "Back to the queue" } }
    };
    page("Bulk approval", Some(caller), body)
}

/// What the video page shows; the handler fills it from a `VideoView`.
pub struct VideoPage<'a> {
    pub id: &'a str,
    pub title: &'a str,
    /// The upload's original name.
    pub file: &'a str,
    pub duration_s: f64,
    pub state: &'a str,
    pub language: &'a str,
    /// Paths under the video's media, as the manifest names them.
    pub hls_master: &'a str,
    pub mp4: Option<&'a str>,
    pub poster: Option<&'a str>,
    /// The caption editor's peak levels (`waveform.json`), when the run made them.
    pub waveform: Option<&'a str>,
    /// The renditions' frame rate: a nudge moves a cue edge by one frame.
    pub fps: u32,
    /// The style rules the editor checks each cue against.
    pub rules: &'a Rules,
    pub tracks: &'a [TrackView],
    /// Every caption version of every track, oldest first.
    pub history: &'a [CaptionVersion],
    /// The curators' glossary of each track's language.
    pub glossaries: &'a BTreeMap<String, Vec<GlossaryEntry>>,
    /// Platform exports, per language with an approved track (approved
    /// videos only).
    pub exports: &'a [ExportRow],
    /// Curators' priority (1 high, 0 normal, -1 low): what a size-budgeted
    /// offline bundle takes first.
    pub priority: i8,
    pub tags: Option<&'a Tags>,
    pub tags_version: i64,
    /// The subject filed now (off-topic when none).
    pub subject: &'a str,
    pub taxonomy: &'a Taxonomy,
}

/// Where one language's platform export stands.
pub struct ExportRow {
    pub language: String,
    pub state: ExportState,
}

pub enum ExportState {
    None,
    Running,
    Ready,
    Failed(String),
}

/// Exports of an approved video: an MP4 with captions burned in per language.
fn exports_section(video: &str, rows: &[ExportRow], csrf: &str) -> Markup {
    html! {
        @if !rows.is_empty() {
            section #exports {
                h2 { "For short-video platforms" }
                p.note { "A 1080×1920 MP4 with the approved captions burned in, inside the platforms' safe area." }
                ul {
                    @for r in rows {
                        li.export data-language=(r.language) {
                            b { (r.language) } " "
                            @match &r.state {
                                ExportState::Ready => {
                                    a.download href={ "/review/" (video) "/exports/" (r.language) ".mp4" } download { "Download MP4" }
                                    " "
                                }
                                ExportState::Running => { span.state { "being made… (reload to see it)" } " " }
                                ExportState::Failed(why) => { span.error { "failed: " (why) } " " }
                                ExportState::None => {}
                            }
                            @if !matches!(r.state, ExportState::Running) {
                                form.inline method="post" action={ "/review/" (video) "/export" } {
                                    (csrf_field(csrf))
                                    input type="hidden" name="language" value=(r.language);
                                    button.make-export {
                                        @if matches!(r.state, ExportState::Ready) { "Make again" } @else { "Make MP4" }
                                        span.visually-hidden { " with " (r.language) " captions" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The editor's keyboard shortcuts: they work while typing in a cue, so
/// each takes Alt.
const SHORTCUTS: [(&str, &str); 9] = [
    ("Alt+K", "play or pause"),
    ("Alt+↑ / Alt+↓", "previous / next cue (seeks to it)"),
    (
        "Alt+[ / Alt+]",
        "move the cue's start one frame earlier / later",
    ),
    (
        "Alt+Shift+[ / Alt+Shift+]",
        "move the cue's end one frame earlier / later",
    ),
    (
        "Alt+S",
        "split the cue at the playhead (at the cursor's word, if typing)",
    ),
    ("Alt+M", "merge the cue with the next"),
    (
        "Alt+← / Alt+→",
        "shift this and every following cue 0.1 s earlier / later",
    ),
    ("Alt+G", "apply the glossary to the cue"),
    ("Alt+Enter", "save the track"),
];

pub fn video(caller: &Caller, v: &VideoPage<'_>) -> Markup {
    let csrf = caller.csrf.as_deref().unwrap_or_default();
    let media = |rel: &str| format!("/media/{}/{rel}", v.id);
    let tags = v.tags;
    let current_band = tags
        .and_then(|t| t.grade_band.as_ref())
        .map_or("", |b| b.id.as_str());
    let hashtags = tags.map(|t| t.hashtags.join(" ")).unwrap_or_default();
    let topic = tags.and_then(Tags::topic).map_or("", |t| t.id.as_str());
    // The terms found for the decision, and (for a video called off-topic)
    // the STEM terms that argued the other way.
    let terms = |against: bool| {
        tags.map(|t| {
            t.evidence
                .iter()
                .filter(|e| e.against == against)
                .take(12)
                .map(|e| e.term.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    let evidence = terms(false);
    // Only while the call is off-topic: a curator who made it a lesson has
    // answered them.
    let stem_terms = if tags.is_some_and(|t| !t.stem) {
        terms(true)
    } else {
        String::new()
    };
    // What the learned model said, and on which words.
    let classifier = tags.and_then(|t| t.classifier.as_ref()).map(|c| {
        let classes = c
            .probabilities
            .iter()
            .map(|p| format!("{} {:.2}", p.class, p.probability))
            .collect::<Vec<_>>()
            .join(", ");
        let right = c.call_right.map_or_else(String::new, |r| {
            format!(
                "; calls this sure were right {:.1}% of the time on transcripts it had not learned from",
                100.0 * r
            )
        });
        format!("{classes}; words: {}{right}", c.words.join(", "))
    });
    let subjects = v
        .taxonomy
        .subjects
        .iter()
        .map(|s| (s.id.as_str(), s.label.as_str()))
        .chain([(OFF_TOPIC, "Not STEM (off-topic)")]);
    let r = v.rules;
    let body = html! {
        h1 { (v.title) }
        p.meta {
            (v.file) " · " (format!("{:.1}", v.duration_s)) " s · state "
            b #video-state { (v.state) }
            " · language " (v.language)
        }
        div.review #workbench data-video=(v.id) data-fps=(v.fps)
            data-max-line=(r.max_line_graphemes) data-max-lines=(r.max_lines)
            data-min-duration=(r.min_duration) data-max-duration=(r.max_duration)
            data-max-cps=(r.max_cps) data-min-gap=(r.min_gap) {
            div.player {
                // Safari plays the HLS source natively; elsewhere review.js
                // hands the same master playlist to hls.js (Media Source
                // Extensions), and the MP4 is the last resort.
                script src="/static/hls.light.min.js" {}
                video #player controls playsinline preload="metadata" crossorigin="anonymous"
                    poster=[v.poster.map(media)] data-hls=(media(v.hls_master)) {
                    source src=(media(v.hls_master)) type="application/vnd.apple.mpegurl";
                    @if let Some(mp4) = v.mp4 {
                        source src=(media(mp4)) type="video/mp4";
                    }
                    @for (i, t) in v.tracks.iter().enumerate() {
                        track kind="subtitles" srclang=(t.language) label=(t.track)
                            src={ "/captions/" (v.id) "/" (t.track) ".vtt" } default[i == 0];
                    }
                }
                // The audio's peaks with the cues over them; review.js draws
                // it and seeks or moves a cue edge where it is clicked.
                canvas #waveform width="720" height="96" data-src=[v.waveform.map(media)]
                    role="img" aria-label="Waveform of the audio with the cues of the track being edited; click to seek, drag a cue edge to move it" {}
                p {
                    label {
                        "Caption track: "
                        select #track-select {
                            @for t in v.tracks {
                                option value=(t.track) { (t.track) " (" (t.status) ")" }
                            }
                        }
                    }
                }
                details #shortcuts {
                    summary { "Keyboard shortcuts" }
                    dl {
                        @for (keys, what) in SHORTCUTS {
                            dt { kbd { (keys) } }
                            dd { (what) }
                        }
                    }
                }
                form.decision.video-decision method="post" action={ "/review/" (v.id) "/decision" } {
                    (csrf_field(csrf))
                    input name="reason" placeholder="reason (for a rejection)" aria-label="Reason for rejecting the video";
                    button name="decision" value="approve" id="approve-video" { "Approve video" }
                    button name="decision" value="reject" id="reject-video" { "Reject video" }
                }
                form.priority method="post" action={ "/review/" (v.id) "/priority" } {
                    (csrf_field(csrf))
                    label {
                        "Priority in offline bundles "
                        select name="priority" {
                            @for (value, name) in [(1, "high"), (0, "normal"), (-1, "low")] {
                                option value=(value) selected[v.priority == value] { (name) }
                            }
                        }
                    }
                    " "
                    button #set-priority { "Set priority" }
                }
                (exports_section(v.id, v.exports, csrf))
                form.tags method="post" action={ "/review/" (v.id) "/tags" } {
                    h2 { "Tags " small { "v" (v.tags_version) } }
                    (csrf_field(csrf))
                    label {
                        "Subject "
                        select name="subject" {
                            @if v.subject == UNDETERMINED {
                                option value="" selected disabled { "Undetermined: choose" }
                            }
                            @for (id, label) in subjects {
                                option value=(id) selected[id == v.subject] { (label) }
                            }
                        }
                    }
                    " "
                    label { "Topic " input name="topic" value=(topic); }
                    label {
                        "Grade band "
                        select name="grade_band" {
                            option value="" { "unknown" }
                            @for b in &v.taxonomy.grade_bands {
                                option value=(b.id) selected[b.id == current_band] { (b.label) }
                            }
                        }
                    }
                    label { "Hashtags " input name="hashtags" value=(hashtags) size="40"; }
                    button { "Save tags" }
                    p.note { "Evidence: " (evidence) }
                    @if !stem_terms.is_empty() {
                        p.note.against { "STEM terms found all the same: " (stem_terms) }
                    }
                    @if let Some(c) = &classifier {
                        p.note.classifier { "Text classifier: " (c) }
                    }
                }
            }
            div.cue-list {
                @for (i, t) in v.tracks.iter().enumerate() {
                    @let glossary = v.glossaries.get(&t.language).map_or(&[][..], Vec::as_slice);
                    (track_panel(v.id, t, v.history, glossary, csrf, i == 0))
                }
            }
        }
    };
    page(v.title, Some(caller), body)
}

/// The glossary as the editor's script reads it: `[[term, [variants…]], …]`.
fn glossary_json(glossary: &[GlossaryEntry]) -> String {
    let pairs: Vec<(&str, &[String])> = glossary
        .iter()
        .map(|g| (g.term.as_str(), g.variants.as_slice()))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

/// One caption track: the editing tools, its cues as one editable list,
/// its glossary, its history, and the approve/reject form. Only the first
/// track's panel starts visible; `review.js` shows the one picked in
/// `#track-select`.
fn track_panel(
    video: &str,
    t: &TrackView,
    history: &[CaptionVersion],
    glossary: &[GlossaryEntry],
    csrf: &str,
    first: bool,
) -> Markup {
    // Right-to-left lines in a Nastaliq font (class "rtl" in review.css).
    let rtl = bidi::is_rtl_language(&t.language);
    let dir = if rtl { "rtl" } else { "ltr" };
    let form_id = format!("cues-{}", t.track);
    html! {
        section.track-panel data-track=(t.track) data-lang=(t.language)
            data-glossary=(glossary_json(glossary)) hidden[!first] {
            h2 {
                (t.track) " "
                small {
                    "v" (t.version) " by " (t.author) " · " (t.status)
                    @if let Some(r) = &t.reason { " (" (r) ")" }
                }
            }
            // The cue at the playhead, as a viewer reads it.
            p.preview.rtl[rtl] lang=(t.language) dir=(dir) aria-live="off" {
                (t.cues.first().map(|c| bidi::strip_marks(&c.text)).unwrap_or_default())
            }
            div.tools role="toolbar" aria-label={ "Editing tools for " (t.track) } {
                button.split type="button" title="Alt+S" { "Split at playhead" }
                button.merge type="button" title="Alt+M" { "Merge with next" }
                button.nudge type="button" data-edge="start" data-frames="-1" title="Alt+[" { "Start −1 frame" }
                button.nudge type="button" data-edge="start" data-frames="1" title="Alt+]" { "Start +1 frame" }
                button.nudge type="button" data-edge="end" data-frames="-1" title="Alt+Shift+[" { "End −1 frame" }
                button.nudge type="button" data-edge="end" data-frames="1" title="Alt+Shift+]" { "End +1 frame" }
                label { "Shift this and following cues by "
                    input.shift-by type="number" step="0.01" value="0.5" size="5"; " s" }
                button.shift type="button" { "Shift" }
            }
            div.tools.find role="search" aria-label={ "Find and replace in " (t.track) } {
                label { "Find " input.find-text type="text" size="14" lang=(t.language) dir=(dir); }
                label { "Replace with " input.replace-text type="text" size="14" lang=(t.language) dir=(dir); }
                button.replace-all type="button" { "Replace all" }
                button.apply-glossary type="button" title="Alt+G applies to one cue" { "Apply glossary to every cue" }
                output.tool-result {}
            }
            p.style-summary role="status" {}
            form.cues id=(form_id) method="post" action={ "/review/" (video) "/captions/" (t.track) } {
                (csrf_field(csrf))
                input type="hidden" name="n" value=(t.cues.len());
                ol {
                    @for (i, c) in t.cues.iter().enumerate() {
                        (cue_row(i, c, &t.language, dir, rtl))
                    }
                }
                button.save-captions title="Alt+Enter" { "Save captions (new version)" }
            }
            (glossary_panel(video, &t.language, glossary, csrf))
            (track_history(history, &t.track))
            form.decision method="post" action={ "/review/" (video) "/captions/" (t.track) "/decision" } {
                (csrf_field(csrf))
                input name="reason" placeholder="reason (for a rejection)" aria-label={ "Reason for rejecting " (t.track) };
                button.approve-track name="decision" value="approve" { "Approve track" }
                button.reject-track name="decision" value="reject" { "Reject track" }
            }
        }
    }
}

/// A language's glossary: preferred spellings and what they replace, with
/// forms to add or change a term and to remove one.
fn glossary_panel(video: &str, language: &str, glossary: &[GlossaryEntry], csrf: &str) -> Markup {
    let action = format!("/review/glossary/{language}");
    html! {
        details.glossary {
            summary { "Glossary (" (language) ", " (glossary.len()) " terms)" }
            ul {
                @for g in glossary {
                    li.term lang=(language) {
                        b { (g.term) } " ← " (g.variants.join(", "))
                        " "
                        span.note { "(" (g.author) ")" }
                        form.inline method="post" action={ (action) "/remove" } {
                            (csrf_field(csrf))
                            input type="hidden" name="video" value=(video);
                            input type="hidden" name="term" value=(g.term);
                            button.remove-term { "Remove " span.visually-hidden { (g.term) } }
                        }
                    }
                }
            }
            form.add-term method="post" action=(action) {
                (csrf_field(csrf))
                input type="hidden" name="video" value=(video);
                label { "Preferred spelling " input name="term" required lang=(language); }
                " "
                label { "Replaces (comma-separated) " input name="variants" required size="30" lang=(language); }
                " "
                button { "Add to glossary" }
            }
        }
    }
}

fn cue_row(i: usize, c: &Cue, lang: &str, dir: &str, rtl: bool) -> Markup {
    let low = c.confidence.is_some_and(|x| x < 0.6);
    let (s, e) = (fmt_time(c.start), fmt_time(c.end));
    let unsure: Vec<String> = c
        .words
        .iter()
        .filter(|w| w.probability < 0.5)
        .map(|w| bidi::strip_marks(&w.text).trim().to_owned())
        .filter(|w| !w.is_empty())
        .collect();
    html! {
        li.cue.low[low] data-start=(s) data-end=(e) {
            button.cue-time type="button" aria-label={ "Play cue " (i + 1) " from " (s) " s" } { "▶ " (s) }
            input.t.start name={ "start_" (i) } value=(s) size="7" inputmode="decimal" aria-label={ "Cue " (i + 1) " start" };
            " – "
            input.t.end name={ "end_" (i) } value=(e) size="7" inputmode="decimal" aria-label={ "Cue " (i + 1) " end" };
            span.conf {
                @if let Some(x) = c.confidence { (format!("{x:.2}")) }
            }
            textarea name={ "text_" (i) } aria-label={ "Cue " (i + 1) " text" } rows="2" lang=(lang) dir=(dir) class=(if rtl { "rtl" } else { "" }) {
                (bidi::strip_marks(&c.text))
            }
            @if !unsure.is_empty() {
                p.unsure {
                    "Whisper was unsure of: "
                    @for (k, w) in unsure.iter().enumerate() {
                        @if k > 0 { " " }
                        mark lang=(lang) dir=(dir) class=[rtl.then_some("rtl")] { (w) }
                    }
                }
            }
            p.style-msg {}
            div.gloss {}
        }
    }
}

fn fmt_time(t: f64) -> String {
    format!("{t:.3}")
}

/// The versions of one track, newest first: who changed it, when, and to what status.
fn track_history(history: &[CaptionVersion], track: &str) -> Markup {
    html! {
        details.history open {
            summary { "History" }
            ol {
                @for h in history.iter().filter(|h| h.track == track).rev() {
                    li {
                        "v" (h.version) " · " (h.status) " · " (h.author) " · " (crate::rfc3339(h.created_ms))
                        @if let Some(r) = &h.reason { " · " (r) }
                    }
                }
            }
        }
    }
}

/// What curators changed in Whisper's captions before approving them.
pub fn edit_stats(caller: &Caller, stats: &[crate::stats::EditStats]) -> Markup {
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let body = html! {
        h1 { "Curator edits" }
        p {
            "For every approved caption track: how much of Whisper's version curators changed "
            "before approving it (words and characters edited, cues kept but moved in time), "
            "by language, model and week of approval."
        }
        @if stats.is_empty() {
            p #no-edits { "No approved caption tracks yet." }
        } @else {
            table #edit-stats {
                thead {
                    tr {
                        th { "Language" } th { "Track" } th { "Model" } th { "Week" }
                        th { "Tracks" } th { "Words changed" } th { "Characters changed" }
                        th { "Cues re-timed" }
                    }
                }
                tbody {
                    @for g in stats {
                        tr.edit-row data-language=(g.language) data-model=(g.model) data-week=(g.week) {
                            td { (g.language) } td { (g.kind) } td { (g.model) } td { (g.week) }
                            td { (g.tracks) }
                            td.words { (pct(g.word_change_rate)) " (" (g.words_changed) " of " (g.words) ")" }
                            td { (pct(g.char_change_rate)) }
                            td { (g.cues_retimed) " of " (g.cues) }
                        }
                    }
                }
            }
        }
    };
    page("Curator edits", Some(caller), body)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use stemfeed_captions::segment::Rules;
    use stemfeed_captions::{Cue, Word};
    use stemfeed_queue::{CaptionVersion, GlossaryEntry, Role};
    use stemfeed_tagging::{Document, Tagger, Taxonomy};

    use super::{Filters, QueueRow, VideoPage};
    use crate::Caller;
    use crate::view::TrackView;

    const XSS: &str = "<script>alert(1)</script>";
    const XSS_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
    /// Breaks out of an attribute, whichever quote it is written in.
    const QUOTES: &str = "x\" onmouseover='alert(2)' y=\"";
    const URDU: &str = "کشش ثقل گیند کو نیچے کھینچتی ہے";

    fn caller() -> Caller {
        Caller {
            name: format!("ayesha{XSS}"),
            role: Role::Curator,
            csrf: Some(QUOTES.to_owned()),
        }
    }

    fn track(track: &str, language: &str, cues: Vec<Cue>) -> TrackView {
        TrackView {
            track: track.to_owned(),
            language: language.to_owned(),
            kind: "transcript".to_owned(),
            status: format!("edited{XSS}"),
            reason: Some(format!("because{XSS}")),
            version: 2,
            author: format!("bilal{XSS}"),
            cues,
        }
    }

    fn hostile_tracks() -> Vec<TrackView> {
        let mut cue = Cue::new(0.5, 2.25, format!("Gravity {XSS} it's \"so\""));
        cue.confidence = Some(0.4);
        cue.words = vec![
            Word {
                text: " Gravity".into(),
                start: 0.5,
                end: 1.0,
                probability: 0.9,
            },
            Word {
                text: format!(" {XSS}"),
                start: 1.0,
                end: 2.25,
                probability: 0.3,
            },
        ];
        let urdu = Cue::new(0.0, 1.5, format!("\u{200F}{URDU}"));
        vec![
            track(&format!("en.transcript{QUOTES}"), "en", vec![cue]),
            track("ur.transcript", "ur", vec![urdu]),
        ]
    }

    fn render_video(tracks: &[TrackView], history: &[CaptionVersion]) -> String {
        let tax = Taxonomy::built_in();
        let mut tags = Tagger::new(tax.clone()).tag(&Document {
            title: "Why does the ball fall? Gravity and force".into(),
            language: Some("en".into()),
            ..Document::default()
        });
        tags.hashtags = vec![QUOTES.to_owned(), "#physics".to_owned()];
        tags.classifier
            .as_mut()
            .expect("the title alone names physics")
            .words
            .push(XSS.to_owned());
        // Called off-topic, with a STEM term it outweighed.
        tags.stem = false;
        tags.evidence.push(stemfeed_tagging::Evidence {
            term: format!("force{XSS}"),
            matched: "force".into(),
            counts_for: "force-and-motion".into(),
            source: stemfeed_tagging::Source::Title,
            start: None,
            end: None,
            against: true,
        });
        let title = format!("Ball {XSS} \"drop\" 'test'");
        let glossaries = BTreeMap::from([(
            "en".to_owned(),
            vec![GlossaryEntry {
                language: "en".into(),
                term: format!("gravity{XSS}"),
                variants: vec![QUOTES.to_owned(), "gravty".to_owned()],
                author: format!("bilal{XSS}"),
                created_ms: 0,
            }],
        )]);
        let rules = Rules::default();
        let page = VideoPage {
            id: "v1",
            title: &title,
            file: "ball<b>.mp4",
            duration_s: 5.5,
            state: "in-review",
            language: "en",
            hls_master: "hls/master.m3u8",
            mp4: Some("renditions/360p.mp4"),
            poster: Some("poster.jpg"),
            waveform: Some("waveform.json"),
            fps: 30,
            rules: &rules,
            tracks,
            history,
            glossaries: &glossaries,
            exports: &[],
            priority: 0,
            tags: Some(&tags),
            tags_version: 3,
            subject: "physics",
            taxonomy: &tax,
        };
        super::video(&caller(), &page).into_string()
    }

    fn assert_no_markup_from_values(html: &str) {
        // The only scripts are the page's own files (hls.js on a video page).
        let own = html
            .matches("<script src=\"/static/review.js\"></script>")
            .count()
            + html
                .matches("<script src=\"/static/hls.light.min.js\"></script>")
                .count();
        assert_eq!(html.matches("<script").count(), own, "{html}");
        assert!(html.contains("<script src=\"/static/review.js\"></script>"));
        assert!(!html.contains("alert(1)</script>"), "{html}");
        // A double quote never closes an attribute; a single quote is
        // harmless inside the double-quoted values maud writes.
        assert!(!html.contains("x\" onmouseover"), "{html}");
        assert!(!html.contains(" onmouseover='alert(2)' y=\""), "{html}");
        assert!(!html.contains(" style="), "{html}");
    }

    #[test]
    fn hostile_values_come_out_escaped_on_the_video_page() {
        let tracks = hostile_tracks();
        let history = vec![CaptionVersion {
            video_id: "v1".into(),
            track: tracks[0].track.clone(),
            version: 1,
            author: format!("whisper{XSS}"),
            created_ms: 0,
            status: "ok".into(),
            reason: Some(format!("why{XSS}")),
            cues: "[]".into(),
        }];
        let html = render_video(&tracks, &history);
        assert_no_markup_from_values(&html);
        let quotes = "x&quot; onmouseover='alert(2)' y=&quot;";
        for expected in [
            // Text: title, curator, cue text and words, author, status, reason, history.
            format!("<title>Ball {XSS_ESCAPED} &quot;drop&quot; 'test' · stemfeed</title>"),
            format!("<h1>Ball {XSS_ESCAPED} &quot;drop&quot; 'test'</h1>"),
            format!("<span class=\"who\">ayesha{XSS_ESCAPED} (curator)</span>"),
            "ball&lt;b&gt;.mp4 · 5.5 s".to_owned(),
            format!("Whisper was unsure of: <mark lang=\"en\" dir=\"ltr\">{XSS_ESCAPED}</mark></p>"),
            // The glossary: terms, variants and authors as text and as the
            // script's data.
            format!("<b>gravity{XSS_ESCAPED}</b> ← {quotes}, gravty"),
            format!("<input type=\"hidden\" name=\"term\" value=\"gravity{XSS_ESCAPED}\">"),
            "data-glossary=\"[[&quot;gravity&lt;script&gt;alert(1)&lt;/script&gt;&quot;,[&quot;x\\&quot; onmouseover='alert(2)' y=\\&quot;&quot;,&quot;gravty&quot;]]]\"".to_owned(),
            format!(">Gravity {XSS_ESCAPED} it's &quot;so&quot;</textarea>"),
            format!("v2 by bilal{XSS_ESCAPED} · edited{XSS_ESCAPED} (because{XSS_ESCAPED})"),
            format!(
                "<li>v1 · ok · whisper{XSS_ESCAPED} · 1970-01-01T00:00:00Z · why{XSS_ESCAPED}</li>"
            ),
            // Attributes: CSRF token, track name (data, label, form action), hashtags.
            format!("<input type=\"hidden\" name=\"csrf\" value=\"{quotes}\">"),
            format!("data-track=\"en.transcript{quotes}\""),
            format!("label=\"en.transcript{quotes}\""),
            format!("action=\"/review/v1/captions/en.transcript{quotes}/decision\""),
            format!("<input name=\"hashtags\" value=\"{quotes} #physics\" size=\"40\">"),
            // The text classifier's view (its ranking is the model's
            // business), its words as text.
            "<p class=\"note classifier\">Text classifier: ".to_owned(),
            "physics 0.".to_owned(),
            "calls this sure were right ".to_owned(),
            format!("{XSS_ESCAPED}</p>"),
            // Terms that argue against the decision, apart and escaped.
            format!("STEM terms found all the same: force{XSS_ESCAPED}</p>"),
        ] {
            assert!(html.contains(&expected), "missing {expected}\n{html}");
        }
    }

    #[test]
    fn urdu_tracks_read_right_to_left() {
        let tracks = hostile_tracks();
        let html = render_video(&tracks, &[]);
        // The first track shows, the others wait hidden for the track picker.
        assert!(html.contains("<section class=\"track-panel\" data-track=\"ur.transcript\" data-lang=\"ur\" data-glossary=\"[]\" hidden>"), "{html}");
        assert!(
            html.contains(&format!(
                "<p class=\"preview rtl\" lang=\"ur\" dir=\"rtl\" aria-live=\"off\">{URDU}</p>"
            )),
            "{html}"
        );
        assert!(html.contains(&format!(
            "<textarea name=\"text_0\" aria-label=\"Cue 1 text\" rows=\"2\" lang=\"ur\" dir=\"rtl\" class=\"rtl\">{URDU}</textarea>"
        )), "{html}");
        // Left-to-right tracks say so, and are not set in the Nastaliq font.
        assert!(
            html.contains("<p class=\"preview\" lang=\"en\" dir=\"ltr\" aria-live=\"off\">"),
            "{html}"
        );
        assert!(
            html.contains("lang=\"en\" dir=\"ltr\" class=\"\">"),
            "{html}"
        );
    }

    #[test]
    fn the_queue_escapes_what_submitters_named() {
        let tracks = hostile_tracks();
        let title = format!("{URDU} {XSS}");
        let rows = [QueueRow {
            id: "v1",
            title: &title,
            language: "ur",
            subject: "physics",
            tracks: &tracks,
            weakest: 0.4,
            state: "in-review",
            duration_s: 75.4,
            poster: Some("poster.jpg"),
        }];
        let subjects = ["physics", "chemistry"];
        let filters = Filters {
            status: "in-review",
            language: "ur",
            subject: "",
            subjects: &subjects,
        };
        let html = super::queue(&caller(), &rows, &filters).into_string();
        assert_no_markup_from_values(&html);
        for expected in [
            format!(
                "<td><a href=\"/review/v1\">{URDU} {XSS_ESCAPED}</a></td><td>1:15</td><td>ur</td>"
            ),
            // Tracks not all approved: the video cannot be bulk-approved.
            format!(
                "<input type=\"checkbox\" form=\"bulk\" name=\"video_v1\" disabled aria-label=\"Select {URDU} {XSS_ESCAPED}\">"
            ),
            "<img src=\"/media/v1/poster.jpg\" alt=\"\" loading=\"lazy\" width=\"54\" height=\"96\">".to_owned(),
            format!(
                "<td>en.transcriptx&quot; onmouseover='alert(2)' y=&quot; edited{XSS_ESCAPED}<br>ur.transcript edited{XSS_ESCAPED}</td>"
            ),
            "<td>0.40</td><td>in-review</td></tr>".to_owned(),
            "<select name=\"status\" aria-label=\"Status\"><option value=\"\">in-review</option><option selected>in-review</option>".to_owned(),
            "<option value=\"\">any language</option><option selected>ur</option>".to_owned(),
            "<p class=\"note\">1 video(s), weakest captions first.</p>".to_owned(),
        ] {
            assert!(html.contains(&expected), "missing {expected}\n{html}");
        }
    }

    #[test]
    fn login_pages_carry_no_caller_bar() {
        let html = super::login_refused("Wrong name or password.", true).into_string();
        assert!(!html.contains("<nav>"));
        assert!(html.contains("<h1>Log in</h1><p class=\"error\">Wrong name or password.</p><p><a href=\"/login\">Try again</a></p>"));
        let form = super::login_form().into_string();
        assert!(form.contains("<input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required>"), "{form}");
    }
}
