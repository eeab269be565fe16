//! Hostile inputs for the worker, generated into a temporary directory:
//! valid seeds of every container and codec family the pipeline is expected
//! to read (made with ffmpeg's lavfi sources, a test-time tool only),
//! deterministic `zzuf` mutants of each seed, truncations, junk, and
//! hand-made liars whose headers contradict their streams.
//!
//! Everything is small (≤ 320 px, about 1 s, a few tens of KiB) except the
//! liars that need a long stream, which stay under 2 MiB. Nothing is cached:
//! the whole set takes a few seconds to make.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How an input was made; the tally groups outcomes by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A valid file, straight from ffmpeg.
    Seed,
    /// A seed with bits flipped anywhere (headers included).
    Fuzz,
    /// A seed with bits flipped only in its middle half (mostly coded media).
    FuzzPayload,
    /// A seed cut short.
    Truncated,
    /// A file whose headers lie about its streams.
    Liar,
    /// Not media at all.
    Junk,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Seed => "seed",
            Kind::Fuzz => "fuzz",
            Kind::FuzzPayload => "fuzz-payload",
            Kind::Truncated => "truncated",
            Kind::Liar => "liar",
            Kind::Junk => "junk",
        })
    }
}

/// One generated input.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    /// File name: what the upload is called, and what errors must name.
    pub name: String,
    /// Container family, e.g. "mp4", "webm", "mpeg-ts".
    pub container: &'static str,
    pub kind: Kind,
    /// The seed had a video stream (audio-only seeds are refused by design).
    pub has_video: bool,
    /// How it was made, for reports and reproduction.
    pub recipe: String,
}

/// A valid seed: ffmpeg output options for a lavfi test picture and tone.
struct Seed {
    file: &'static str,
    container: &'static str,
    video: bool,
    audio: bool,
    /// ffmpeg output options, split on whitespace (a libx264 encode is added
    /// when they name no video codec).
    args: &'static str,
}

const fn seed(
    file: &'static str,
    container: &'static str,
    video: bool,
    audio: bool,
    args: &'static str,
) -> Seed {
    Seed {
        file,
        container,
        video,
        audio,
        args,
    }
}

const PICTURE: &str = "testsrc2=size=160x288:rate=15:duration=1";
const TONE: &str = "sine=frequency=440:sample_rate=22050:duration=1";
const X264: &str = "-c:v libx264 -preset ultrafast -pix_fmt yuv420p";

const SEEDS: &[Seed] = &[
    seed("h264-aac.mp4", "mp4", true, true, "-c:a aac -b:a 32k"),
    seed(
        "h264-aac-faststart.mp4",
        "mp4",
        true,
        true,
        "-c:a aac -b:a 32k -movflags +faststart",
    ),
    seed("h264-noaudio.mp4", "mp4", true, false, ""),
    seed(
        "hevc-aac.mp4",
        "mp4",
        true,
        true,
        "-c:v libx265 -preset ultrafast -x265-params log-level=error -pix_fmt yuv420p -tag:v hvc1 -c:a aac -b:a 32k",
    ),
    seed("h264-aac.mov", "mov", true, true, "-c:a aac -b:a 32k"),
    seed(
        "h264-aac.3gp",
        "3gp",
        true,
        true,
        "-profile:v baseline -c:a aac -b:a 32k",
    ),
    seed("h264-vorbis.mkv", "matroska", true, true, "-c:a libvorbis"),
    seed(
        "mpeg4-mp3.mkv",
        "matroska",
        true,
        true,
        "-c:v mpeg4 -c:a libmp3lame -b:a 32k",
    ),
    seed(
        "vp8-vorbis.webm",
        "webm",
        true,
        true,
        "-c:v libvpx -deadline realtime -cpu-used 8 -b:v 200k -c:a libvorbis",
    ),
    seed(
        "vp9-opus.webm",
        "webm",
        true,
        true,
        "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 200k -c:a libopus -b:a 24k",
    ),
    seed("h264-aac.ts", "mpeg-ts", true, true, "-c:a aac -b:a 32k"),
    seed(
        "mpeg2-mp2.ts",
        "mpeg-ts",
        true,
        true,
        "-c:v mpeg2video -c:a mp2",
    ),
    seed(
        "mpeg4-mp3.avi",
        "avi",
        true,
        true,
        "-c:v mpeg4 -c:a libmp3lame -b:a 32k",
    ),
    seed(
        "h264-mp3.flv",
        "flv",
        true,
        true,
        "-c:a libmp3lame -ar 22050 -b:a 32k",
    ),
    seed(
        "theora-vorbis.ogv",
        "ogg",
        true,
        true,
        "-c:v libtheora -c:a libvorbis",
    ),
    seed(
        "mpeg2-mp2.mpg",
        "mpeg-ps",
        true,
        true,
        "-c:v mpeg2video -c:a mp2 -f vob",
    ),
    seed("aac.m4a", "m4a", false, true, "-c:a aac -b:a 32k"),
    seed("mp3.mp3", "mp3", false, true, "-c:a libmp3lame -b:a 32k"),
    seed("opus.ogg", "ogg", false, true, "-c:a libopus -b:a 24k"),
    seed("pcm.wav", "wav", false, true, "-c:a pcm_s16le"),
];

