#!/usr/bin/env bash
# Data-free quantization against the file-read bandwidth: for each round,
# `cat` of the model's safetensors, then each lwquant binary given, all in the
# same cache state (host-cached by default; COLD=1 drops the page cache before
# every command, which needs root). Prints wall, user, sys and peak RSS; the
# outputs of all binaries are compared byte for byte.
#   bench/data_free_bench.sh MODEL_DIR OUT_DIR ROUNDS QUANT_TYPE LWQUANT [LWQUANT...]
set -euo pipefail
model=$1 out=$2 rounds=$3 qtype=$4
shift 4
mkdir -p "$out"
drop() { if [[ "${COLD:-0}" == 1 ]]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }
for ((r = 1; r <= rounds; r++)); do
  drop
  /usr/bin/time -f "round $r cat      wall %e user %U sys %S" cat "$model"/*.safetensors > /dev/null
  i=0
  for bin in "$@"; do
    i=$((i + 1))
    rm -rf "$out/q$i"
    drop
    /usr/bin/time -o "$out/time$i" -f "round $r lwquant$i wall %e user %U sys %S peak_rss %M KB" \
      "$bin" quant --model_path "$model" --save_path "$out/q$i" --quant_type "$qtype" 2> "$out/log$i" > /dev/null \
      || { tail -5 "$out/log$i"; exit 1; }
    cat "$out/time$i"
  done
  for ((j = 2; j <= i; j++)); do
    for f in "$out/q1"/*; do cmp -s "$f" "$out/q$j/$(basename "$f")" || echo "DIFFERENT: $f vs q$j"; done
  done
done
