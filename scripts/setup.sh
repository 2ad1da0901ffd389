#!/usr/bin/env bash
# Installs lwquant's build and test dependencies from Debian's packages.
# Safe to run again; needs root (or sudo) for apt-get.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libyaml-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libopenblas-dev libdnnl-dev libhwy-dev libpcre2-dev libicu-dev
  libjpeg62-turbo-dev libpng-dev  # calibration images of vision-language models
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-dev libomp-dev  # fuzz smoke test (fuzz/run.sh --smoke, docs/reliability.md)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
