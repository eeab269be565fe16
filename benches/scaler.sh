#!/usr/bin/env bash
# Scaler quality for the ladder's rungs, without encoding: GStreamer's
# videoscale methods (what the profile's `video.scaler` picks) against
# ffmpeg's default bicubic, each downscale judged against the source by
# upscaling it back to 1080x1920 with one shared upscaler (ffmpeg bicubic),
# PSNR per plane. Also CPU seconds of the decode + scale pipeline.
# Usage: benches/scaler.sh [seconds]   (results in benches/results/scaler.md)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-4}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1080x1920:rate=30:duration=$seconds,noise=alls=12:allf=t" \
  -c:v libx264 -preset veryfast -crf 16 -pix_fmt yuv420p "$work/source.mp4"

rungs=("720 1280" "480 854" "360 640")
# "luma method/chroma resampler": GStreamer scales the 4:2:0 chroma planes
# with videoscale's chroma-resampler (linear by default), not with `method`.
methods=(bilinear2/linear catrom/linear lanczos/linear catrom/cubic lanczos/cubic catrom/lanczos)

psnr() { # raw I420 file, width, height -> "y u v average"
  ffmpeg -hide_banner -nostats -f rawvideo -pix_fmt yuv420p -s "$2x$3" -r 30 -i "$1" -i "$work/source.mp4" \
    -lavfi "[0:v]scale=1080:1920:flags=bicubic[u];[u][1:v]psnr" -f null - 2>&1 |
    grep -o 'PSNR y:.*' | sed -E 's/PSNR y:([0-9.]+) u:([0-9.]+) v:([0-9.]+) average:([0-9.]+).*/\1 \2 \3 \4/'
}

result=benches/results/scaler.md
{
  echo "# Scaler quality: GStreamer videoscale methods vs ffmpeg bicubic"
  echo
  echo "Run $(date -u +%Y-%m-%d), GStreamer $(gst-inspect-1.0 --version | awk 'NR==2 {print $2}'), $(ffmpeg -version | head -1 | cut -d' ' -f1-3)."
  echo "Source: $seconds s of 1080x1920 testsrc2 with temporal noise (x264 crf 16). Each rung is scaled"
  echo "from the source (no encoding), upscaled back to 1080x1920 with ffmpeg bicubic (the same for every"
  echo "side) and compared with the source: PSNR dB per plane. CPU: user + system seconds of the"
  echo "decode + scale process (GStreamer gst-launch / ffmpeg), one run each."
  echo
  echo "| rung | scaler | Y | U | V | average | CPU s |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for r in "${rungs[@]}"; do
    read -r w h <<<"$r"
    for m in "${methods[@]}"; do
      /usr/bin/time -f '%U %S' -o "$work/t" gst-launch-1.0 -q filesrc location="$work/source.mp4" ! decodebin ! videoconvert \
        ! videoscale method="${m%/*}" chroma-resampler="${m#*/}" add-borders=false ! "video/x-raw,width=$w,height=$h,format=I420" ! filesink location="$work/out.yuv"
      echo "| ${w}x${h} | gstreamer $m | $(psnr "$work/out.yuv" "$w" "$h" | tr ' ' '|' | sed 's/|/ | /g') | $(awk '{print $1 + $2}' "$work/t") |"
    done
    /usr/bin/time -f '%U %S' -o "$work/t" ffmpeg -hide_banner -loglevel error -y -i "$work/source.mp4" \
      -vf "scale=$w:$h:flags=bicubic" -f rawvideo -pix_fmt yuv420p "$work/out.yuv"
    echo "| ${w}x${h} | ffmpeg bicubic | $(psnr "$work/out.yuv" "$w" "$h" | tr ' ' '|' | sed 's/|/ | /g') | $(awk '{print $1 + $2}' "$work/t") |"
  done
  # Cascaded: the rung scaled from the 720p rung's frames (what the
  # transcoder does for a rung at most half a larger rung's size).
  for r in "480 854" "360 640"; do
    read -r w h <<<"$r"
    /usr/bin/time -f '%U %S' -o "$work/t" gst-launch-1.0 -q filesrc location="$work/source.mp4" ! decodebin ! videoconvert \
      ! videoscale method=catrom chroma-resampler=cubic add-borders=false ! "video/x-raw,width=720,height=1280,format=I420" \
      ! videoscale method=catrom chroma-resampler=cubic add-borders=false ! "video/x-raw,width=$w,height=$h" ! filesink location="$work/out.yuv"
    echo "| ${w}x${h} | gstreamer catrom/cubic from 720p | $(psnr "$work/out.yuv" "$w" "$h" | tr ' ' '|' | sed 's/|/ | /g') | $(awk '{print $1 + $2}' "$work/t") |"
  done
} > "$result"
cat "$result"
