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

use maud::{DOCTYPE, Markup, html};
use stemfeed_captions::{Cue, bidi};
use stemfeed_queue::CaptionVersion;
use stemfeed_tagging::{Tags, Taxonomy};

use super::OFF_TOPIC;
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
    let body = html! {
        h1 { "Review queue" }
        form.filters method="get" {
            // No status means the default, in review.
            (choice("status", "Status", "in-review", &STATUSES, filters.status))
            (choice("language", "Language", "any language", &LANGUAGES, filters.language))
            (choice("subject", "Subject", "any subject", filters.subjects, filters.subject))
            button { "Filter" }
        }
        table #queue {
            thead {
                tr {
                    th { "Video" }
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
                        td { a href={ "/review/" (r.id) } { (r.title) } }
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
    pub tracks: &'a [TrackView],
    /// Every caption version of every track, oldest first.
    pub history: &'a [CaptionVersion],
    pub tags: Option<&'a Tags>,
    pub tags_version: i64,
    /// The subject filed now (off-topic when none).
    pub subject: &'a str,
    pub taxonomy: &'a Taxonomy,
}

pub fn video(caller: &Caller, v: &VideoPage<'_>) -> Markup {
    let csrf = caller.csrf.as_deref().unwrap_or_default();
    let media = |rel: &str| format!("/media/{}/{rel}", v.id);
    let tags = v.tags;
    let current_band = tags
        .and_then(|t| t.grade_band.as_ref())
        .map_or("", |b| b.id.as_str());
    let hashtags = tags.map(|t| t.hashtags.join(" ")).unwrap_or_default();
    let topic = tags.and_then(Tags::topic).map_or("", |t| t.id.as_str());
    let evidence = tags
        .map(|t| {
            t.evidence
                .iter()
                .take(12)
                .map(|e| e.term.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let subjects = v
        .taxonomy
        .subjects
        .iter()
        .map(|s| (s.id.as_str(), s.label.as_str()))
        .chain([(OFF_TOPIC, "Not STEM (off-topic)")]);
    let body = html! {
        h1 { (v.title) }
        p.meta {
            (v.file) " · " (format!("{:.1}", v.duration_s)) " s · state "
            b #video-state { (v.state) }
            " · language " (v.language)
        }
        div.review {
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
                form.decision.video-decision method="post" action={ "/review/" (v.id) "/decision" } {
                    (csrf_field(csrf))
                    input name="reason" placeholder="reason (for a rejection)";
                    button name="decision" value="approve" id="approve-video" { "Approve video" }
                    button name="decision" value="reject" id="reject-video" { "Reject video" }
                }
                form.tags method="post" action={ "/review/" (v.id) "/tags" } {
                    h2 { "Tags " small { "v" (v.tags_version) } }
                    (csrf_field(csrf))
                    label {
                        "Subject "
                        select name="subject" {
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
                }
            }
            div.cue-list {
                @for (i, t) in v.tracks.iter().enumerate() {
                    (track_panel(v.id, t, v.history, csrf, i == 0))
                }
            }
        }
    };
    page(v.title, Some(caller), body)
}

/// One caption track: its cues as an editable list, its history, and the
/// approve/reject form. Only the first track's panel starts visible;
/// `review.js` shows the one picked in `#track-select`.
fn track_panel(
    video: &str,
    t: &TrackView,
    history: &[CaptionVersion],
    csrf: &str,
    first: bool,
) -> Markup {
    // Right-to-left lines in a Nastaliq font (class "rtl" in review.css).
    let rtl = bidi::is_rtl_language(&t.language);
    let dir = if rtl { "rtl" } else { "ltr" };
    html! {
        section.track-panel data-track=(t.track) data-lang=(t.language) hidden[!first] {
            h2 {
                (t.track) " "
                small {
                    "v" (t.version) " by " (t.author) " · " (t.status)
                    @if let Some(r) = &t.reason { " (" (r) ")" }
                }
            }
            form.cues method="post" action={ "/review/" (video) "/captions/" (t.track) } {
                (csrf_field(csrf))
                input type="hidden" name="n" value=(t.cues.len());
                ol {
                    @for (i, c) in t.cues.iter().enumerate() {
                        (cue_row(i, c, &t.language, dir, rtl))
                    }
                }
                button.save-captions { "Save captions (new version)" }
            }
            (track_history(history, &t.track))
            form.decision method="post" action={ "/review/" (video) "/captions/" (t.track) "/decision" } {
                (csrf_field(csrf))
                input name="reason" placeholder="reason (for a rejection)";
                button.approve-track name="decision" value="approve" { "Approve track" }
                button.reject-track name="decision" value="reject" { "Reject track" }
            }
        }
    }
}

fn cue_row(i: usize, c: &Cue, lang: &str, dir: &str, rtl: bool) -> Markup {
    let low = c.confidence.is_some_and(|x| x < 0.6);
    let (s, e) = (fmt_time(c.start), fmt_time(c.end));
    html! {
        li.cue.low[low] data-start=(s) data-end=(e) {
            button.cue-time type="button" { "▶ " (s) }
            input.t name={ "start_" (i) } value=(s) size="7" aria-label={ "Cue " (i + 1) " start" };
            " – "
            input.t name={ "end_" (i) } value=(e) size="7" aria-label={ "Cue " (i + 1) " end" };
            span.conf {
                @if let Some(x) = c.confidence { (format!("{x:.2}")) }
            }
            p.words.rtl[rtl] lang=(lang) dir=(dir) { (marked_words(c)) }
            textarea name={ "text_" (i) } aria-label={ "Cue " (i + 1) " text" } rows="2" lang=(lang) dir=(dir) class=(if rtl { "rtl" } else { "" }) {
                (bidi::strip_marks(&c.text))
            }
        }
    }
}

fn fmt_time(t: f64) -> String {
    format!("{t:.3}")
}

/// Cue text with low-confidence words marked.
fn marked_words(cue: &Cue) -> Markup {
    html! {
        @if cue.words.is_empty() {
            (bidi::strip_marks(&cue.text))
        } @else {
            @for (i, w) in cue.words.iter().enumerate() {
                @if i > 0 { " " }
                @let text = bidi::strip_marks(&w.text);
                @if w.probability < 0.5 {
                    mark title={ "confidence " (format!("{:.2}", w.probability)) } { (text.trim()) }
                } @else {
                    (text.trim())
                }
            }
        }
    }
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
    use stemfeed_captions::{Cue, Word};
    use stemfeed_queue::{CaptionVersion, Role};
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
        let title = format!("Ball {XSS} \"drop\" 'test'");
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
            tracks,
            history,
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
            format!("Gravity <mark title=\"confidence 0.30\">{XSS_ESCAPED}</mark></p>"),
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
        ] {
            assert!(html.contains(&expected), "missing {expected}\n{html}");
        }
    }

    #[test]
    fn urdu_tracks_read_right_to_left() {
        let tracks = hostile_tracks();
        let html = render_video(&tracks, &[]);
        // The first track shows, the others wait hidden for the track picker.
        assert!(html.contains("<section class=\"track-panel\" data-track=\"ur.transcript\" data-lang=\"ur\" hidden>"), "{html}");
        assert!(
            html.contains(&format!(
                "<p class=\"words rtl\" lang=\"ur\" dir=\"rtl\">{URDU}</p>"
            )),
            "{html}"
        );
        assert!(html.contains(&format!(
            "<textarea name=\"text_0\" aria-label=\"Cue 1 text\" rows=\"2\" lang=\"ur\" dir=\"rtl\" class=\"rtl\">{URDU}</textarea>"
        )), "{html}");
        // Left-to-right tracks say so, and are not set in the Nastaliq font.
        assert!(
            html.contains("<p class=\"words\" lang=\"en\" dir=\"ltr\">"),
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
                "<tr class=\"video-row\" data-video=\"v1\"><td><a href=\"/review/v1\">{URDU} {XSS_ESCAPED}</a></td>"
            ),
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
