#!/usr/bin/env bash
# Load benchmark: a real `stemfeed serve` on loopback (embedded mode, its own
# data directory) with one approved video, loaded with wrk: the published
# feed (/feed.json), then random 64 KiB byte ranges of the video's MP4
# rendition (what a seeking player asks for, served through ServeFile).
# Reports requests/s, latency p50/p99, responses outside 2xx/3xx, socket
# errors and the server's resident memory (before, after, peak during each
# run, from /proc), and writes the table to benches/results/load.md.
#
# Usage: benches/load.sh [seconds] [threads] [connections]   (default 20 2 32)
# Builds and uses target/release/stemfeed; STEMFEED_BENCH_PROFILE=debug uses
# the dev build instead (faster to build, slower to serve; the table says
# which). Needs `stemfeed models install default` (the job captions its
# speech), espeak-ng, ffmpeg and wrk (apt-get installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
threads=${2:-2}
connections=${3:-32}
profile=${STEMFEED_BENCH_PROFILE:-release}
if [ "$profile" = release ]; then
  bin=target/release/stemfeed
  [ -x "$bin" ] || cargo build --release --locked
else
  bin=target/debug/stemfeed
  cargo build --locked
fi
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

sf() { env -u STEMFEED_CONFIG STEMFEED_DATA_DIR="$work/data" "$bin" "$@"; }
sf models install default >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
# Started without a shell function around it, so $! is the server itself
# (env execs it), whose /proc/<pid>/status is read below.
env -u STEMFEED_CONFIG STEMFEED_DATA_DIR="$work/data" STEMFEED_LOG=warn \
  "$bin" serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
  [ -s "$work/data/admin-password.txt" ] && curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done

# One approved video, as the end-to-end tests make one: spoken English on a
# 360x640 test pattern, submitted, processed, looked at and approved.
submitter=$(sf tokens add studio --role submitter)
curator=$(sf tokens add cur --role curator)
espeak-ng -v en -s 150 -w "$work/speech.wav" \
  "Gravity pulls the ball down toward the ground. Heavier things need more force to speed up."
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=360x640:rate=30 -i "$work/speech.wav" \
  -shortest -c:v libx264 -pix_fmt yuv420p -c:a aac "$work/clip.mp4"
video=$("$bin" submit "$work/clip.mp4" --server "$url" --token "$submitter" --title Ball --language en |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["video"])')
auth=(-H "authorization: Bearer $curator")
for _ in $(seq 600); do
  state=$(curl -fsS -H "authorization: Bearer $submitter" "$url/api/videos/$video" | python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])')
  case $state in in-review) break ;; failed | dead) echo "job $state"; cat "$work/serve.log"; exit 1 ;; esac
  sleep 1
done
[ "$state" = in-review ] || { echo "job still $state"; exit 1; }
curl -fsS -o /dev/null "${auth[@]}" "$url/review/$video"
curl -fsS -o /dev/null "${auth[@]}" --data decision=approve "$url/review/$video/decision"
mp4=$(curl -fsS "$url/feed.json" | python3 -c '
import json, sys
item = json.load(sys.stdin)["items"][0]
print(next(a["url"] for a in item["attachments"] if a["mime_type"] == "video/mp4"))')
mp4_bytes=$(curl -fsS -o /dev/null -w '%{size_download}' "$mp4")
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'range: bytes=0-65535' "$mp4")
[ "$code" = 206 ] || { echo "a range request answered $code"; exit 1; }

# The Lua side: random 64 KiB ranges within the file (when RANGE_BYTES is
# set), and a summary line of the numbers the table needs.
cat >"$work/load.lua" <<'LUA'
local size = tonumber(os.getenv("RANGE_BYTES") or "0")
local span = 65536
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(os.time() * 100 + id)
end
if size > 0 then
  function request()
    local start = math.random(0, math.max(0, size - span))
    wrk.headers["Range"] = string.format("bytes=%d-%d", start, math.min(size, start + span) - 1)
    return wrk.format(nil)
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.2f %.2f %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, summary.requests))
end
LUA

rss_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
rows=()
load() { # name, label, URL, range file size (0: none)
  local name=$1
  shift
  rss_before=$(rss_kib "$server_pid" VmRSS)
  echo 5 >"/proc/$server_pid/clear_refs" # restart the peak (VmHWM) from now
  RANGE_BYTES=$3 wrk -t "$threads" -c "$connections" -d "${seconds}s" --latency -s "$work/load.lua" "$2" \
    >"$work/wrk.$name.txt"
  rss_after=$(rss_kib "$server_pid" VmRSS)
  rss_peak=$(rss_kib "$server_pid" VmHWM)
  read -r rps p50 p99 bad sock total < <(awk '$1 == "RESULT" {print $2, $3, $4, $5, $6, $7}' "$work/wrk.$name.txt")
  rows+=("| $1 | $rps | $p50 | $p99 | $total | $bad | $sock | $((rss_before / 1024)) | $((rss_after / 1024)) | $((rss_peak / 1024)) |")
  cat "$work/wrk.$name.txt"
}
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$(readlink "/proc/$server_pid/exe")" = "$(readlink -f "$bin")" ] || { echo "$server_pid is not the server"; exit 1; }
load feed "GET /feed.json" "$url/feed.json" 0
load range "GET MP4, random 64 KiB Range" "$mp4" "$mp4_bytes"

result=benches/results/load.md
{
  echo "# Load: stemfeed serve under wrk ($seconds s each, $threads threads, $connections connections)"
  echo
  echo "Run $(date -u +%Y-%m-%d) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);"
  echo "$profile build ($bin), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), wrk and the server on the same machine over loopback;"
  echo "load average before the runs: $loadavg (1, 5, 15 min)."
  echo "One approved video (a ${mp4_bytes}-byte MP4 rendition); the server runs embedded (its worker pool idle)."
  echo "Ranges are random 64 KiB windows of the rendition (206 answers). RSS is the server process's, from"
  echo "/proc/<pid>/status: VmRSS before and after each run, and VmHWM (peak) reset at the start of each run."
  echo
  echo "| request | req/s | p50 ms | p99 ms | requests | non-2xx/3xx | socket errors | RSS before MiB | RSS after MiB | RSS peak MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} >"$result"
cat "$result"
