#!/usr/bin/env bash
# Transcode benchmark: stemfeed's one-decode ladder against ffmpeg doing the
# same ladder from a single decode (split filter, bicubic scaling, the same
# x264 settings), on the same generated input in the same run.
#
# Time: whole processes, RUNS paired rounds (stemfeed then ffmpeg), medians of
# wall and CPU (user + system) seconds; page cache warm (the input is made
# first). stemfeed runs with --no-captions; it also measures loudness (an
# audio-only pass), applies the gain and limiter, samples poster/thumbnail
# frames and extracts 16 kHz audio for ASR: that extra work stays in its time.
# ffmpeg writes a faststart MP4 per rung plus HLS, stemfeed one fragmented MP4
# per rung addressed by byte-range HLS.
#
# Quality: every rung upscaled back to the source size (ffmpeg bicubic, the
# same for both) and compared with the source: PSNR (average of Y, U, V
# weighted by pixel count) and SSIM. ffmpeg overshoots its bitrate targets on
# grainy content, so it is also run at 85% of the targets and its PSNR
# interpolated (linearly in log-bitrate) at stemfeed's delivered bitrate:
# quality at equal delivered bitrate.
#
# Usage: benches/transcode.sh [seconds]   (default 30; STEMFEED_BIN, RUNS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
runs=${RUNS:-3}
bin=${STEMFEED_BIN:-target/release/stemfeed}
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1080x1920:rate=30:duration=$seconds,noise=alls=12:allf=t" \
  -f lavfi -i "sine=frequency=220:sample_rate=48000:duration=$seconds" \
  -c:v libx264 -preset veryfast -crf 16 -pix_fmt yuv420p -c:a aac -b:a 192k "$work/source.mp4"

