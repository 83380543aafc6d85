#!/usr/bin/env bash
# Installs every Debian package duet needs. Idempotent: when everything is present it
# only checks and returns; `apt-get update` runs only when something must be installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-dev         # BLAS for the CPU backend
  libdnnl-dev             # oneDNN: bf16 products on the CPU (AMX)
  libhdf5-dev             # clip files
  libfftw3-dev            # STFT for the audio codec and metrics
  libinih-dev             # INI configs
  libcjson-dev            # JSON (safetensors headers, metrics, logs)
  libpng-dev              # figures and frames
  libavformat-dev libavcodec-dev libswscale-dev libswresample-dev libavutil-dev  # media I/O
  ffmpeg                  # tests make their own MP4 inputs with it
  libopenmpi-dev openmpi-bin  # data-parallel training
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