/// Whole-file mutants: bits flipped anywhere, headers included.
const FUZZ_RATIOS: &[f64] = &[0.0005, 0.002, 0.008, 0.02];
/// Payload mutants: bits flipped only in the middle half of the file.
const PAYLOAD_RATIOS: &[f64] = &[0.001, 0.004, 0.01, 0.02];

/// Generates every input into `dir` (created if needed). Each has distinct
/// bytes, so each becomes its own video and job.
pub fn generate(dir: &Path) -> Vec<Input> {
    std::fs::create_dir_all(dir).unwrap();
    let mut set = InputSet {
        dir: dir.to_path_buf(),
        inputs: Vec::new(),
        seen: HashSet::new(),
    };
    let seeds_dir = dir.join("seeds");
    std::fs::create_dir_all(&seeds_dir).unwrap();
    let mut seeds = Vec::new();
    for (i, seed) in SEEDS.iter().enumerate() {
        let mut inputs: Vec<&str> = Vec::new();
        let mut args = String::new();
        if seed.video {
            inputs.push(PICTURE);
            if !seed.args.contains("-c:v") {
                args = format!("{X264} ");
            }
        }
        if seed.audio {
            inputs.push(TONE);
        }
        args.push_str(seed.args);
        let path = ffmpeg(&seeds_dir, seed.file, &inputs, &args);
        let bytes = std::fs::read(&path).unwrap();
        set.add(
            &format!("seed-{}", seed.file),
            seed.container,
            Kind::Seed,
            seed.video,
            format!(
                "ffmpeg{} {args} -threads 1 -fflags +bitexact",
                inputs
                    .iter()
                    .map(|i| format!(" -f lavfi -i '{i}'"))
                    .collect::<String>(),
            ),
            &bytes,
        );
        seeds.push((i, seed, path, bytes));
    }

    for (i, seed, path, bytes) in &seeds {
        let (stem, ext) = split_name(seed.file);
        for (k, ratio) in FUZZ_RATIOS.iter().enumerate() {
            let zseed = (i * 100 + k) as u32;
            let out = zzuf(path, zseed, *ratio, None);
            set.add(
                &format!("fuzz-{stem}-r{ratio}-s{zseed}.{ext}"),
                seed.container,
                Kind::Fuzz,
                seed.video,
                format!("zzuf -s {zseed} -r {ratio} < seed-{}", seed.file),
                &out,
            );
        }
        let range = format!("{}-{}", bytes.len() / 4, bytes.len() * 3 / 4);
        for (k, ratio) in PAYLOAD_RATIOS.iter().enumerate() {
            let zseed = (i * 100 + 50 + k) as u32;
            let out = zzuf(path, zseed, *ratio, Some(&range));
            set.add(
                &format!("fuzzp-{stem}-r{ratio}-s{zseed}.{ext}"),
                seed.container,
                Kind::FuzzPayload,
                seed.video,
                format!("zzuf -s {zseed} -r {ratio} -b {range} < seed-{}", seed.file),
                &out,
            );
        }
        if seed.video {
            let cut = bytes.len() * 2 / 5;
            set.add(
                &format!("trunc40-{}", seed.file),
                seed.container,
                Kind::Truncated,
                true,
                format!("first {cut} of {} bytes of seed-{}", bytes.len(), seed.file),
                &bytes[..cut],
            );
        }
    }
    truncations(&mut set, &seeds);
    liars(&mut set, dir);
    junk(&mut set);
    set.inputs
}

