#!/usr/bin/env bash
# The main job on the bundled example: sets up, builds, and quantizes
# examples/stories260K to W8A8 (static, calibrated) into out/stories260K-w8a8,
# then shows what was written. Extra arguments go to `lwquant quant`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
./build/lwquant quant --model_path examples/stories260K --save_path out/stories260K-w8a8 \
  --quant_type w8a8 --device cpu --overwrite "$@"
ls -l out/stories260K-w8a8
