#!/usr/bin/env bash
# Memory and speed benchmark of `lwquant quant` (issue: streaming layer_wise).
# Writes a synthetic Llama-shaped bf16 checkpoint (random weights, sharded),
# then quantizes it with layer_wise and model_wise runners for W8A16 (data
# free) and W8A8 (calibrated), and prints peak RSS (VmHWM, file-backed pages
# included), wall time, and the sizes the target is stated in.
#
# usage: bench/memory_bench.sh [WORK_DIR] [-- extra make_synthetic_checkpoint flags]
#   defaults: 11 layers of hidden 2048 / intermediate 5632 (~1 GiB of bf16 weights)
#   env: RUNNERS="layer_wise model_wise" SCHEMES="w8a16 w8a8" CALIB_SAMPLES=8
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-build/lwquant-bench}"
shift || true
[ "${1:-}" = "--" ] && shift
runners="${RUNNERS:-layer_wise model_wise}"
schemes="${SCHEMES:-w8a16 w8a8}"
calib="${CALIB_SAMPLES:-8}"
bin=build/lwquant
[ -x "$bin" ] || scripts/build.sh

model="$work/model"
if [ ! -f "$model/config.json" ]; then
  mkdir -p "$work"
  build/lwq_make_synthetic_checkpoint --out "$model" "$@"
fi
echo "checkpoint: $model ($(du -sh "$model" | cut -f1))"
build/lwquant inspect --model "$model" 2>/dev/null || true

for scheme in $schemes; do
  for runner in $runners; do
    cfg="$work/${scheme}_${runner}.yaml"
    sed -e "s/^\(  runner:\).*/\1 $runner/" "configs/$scheme.yaml" >"$cfg"
    out="$work/out_${scheme}_${runner}"
    log="$work/log_${scheme}_${runner}.txt"
    start=$(date +%s.%N)
    "$bin" quant --model_path "$model" --save_path "$out" --config_path "$cfg" --overwrite \
      --max_calib_samples "$calib" 2>"$log"
    end=$(date +%s.%N)
    summary=$(grep "peak RSS" "$log" | tail -n 1)
    printf '%-6s %-10s wall %6.1f s | %s\n' "$scheme" "$runner" "$(echo "$end - $start" | bc)" "${summary#*| }"
    rm -rf "$out"
  done
done
