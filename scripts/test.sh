#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, lints, models, tests.
# Self-contained: tests generate their own media and need no network beyond
# the package registries used by setup and `stemfeed models install`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The S3-protocol server the object-store tests talk to over loopback (moto,
# pinned), in its own virtual environment; tests start and stop it.
venv="${STEMFEED_TEST_VENV:-$HOME/.cache/stemfeed/test-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
[ -x "$venv/bin/moto_server" ] || "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.1.22'
export STEMFEED_MOTO_SERVER="$venv/bin/moto_server"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
# Models come through the product's own command (idempotent, cached).
target/debug/stemfeed models install default
cargo test --workspace --locked --no-fail-fast
