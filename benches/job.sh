#!/usr/bin/env bash
# One whole job: `stemfeed process` (the 4-rung ladder, English captions and
# tags; captions start as soon as the loudness pass has written the ASR
# audio, beside the video encode) against the sequential job a user would
# script from the peer tools: ffmpeg's single-decode split ladder (the same
# command as benches/transcode.sh, bicubic, the same x264 settings), then
# faster-whisper int8 beam 5 on the same file (language given, the same
# base weights stemfeed imports).
#
# Input: $seconds s of 1080x1920 30 fps test pattern with grain, over real
# English speech (the English clips of tests/asr-dev joined, as
# benches/asr.sh uses), AAC 48 kHz stereo.
#
# Time: whole processes, RUNS paired rounds (stemfeed, then the peer script
# as one `bash -c`), medians of wall and CPU (user + system) seconds; page
# cache warm (the input is made first, and one untimed run of each side).
# Threads: each tool's default for video (all cores); ASR threads = nproc
# on both sides. Writes benches/results/job.md.
#
# Usage: benches/job.sh [seconds]   (default 30; STEMFEED_BIN, RUNS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
runs=${RUNS:-3}
bin=${STEMFEED_BIN:-target/release/stemfeed}
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)

source benches/peer.sh # faster-whisper ($venv) and the CTranslate2 base weights ($d1)

mapfile -t clips < <(awk -F'\t' 'NR > 1 && $2 == "en" && $1 !~ /^mix_/ {print "tests/asr-dev/" $1}' tests/asr-dev/refs.tsv)
sox "${clips[@]}" -r 48000 -c 2 "$work/speech.wav" trim 0 "$seconds"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1080x1920:rate=30:duration=$seconds,noise=alls=12:allf=t" \
  -i "$work/speech.wav" -shortest \
  -c:v libx264 -preset veryfast -crf 16 -pix_fmt yuv420p -c:a aac -b:a 192k "$work/source.mp4"

printf '[asr]\nthreads = %s\n' "$threads" > "$work/stemfeed.toml"

cat > "$work/fw.py" <<'PY'
import sys
from faster_whisper import WhisperModel
model_dir, audio, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
segments, _ = model.transcribe(audio, language="en", beam_size=5)
print(" ".join(s.text.strip() for s in segments))
PY

rungs=("1080p 1080 1920 4000 128" "720p 720 1280 2200 128" "480p 480 854 1000 96" "360p 360 640 550 64")
peer_script() { # out dir: writes the peer's job as a script, $work/peer.sh
  local out=$1 filter maps="" i
  filter="[0:v]split=${#rungs[@]}"
  for i in "${!rungs[@]}"; do filter+="[s$i]"; done
  filter+=";"
  for i in "${!rungs[@]}"; do
    read -r name w h vk ak <<<"${rungs[$i]}"
    filter+="[s$i]scale=$w:$h:flags=bicubic,format=yuv420p[v$i];"
    maps+=" -map '[v$i]' -map 0:a -c:v libx264 -preset veryfast -profile:v main -b:v ${vk}k"
    maps+=" -maxrate $((vk * 3 / 2))k -bufsize $((vk * 2))k -g 60 -keyint_min 60 -sc_threshold 0"
    maps+=" -c:a aac -b:a ${ak}k -ar 48000 -ac 2"
    maps+=" -f tee '[movflags=+faststart]$out/$name.mp4|[f=hls:hls_time=2:hls_playlist_type=vod]$out/hls/$name/index.m3u8'"
  done
  {
    echo "set -e"
    echo "rm -rf '$out'; mkdir -p $(for r in "${rungs[@]}"; do read -r n _ <<<"$r"; printf "'%s/hls/%s' " "$out" "$n"; done)"
    echo "ffmpeg -hide_banner -loglevel error -y -i '$work/source.mp4' -filter_complex '${filter%;}' $maps"
    echo "'$venv/bin/python' '$work/fw.py' '$d1' '$work/source.mp4' $threads > '$out/transcript.txt'"
  } > "$work/peer.sh"
}
peer_script "$work/peer"

timed() { # label, command...: appends "wall cpu" seconds to $work/times.label
  local label=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >/dev/null 2>"$work/stderr.log" || { cat "$work/stderr.log"; exit 1; }
  awk '{printf "%.2f %.2f\n", $1, $2 + $3}' "$work/t" >> "$work/times.$label"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
stemfeed_job() { rm -rf "$work/stemfeed"; "$bin" --config "$work/stemfeed.toml" process "$work/source.mp4" --out "$work/stemfeed" --language en; }

# Warm-up: one untimed run of each side.
stemfeed_job >/dev/null 2>&1
bash "$work/peer.sh"
for ((i = 1; i <= runs; i++)); do
  rm -rf "$work/stemfeed"
  timed stemfeed "$bin" --config "$work/stemfeed.toml" process "$work/source.mp4" --out "$work/stemfeed" --language en
  cp "$work/stemfeed/manifest.json" "$work/manifest.$i.json"
  timed peer bash "$work/peer.sh"
done

med() { awk -v c="$2" '{print $c}' "$work/times.$1" | median; }
sf_wall=$(med stemfeed 1) sf_cpu=$(med stemfeed 2) p_wall=$(med peer 1) p_cpu=$(med peer 2)
stage() { jq -r ".stages.$1" "$work"/manifest.*.json | median; }
result=benches/results/job.md
{
  echo "# One whole job: stemfeed process vs ffmpeg ladder then faster-whisper ($seconds s, 1080x1920, real English speech)"
  echo
  echo "Run $(date -u +%Y-%m-%d) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); binary $bin."
  echo "Whole processes, $runs paired rounds, medians, page cache warm. Both sides: the same 4-rung ladder (x264 veryfast,"
  echo "Main, 2 s GOP, the same bitrate caps), English captions from the same base weights with beam 5 (stemfeed f16,"
  echo "faster-whisper int8), $threads ASR threads. stemfeed also tags, measures loudness and limits peaks, and picks stills."
  echo
  echo "| side | wall s (runs) | CPU s (runs) | wall × peer | CPU × peer |"
  echo "|---|---|---|---:|---:|"
  echo "| stemfeed process | $sf_wall ($(cut -d' ' -f1 "$work/times.stemfeed" | xargs)) | $sf_cpu ($(cut -d' ' -f2 "$work/times.stemfeed" | xargs)) | $(awk "BEGIN {printf \"%.2f\", $sf_wall / $p_wall}") | $(awk "BEGIN {printf \"%.2f\", $sf_cpu / $p_cpu}") |"
  echo "| ffmpeg ladder; faster-whisper | $p_wall ($(cut -d' ' -f1 "$work/times.peer" | xargs)) | $p_cpu ($(cut -d' ' -f2 "$work/times.peer" | xargs)) | 1.00 | 1.00 |"
  echo
  echo "stemfeed's own stage times (medians over the timed runs, seconds): loudness + ASR audio $(stage loudness_s),"
  echo "transcode $(stage transcode_s), captions $(stage captions_s) (running beside the transcode), tags $(stage tagging_s)."
} > "$result"
cat "$result"
