#!/usr/bin/env bash
# One command from a fresh Debian machine to the whole embedded stemfeed:
# system packages, release build, offline Whisper models, a readiness check,
# a generated spoken sample dropped into the upload inbox, then the server
# with its in-process workers. It prints the URL and the first admin login
# and runs until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked
bin=target/release/stemfeed

"$bin" models install default
"$bin" models list
"$bin" doctor

data_dir=${STEMFEED_DATA_DIR:-stemfeed-data}
export STEMFEED_DATA_DIR="$data_dir"
listen=${STEMFEED_LISTEN:-127.0.0.1:8080}
mkdir -p "$data_dir/samples" "$data_dir/objects/incoming"
sample="$data_dir/samples/falling-ball.mp4"
if [ ! -f "$sample" ]; then
  espeak-ng -v en -s 150 -w "$data_dir/samples/falling-ball.wav" \
    "Welcome to stemfeed. Today we measure the acceleration of a falling ball and compare it with nine point eight metres per second squared."
  # A vertical test-pattern video carrying the spoken audio (ffmpeg is a
  # tool installed by setup; the product itself never runs it).
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1080x1920:rate=30 \
    -i "$data_dir/samples/falling-ball.wav" -shortest -c:v libx264 -pix_fmt yuv420p -c:a aac "$sample"
  # The inbox the workers watch: the sample becomes a job, then waits for review.
  cp "$sample" "$data_dir/objects/incoming/falling-ball.mp4"
  printf '{"title": "Why does a ball fall?", "language": "en", "grade": 9}\n' \
    > "$data_dir/objects/incoming/falling-ball.mp4.json"
fi

echo "--- starting stemfeed (Ctrl-C stops it; the sample appears in the review queue once processed)"
exec "$bin" serve --listen "$listen" --data-dir "$data_dir"
