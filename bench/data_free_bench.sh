#!/usr/bin/env bash
# Data-free quantization against the file-read bandwidth: for each round,
# `cat` of the model's safetensors, then each lwquant binary given, all in the
# same cache state (host-cached by default; COLD=1 drops the page cache before
# every command, which needs root; lwquant's executable and libraries are read
# back in right after, as they are for every run but a machine's first). Prints wall, user, sys and peak RSS; the
# outputs of all binaries are compared byte for byte. From the second round on,
# "read+write" times reading the input while writing (and fsyncing) as many
# bytes as the first binary's output, at the same time: a data-free run must
# do both, and on a disk that shares its bandwidth between reads and writes
# this, not the cold read alone, is the least wall time a run can take.
#   bench/data_free_bench.sh MODEL_DIR OUT_DIR ROUNDS QUANT_TYPE LWQUANT [LWQUANT...]
set -euo pipefail
model=$1 out=$2 rounds=$3 qtype=$4
shift 4
mkdir -p "$out"
# SETTLE seconds of rest before each command: on a VM the host is still
# writing the previous command's output back after its fsync, and the next
# command's reads compete with that (measured: whichever binary ran second
# in a round was up to 1.8x slower on a 656 MB output).
drop() {
  sync
  sleep "${SETTLE:-3}"
  if [[ "${COLD:-0}" == 1 ]]; then echo 3 > /proc/sys/vm/drop_caches; fi
}
for ((r = 1; r <= rounds; r++)); do
  drop
  /usr/bin/time -f "round $r cat      wall %e user %U sys %S" cat "$model"/*.safetensors > /dev/null
  i=0
  for bin in "$@"; do
    i=$((i + 1))
    rm -rf "$out/q$i"
    drop
    "$bin" --help > /dev/null  # the program's own files stay cached: the input's read is what is compared
    /usr/bin/time -o "$out/time$i" -f "round $r lwquant$i wall %e user %U sys %S peak_rss %M KB" \
      "$bin" quant --model_path "$model" --save_path "$out/q$i" --quant_type "$qtype" 2> "$out/log$i" > /dev/null \
      || { tail -5 "$out/log$i"; exit 1; }
    cat "$out/time$i"
  done
  out_mb=$(du -sm "$out/q1" | cut -f1)
  rm -f "$out/ddtest"
  drop
  start=$(date +%s.%N)
  cat "$model"/*.safetensors > /dev/null &
  dd if=/dev/zero of="$out/ddtest" bs=1M count="$out_mb" conv=fsync status=none
  wait
  echo "round $r read+write wall $(echo "$(date +%s.%N) - $start" | bc | xargs printf '%.2f') (read input ∥ write+fsync ${out_mb} MB)"
  rm -f "$out/ddtest"
  for ((j = 2; j <= i; j++)); do
    for f in "$out/q1"/*; do cmp -s "$f" "$out/q$j/$(basename "$f")" || echo "DIFFERENT: $f vs q$j"; done
  done
done