timed() { # label, command...: appends "wall cpu" seconds to $work/times.label
  local label=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >/dev/null 2>"$work/stderr.log" || { cat "$work/stderr.log"; exit 1; }
  awk '{printf "%.2f %.2f\n", $1, $2 + $3}' "$work/t" >> "$work/times.$label"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rungs=("1080p 1080 1920 4000 128" "720p 720 1280 2200 128" "480p 480 854 1000 96" "360p 360 640 550 64")

ffmpeg_ladder() { # out dir, bitrate scale (percent): sets cmd to the ffmpeg command line
  local out=$1 pct=$2 filter maps=() i
  mkdir -p "$out/hls"
  filter="[0:v]split=${#rungs[@]}"
  for i in "${!rungs[@]}"; do filter+="[s$i]"; done
  filter+=";"
  for i in "${!rungs[@]}"; do
    read -r name w h vk ak <<<"${rungs[$i]}"
    vk=$((vk * pct / 100))
    filter+="[s$i]scale=$w:$h:flags=bicubic,format=yuv420p[v$i];"
    mkdir -p "$out/hls/$name"
    maps+=(-map "[v$i]" -map 0:a -c:v libx264 -preset veryfast -profile:v main -b:v "${vk}k"
      -maxrate "$((vk * 3 / 2))k" -bufsize "$((vk * 2))k" -g 60 -keyint_min 60 -sc_threshold 0
      -c:a aac -b:a "${ak}k" -ar 48000 -ac 2
      -f tee "[movflags=+faststart]$out/$name.mp4|[f=hls:hls_time=2:hls_playlist_type=vod]$out/hls/$name/index.m3u8")
  done
  cmd=(ffmpeg -hide_banner -loglevel error -y -i "$work/source.mp4" -filter_complex "${filter%;}" "${maps[@]}")
}

for ((i = 1; i <= runs; i++)); do
  rm -rf "$work/stemfeed" "$work/ffmpeg"
  timed stemfeed "$bin" process "$work/source.mp4" --out "$work/stemfeed" --no-captions
  ffmpeg_ladder "$work/ffmpeg" 100
  timed ffmpeg "${cmd[@]}"
done
ffmpeg_ladder "$work/ffmpeg85" 85
"${cmd[@]}"

quality() { # rung file -> "psnr ssim" against the source
  ffmpeg -hide_banner -nostats -i "$1" -i "$work/source.mp4" -lavfi \
    "[0:v]scale=1080:1920:flags=bicubic,split[u0][u1];[1:v]split[r0][r1];[u0][r0]psnr;[u1][r1]ssim" \
    -f null - 2>&1 | awk '/PSNR/ {for (i=1;i<=NF;i++) if ($i ~ /^average:/) {split($i,a,":"); p=a[2]}}
                          /SSIM/ {for (i=1;i<=NF;i++) if ($i ~ /^All:/) {split($i,a,":"); s=a[2]}}
                          END {printf "%.2f %.4f\n", p, s}'
}
video_kbps() { # file -> video stream bitrate
  ffprobe -v error -select_streams v:0 -show_entries stream=bit_rate -of csv=p=0 "$1" | awk '{printf "%d", $1/1000}'
}
stored() { du -cb "$@" | tail -1 | cut -f1; }

med() { awk -v c="$2" '{print $c}' "$work/times.$1" | median; }
sf_wall=$(med stemfeed 1) sf_cpu=$(med stemfeed 2) ff_wall=$(med ffmpeg 1) ff_cpu=$(med ffmpeg 2)
result=benches/results/transcode.md
{
  echo "# Transcode: stemfeed vs ffmpeg ($seconds s, 1080x1920 30 fps, 4 rungs + HLS)"
  echo
  echo "Run $(date -u +%Y-%m-%d) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);"
  echo "GStreamer $(gst-inspect-1.0 --version | awk 'NR==2 {print $2}'), $(ffmpeg -version | head -1 | cut -d' ' -f1-3); binary $bin."
  echo "Whole processes, $runs paired rounds, medians; x264 veryfast, Main, fixed 2 s GOP, same bitrate caps both sides;"
  echo "threads: each tool's default (all cores). See the header of benches/transcode.sh for what each side does."
  echo
  echo "| tool | wall s (runs) | CPU s (runs) | wall × ffmpeg | CPU × ffmpeg | stored bytes / video minute |"
  echo "|---|---|---|---:|---:|---:|"
  echo "| stemfeed | $sf_wall ($(cut -d' ' -f1 "$work/times.stemfeed" | xargs)) | $sf_cpu ($(cut -d' ' -f2 "$work/times.stemfeed" | xargs)) | $(awk "BEGIN {printf \"%.2f\", $sf_wall / $ff_wall}") | $(awk "BEGIN {printf \"%.2f\", $sf_cpu / $ff_cpu}") | $(( $(stored "$work"/stemfeed/renditions "$work"/stemfeed/hls) * 60 / seconds )) |"
  echo "| ffmpeg | $ff_wall ($(cut -d' ' -f1 "$work/times.ffmpeg" | xargs)) | $ff_cpu ($(cut -d' ' -f2 "$work/times.ffmpeg" | xargs)) | 1.00 | 1.00 | $(( $(stored "$work"/ffmpeg) * 60 / seconds )) |"
  echo
  echo "| rung | stemfeed video kbit/s | stemfeed PSNR | stemfeed SSIM | ffmpeg 100% kbit/s | PSNR | SSIM | ffmpeg 85% kbit/s | PSNR | ffmpeg PSNR at stemfeed's kbit/s | Δ PSNR |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in "${rungs[@]}"; do
    read -r name _ _ _ _ <<<"$r"
    sk=$(video_kbps "$work/stemfeed/renditions/$name.mp4"); read -r sp ss < <(quality "$work/stemfeed/renditions/$name.mp4")
    fk=$(video_kbps "$work/ffmpeg/$name.mp4"); read -r fp fs < <(quality "$work/ffmpeg/$name.mp4")
    gk=$(video_kbps "$work/ffmpeg85/$name.mp4"); read -r gp _ < <(quality "$work/ffmpeg85/$name.mp4")
    at=$(awk -v sk="$sk" -v fk="$fk" -v fp="$fp" -v gk="$gk" -v gp="$gp" \
      'BEGIN {printf "%.2f", gp + (fp - gp) * (log(sk) - log(gk)) / (log(fk) - log(gk))}')
    echo "| $name | $sk | $sp | $ss | $fk | $fp | $fs | $gk | $gp | $at | $(awk "BEGIN {printf \"%+.2f\", $sp - $at}") |"
  done
} > "$result"
cat "$result"
