//! `stemfeed eval asr DIR`: the real caption path (VAD, language choice,
//! Whisper with the profile's decoding, guards, cues) over a folder of
//! recordings with reference transcripts, scored per language. Operators
//! use it to compare models on their own data; the suite uses it as a
//! regression gate on `tests/asr-dev`.
//!
//! `DIR/refs.tsv` has a header and rows `file<TAB>language<TAB>reference`;
//! `language` is an ISO 639-1 code, or `music` for clips that hold no
//! speech (scored by the cues produced, which should be none).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use stemfeed_captions::score::Errors;
use stemfeed_captions::script::ScriptCounts;
use stemfeed_core::Config;
use stemfeed_pipeline::captioning::{self, Hints};
use stemfeed_pipeline::contract::StageSettings;

/// Longest a decode of one clip may take.
const DECODE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Word and character error rates of the caption path over DIR/refs.tsv.
    Asr(AsrEvalArgs),
}

#[derive(Debug, Args)]
pub struct AsrEvalArgs {
    /// Folder with refs.tsv and the audio files it names.
    dir: PathBuf,
    /// Installed model (default: the config's asr.model).
    #[arg(long)]
    model: Option<String>,
    /// Pipeline profile whose caption settings are used (default: short-form).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Beam size instead of the profile's.
    #[arg(long)]
    beam: Option<usize>,
    /// Let the caption path detect the language among the profile's instead
    /// of being told it (as a submitter's language hint does).
    #[arg(long)]
    detect: bool,
    /// Only clips of these languages (comma-separated; `music` included).
    #[arg(long, value_delimiter = ',')]
    languages: Vec<String>,
    /// Score another system's transcripts (TSV: file<TAB>hypothesis) instead
    /// of running stemfeed, with the same normalisation.
    #[arg(long)]
    hypotheses: Option<PathBuf>,
    /// Also write stemfeed's transcripts as file<TAB>hypothesis.
    #[arg(long)]
    save_hypotheses: Option<PathBuf>,
    /// Also write each clip's transcript track as WebVTT (`<clip>.vtt`) into
    /// this folder, to review how decoding changes move cues.
    #[arg(long)]
    cues_out: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone)]
struct Reference {
    file: String,
    language: String,
    text: String,
}

fn read_refs(dir: &Path) -> anyhow::Result<Vec<Reference>> {
    let path = dir.join("refs.tsv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut refs = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.splitn(3, '\t');
        let (Some(file), Some(language)) = (cols.next(), cols.next()) else {
            bail!(
                "{}:{}: expected file<TAB>language<TAB>reference",
                path.display(),
                n + 1
            );
        };
        if file.contains('/') || file.starts_with('.') {
            bail!(
                "{}:{}: {file:?} is not a file name in the folder",
                path.display(),
                n + 1
            );
        }
        refs.push(Reference {
            file: file.to_owned(),
            language: language.trim().to_owned(),
            text: cols.next().unwrap_or_default().trim().to_owned(),
        });
    }
    if refs.is_empty() {
        bail!("{}: no clips listed", path.display());
    }
    Ok(refs)
}

fn read_hypotheses(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(f, h)| (f.to_owned(), h.trim().to_owned()))
        .collect())
}

#[derive(Debug, Serialize)]
struct ClipResult {
    file: String,
    language: String,
    reference: String,
    hypothesis: String,
    /// Language the caption path chose (None: no speech found).
    detected: Option<String>,
    /// Status of the transcript track.
    status: Option<String>,
    /// What the guards removed from the transcript, and why.
    dropped: Vec<String>,
    cues: usize,
    #[serde(flatten)]
    errors: Errors,
    wer: f64,
    cer: f64,
    script: ScriptCounts,
    audio_s: f64,
    /// Caption time (not counting the model load or decoding the file).
    seconds: f64,
}

