#!/usr/bin/env bash
# Transcode benchmark: stemfeed's one-decode ladder against ffmpeg doing the
# same ladder from a single decode (split filter), on the same generated input
# in the same run. Reports wall time, CPU time and the quality of every rung
# (PSNR and SSIM against the source scaled to the rung's size), and writes the
# table to benches/results/transcode.md.
#
# Usage: benches/transcode.sh [seconds]   (default 60; needs a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
bin=target/release/stemfeed
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A busy vertical source: moving test pattern with temporal noise (harder to
# encode than a static card), speech-like tone, 1080x1920 at 30 fps.
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1080x1920:rate=30:duration=$seconds,noise=alls=12:allf=t" \
  -f lavfi -i "sine=frequency=220:sample_rate=48000:duration=$seconds" \
  -c:v libx264 -preset veryfast -crf 16 -pix_fmt yuv420p -c:a aac -b:a 192k "$work/source.mp4"

timed() { # label, command...: prints "wall cpu" seconds
  local out="$work/time.$1"; shift
  /usr/bin/time -f "%e %U %S" -o "$out" "$@" >/dev/null 2>"$work/stderr.log" || { cat "$work/stderr.log"; exit 1; }
  awk '{printf "%.2f %.2f\n", $1, $2 + $3}' "$out"
}

# The rungs of pipelines/short-form.toml: name width height video_kbps audio_kbps.
rungs=("1080p 1080 1920 4000 128" "720p 720 1280 2200 128" "480p 480 854 1000 96" "360p 360 640 550 64")

read -r sf_wall sf_cpu < <(timed stemfeed "$bin" process "$work/source.mp4" --out "$work/stemfeed" --no-captions)

# ffmpeg: one decode, split into the same four rungs, same x264 preset, GOP,
# rate control and AAC bitrates; each rung muxed to faststart MP4 and HLS.
mkdir -p "$work/ffmpeg/hls"
filter="[0:v]split=${#rungs[@]}"
for i in "${!rungs[@]}"; do filter+="[s$i]"; done
filter+=";"
maps=()
for i in "${!rungs[@]}"; do
  read -r name w h vk ak <<<"${rungs[$i]}"
  filter+="[s$i]scale=$w:$h:flags=bicubic,format=yuv420p[v$i];"
  mkdir -p "$work/ffmpeg/hls/$name"
  maps+=(-map "[v$i]" -map 0:a -c:v libx264 -preset veryfast -profile:v main -b:v "${vk}k"
    -maxrate "$((vk * 3 / 2))k" -bufsize "$((vk * 2))k" -g 60 -keyint_min 60 -sc_threshold 0
    -c:a aac -b:a "${ak}k" -ar 48000 -ac 2
    -f tee "[movflags=+faststart]$work/ffmpeg/$name.mp4|[f=hls:hls_time=2:hls_playlist_type=vod]$work/ffmpeg/hls/$name/index.m3u8")
done
read -r ff_wall ff_cpu < <(timed ffmpeg ffmpeg -hide_banner -loglevel error -y -i "$work/source.mp4" \
  -filter_complex "${filter%;}" "${maps[@]}")

quality() { # rung file, width, height -> "psnr ssim"
  ffmpeg -hide_banner -nostats -i "$1" -i "$work/source.mp4" -lavfi \
    "[1:v]scale=$2:$3:flags=lanczos,split[r0][r1];[0:v]split[d0][d1];[d0][r0]psnr;[d1][r1]ssim" \
    -f null - 2>&1 | awk '/PSNR/ {for (i=1;i<=NF;i++) if ($i ~ /^average:/) {split($i,a,":"); p=a[2]}}
                          /SSIM/ {for (i=1;i<=NF;i++) if ($i ~ /^All:/) {split($i,a,":"); s=a[2]}}
                          END {printf "%.2f %.4f\n", p, s}'
}
size_kbps() { # file -> average total bitrate
  ffprobe -v error -show_entries format=bit_rate -of csv=p=0 "$1" | awk '{printf "%d", $1/1000}'
}

result=benches/results/transcode.md
{
  echo "# Transcode: stemfeed vs ffmpeg ($seconds s, 1080x1920 30 fps, 4 rungs + HLS)"
  echo
  echo "Run $(date -u +%Y-%m-%d) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
  echo "GStreamer $(gst-inspect-1.0 --version | awk 'NR==2 {print $2}'), $(ffmpeg -version | head -1 | cut -d' ' -f1-3)."
  echo "stemfeed runs with --no-captions (transcoding only); it also measures loudness (an audio-only pass), applies the gain,"
  echo "samples poster/thumbnail frames and extracts 16 kHz audio for ASR; ffmpeg does none of that."
  echo
  echo "| tool | wall s | CPU s | wall ratio (stemfeed/ffmpeg) |"
  echo "|---|---:|---:|---:|"
  echo "| stemfeed | $sf_wall | $sf_cpu | $(awk "BEGIN {printf \"%.2f\", $sf_wall / $ff_wall}") |"
  echo "| ffmpeg | $ff_wall | $ff_cpu | 1.00 |"
  echo
  echo "| rung | stemfeed PSNR dB | ffmpeg PSNR dB | stemfeed SSIM | ffmpeg SSIM | stemfeed kbit/s | ffmpeg kbit/s |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for r in "${rungs[@]}"; do
    read -r name w h _ _ <<<"$r"
    read -r sp ss < <(quality "$work/stemfeed/renditions/$name.mp4" "$w" "$h")
    read -r fp fs < <(quality "$work/ffmpeg/$name.mp4" "$w" "$h")
    echo "| $name | $sp | $fp | $ss | $fs | $(size_kbps "$work/stemfeed/renditions/$name.mp4") | $(size_kbps "$work/ffmpeg/$name.mp4") |"
  done
} > "$result"
cat "$result"