type SeedFile<'a> = (usize, &'a Seed, PathBuf, Vec<u8>);

struct InputSet {
    dir: PathBuf,
    inputs: Vec<Input>,
    /// Contents already written: uploads are content-addressed, so a
    /// duplicate would silently be the same job.
    seen: HashSet<Vec<u8>>,
}

impl InputSet {
    fn add(
        &mut self,
        name: &str,
        container: &'static str,
        kind: Kind,
        has_video: bool,
        recipe: String,
        bytes: &[u8],
    ) {
        if !self.seen.insert(bytes.to_vec()) {
            eprintln!("hostile: {name} has the same bytes as an earlier input; skipped");
            return;
        }
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        self.inputs.push(Input {
            path,
            name: name.to_owned(),
            container,
            kind,
            has_video,
            recipe,
        });
    }
}

fn split_name(file: &str) -> (&str, &str) {
    file.rsplit_once('.').unwrap()
}

/// Runs ffmpeg on lavfi sources (a test-time tool only) with output
/// options `args` (split on whitespace), one encoder thread.
fn ffmpeg(dir: &Path, name: &str, inputs: &[&str], args: &str) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"]);
    for input in inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    let out = cmd
        .args(args.split_whitespace())
        // One encoder thread, and no random container ids (Matroska UIDs,
        // Ogg serials), so every run makes the same bytes.
        .args(["-threads", "1", "-fflags", "+bitexact"])
        .arg(&path)
        .output()
        .expect("ffmpeg is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "ffmpeg failed for {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// `zzuf` as a filter: deterministic for a given seed, ratio and range.
fn zzuf(input: &Path, seed: u32, ratio: f64, range: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new("zzuf");
    cmd.args(["-s", &seed.to_string(), "-r", &ratio.to_string()]);
    if let Some(range) = range {
        cmd.args(["-b", range]);
    }
    let out = cmd
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("zzuf is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "zzuf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Header-only and just-past-the-index cuts, beyond the 40 % cut of every seed.
fn truncations(set: &mut InputSet, seeds: &[SeedFile<'_>]) {
    for (_, seed, _, bytes) in seeds {
        if !seed.video {
            continue;
        }
        // The first 100 bytes: a container signature and little else.
        if matches!(seed.container, "matroska" | "webm" | "mpeg-ts" | "avi") {
            set.add(
                &format!("trunc100b-{}", seed.file),
                seed.container,
                Kind::Truncated,
                true,
                format!("first 100 bytes of seed-{}", seed.file),
                &bytes[..100],
            );
        }
        // A complete index (moov first) whose samples lie past the end.
        if seed.file.contains("faststart") {
            let moov = mp4::top_level(bytes)
                .into_iter()
                .find(|b| &b.kind == b"moov")
                .expect("faststart seed has a moov box");
            let cut = moov.end + 64;
            set.add(
                &format!("trunc-after-moov-{}", seed.file),
                seed.container,
                Kind::Truncated,
                true,
                format!("seed-{} cut 64 bytes after its moov box", seed.file),
                &bytes[..cut],
            );
            // The file type box alone.
            let ftyp = &mp4::top_level(bytes)[0];
            set.add(
                "ftyp-only.mp4",
                "mp4",
                Kind::Truncated,
                true,
                format!("the ftyp box of seed-{} alone", seed.file),
                &bytes[..ftyp.end],
            );
        }
    }
}

/// Files whose headers lie about their streams.
fn liars(set: &mut InputSet, dir: &Path) {
    let work = dir.join("liar-work");
    std::fs::create_dir_all(&work).unwrap();
    let mut liar = |name: &str, container: &'static str, recipe: &str, bytes: &[u8]| {
        set.add(name, container, Kind::Liar, true, recipe.to_owned(), bytes);
    };
    let make = |name: &str, inputs: &[&str], args: &str| {
        std::fs::read(ffmpeg(&work, name, inputs, args)).unwrap()
    };

    // (a) Duration headers that say 5 s over a 10-minute stream: 64×64 at
    // 2 fps and silent 8 kbit/s AAC, so the bytes stay small.
    let long = [
        "color=c=blue:size=64x64:rate=2:duration=600",
        "anullsrc=r=8000:cl=mono",
    ];
    let long_args = format!("-t 600 {X264} -g 600 -c:a aac -b:a 8k");
    liar(
        "liar-duration-5s-of-600s.mkv",
        "matroska",
        "600 s of 64x64 H.264 at 2 fps + silent AAC in Matroska; \
         Segment Duration and DURATION tags patched to 5 s",
        &matroska_claim_duration(make("long.mkv", &long, &long_args), 5.0),
    );
    liar(
        "liar-duration-5s-of-600s.mp4",
        "mp4",
        "600 s of 64x64 H.264 at 2 fps + silent AAC in MP4; \
         mvhd/tkhd/mdhd/elst durations patched to 5 s",
        &mp4::claim_duration(make("long.mp4", &long, &long_args), 5),
    );

    // (b) 100,000 tiny frames: 64×64 at 1000 fps for 100 s (skip frames, ~1.4 MB).
    liar(
        "liar-100k-frames-1000fps.mp4",
        "mp4",
        "100,000 frames of 64x64 H.264 at 1000 fps (100 s), no audio",
        &make(
            "frames.mp4",
            &["color=c=red:size=64x64:rate=1000:duration=100"],
            &format!("{X264} -g 100000 -bf 0"),
        ),
    );

    // (c) 16384×16384 claims. In the MP4 track and sample headers only:
    let av = format!("{X264} -c:a aac -b:a 32k");
    let small = make("small.mp4", &[PICTURE, TONE], &av);
    liar(
        "liar-16384-tkhd-stsd.mp4",
        "mp4",
        "160x288 H.264 + AAC MP4; video tkhd and avc1 sample entry patched to 16384x16384",
        &mp4::claim_size(small.clone(), 16384, 16384),
    );
    // … in the H.264 sequence parameter set itself (MPEG-TS, in-band SPS):
    let es = make(
        "tiny.h264",
        &["testsrc2=size=64x64:rate=15:duration=1"],
        &format!("{X264} -profile:v baseline -f h264"),
    );
    let patched_es = work.join("huge.h264");
    std::fs::write(&patched_es, h264::claim_size(&es, 16384, 16384)).unwrap();
    let ts = work.join("huge-sps.ts");
    let out = Command::new("ffmpeg")
        .args("-hide_banner -loglevel error -y -f h264 -framerate 15 -i".split(' '))
        .arg(&patched_es)
        .args(["-c", "copy", "-fflags", "+bitexact", "-f", "mpegts"])
        .arg(&ts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "muxing the patched SPS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    liar(
        "liar-16384-sps.ts",
        "mpeg-ts",
        "64x64 baseline H.264 whose SPS is rewritten to 16384x16384 \
         (1024x1024 macroblocks), muxed to MPEG-TS with ffmpeg -c copy",
        &std::fs::read(ts).unwrap(),
    );
    // … and in a VP9 key frame header plus the WebM track header.
    let vp9 = make(
        "square.webm",
        &["testsrc2=size=256x256:rate=15:duration=1"],
        "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 100k",
    );
    liar(
        "liar-16384-vp9.webm",
        "webm",
        "256x256 VP9 WebM; key frame frame_width/height and PixelWidth/PixelHeight \
         patched to 16384",
        &vp9_claim_size(vp9),
    );

    // Box sizes and counts that invite huge allocations.
    liar(
        "liar-moov-size-4gib.mp4",
        "mp4",
        "160x288 H.264 + AAC MP4 whose moov box claims 0xFFFFFFF0 bytes",
        &mp4::claim_moov_size(small.clone(), 0xFFFF_FFF0),
    );
    liar(
        "liar-stsz-count.mp4",
        "mp4",
        "160x288 H.264 + AAC MP4 whose video stsz claims 0x7FFFFFFF samples",
        &mp4::claim_sample_count(small.clone(), 0x7FFF_FFFF),
    );

    // (d) Audio with a video track that points at garbage.
    liar(
        "liar-video-track-garbage.mp4",
        "mp4",
        "160x288 H.264 + AAC MP4; every video chunk offset points at an appended \
         free box of random bytes",
        &mp4::video_points_at_garbage(small, true),
    );
    liar(
        "liar-video-track-at-offset-0.mov",
        "mov",
        "160x288 H.264 + AAC MOV; every video chunk offset points at byte 0 (the ftyp box)",
        &mp4::video_points_at_garbage(make("small.mov", &[PICTURE, TONE], &av), false),
    );
}

/// Not media.
fn junk(set: &mut InputSet) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    set.add(
        "empty.mp4",
        "junk",
        Kind::Junk,
        false,
        "0 bytes".into(),
        b"",
    );
    for (name, len) in [
        ("random-512.mp4", 512),
        ("random-64k.mp4", 65536),
        ("random-64k.webm", 65536),
        ("random-8k.mkv", 8192),
    ] {
        let bytes = rng.bytes(len);
        set.add(
            name,
            "junk",
            Kind::Junk,
            false,
            format!("{len} pseudo-random bytes"),
            &bytes,
        );
    }
    let notes = "Meeting notes\n- ship the worker\n- fuzz the inputs\n".repeat(20);
    set.add(
        "notes.txt",
        "junk",
        Kind::Junk,
        false,
        "plain text".into(),
        notes.as_bytes(),
    );
    set.add(
        "notes.mp4",
        "junk",
        Kind::Junk,
        false,
        "plain text named .mp4".into(),
        format!("{notes}\n(renamed)").as_bytes(),
    );
    set.add(
        "error-page.mp4",
        "junk",
        Kind::Junk,
        false,
        "an HTML error page saved as .mp4".into(),
        b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n",
    );
}

/// A deterministic byte source (xorshift64*), so junk is the same every run.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 56) as u8).collect()
    }
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Patches a Matroska file's Segment Duration (an 8-byte float in ms, as
/// ffmpeg writes it) and the per-track `DURATION` tags to `seconds`.
fn matroska_claim_duration(mut b: Vec<u8>, seconds: f64) -> Vec<u8> {
    let at = find_all(&b, &[0x44, 0x89, 0x88]);
    assert!(!at.is_empty(), "no 8-byte Duration element");
    let at = at[0] + 3;
    b[at..at + 8].copy_from_slice(&(seconds * 1000.0).to_be_bytes());
    // DURATION tags are "HH:MM:SS.nnnnnnnnn" strings.
    let claim = format!("00:00:{:02}.000000000", seconds as u32);
    let mut i = 0;
    let mut tags = 0;
    while i + 18 <= b.len() {
        let w = &b[i..i + 18];
        let digits = [0, 1, 3, 4, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17];
        if w[2] == b':'
            && w[5] == b':'
            && w[8] == b'.'
            && digits.iter().all(|&d| w[d].is_ascii_digit())
        {
            b[i..i + 18].copy_from_slice(claim.as_bytes());
            tags += 1;
            i += 18;
        } else {
            i += 1;
        }
    }
    assert!(tags > 0, "no DURATION tags found");
    b
}

/// Patches a VP9 WebM to claim 16384×16384 in every profile-0 key frame
/// header (frame_width_minus_1 / frame_height_minus_1, 16 bits each after
/// the sync code and colour config) and in PixelWidth / PixelHeight.
fn vp9_claim_size(mut b: Vec<u8>) -> Vec<u8> {
    let (w, h) = (16384u32 - 1, 16384u32 - 1);
    let mut frames = 0;
    for at in find_all(&b, &[0x82, 0x49, 0x83, 0x42]) {
        let p = at + 4;
        b[p] = (b[p] & 0xF0) | ((w >> 12) as u8 & 0x0F);
        b[p + 1] = (w >> 4) as u8;
        b[p + 2] = (((w & 0x0F) as u8) << 4) | ((h >> 12) as u8 & 0x0F);
        b[p + 3] = (h >> 4) as u8;
        b[p + 4] = (((h & 0x0F) as u8) << 4) | (b[p + 4] & 0x0F);
        frames += 1;
    }
    assert!(frames > 0, "no VP9 key frame found");
    // The seed is 256x256, so both sizes are 2-byte unsigned integers.
    for id in [0xB0u8, 0xBA] {
        let at = find_all(&b, &[id, 0x82, 0x01, 0x00]);
        assert!(!at.is_empty(), "no 2-byte pixel size element {id:#x}");
        b[at[0] + 2] = 0x40;
    }
    b
}

/// Just enough ISO base media file format to patch headers.
pub mod mp4 {
    #[derive(Debug, Clone, Copy)]
    pub struct BoxAt {
        pub kind: [u8; 4],
        pub start: usize,
        /// First byte after the box header.
        pub body: usize,
        pub end: usize,
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn be64(b: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
    }

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    fn put64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }

    pub fn children(b: &[u8], from: usize, to: usize) -> Vec<BoxAt> {
        let mut out = Vec::new();
        let mut pos = from;
        while pos + 8 <= to {
            let size = be32(b, pos) as usize;
            let kind: [u8; 4] = b[pos + 4..pos + 8].try_into().unwrap();
            let (size, header) = match size {
                0 => (to - pos, 8),
                1 => (be64(b, pos + 8) as usize, 16),
                s => (s, 8),
            };
            if size < header || pos + size > to {
                break;
            }
            out.push(BoxAt {
                kind,
                start: pos,
                body: pos + header,
                end: pos + size,
            });
            pos += size;
        }
        out
    }

    pub fn top_level(b: &[u8]) -> Vec<BoxAt> {
        children(b, 0, b.len())
    }

    fn child(b: &[u8], parent: &BoxAt, kind: &[u8; 4]) -> Option<BoxAt> {
        children(b, parent.body, parent.end)
            .into_iter()
            .find(|c| &c.kind == kind)
    }

    fn path(b: &[u8], from: &BoxAt, kinds: &[&[u8; 4]]) -> Option<BoxAt> {
        kinds
            .iter()
            .try_fold(*from, |parent, kind| child(b, &parent, kind))
    }

    fn moov(b: &[u8]) -> BoxAt {
        top_level(b)
            .into_iter()
            .find(|x| &x.kind == b"moov")
            .expect("a moov box")
    }

    fn traks(b: &[u8]) -> Vec<BoxAt> {
        let moov = moov(b);
        children(b, moov.body, moov.end)
            .into_iter()
            .filter(|c| &c.kind == b"trak")
            .collect()
    }

    fn handler(b: &[u8], trak: &BoxAt) -> [u8; 4] {
        let hdlr = path(b, trak, &[b"mdia", b"hdlr"]).expect("hdlr");
        b[hdlr.body + 8..hdlr.body + 12].try_into().unwrap()
    }

    fn video_trak(b: &[u8]) -> BoxAt {
        traks(b)
            .into_iter()
            .find(|t| &handler(b, t) == b"vide")
            .expect("a video track")
    }

    /// Writes a duration field at `at` (4 or 8 bytes by the box's version).
    fn put_duration(b: &mut [u8], version: u8, at: usize, v: u64) {
        if version == 1 {
            put64(b, at, v);
        } else {
            put32(b, at, v as u32);
        }
    }

    /// mvhd / mdhd: timescale and the offset of the duration field.
    fn timescale_and_duration(b: &[u8], x: &BoxAt) -> (u64, usize) {
        let v = b[x.body];
        if v == 1 {
            (u64::from(be32(b, x.body + 20)), x.body + 24)
        } else {
            (u64::from(be32(b, x.body + 12)), x.body + 16)
        }
    }

    /// Every duration header (mvhd, tkhd, mdhd, elst) says `seconds`.
    pub fn claim_duration(mut b: Vec<u8>, seconds: u64) -> Vec<u8> {
        let moov = moov(&b);
        let mvhd = child(&b, &moov, b"mvhd").expect("mvhd");
        let (movie_ts, at) = timescale_and_duration(&b, &mvhd);
        let v = b[mvhd.body];
        put_duration(&mut b, v, at, seconds * movie_ts);
        for trak in traks(&b) {
            let tkhd = child(&b, &trak, b"tkhd").expect("tkhd");
            let v = b[tkhd.body];
            let at = if v == 1 {
                tkhd.body + 28
            } else {
                tkhd.body + 20
            };
            put_duration(&mut b, v, at, seconds * movie_ts);
            let mdhd = path(&b, &trak, &[b"mdia", b"mdhd"]).expect("mdhd");
            let (ts, at) = timescale_and_duration(&b, &mdhd);
            let v = b[mdhd.body];
            put_duration(&mut b, v, at, seconds * ts);
            if let Some(elst) = path(&b, &trak, &[b"edts", b"elst"]) {
                let v = b[elst.body];
                let n = be32(&b, elst.body + 4) as usize;
                let entry = if v == 1 { 20 } else { 12 };
                for i in 0..n {
                    let at = elst.body + 8 + i * entry;
                    // Leave empty edits (media_time -1) alone.
                    let media_time_at = at + if v == 1 { 8 } else { 4 };
                    let empty = b[media_time_at..media_time_at + 4] == [0xFF; 4];
                    if !empty {
                        put_duration(&mut b, v, at, seconds * movie_ts);
                    }
                }
            }
        }
        b
    }

    /// The video track header and sample entry say `width`×`height`.
    pub fn claim_size(mut b: Vec<u8>, width: u16, height: u16) -> Vec<u8> {
        let trak = video_trak(&b);
        let tkhd = child(&b, &trak, b"tkhd").expect("tkhd");
        let at = if b[tkhd.body] == 1 {
            tkhd.body + 88
        } else {
            tkhd.body + 76
        };
        put32(&mut b, at, u32::from(width) << 16);
        put32(&mut b, at + 4, u32::from(height) << 16);
        let stsd = path(&b, &trak, &[b"mdia", b"minf", b"stbl", b"stsd"]).expect("stsd");
        let entry = children(&b, stsd.body + 8, stsd.end)[0];
        b[entry.start + 32..entry.start + 34].copy_from_slice(&width.to_be_bytes());
        b[entry.start + 34..entry.start + 36].copy_from_slice(&height.to_be_bytes());
        b
    }

    pub fn claim_moov_size(mut b: Vec<u8>, size: u32) -> Vec<u8> {
        let moov = moov(&b);
        put32(&mut b, moov.start, size);
        b
    }

    /// The video track's sample size table claims `count` samples.
    pub fn claim_sample_count(mut b: Vec<u8>, count: u32) -> Vec<u8> {
        let trak = video_trak(&b);
        let stsz = path(&b, &trak, &[b"mdia", b"minf", b"stbl", b"stsz"]).expect("stsz");
        put32(&mut b, stsz.body + 8, count);
        b
    }

    /// Every video chunk offset points at garbage: at an appended `free` box
    /// of pseudo-random bytes (`random`), or at byte 0 of the file.
    pub fn video_points_at_garbage(mut b: Vec<u8>, random: bool) -> Vec<u8> {
        let trak = video_trak(&b);
        let stbl = path(&b, &trak, &[b"mdia", b"minf", b"stbl"]).expect("stbl");
        let stsz = child(&b, &stbl, b"stsz").expect("stsz");
        let fixed = be32(&b, stsz.body + 4) as usize;
        let n = be32(&b, stsz.body + 8) as usize;
        let total: usize = if fixed != 0 {
            fixed * n
        } else {
            (0..n)
                .map(|i| be32(&b, stsz.body + 12 + 4 * i) as usize)
                .sum()
        };
        let target = if random {
            let len = total + 1024;
            let at = b.len();
            b.extend_from_slice(&((len + 8) as u32).to_be_bytes());
            b.extend_from_slice(b"free");
            let mut rng = super::XorShift(0xD1B5_4A32_D192_ED03);
            b.extend(rng.bytes(len));
            at + 8
        } else {
            0
        };
        let stco = child(&b, &stbl, b"stco").expect("stco (32-bit offsets)");
        let chunks = be32(&b, stco.body + 4) as usize;
        for i in 0..chunks {
            put32(&mut b, stco.body + 8 + 4 * i, target as u32);
        }
        b
    }
}

/// Rewrites the picture size in H.264 sequence parameter sets (Annex B).
pub mod h264 {
    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl Bits<'_> {
        fn bit(&mut self) -> u32 {
            let v = (self.data[self.pos / 8] >> (7 - self.pos % 8)) & 1;
            self.pos += 1;
            u32::from(v)
        }

        fn bits(&mut self, n: usize) -> u32 {
            (0..n).fold(0, |acc, _| (acc << 1) | self.bit())
        }

        fn ue(&mut self) -> u32 {
            let mut zeros = 0;
            while self.bit() == 0 {
                zeros += 1;
            }
            (1 << zeros) - 1 + self.bits(zeros)
        }
    }

    #[derive(Default)]
    struct Writer {
        bits: Vec<u8>,
    }

    impl Writer {
        fn put(&mut self, v: u32, n: usize) {
            for i in (0..n).rev() {
                self.bits.push(((v >> i) & 1) as u8);
            }
        }

        fn ue(&mut self, v: u32) {
            let code = v + 1;
            let len = 32 - code.leading_zeros() as usize;
            self.put(0, len - 1);
            self.put(code, len);
        }

        fn bytes(mut self) -> Vec<u8> {
            // rbsp_trailing_bits: a stop bit, then zeros to a byte boundary.
            self.bits.push(1);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(0);
            }
            self.bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |acc, b| (acc << 1) | b))
                .collect()
        }
    }

    fn unescape(nal: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &b in nal {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }

    fn escape(rbsp: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(rbsp.len() + 8);
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }

    /// One SPS (without its NAL header byte) with the new size. Supports
    /// what x264 writes without scaling matrices; cropping is dropped, so
    /// `width` and `height` should be multiples of 16.
    fn rewrite_sps(rbsp: &[u8], width: u32, height: u32) -> Vec<u8> {
        let mut r = Bits { data: rbsp, pos: 0 };
        let mut w = Writer::default();
        let profile = r.bits(8);
        w.put(profile, 8);
        w.put(r.bits(16), 16); // constraint flags, level
        w.ue(r.ue()); // seq_parameter_set_id
        if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile) {
            let chroma = r.ue();
            w.ue(chroma);
            if chroma == 3 {
                w.put(r.bit(), 1);
            }
            w.ue(r.ue());
            w.ue(r.ue());
            w.put(r.bit(), 1);
            let scaling = r.bit();
            assert_eq!(scaling, 0, "SPS scaling matrices are not supported");
            w.put(0, 1);
        }
        w.ue(r.ue()); // log2_max_frame_num_minus4
        let poc = r.ue();
        w.ue(poc);
        match poc {
            0 => w.ue(r.ue()),
            1 => {
                w.put(r.bit(), 1);
                w.ue(r.ue()); // se() values are copied as their ue() codes
                w.ue(r.ue());
                let n = r.ue();
                w.ue(n);
                for _ in 0..n {
                    w.ue(r.ue());
                }
            }
            _ => {}
        }
        w.ue(r.ue()); // max_num_ref_frames
        w.put(r.bit(), 1); // gaps_in_frame_num_value_allowed_flag
        let _ = (r.ue(), r.ue());
        w.ue(width / 16 - 1);
        let frame_mbs_only = r.bit();
        w.ue(if frame_mbs_only == 1 {
            height / 16 - 1
        } else {
            height / 32 - 1
        });
        w.put(frame_mbs_only, 1);
        if frame_mbs_only == 0 {
            w.put(r.bit(), 1);
        }
        w.put(r.bit(), 1); // direct_8x8_inference_flag
        if r.bit() == 1 {
            for _ in 0..4 {
                r.ue();
            }
        }
        w.put(0, 1); // frame_cropping_flag
        // The VUI and anything else up to the stop bit, verbatim.
        let total = rbsp.len() * 8;
        let last_one = (0..total)
            .rev()
            .find(|&i| (rbsp[i / 8] >> (7 - i % 8)) & 1 == 1)
            .expect("a stop bit");
        while r.pos < last_one {
            w.put(r.bit(), 1);
        }
        w.bytes()
    }

    /// Every SPS NAL unit of an Annex B stream claims `width`×`height`.
    pub fn claim_size(stream: &[u8], width: u32, height: u32) -> Vec<u8> {
        // Split on 3-byte start codes (a 4-byte one is a zero + a 3-byte one).
        let starts = super::find_all(stream, &[0, 0, 1]);
        assert!(!starts.is_empty(), "not an Annex B stream");
        let mut out = stream[..starts[0]].to_vec();
        let mut patched = 0;
        for (i, &s) in starts.iter().enumerate() {
            let body = s + 3;
            let end = starts.get(i + 1).copied().unwrap_or(stream.len());
            // Trailing zeros belong to the next start code.
            let mut nal_end = end;
            while nal_end > body && stream[nal_end - 1] == 0 {
                nal_end -= 1;
            }
            out.extend_from_slice(&[0, 0, 1]);
            let nal = &stream[body..nal_end];
            if !nal.is_empty() && nal[0] & 0x1F == 7 {
                out.push(nal[0]);
                let rbsp = unescape(&nal[1..]);
                out.extend(escape(&rewrite_sps(&rbsp, width, height)));
                patched += 1;
            } else {
                out.extend_from_slice(nal);
            }
            out.extend_from_slice(&stream[nal_end..end]);
        }
        assert!(patched > 0, "no SPS found");
        out
    }
}