#[derive(Debug, Default, Serialize)]
struct LanguageResult {
    clips: usize,
    #[serde(flatten)]
    errors: Errors,
    wer: f64,
    cer: f64,
    /// Words in the script the product writes this language in, of all words.
    script_share: f64,
    /// Words per script over the language's clips.
    #[serde(skip)]
    script: ScriptCounts,
    /// Cues produced (for `music`: each one is a hallucination).
    cues: usize,
    audio_s: f64,
    seconds: f64,
    realtime_factor: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    beam_size: usize,
    detect: bool,
    system: String,
    model_load_s: f64,
    languages: BTreeMap<String, LanguageResult>,
    clips: Vec<ClipResult>,
}

/// The script a language's captions are written in (`None`: any).
fn expected_share(language: &str, s: &ScriptCounts) -> f64 {
    match language {
        "en" => s.share(s.latin),
        "ur" | "sd" | "pa" | "ps" => s.share(s.arabic),
        _ => 1.0,
    }
}

pub fn run(cmd: EvalCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let EvalCommand::Asr(args) = cmd;
    let mut refs = read_refs(&args.dir)?;
    if !args.languages.is_empty() {
        refs.retain(|r| args.languages.contains(&r.language));
    }
    let mut profile = crate::probe_cmd::load_profile(args.profile.as_deref())?;
    if let Some(beam) = args.beam {
        profile.captions.beam_size = beam.clamp(1, 10);
    }
    let mut settings = StageSettings::from(config);
    if let Some(m) = &args.model {
        settings.asr.model.clone_from(m);
    }
    let peer = args
        .hypotheses
        .as_deref()
        .map(read_hypotheses)
        .transpose()?;

    let tagger = stemfeed_pipeline::tag::tagger(&config.tagging)?;
    let mut model_load_s = 0.0;
    let model = if peer.is_none() {
        let store = stemfeed_models::ModelStore::new(&settings.models_dir);
        let installed = store.get(&settings.asr.model)?.with_context(|| {
            format!(
                "model {} is not installed; run `stemfeed models install default`",
                settings.asr.model
            )
        })?;
        let t = Instant::now();
        let m = stemfeed_asr::Model::load(&installed.file, settings.asr.gpu)?;
        model_load_s = t.elapsed().as_secs_f64();
        Some(m)
    } else {
        None
    };

    let mut clips = Vec::new();
    for r in &refs {
        let path = args.dir.join(&r.file);
        let speech = r.language != "music";
        let clip = if let Some(peer) = &peer {
            let hypothesis = peer.get(&r.file).cloned().unwrap_or_default();
            let cues = usize::from(!hypothesis.is_empty());
            scored(r, hypothesis, None, None, cues, 0.0, 0.0)
        } else {
            let declared = stemfeed_media::probe::probe(&path, crate::probe_cmd::PROBE_TIMEOUT)
                .with_context(|| format!("{}: probing", path.display()))?;
            let limit = stemfeed_media::DecodeLimit::for_declared(declared.duration_s);
            let pcm = stemfeed_media::audio::decode_to_asr_pcm(
                &path,
                limit,
                limit.samples_at(stemfeed_media::audio::ASR_RATE as u32),
                stemfeed_media::Watchdog::new(DECODE_TIMEOUT),
            )
            .with_context(|| format!("{}: decoding", path.display()))?;
            let hints = Hints {
                language: (speech && !args.detect).then(|| r.language.clone()),
                ..Hints::default()
            };
            let mut opts = captioning::options(&profile, &settings, &tagger, &hints, 30)?;
            // The transcript is what is scored; the translation would only cost time.
            opts.translate = false;
            let t = Instant::now();
            let result = stemfeed_asr::caption::caption(
                model.as_ref().expect("a model when stemfeed runs"),
                &pcm,
                &opts,
            )
            .with_context(|| format!("{}: captioning", path.display()))?;
            let seconds = t.elapsed().as_secs_f64();
            let transcript = result.tracks.iter().find(|t| t.kind == "transcript");
            let hypothesis = transcript
                .map(|t| {
                    t.track
                        .cues
                        .iter()
                        .map(|c| c.text.replace('\n', " "))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            if let (Some(dir), Some(t)) = (&args.cues_out, transcript) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join(format!("{}.vtt", r.file));
                std::fs::write(&path, stemfeed_captions::webvtt::write(&t.track))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let cues = result.tracks.iter().map(|t| t.track.cues.len()).sum();
            let audio_s = pcm.len() as f64 / f64::from(stemfeed_asr::SAMPLE_RATE);
            let mut clip = scored(
                r,
                hypothesis,
                result.language.as_ref().map(|l| l.language.clone()),
                transcript.map(|t| t.status.as_str().to_owned()),
                cues,
                audio_s,
                seconds,
            );
            clip.dropped = transcript.map(|t| t.dropped.clone()).unwrap_or_default();
            clip
        };
        if !args.json {
            eprintln!(
                "{:<40} {:<5} wer {:>5.1}% cer {:>5.1}% cues {:>2}  {}",
                clip.file,
                clip.language,
                clip.wer * 100.0,
                clip.cer * 100.0,
                clip.cues,
                clip.hypothesis
            );
        }
        clips.push(clip);
    }

    let mut languages: BTreeMap<String, LanguageResult> = BTreeMap::new();
    for c in &clips {
        let l = languages.entry(c.language.clone()).or_default();
        l.clips += 1;
        l.errors.add(c.errors);
        l.script.add(&c.script);
        l.cues += c.cues;
        l.audio_s += c.audio_s;
        l.seconds += c.seconds;
    }
    for (language, l) in &mut languages {
        l.wer = l.errors.wer();
        l.cer = l.errors.cer();
        l.realtime_factor = if l.audio_s > 0.0 {
            l.seconds / l.audio_s
        } else {
            0.0
        };
        l.script_share = expected_share(language, &l.script);
    }
    if let Some(path) = &args.save_hypotheses {
        let text: String = clips
            .iter()
            .map(|c| format!("{}\t{}\n", c.file, c.hypothesis.replace(['\t', '\n'], " ")))
            .collect();
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let report = Report {
        model: settings.asr.model.clone(),
        beam_size: profile.captions.beam_size,
        detect: args.detect,
        system: if peer.is_some() {
            format!(
                "hypotheses from {}",
                args.hypotheses
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            )
        } else {
            "stemfeed".to_owned()
        },
        model_load_s,
        languages,
        clips,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} · model {} · beam {} · {}",
            report.system,
            report.model,
            report.beam_size,
            if report.detect {
                "language detected"
            } else {
                "language given"
            }
        );
        println!(
            "{:<6} {:>5} {:>7} {:>7} {:>7} {:>5} {:>6}",
            "lang", "clips", "WER %", "CER %", "script", "cues", "RTF"
        );
        for (language, l) in &report.languages {
            println!(
                "{:<6} {:>5} {:>7.1} {:>7.1} {:>6.0}% {:>5} {:>6.2}",
                language,
                l.clips,
                l.wer * 100.0,
                l.cer * 100.0,
                l.script_share * 100.0,
                l.cues,
                l.realtime_factor
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn scored(
    r: &Reference,
    hypothesis: String,
    detected: Option<String>,
    status: Option<String>,
    cues: usize,
    audio_s: f64,
    seconds: f64,
) -> ClipResult {
    let language = if r.language == "music" {
        "en"
    } else {
        r.language.as_str()
    };
    let errors = Errors::of(language, &r.text, &hypothesis);
    ClipResult {
        file: r.file.clone(),
        language: r.language.clone(),
        reference: r.text.clone(),
        script: ScriptCounts::of(&hypothesis),
        hypothesis,
        detected,
        status,
        dropped: Vec::new(),
        cues,
        wer: errors.wer(),
        cer: errors.cer(),
        errors,
        audio_s,
        seconds,
    }
}
