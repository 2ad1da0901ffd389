#!/usr/bin/env bash
# Memory and speed of `lwquant quant` on a Wan2.1-14B-shaped DiT (issue 10):
# writes a synthetic original-layout checkpoint (random bf16; 40 blocks of dim
# 5120, ffn 13824, 40 heads by default), runs the reference practice
# (W8A8_DYNAMIC, mindie_format_saver) with and without prefetch, and prints
# peak RSS (VmHWM), wall and CPU time, the size of one block, and the time
# `cat` takes to read the same files in the same cache state.
#
# usage: bench/wan_bench.sh [WORK_DIR] [-- extra make_synthetic_checkpoint flags]
#   e.g. bench/wan_bench.sh /data/wan-bench -- --layers 4   (fewer blocks: same peak, less disk)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-build/lwquant-wan-bench}"
shift || true
[ "${1:-}" = "--" ] && shift
bin=build/lwquant
[ -x "$bin" ] || scripts/build.sh
model="$work/model"
if [ ! -f "$model/config.json" ]; then
  mkdir -p "$work"
  build/lwq_make_synthetic_checkpoint --wan --out "$model" --hidden 5120 --intermediate 13824 --heads 40 \
    --layers 40 --shard-mb 4096 "$@"
fi
echo "checkpoint: $model ($(du -sh "$model" | cut -f1)); one block: $(python3 -c "
d, f = 5120, 13824
import json; c = json.load(open('$model/config.json')); d, f = c['dim'], c['ffn_dim']
print(f'{(8 * d * d + 2 * d * f + 10 * d + f + 6 * d) * 2 / 2**20:.0f} MiB of bf16')")"
practice=tests/data/configs/wan2_1_w8a8_dynamic.yaml
for mode in default no_prefetch; do
  flag=""; [ "$mode" = no_prefetch ] && flag="--no_prefetch"
  out="$work/out"
  cat "$model"/*.safetensors >/dev/null  # the same (host-cached) state for every run
  /usr/bin/time -f "%e s wall, %U s user, %S s sys, max RSS %M KiB" -o "$work/time_$mode.txt" \
    "$bin" quant --model_path "$model" --save_path "$out" --model_type Wan2.1 --config_path "$practice" \
    --overwrite $flag 2>"$work/log_$mode.txt"
  printf '%-12s %s | %s\n' "$mode" "$(cat "$work/time_$mode.txt")" "$(grep -o 'peak RSS.*' "$work/log_$mode.txt" | tail -1)"
  rm -rf "$out"
done
start=$(date +%s.%N); cat "$model"/*.safetensors >/dev/null; end=$(date +%s.%N)
echo "cat of the checkpoint: $(echo "$end - $start" | bc) s"
