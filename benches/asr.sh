#!/usr/bin/env bash
# ASR speed: whole-process wall time of `stemfeed transcribe` (whisper.cpp via
# whisper-rs, the imported base model, f16 and q8_0) against faster-whisper
# (CTranslate2, PyPI) with the same base weights (int8 and float32), on the
# same real English speech (the English clips of tests/asr-dev joined into
# one file), language given, beam 5 on both sides, $(nproc) threads.
# Both sides are timed the same way: the whole process, model load
# included, from the shell. Paired runs (stemfeed then faster-whisper, RUNS
# times), medians reported, page cache warm (one untimed run of each first).
# Writes benches/results/asr.md.
#
# Usage: benches/asr.sh   (needs `stemfeed models install default` and PyPI access)
#   STEMFEED_BIN=target/debug/stemfeed benches/asr.sh  (whisper.cpp is built
#   optimised in every profile; only stemfeed's own Rust code differs)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STEMFEED_BIN:-target/release/stemfeed}
[ -x "$bin" ] || cargo build --release --locked
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)

# faster-whisper and the CTranslate2 base weights ($venv, $d1).
source benches/peer.sh

# stemfeed's q8_0 variant of the same weights.
printf '[asr]\nthreads = %s\n' "$threads" > "$work/stemfeed.toml"
models="$work/models"
mkdir -p "$models"
cp "$HOME/.cache/stemfeed/models/base.bin" "$HOME/.cache/stemfeed/models/base.json" "$models/"
"$bin" --config "$work/stemfeed.toml" --models-dir "$models" models import "$d1" --name base-q8_0 --quantize q8_0 >/dev/null

# Real English speech: the development set's English clips, one after another.
mapfile -t clips < <(awk -F'\t' 'NR > 1 && $2 == "en" && $1 !~ /^mix_/ {print "tests/asr-dev/" $1}' tests/asr-dev/refs.tsv)
sox "${clips[@]}" -r 16000 -c 1 "$work/speech.wav"
seconds=$(soxi -D "$work/speech.wav")

cat > "$work/fw.py" <<'PY'
import sys
from faster_whisper import WhisperModel
model_dir, audio, threads, compute = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
model = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=threads)
segments, _ = model.transcribe(audio, language="en", beam_size=5)
print(" ".join(s.text.strip() for s in segments))
PY

timed() { # adds the command's wall and CPU seconds to times[$side] and cpu[$side]; its stdout goes to $out
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$work/time" "$@" > "$out" 2>/dev/null
  end=$(date +%s.%N)
  cpu[$side]+="$(awk '{print $1 + $2}' "$work/time") "
  times[$side]+="$(echo "$end - $start" | bc) "
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A sides=(
  [stemfeed-f16]="$bin --config $work/stemfeed.toml --models-dir $models transcribe $work/speech.wav --language en --beam 5 --model base"
  [stemfeed-q8_0]="$bin --config $work/stemfeed.toml --models-dir $models transcribe $work/speech.wav --language en --beam 5 --model base-q8_0"
  [faster-whisper-int8]="$venv/bin/python $work/fw.py $d1 $work/speech.wav $threads int8"
  [faster-whisper-float32]="$venv/bin/python $work/fw.py $d1 $work/speech.wav $threads float32"
)
order=(stemfeed-f16 faster-whisper-int8 stemfeed-q8_0 faster-whisper-float32)
# BASELINE_BIN: another stemfeed build (say, without OpenBLAS) timed in the same rounds.
if [ -n "${BASELINE_BIN:-}" ]; then
  sides[stemfeed-f16-baseline]="$BASELINE_BIN --config $work/stemfeed.toml --models-dir $models transcribe $work/speech.wav --language en --beam 5 --model base"
  order+=(stemfeed-f16-baseline)
fi
declare -A times cpu
for side in "${order[@]}"; do out=/dev/null; timed ${sides[$side]}; done # warm the page cache
times=() cpu=()
for ((i = 1; i <= runs; i++)); do
  for side in "${order[@]}"; do
    out="$work/$side.txt"
    timed ${sides[$side]}
  done
done

# Word error rate of each side's transcript against the clips' references,
# with stemfeed's own scorer (one reference line for the joined audio).
mkdir -p "$work/eval"
printf 'file\tlanguage\treference\nspeech.wav\ten\t%s\n' \
  "$(awk -F'\t' 'NR > 1 && $2 == "en" && $1 !~ /^mix_/ {printf "%s ", $3}' tests/asr-dev/refs.tsv)" > "$work/eval/refs.tsv"
wer() {
  # stemfeed prints "[start → end] text" lines; keep the text.
  printf 'speech.wav\t%s\n' "$(sed 's/^\[[^]]*\] //' "$1" | tr '\n' ' ')" > "$work/hyp.tsv"
  "$bin" --config "$work/stemfeed.toml" eval asr "$work/eval" --hypotheses "$work/hyp.tsv" --json |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["languages"]["en"]["wer"] * 100, 1))'
}

result=benches/results/asr.md
fw_int8=$(median ${times[faster-whisper-int8]})
fw_int8_cpu=$(median ${cpu[faster-whisper-int8]})
{
  echo "# ASR speed: stemfeed transcribe vs faster-whisper, base model, whole processes"
  echo
  echo "Run $(date -u +%Y-%m-%d) on $threads cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $threads threads both sides;"
  printf '%.0f s of real English speech (the English clips of tests/asr-dev joined), language given, beam 5 both sides,\n' "$seconds"
  echo "same CTranslate2 base weights (stemfeed's imported to ggml f16, or quantised by \`models import --quantize q8_0\`)."
  echo "Wall and CPU (user + system) time of the whole process including model load; page cache warm; $runs paired rounds, medians. Binary: $bin${BASELINE_BIN:+; baseline: $BASELINE_BIN}."
  echo
  echo "| side | wall median s | wall runs s | wall × fw int8 | CPU median s | CPU × fw int8 | WER % |"
  echo "|---|---:|---|---:|---:|---:|---:|"
  for side in "${order[@]}"; do
    m=$(median ${times[$side]})
    c=$(median ${cpu[$side]})
    printf '| %s | %.2f | %s | %.2f | %.2f | %.2f | %s |\n' "$side" "$m" "${times[$side]}" "$(echo "$m / $fw_int8" | bc -l)" \
      "$c" "$(echo "$c / $fw_int8_cpu" | bc -l)" "$(wer "$work/$side.txt")"
  done
} > "$result"
cat "$result"
