#!/usr/bin/env bash
# One command from a fresh Debian machine to a working embedded stemfeed:
# system packages, release build, offline Whisper models, a readiness check,
# and a generated sample captioned end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked
bin=target/release/stemfeed

"$bin" models install default
"$bin" models list
"$bin" doctor

sample_dir=$(mktemp -d)
trap 'rm -rf "$sample_dir"' EXIT
espeak-ng -v en -s 150 -w "$sample_dir/sample.wav" \
  "Welcome to stemfeed. Today we measure the acceleration of a falling ball and compare it with nine point eight metres per second squared."
echo "--- sample transcript (base model, language detected)"
"$bin" transcribe "$sample_dir/sample.wav"
