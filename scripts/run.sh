#!/usr/bin/env bash
# One command from a fresh Debian machine to a working embedded stemfeed:
# system packages, release build, offline Whisper models, a readiness check,
# and a generated spoken sample video processed and transcribed end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked
bin=target/release/stemfeed

"$bin" models install default
"$bin" models list
"$bin" doctor

data_dir=${STEMFEED_DATA_DIR:-stemfeed-data}
mkdir -p "$data_dir/samples"
sample="$data_dir/samples/falling-ball.mp4"
espeak-ng -v en -s 150 -w "$data_dir/samples/falling-ball.wav" \
  "Welcome to stemfeed. Today we measure the acceleration of a falling ball and compare it with nine point eight metres per second squared."
# A vertical test-pattern video carrying the spoken audio (ffmpeg is a
# test-time tool installed by setup; the product itself never runs it).
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1080x1920:rate=30 \
  -i "$data_dir/samples/falling-ball.wav" -shortest -c:v libx264 -pix_fmt yuv420p -c:a aac "$sample"

echo "--- processing $sample"
"$bin" process "$sample" --out "$data_dir/videos/falling-ball"
echo "--- renditions and HLS in $data_dir/videos/falling-ball (index: manifest.json)"
echo "--- sample transcript (base model, language detected)"
"$bin" transcribe "$sample"
